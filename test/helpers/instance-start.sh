#!/bin/bash
# Starts a test service instance (service-instance.mjs) holding the service's lock, as
# PostgreSQL's postmaster.pid guards a data directory: fd 9, inherited by the instance and
# released by the kernel at its death. Tells the instance whether it got the lock
# (XCT_EXCLUSIVE) and, when it did not, who held it (XCT_LOCK_HOLDER: pid, command line, node,
# token and instance marker, from /proc/locks), so an overlap names the process it overlapped.
#   instance-start.sh LOCK_FILE COMMAND...
lock=$1
shift
exec 9>>"$lock"
flock -n 9
rc=$?
case $rc in
  0) export XCT_EXCLUSIVE=1 ;;
  1)
    export XCT_EXCLUSIVE=0
    ino=$(stat -c %i "$lock")
    holders=
    # "ID: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END"; waiters ("ID: -> FLOCK ...") are skipped.
    while read -r _ kind _ _ pid dev _; do
      [ "$kind" = FLOCK ] && [ "${dev##*:}" = "$ino" ] || continue
      env=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -E '^XCLUSTER_(NODE|TOKEN|INSTANCE)=' | tr '\n' ' ')
      holders+="pid $pid [$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)] ${env}state $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null); "
    done </proc/locks
    export XCT_LOCK_HOLDER=${holders:-none in /proc/locks by now}
    ;;
  # Not a conflict (flock itself failed): the dates decide, and the output says why.
  *) export XCT_LOCK_HOLDER="flock failed with status $rc" ;;
esac
exec "$@"
