/**
 * What runs inside the test guest (test/helpers/guest.ts builds the initramfs): its /init
 * and udhcpc event script, the modules /init loads, and the console markers other suites
 * read. /init mounts proc, sys and dev, insmods the modules (virtio_net without checksum
 * offload: the lab's userspace datapath hands partial checksums on, and its conntrack
 * drops such TCP as invalid; the cdrom modules when the kernel has them), and unless the
 * command line has `kumo.nodhcp` runs `udhcpc -O staticroutes` (option 121's routes, as an
 * isolated network's route to 169.254.169.254 via its DHCP port); then `KUMO-GUEST-UP`,
 * the metadata-guest.ts script for `kumo.configdrive` / `kumo.metadata`, seed-guest.ts's
 * for `kumo.seed` (its name on port 80, the metadata listings), and the pings of
 * `kumo.ping=`. With `kumo.disk` a background loop watches /dev/vdb (a hot-plugged volume):
 * DISK_WATCH below.
 *
 * Invariant: plain text, no build logic; every byte here goes into the initramfs hash.
 */
/** The line /init prints once userspace is up: `KUMO-GUEST-UP <ip>` or `… none`. */
export const GUEST_UP_MARKER = 'KUMO-GUEST-UP';

/** With `kumo.ping=<ip>,<ip>` on the command line the guest pings each other address and
 * prints `KUMO-PING <ip> ok|fail` (up to 90 tries, one a second). */
export const PING_MARKER = 'KUMO-PING';

/** insmod order (HOST-LAB.md); modules the kernel has built in are skipped. */
export const GUEST_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'failover',
  'net_failover',
  'virtio_net',
  'virtio_blk',
] as const;

/** The IDE cdrom and ISO 9660 (the config drive), in modules.dep order; loaded when present. */
export const CDROM_MODULES = [
  'scsi_common',
  'scsi_mod',
  'libata',
  'ata_piix',
  'cdrom',
  'sr_mod',
  'isofs',
] as const;

/**
 * With `kumo.disk`, every second: when /dev/vdb appears, `KUMO-DISK vdb <sectors> <hex of
 * its first 32 bytes>` (read with O_DIRECT); with `kumo.diskwrite=<pattern>` the pattern is
 * then written at offset 0 (one 512-byte block, fsync, O_DIRECT) and `KUMO-DISK-WROTE
 * <pattern>` printed, once per appearance; while vdb is present, every 2 s a counter block
 * at 1 MiB (`KUMO-DISK-IO <n> ok|fail`), so I/O is seen going on; when it goes,
 * `KUMO-DISK-GONE vdb`.
 */
export const DISK_MARKER = 'KUMO-DISK';
export const DISK_WROTE_MARKER = 'KUMO-DISK-WROTE';
export const DISK_IO_MARKER = 'KUMO-DISK-IO';
export const DISK_GONE_MARKER = 'KUMO-DISK-GONE';

const DISK_WATCH = `disk_watch() {
  seen=0; tick=0; n=0
  while true; do
    if [ -b /dev/vdb ]; then
      if [ $seen = 0 ]; then
        seen=1; tick=0
        head=$(dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | head -c 32 | od -An -v -tx1 | tr -d ' \\n')
        echo "${DISK_MARKER} vdb $(cat /sys/block/vdb/size) \${head:-unreadable}"
        if [ -n "$1" ]; then
          if printf '%s' "$1" | dd of=/dev/vdb bs=512 count=1 conv=sync,fsync oflag=direct 2>/dev/null; then
            echo "${DISK_WROTE_MARKER} $1"
          else
            echo "${DISK_WROTE_MARKER}-FAIL $1"
          fi
        fi
      fi
      tick=$((tick + 1))
      if [ $((tick % 2)) = 0 ]; then
        n=$((n + 1)); r=fail
        printf 'KUMO-IO-%08d' $n | dd of=/dev/vdb bs=512 seek=2048 count=1 conv=sync,fsync oflag=direct 2>/dev/null && r=ok
        echo "${DISK_IO_MARKER} $n $r"
      fi
    elif [ $seen = 1 ]; then
      seen=0
      echo "${DISK_GONE_MARKER} vdb"
    fi
    sleep 1
  done
}`;

export const INIT = `#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "KUMO-GUEST-INIT $(uname -r)"
for m in ${[...GUEST_MODULES, ...CDROM_MODULES].join(' ')}; do
  # no checksum offload: the userspace datapath's conntrack drops partial-checksum TCP
  case $m in virtio_net) args="csum=0 gso=0" ;; *) args= ;; esac
  if [ -f /lib/modules/$m.ko ]; then
    insmod /lib/modules/$m.ko $args || echo "KUMO-GUEST-FAIL insmod $m"
  fi
done
hostname kumo-guest
ip link set lo up
ip=none
case " $(cat /proc/cmdline) " in
  *" kumo.nodhcp "*) ;;
  *)
    if ip link set eth0 up; then
      if udhcpc -i eth0 -s /udhcpc.sh -O staticroutes -q -n -t 10 -T 1; then
        ip=$(cat /tmp/kumo-ip)
      else
        echo "KUMO-GUEST-FAIL dhcp"
      fi
    else
      echo "KUMO-GUEST-FAIL no eth0"
    fi
    ;;
esac
echo "${GUEST_UP_MARKER} $ip"
case " $(cat /proc/cmdline) " in *" kumo.configdrive "*) /metadata.sh configdrive ;; esac
case " $(cat /proc/cmdline) " in *" kumo.metadata "*) /metadata.sh http ;; esac
case " $(cat /proc/cmdline) " in *" kumo.seed "*) /seed.sh ;; esac
for arg in $(cat /proc/cmdline); do
  case "$arg" in kumo.ping=*) peers=$(echo "\${arg#kumo.ping=}" | tr , ' ') ;; esac
done
${DISK_WATCH}
diskwrite=
for arg in $(cat /proc/cmdline); do
  case "$arg" in kumo.diskwrite=*) diskwrite=$(echo "\${arg#kumo.diskwrite=}" | tr -cd A-Za-z0-9) ;; esac
done
case " $(cat /proc/cmdline) " in *" kumo.disk "*) disk_watch "$diskwrite" & ;; esac
for peer in $peers; do
  [ "$peer" = "$ip" ] && continue
  result=fail
  for _ in $(seq 1 90); do
    if ping -c 1 -W 1 "$peer" >/dev/null 2>&1; then result=ok; break; fi
  done
  echo "${PING_MARKER} $peer $result"
done
while true; do sleep 3600; done
`;

export const UDHCPC = `#!/bin/sh
# udhcpc event script: $interface, $ip, $mask (prefix length), $router, $mtu, and
# $staticroutes (option 121: "dest/len gw dest/len gw ...")
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    set -- $staticroutes
    while [ $# -ge 2 ]; do
      if [ "$2" = 0.0.0.0 ]; then ip route add "$1" dev "$interface"
      else ip route add "$1" via "$2" dev "$interface"; fi
      shift 2
    done
    case " $staticroutes " in *" 0.0.0.0/0 "*) ;; *)
      [ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface" ;;
    esac
    echo "$ip" > /tmp/kumo-ip
    ;;
esac
exit 0
`;
