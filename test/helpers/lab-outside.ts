/**
 * The lab's "outside world" (HOST-LAB.md: an external network is one more namespace):
 * namespace `<prefix>-out` holding a Linux bridge `br-out` with documentation-range
 * addresses (203.0.113.0/24 by default), plus a veth per connected host whose host end is
 * a port of that host's physical OVS bridge (br-ex, created netdev if the host has none
 * yet) and whose other end is a port of br-out.
 *
 * Invariants: every device lives in a namespace the lab made (the host's or `-out`), so
 * no traffic reaches the machine's own interfaces; both veth ends have TX checksum offload
 * off (OVS's userspace datapath reads them with AF_PACKET and would pass partial
 * checksums on, so TCP would fail); deleting the namespace removes every veth with it.
 * The lab's kernel has neither 802.1Q devices nor VLAN-filtering bridges: br-out passes
 * tagged frames between hosts untouched, and its own addresses answer untagged frames only.
 */

import { join } from 'node:path';
import { REPO } from './env.ts';

/** What the outside world needs of a lab host. */
export interface OutsideHost {
  name: string;
  netns: string;
  vsctl(args: string[]): Promise<string>;
}

export interface Outside {
  netns: string;
  bridge: string;
}

type Exec = (netns: string, argv: string[]) => Promise<string>;
type Run = (argv: string[]) => Promise<string>;

export const OUTSIDE_BRIDGE = 'br-out';

/** TX checksum offload off on `devices` in `netns` (tools/tx-off.py). */
export function txChecksumOff(exec: Exec, netns: string, devices: string[]) {
  return exec(netns, ['python3', join(REPO, 'tools', 'tx-off.py'), ...devices]);
}

/**
 * The VLAN id of the first frame from `mac` seen on `dev` within `seconds` ('untagged',
 * or '' when none came): an AF_PACKET socket, the tag read from PACKET_AUXDATA as the
 * kernel strips it (no tcpdump here).
 */
const FIRST_FRAME_VLAN = `import select, socket, struct, sys, time
dev, mac, secs = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((dev, 0))
s.setsockopt(263, 8, 1)
end = time.time() + secs
while select.select([s], [], [], max(0, end - time.time()))[0]:
    data, anc, _, _ = s.recvmsg(65535, socket.CMSG_LEN(64))
    if data[6:12] != mac:
        continue
    vid = 'untagged'
    for level, kind, val in anc:
        status, _, _, _, _, tci, _ = struct.unpack('IIIHHHH', val[:20])
        if level == 263 and kind == 8 and status & 0x10:
            vid = tci & 0xfff
    if data[12:14] == b'\\x81\\x00':
        vid = struct.unpack('!H', data[14:16])[0] & 0xfff
    print(vid, flush=True)
    break
`;

export function firstFrameVlan(
  exec: Exec,
  netns: string,
  dev: string,
  mac: string,
  seconds: number,
): Promise<string> {
  return exec(netns, ['python3', '-c', FIRST_FRAME_VLAN, dev, mac, String(seconds)]).then((out) =>
    out.trim(),
  );
}

export function outsideWorld(prefix: string, run: Run, exec: Exec) {
  const netns = `${prefix}-out`;
  let made = false;
  const outside: Outside = { netns, bridge: OUTSIDE_BRIDGE };

  return {
    /** Makes the namespace and bridge once; adds `cidrs` to the bridge. */
    async create(cidrs: readonly string[]): Promise<Outside> {
      if (!made) {
        await run(['ip', 'netns', 'add', netns]);
        made = true;
        await exec(netns, ['ip', 'link', 'set', 'lo', 'up']);
        await exec(netns, ['ip', 'link', 'add', OUTSIDE_BRIDGE, 'type', 'bridge']);
        await exec(netns, ['ip', 'link', 'set', OUTSIDE_BRIDGE, 'up']);
      }
      for (const cidr of cidrs)
        await exec(netns, ['ip', 'addr', 'add', cidr, 'dev', OUTSIDE_BRIDGE]);
      return outside;
    },

    /** Links `host`'s `bridge` to br-out; resolves with the host end's name. */
    async connect(host: OutsideHost, bridge: string): Promise<string> {
      if (!made) throw new Error('lab.outside() first');
      const hostEnd = `o-${bridge}`.slice(0, 15);
      const outEnd = `${host.name}-${bridge}`.slice(0, 15);
      await run([
        'ip',
        'link',
        'add',
        hostEnd,
        'netns',
        host.netns,
        'type',
        'veth',
        'peer',
        'name',
        outEnd,
        'netns',
        netns,
      ]);
      await txChecksumOff(exec, host.netns, [hostEnd]);
      await txChecksumOff(exec, netns, [outEnd]);
      await exec(netns, ['ip', 'link', 'set', outEnd, 'master', OUTSIDE_BRIDGE, 'up']);
      await exec(host.netns, ['ip', 'link', 'set', hostEnd, 'up']);
      await host.vsctl([
        '--may-exist',
        'add-br',
        bridge,
        '--',
        'set',
        'Bridge',
        bridge,
        'datapath_type=netdev',
        '--',
        'add-port',
        bridge,
        hostEnd,
      ]);
      return hostEnd;
    },

    async destroy() {
      if (made) await run(['ip', 'netns', 'del', netns]).catch(() => {});
      made = false;
    },
  };
}
