/**
 * The test guest's metadata lines (test/helpers/guest.ts puts the script in its initramfs)
 * and the parser of what they print on the serial console.
 *
 * With `kumo.metadata` on the kernel command line, after DHCP the guest fetches with
 * busybox `wget` every path of METADATA_PATHS from http://169.254.169.254, then once more
 * `…/instance-id` with forged X-Instance-ID / X-Forwarded-For / X-Kumo-Network-ID / X-Kumo-Router-ID headers
 * whose values come from its own user data (lines `forge-instance-id=…`,
 * `forge-forwarded-for=…`, `forge-network-id=…`, `forge-router-id=…`). With `kumo.configdrive` it mounts the
 * ISO 9660 volume labelled config-2 (/dev/sr0 otherwise) and prints every file on it.
 *
 * Each body is printed base64-encoded between `KUMO-META-BEGIN <source> <path>` and
 * `KUMO-META-END <source> <path> <ok|fail>` (source: http, forged, configdrive), so no byte
 * of it can be mistaken for a marker on the console; `KUMO-META-DONE <source>` follows the
 * last one of a source. Invariant: the parser reads only complete BEGIN…END pairs.
 */

export const META_BEGIN = 'KUMO-META-BEGIN';
export const META_END = 'KUMO-META-END';
export const META_DONE = 'KUMO-META-DONE';

/** What the guest fetches, in this order (the list). */
export const METADATA_PATHS = [
  '/',
  '/2009-04-04/meta-data/',
  '/2009-04-04/meta-data/instance-id',
  '/2009-04-04/meta-data/local-ipv4',
  '/2009-04-04/meta-data/placement/availability-zone',
  '/2009-04-04/meta-data/public-keys/0/openssh-key',
  '/2009-04-04/user-data',
  '/openstack/latest/meta_data.json',
] as const;

/** The forged request's path. */
export const FORGED_PATH = '/2009-04-04/meta-data/instance-id';

export type MetaSource = 'http' | 'forged' | 'configdrive';

/** /metadata.sh in the initramfs; `$1` is `http` or `configdrive`. */
export const METADATA_SCRIPT = `#!/bin/sh
# Prints metadata bodies base64-encoded between markers (test/helpers/metadata-guest.ts).
M=http://169.254.169.254
show() {
  echo "${META_BEGIN} $1 $2"
  [ -f "$3" ] && base64 "$3"
  echo "${META_END} $1 $2 $4"
}
get() {
  src=$1; path=$2; shift 2
  rm -f /tmp/body
  if timeout 20 wget -q -O /tmp/body "$@" "$M$path" 2>/tmp/wget-err; then st=ok; else st=fail; fi
  [ "$st" = fail ] && sed 's/^/KUMO-META-WGET /' /tmp/wget-err
  show "$src" "$path" /tmp/body "$st"
  [ "$st" = ok ]
}
forged() {
  sed -n "s/^forge-$1=//p" /tmp/user-data 2>/dev/null | head -n 1
}
http() {
  ready=no
  for _ in $(seq 1 45); do
    if timeout 2 wget -q -O /dev/null "$M/" 2>/dev/null; then ready=yes; break; fi
    sleep 1
  done
  if [ "$ready" = no ]; then
    echo "KUMO-GUEST-FAIL metadata unreachable"
    ip route
    echo "${META_DONE} http"
    return
  fi
  for p in ${METADATA_PATHS.join(' ')}; do
    get http "$p" || true
    [ "$p" = /2009-04-04/user-data ] && cp /tmp/body /tmp/user-data 2>/dev/null
  done
  get forged ${FORGED_PATH} \\
    --header "X-Instance-ID: $(forged instance-id)" \\
    --header "X-Forwarded-For: $(forged forwarded-for)" \\
    --header "X-Kumo-Network-ID: $(forged network-id)" \\
    --header "X-Kumo-Router-ID: $(forged router-id)" || true
  echo "${META_DONE} http"
}
configdrive() {
  mkdir -p /mnt/config
  dev=
  for _ in $(seq 1 30); do
    dev=$(findfs LABEL=config-2 2>/dev/null)
    [ -z "$dev" ] && [ -b /dev/sr0 ] && dev=/dev/sr0
    [ -n "$dev" ] && break
    sleep 1
  done
  if [ -n "$dev" ] && mount -t iso9660 -o ro "$dev" /mnt/config; then
    for f in $(cd /mnt/config && find . -type f | sort); do
      show configdrive "\${f#.}" "/mnt/config/$f" ok
    done
    umount /mnt/config
  else
    echo "KUMO-GUEST-FAIL configdrive \${dev:-none}"
  fi
  echo "${META_DONE} configdrive"
}
"$1"
`;

/** One printed body: `ok` false when wget failed (its body, if any, is still given). */
export interface MetaItem {
  ok: boolean;
  body: string;
}

/** Parses a console log: source → path → item (the last one printed wins). */
export function parseMetadataConsole(log: string): Map<MetaSource, Map<string, MetaItem>> {
  const out = new Map<MetaSource, Map<string, MetaItem>>();
  let open: { source: MetaSource; path: string; lines: string[] } | undefined;
  for (const raw of log.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const begin = new RegExp(`^${META_BEGIN} (http|forged|configdrive) (\\S+)$`).exec(line);
    if (begin) {
      open = { source: begin[1] as MetaSource, path: begin[2] as string, lines: [] };
      continue;
    }
    const end = new RegExp(`^${META_END} (\\S+) (\\S+) (ok|fail)$`).exec(line);
    if (end && open && end[1] === open.source && end[2] === open.path) {
      const body = Buffer.from(open.lines.join(''), 'base64').toString('utf8');
      const bySource = out.get(open.source) ?? new Map<string, MetaItem>();
      bySource.set(open.path, { ok: end[3] === 'ok', body });
      out.set(open.source, bySource);
      open = undefined;
      continue;
    }
    if (open && /^[A-Za-z0-9+/=]*$/.test(line)) open.lines.push(line);
  }
  return out;
}

/** Whether the guest has printed everything of `source`. */
export const metadataDone = (log: string, source: 'http' | 'configdrive'): boolean =>
  log.split('\n').some((l) => l.replace(/\r$/, '') === `${META_DONE} ${source}`);

/** User data making the guest forge another instance's identity. */
export function forgingUserData(forge: {
  instanceId: string;
  forwardedFor: string;
  networkId: string;
  routerId: string;
}): string {
  return [
    `forge-instance-id=${forge.instanceId}`,
    `forge-forwarded-for=${forge.forwardedFor}`,
    `forge-network-id=${forge.networkId}`,
    `forge-router-id=${forge.routerId}`,
    '',
  ].join('\n');
}
