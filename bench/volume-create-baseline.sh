#!/usr/bin/env bash
# bench/volume-create's baseline: what an operator's shell script does to make and export
# N file volumes, P at a time (xargs -P): per volume a sparse 1 GiB file (truncate), and on
# a running tgtd (tgtadm -C <ctl>) a target iqn.2010-10.org.openstack:volume-<n>, LUN 1
# backed by the file, a CHAP account (20-character user, 16-character secret) bound to the
# target, and an initiator ACL for one host. The steps the volume agent performs when it
# makes a volume (all but the ACL entry, which it adds on attach), one process per step,
# with no API, queue or database around them.
#
# Usage: volume-create-baseline.sh <dir> <control port> <count> <parallel> <initiator iqn> [export|data]
# `data`: only the truncate of each volume (the data alone, for scale).
# Invariant: writes only under <dir> and only to the tgtd of <control port>; exits non-zero
# (and says which step) if any volume's step fails.
set -euo pipefail
[ $# -eq 5 ] || [ $# -eq 6 ] || { echo "usage: $0 dir ctl count parallel initiator [export|data]" >&2; exit 2; }
dir=$1 ctl=$2 count=$3 parallel=$4 initiator=$5 mode=${6:-export}
case $mode in export|data) ;; *) echo "mode: export or data, not $mode" >&2; exit 2 ;; esac
[ -d "$dir" ] || { echo "no directory $dir" >&2; exit 2; }

one() {
  set -eu
  local dir=$1 ctl=$2 initiator=$3 mode=$4 tid=$5
  local name file user secret t
  name=$(printf 'volume-bench-%04d' "$tid")
  file="$dir/$name"
  truncate -s 1G "$file"
  [ "$mode" = export ] || return 0
  user=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 20)
  secret=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 16)
  t=(tgtadm -C "$ctl" --lld iscsi)
  "${t[@]}" --op new --mode target --tid "$tid" -T "iqn.2010-10.org.openstack:$name"
  "${t[@]}" --op new --mode logicalunit --tid "$tid" --lun 1 -b "$file"
  "${t[@]}" --op new --mode account --user "$user" --password "$secret"
  "${t[@]}" --op bind --mode account --tid "$tid" --user "$user"
  "${t[@]}" --op bind --mode target --tid "$tid" --initiator-name "$initiator"
}
export -f one

# xargs exits 123 when any volume's bash failed (set -e: at its first failing step).
seq 1 "$count" | xargs -P "$parallel" -I{} bash -c 'one "$@"' _ "$dir" "$ctl" "$initiator" "$mode" {}
