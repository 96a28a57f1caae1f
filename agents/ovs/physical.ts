/**
 * Provider networks (flat and VLAN) through [ovs] bridge_mappings, as Neutron's OVS agent
 * wires them: each mapped physical bridge is patched to br-int (`int-<bridge>` on br-int,
 * `phy-<bridge>` on the physical bridge, names hashed to 15 characters as Neutron's
 * get_interface_name does), and each network on a mapped physical network gets a pair of
 * VLAN translations: local VLAN ↔ untagged (flat) or ↔ its VLAN id (vlan); inward frames
 * then enter br-int's dispatch table (60, firewall.ts) with the local VLAN in reg6. Pure.
 *
 * Invariants: a frame crosses a patch only through a translation of a network this host
 * serves; anything else arriving on a patch port is dropped (priority 2 on both sides),
 * so the physical network never sees a tunnel network's local VLAN and a tagged frame
 * from outside never reaches a local VLAN it was not translated to; a network whose
 * physical network has no mapping here (or whose VLAN id is not 1-4094) gets no flow on
 * any patch and stays local to br-int, as before mappings existed.
 */
import { createHash } from 'node:crypto';

/** Linux's device name limit (IFNAMSIZ - 1), Neutron's DEVICE_NAME_MAX_LEN. */
const MAX_NAME = 15;
/** Neutron's INTERFACE_HASH_LEN. */
const HASH_LEN = 6;
const MAX_VLAN_TAG = 4094;

/** neutron_lib.plugins.utils.get_interface_name: prefix + name, hashed when too long. */
export function interfaceName(name: string, prefix: string): string {
  const wanted = prefix + name;
  if (wanted.length <= MAX_NAME) return wanted;
  const keep = MAX_NAME - prefix.length - HASH_LEN;
  const hash = createHash('sha1').update(name).digest('hex').slice(0, HASH_LEN);
  return `${prefix}${name.slice(0, keep)}${hash}`;
}

export interface PhysicalLink {
  physnet: string;
  bridge: string;
  /** The patch port on the integration bridge. */
  intPort: string;
  /** Its peer on the physical bridge. */
  phyPort: string;
}

export function physicalLinks(
  mappings: readonly (readonly [string, string])[] = [],
): PhysicalLink[] {
  return mappings.map(([physnet, bridge]) => ({
    physnet,
    bridge,
    intPort: interfaceName(bridge, 'int-'),
    phyPort: interfaceName(bridge, 'phy-'),
  }));
}

/** A network as the flows need it: its local VLAN and its segment. */
export interface LocalNetwork {
  vlan: number;
  type: string;
  physnet: string | null;
  segmentationId: number | null;
}

export interface ProviderFlows {
  /** Flows for br-int's table 0 (added to its base set). */
  int: string[];
  /** Each physical bridge's whole flow table. */
  physical: Map<string, string[]>;
  /** Physical networks of local networks served locally only (no mapping here, or a
   * VLAN id out of 1-4094), sorted. */
  unmapped: string[];
}

/** The outside tag a network's frames carry on its physical network, or undefined. */
function outsideTag(net: LocalNetwork): 'untagged' | number | undefined {
  if (net.type === 'flat') return 'untagged';
  if (net.type !== 'vlan') return undefined;
  const id = net.segmentationId;
  return id !== null && Number.isInteger(id) && id >= 1 && id <= MAX_VLAN_TAG ? id : undefined;
}

export function providerFlows(
  links: readonly PhysicalLink[],
  networks: Iterable<LocalNetwork>,
): ProviderFlows {
  const byPhysnet = new Map(links.map((l) => [l.physnet, l]));
  const int: string[] = [];
  const physical = new Map<string, string[]>();
  const unmapped = new Set<string>();
  for (const l of links) {
    int.push(`table=0,priority=2,in_port=${l.intPort},actions=drop`);
    physical.set(l.bridge, [
      'table=0,priority=0,actions=NORMAL',
      `table=0,priority=2,in_port=${l.phyPort},actions=drop`,
    ]);
  }
  const sorted = [...networks].sort((a, b) => a.vlan - b.vlan);
  for (const net of sorted) {
    if (net.physnet === null || (net.type !== 'flat' && net.type !== 'vlan')) continue;
    const link = byPhysnet.get(net.physnet);
    const tag = outsideTag(net);
    if (!link || tag === undefined) {
      unmapped.add(net.physnet);
      continue;
    }
    const inward = tag === 'untagged' ? 'vlan_tci=0x0000/0x1fff' : `dl_vlan=${tag}`;
    const outward = tag === 'untagged' ? 'strip_vlan' : `mod_vlan_vid:${tag}`;
    int.push(
      `table=0,priority=3,in_port=${link.intPort},${inward},actions=mod_vlan_vid:${net.vlan},set_field:${net.vlan}->reg6,resubmit(,60)`,
    );
    physical
      .get(link.bridge)
      ?.push(
        `table=0,priority=4,in_port=${link.phyPort},dl_vlan=${net.vlan},actions=${outward},NORMAL`,
      );
  }
  return { int, physical, unmapped: [...unmapped].sort() };
}
