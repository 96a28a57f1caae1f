/**
 * The seed walkthrough's guest (test/helpers/guest.ts puts the script in its initramfs;
 * `./stack.sh` uploads that guest as the `cirros-like` images with `kumo.seed` on their
 * command line): with `kumo.seed`, after DHCP the guest
 *
 * - asks the metadata service for its hostname (`vm1.novalocal`) and takes the first label
 *   as its name, as cirros does;
 * - serves that name on port 80 with busybox httpd, the seed's "tiny HTTP server in each
 *   that answers its name" (`curl http://10.0.0.3` prints `vm1`);
 * - reads 169.254.169.254's listings (SEED_LISTINGS) and prints each on the console as
 *   plain text between `KUMO-SEED-GET <url>` and `KUMO-SEED-END <url> ok|fail`, so an
 *   operator reads them with `openstack console log show` and a test parses them.
 *
 * Invariant: plain text, no build logic; every byte here goes into the initramfs hash.
 */

export const SEED_HTTP_MARKER = 'KUMO-SEED-HTTP';
export const SEED_GET = 'KUMO-SEED-GET';
export const SEED_END = 'KUMO-SEED-END';
export const SEED_DONE = 'KUMO-SEED-DONE';

/** The metadata service's address, as the guest reaches it. */
export const METADATA_URL = 'http://169.254.169.254';

/** The listings the guest prints, in this order. */
export const SEED_LISTINGS = ['/', '/latest/', '/latest/meta-data/', '/openstack/'] as const;

/** /seed.sh in the initramfs. */
export const SEED_SCRIPT = `#!/bin/sh
# The seed's guest: its name from the metadata service, served on port 80, and the
# metadata service's listings printed on the console (test/helpers/seed-guest.ts).
M=${METADATA_URL}
name=
for _ in $(seq 1 60); do
  if timeout 3 wget -q -O /tmp/hostname "$M/latest/meta-data/hostname" 2>/dev/null; then
    name=$(cut -d. -f1 /tmp/hostname | tr -cd 'A-Za-z0-9-')
    break
  fi
  sleep 1
done
[ -n "$name" ] || { echo "KUMO-GUEST-FAIL metadata unreachable"; name=kumo-guest; }
hostname "$name"
mkdir -p /www
echo "$name" > /www/index.html
if httpd -p 80 -h /www; then echo "${SEED_HTTP_MARKER} $name"; else echo "KUMO-GUEST-FAIL httpd"; fi
for p in ${SEED_LISTINGS.join(' ')}; do
  echo "${SEED_GET} $M$p"
  if timeout 10 wget -q -O /tmp/listing "$M$p" 2>/dev/null; then st=ok; else st=fail; fi
  [ -f /tmp/listing ] && cat /tmp/listing && echo
  rm -f /tmp/listing
  echo "${SEED_END} $M$p $st"
done
echo "${SEED_DONE} $name"
`;

/** What the guest printed: its name once httpd runs, and each listing's lines. */
export interface SeedConsole {
  name?: string;
  listings: Map<string, { ok: boolean; lines: string[] }>;
  done: boolean;
}

/** Parses a console log (a listing counts once its END line came). */
export function parseSeedConsole(log: string): SeedConsole {
  const out: SeedConsole = { listings: new Map(), done: false };
  let open: { url: string; lines: string[] } | undefined;
  for (const raw of log.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith(`${SEED_HTTP_MARKER} `)) out.name = line.slice(SEED_HTTP_MARKER.length + 1);
    else if (line.startsWith(`${SEED_GET} `))
      open = { url: line.slice(SEED_GET.length + 1), lines: [] };
    else if (line.startsWith(`${SEED_END} `) && open) {
      const [url, st] = line.slice(SEED_END.length + 1).split(' ');
      if (url === open.url)
        out.listings.set(url.slice(METADATA_URL.length), {
          ok: st === 'ok',
          lines: open.lines.filter((l) => l !== ''),
        });
      open = undefined;
    } else if (line.startsWith(`${SEED_DONE} `)) out.done = true;
    else if (open) open.lines.push(line);
  }
  return out;
}
