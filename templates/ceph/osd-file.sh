# Written by xcluster (ceph disk add NODE loop,SIZE): one OSD whose BlueStore lives in a file in
# its data directory, as MicroCeph's loop OSDs do; the steps are ceph-volume's (osd new with the
# OSD's key, ceph-osd --mkfs, the unit), the block a file instead of a disk. Run as root by sh.
set -eu
uuid={{uuid}}
keyring={{bootstrapKeyring}}
secret=$(ceph-authtool --gen-print-key)
id=$(printf '{"cephx_secret": "%s"}' "$secret" | ceph --name client.bootstrap-osd --keyring "$keyring" osd new "$uuid" -i -)
dir=/var/lib/ceph/osd/ceph-$id
# A failed mkfs leaves no half-made OSD in the cluster's map (ceph-volume's own rollback).
trap 'ceph --name client.bootstrap-osd --keyring "$keyring" osd purge-new "osd.$id" --yes-i-really-mean-it >/dev/null 2>&1; rm -rf "$dir"' EXIT
install -d -o ceph -g ceph -m 750 "$dir"
ceph-authtool "$dir/keyring" --create-keyring --name "osd.$id" --add-key "$secret" >/dev/null
ceph --name client.bootstrap-osd --keyring "$keyring" mon getmap -o "$dir/activate.monmap" 2>/dev/null
chown -R ceph:ceph "$dir"
ceph-osd --cluster ceph --osd-objectstore bluestore --mkfs -i "$id" --monmap "$dir/activate.monmap" --osd-data "$dir" --osd-uuid "$uuid" --bluestore-block-create true --bluestore-block-size {{bytes}} --setuser ceph --setgroup ceph
trap - EXIT
systemctl enable --now "ceph-osd@$id"
echo "osd.$id"
