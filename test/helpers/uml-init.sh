#!/bin/bash
# PID 1 of a test machine with a kernel of its own (User-mode Linux, see test/helpers/uml.ts).
# Its root is the host's / (hostfs), so it runs the host's programs and the checkout as they are;
# /proc, /sys, /dev, /run and its network are its own. The kernel hands it, from its command line:
#   XCT_IP    the machine's address on the test bridge (/24)
#   XCT_MODULES  the kernel's modules (comma-separated) the machine has: the others it lacks
#   XCT_RUN   a script to run (the environment and command uml-run was given)
#   XCT_STOP  a file whose appearance asks that command to stop (SIGTERM), as an operator would
# The machine powers off when the command ends.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs run /run
mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm
# What udev or systemd makes on any machine: bash's process substitution needs /dev/fd.
ln -sfn /proc/self/fd /dev/fd
# The kernel's modules are the UML package's, not under /lib/modules, where this root's modprobe
# looks: to a program the machine has no module to load. The ones it has are loaded now, as a
# machine's modules-load.d would; the kernel's own requests (a driver's dependencies, crypto) go
# to a modprobe pointed at them through a root of its own.
release=$(uname -r)
mkdir -p /run/uml/lib/modules
ln -s "/usr/lib/uml/modules/$release" "/run/uml/lib/modules/$release"
printf '#!/bin/sh\nexec /usr/sbin/modprobe -d /run/uml "$@"\n' >/run/uml/modprobe
chmod +x /run/uml/modprobe
echo /run/uml/modprobe >/proc/sys/kernel/modprobe
/run/uml/modprobe -a ${XCT_MODULES//,/ } || echo "uml-init: cannot load $XCT_MODULES" >&2
ip link set lo up
ip addr add "$XCT_IP/24" dev vec0
ip link set vec0 up
bash "$XCT_RUN" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  if [ -e "$XCT_STOP" ]; then
    kill -TERM "$pid"
    wait "$pid"
    break
  fi
  sleep 0.2
done
echo "uml-init: command ended" >&2
poweroff -f
