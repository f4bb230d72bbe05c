#!/bin/bash
# xcluster enlistment for cluster "{{cluster}}": reports this machine's SSH host public keys to
# the cluster's DHCP leader (the server its lease came from), which keeps the first report for
# the MAC leased this address; `xcluster node add` then pins those keys. Run it as root once the
# machine has its cluster lease: from the installer's late command (in-target) or at first boot.
#   bash xcluster-enlist.sh [SERVER]
# SERVER: the DHCP server's address (default: read from systemd-networkd's or dhclient's lease).
# Exit 0 once the leader holds the keys (now or before); otherwise 1, with its answer.
set -u
export LC_ALL=C
port={{port}}
path={{path}}
server=${1:-}
if [ -z "$server" ]; then
  for lease in /run/systemd/netif/leases/*; do
    [ -f "$lease" ] && server=$(sed -n 's/^SERVER_ADDRESS=//p' "$lease" | head -n 1)
    [ -n "$server" ] && break
  done
fi
if [ -z "$server" ]; then
  server=$(sed -n 's/.*option dhcp-server-identifier \([0-9.]*\);.*/\1/p' /var/lib/dhcp/dhclient*.leases 2>/dev/null | tail -n 1)
fi
if [ -z "$server" ]; then
  echo "xcluster-enlist: no DHCP lease found; give the DHCP server's address: bash $0 SERVER" >&2
  exit 2
fi
{{#if clusterKey}}
# The cluster's own SSH key (public half), as the installer authorized the operator's: the
# cluster provisions this machine with it (autoProvision). Added once; other keys stay.
home=$(getent passwd {{sshUser}} | cut -d: -f6)
if [ -n "$home" ] && ! grep -qxF '{{clusterKey}}' "$home/.ssh/authorized_keys" 2>/dev/null; then
  (umask 077 && mkdir -p "$home/.ssh" && printf '%s\n' '{{clusterKey}}' >>"$home/.ssh/authorized_keys")
  chown {{sshUser}}: "$home/.ssh" "$home/.ssh/authorized_keys"
fi
{{/if}}
body=$(cat /etc/ssh/ssh_host_*_key.pub) || exit 1
# bash's /dev/tcp: nothing to install on a fresh machine.
if ! exec 3<>"/dev/tcp/$server/$port"; then
  echo "xcluster-enlist: cannot reach $server:$port" >&2
  exit 1
fi
printf 'POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s' "$path" "$server" "${#body}" "$body" >&3
read -r -t 10 _ status _ <&3
answer=$(sed -n '/^\r\{0,1\}$/,$p' <&3 | tail -n +2)
exec 3<&-
echo "xcluster-enlist: $server: ${answer:-no answer}"
case $status in
  200 | 201) exit 0 ;;
  *) exit 1 ;;
esac
