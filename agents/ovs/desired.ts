/**
 * The Open vSwitch state kumo-ovs-agent requires, computed from what OVS has (observe.ts),
 * what the API says about the ports it sees, and the tunnel peers. Pure.
 *
 * Invariants:
 * - a network keeps the local VLAN its ports already carry (read back from
 *   Port other_config:net_uuid + tag), so a restarted agent changes no tag; new networks
 *   get the lowest free VLAN; a VLAN is free again once no port of its network is left;
 * - a port the API does not know (or that is admin-down) sits on dead VLAN 4095 with a
 *   drop flow; traffic between networks is separated by VLAN on br-int and by tunnel key
 *   on br-tun, and a tunnel packet reaches br-int only if its key belongs to a network here;
 * - flat and VLAN networks reach their physical network through [ovs] bridge_mappings
 *   (physical.ts); without a mapping here they stay on br-int, as tunnel-less networks;
 * - every live port, patch-tun and the physical patches enter br-int's pipeline with the
 *   packet's local VLAN in reg6 (table 0), so a packet reaches a filtered port only through
 *   its ingress tables; ports with port security and not `network:*` are filtered
 *   (firewall.ts), the others go straight to dispatch (table 60).
 */
import type { DeviceDetails, TunnelPeer } from '../../contracts/l2.ts';
import {
  entryFlows,
  type FilteredPort,
  firewallFlows,
  type RejectedRule,
  type UnfilteredPort,
} from './firewall.ts';
import type { OvsState } from './observe.ts';
import { type LocalNetwork, type PhysicalLink, physicalLinks, providerFlows } from './physical.ts';
import { EMPTY_SG, type SgInfo } from './sg-flows.ts';

export const DEAD_VLAN = 4095;
export const PATCH_INT = 'patch-int';
export const PATCH_TUN = 'patch-tun';
/** br-tun tables, as in Neutron: from br-int, then from GRE and VXLAN tunnels. */
const FROM_INT = 1;
const FROM_TUNNEL = { gre: 3, vxlan: 4 } as const;

export interface OvsSettings {
  intBridge: string;
  tunBridge: string;
  datapathType: string;
  localIp: string | null;
  tunnelTypes: readonly ('gre' | 'vxlan')[];
  /** [ovs] bridge_mappings: physical network → physical bridge; absent: none. */
  bridgeMappings?: readonly (readonly [string, string])[];
}

export interface DesiredPort {
  tag: number;
  otherConfig: Record<string, string>;
}

export interface DesiredTunnel {
  type: 'gre' | 'vxlan';
  remoteIp: string;
  localIp: string;
}

export interface DesiredOvs {
  bridges: { name: string; datapathType: string; failMode: 'secure' }[];
  /** VM ports on br-int by port name. */
  ports: Map<string, DesiredPort>;
  tunnels: Map<string, DesiredTunnel>;
  /** network id → local VLAN. */
  lvids: Map<string, number>;
  flows: Map<string, string[]>;
  /** br-int ↔ physical bridge patches, one per bridge mapping. */
  physical: PhysicalLink[];
  /** Physical networks of ports here that are served on br-int only (physical.ts). */
  unmapped: string[];
  /** Filtered ports by id: their security groups (what security_group_info must cover). */
  filtered: Map<string, readonly string[]>;
  /** Security group rules the firewall could not express, left out (firewall.ts). */
  rejectedRules: RejectedRule[];
  /** Conntrack zones of the filtered ports: ofport → port id (conntrack.ts). */
  zones: Map<number, string>;
}

/** Ports on br-int that stand for a VM (an interface with an iface-id), by name. */
export function vmPorts(state: OvsState, intBridge: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const port of state.ports.values()) {
    if (port.bridge !== intBridge) continue;
    const ifaceId = port.interfaces[0]?.externalIds['iface-id'];
    if (ifaceId) out.set(port.name, ifaceId);
  }
  return out;
}

export type PortStatus = 'up' | 'down';

/** The status each VM port the API told us about should have: up when admin-up. */
export function portStatuses(
  state: OvsState,
  intBridge: string,
  details: ReadonlyMap<string, DeviceDetails>,
): Map<string, PortStatus> {
  const out = new Map<string, PortStatus>();
  for (const [name, id] of vmPorts(state, intBridge)) {
    const d = details.get(id);
    // Up only once OVS numbered it, so its flows (firewall included) were written: a port
    // without an ofport has none yet and waits for the sync its numbering triggers.
    const numbered = state.ports.get(name)?.interfaces[0]?.ofport != null;
    if (d && (numbered || !d.admin_state_up)) out.set(id, d.admin_state_up ? 'up' : 'down');
  }
  return out;
}

export const tunnelName = (type: 'gre' | 'vxlan', ip: string) =>
  `${type}-${ip
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('')}`;

function allocateLvids(
  state: OvsState,
  ports: Map<string, string>,
  details: ReadonlyMap<string, DeviceDetails>,
) {
  const lvids = new Map<string, number>();
  const used = new Set<number>();
  const wanted: string[] = [];
  for (const [name, ifaceId] of [...ports].sort()) {
    const d = details.get(ifaceId);
    if (!d || lvids.has(d.network_id)) continue;
    const p = state.ports.get(name);
    const tag = p?.tag ?? 0;
    if (p?.otherConfig.net_uuid === d.network_id && tag >= 1 && tag < DEAD_VLAN && !used.has(tag)) {
      lvids.set(d.network_id, tag);
      used.add(tag);
    } else wanted.push(d.network_id);
  }
  let next = 1;
  for (const net of wanted) {
    if (lvids.has(net)) continue;
    while (used.has(next)) next++;
    lvids.set(net, next);
    used.add(next);
  }
  return lvids;
}

function desiredTunnels(
  settings: OvsSettings,
  peers: readonly TunnelPeer[],
): Map<string, DesiredTunnel> {
  const tunnels = new Map<string, DesiredTunnel>();
  if (!settings.localIp) return tunnels;
  for (const peer of peers) {
    if (peer.tunnel_ip === settings.localIp) continue;
    for (const type of settings.tunnelTypes) {
      if (!peer.tunnel_types.includes(type)) continue;
      tunnels.set(tunnelName(type, peer.tunnel_ip), {
        type,
        remoteIp: peer.tunnel_ip,
        localIp: settings.localIp,
      });
    }
  }
  return tunnels;
}

interface Bound {
  dead: string[];
  filtered: FilteredPort[];
  open: UnfilteredPort[];
  networks: Map<string, LocalNetwork>;
}

/**
 * Every live port enters through its pipeline (firewall.ts); tunnel traffic too, by VLAN.
 * Anything else is dropped: a port OVS numbered since the last sync (untagged until then, a
 * trunk) sends nothing unfiltered before its flows exist.
 */
function intFlows(bound: Bound, provider: readonly string[], firewall: readonly string[]) {
  const vlans = [...bound.networks.values()].map((n) => n.vlan).sort((a, b) => a - b);
  return [
    'table=0,priority=0,actions=drop',
    ...[...bound.dead].sort().map((name) => `table=0,priority=10,in_port=${name},actions=drop`),
    ...vlans.map(
      (v) =>
        `table=0,priority=1,in_port=${PATCH_TUN},dl_vlan=${v},actions=set_field:${v}->reg6,resubmit(,60)`,
    ),
    ...entryFlows(bound.filtered, bound.open),
    ...provider,
    ...firewall,
  ];
}

/** Port security on and not a `network:*` port (routers, DHCP): the firewall applies. */
export const isFiltered = (d: DeviceDetails) =>
  d.port_security_enabled && !d.device_owner.startsWith('network:');

function tunFlows(
  tunnels: Map<string, DesiredTunnel>,
  networks: Map<string, LocalNetwork>,
): string[] {
  const names = [...tunnels.keys()].sort();
  const flows = [
    'table=0,priority=0,actions=drop',
    `table=0,priority=1,in_port=${PATCH_INT},actions=resubmit(,${FROM_INT})`,
    `table=${FROM_INT},priority=0,actions=drop`,
    `table=${FROM_TUNNEL.gre},priority=0,actions=drop`,
    `table=${FROM_TUNNEL.vxlan},priority=0,actions=drop`,
  ];
  for (const name of names) {
    const type = (tunnels.get(name) as DesiredTunnel).type;
    flows.push(`table=0,priority=1,in_port=${name},actions=resubmit(,${FROM_TUNNEL[type]})`);
  }
  for (const net of [...networks.values()].sort((a, b) => a.vlan - b.vlan)) {
    if ((net.type !== 'gre' && net.type !== 'vxlan') || net.segmentationId === null) continue;
    const outs = names.filter((n) => tunnels.get(n)?.type === net.type).map((n) => `output:${n}`);
    const flood = outs.length
      ? `strip_vlan,set_tunnel:${net.segmentationId},${outs.join(',')}`
      : 'drop';
    flows.push(`table=${FROM_INT},priority=1,dl_vlan=${net.vlan},actions=${flood}`);
    flows.push(
      `table=${FROM_TUNNEL[net.type]},priority=1,tun_id=${net.segmentationId},actions=mod_vlan_vid:${net.vlan},output:${PATCH_INT}`,
    );
  }
  return flows;
}

/**
 * Each VM port's tag and network (or the dead VLAN), the networks served here, and each
 * live port's pipeline (once it has an ofport): filtered or open.
 */
function bindPorts(
  state: OvsState,
  ports: Map<string, string>,
  details: ReadonlyMap<string, DeviceDetails>,
  lvids: Map<string, number>,
) {
  const desired = new Map<string, DesiredPort>();
  const bound: Bound = { dead: [], filtered: [], open: [], networks: new Map() };
  for (const [name, ifaceId] of [...ports].sort()) {
    const d = details.get(ifaceId);
    const vlan = d ? lvids.get(d.network_id) : undefined;
    if (!d || vlan === undefined || !d.admin_state_up) {
      desired.set(name, { tag: DEAD_VLAN, otherConfig: {} });
      bound.dead.push(name);
      continue;
    }
    const otherConfig = {
      net_uuid: d.network_id,
      network_type: d.network_type,
      segmentation_id: String(d.segmentation_id ?? ''),
    };
    desired.set(name, { tag: vlan, otherConfig });
    bound.networks.set(d.network_id, {
      vlan,
      type: d.network_type,
      physnet: d.physical_network,
      segmentationId: d.segmentation_id,
    });
    // Without an ofport a port carries no traffic (and no flow can name it) until OVS
    // gives it one; that update brings the next sync.
    const ofport = state.ports.get(name)?.interfaces[0]?.ofport ?? null;
    if (ofport === null) continue;
    if (isFiltered(d)) bound.filtered.push(filteredPort(name, ofport, vlan, d));
    else bound.open.push({ name, ofport, vlan });
  }
  return { desired, bound };
}

const filteredPort = (name: string, ofport: number, vlan: number, d: DeviceDetails) => ({
  id: d.device,
  name,
  ofport,
  vlan,
  mac: d.mac_address,
  fixedIps: d.fixed_ips,
  pairs: d.allowed_address_pairs,
  groups: d.security_groups,
});

export function desiredOvs(
  settings: OvsSettings,
  state: OvsState,
  details: ReadonlyMap<string, DeviceDetails>,
  peers: readonly TunnelPeer[],
  sg: SgInfo = EMPTY_SG,
): DesiredOvs {
  const ports = vmPorts(state, settings.intBridge);
  const lvids = allocateLvids(state, ports, details);
  const { desired, bound } = bindPorts(state, ports, details, lvids);
  const tunnels = desiredTunnels(settings, peers);
  const links = physicalLinks(settings.bridgeMappings);
  const provider = providerFlows(links, bound.networks.values());
  const firewall = firewallFlows(bound.filtered, sg);
  // Physical bridges are secure too, as Neutron's: with no controller their flows stay put.
  const bridge = (name: string) => ({
    name,
    datapathType: settings.datapathType,
    failMode: 'secure' as const,
  });
  return {
    bridges: [settings.intBridge, settings.tunBridge, ...links.map((l) => l.bridge)].map(bridge),
    ports: desired,
    tunnels,
    lvids,
    flows: new Map([
      [settings.intBridge, intFlows(bound, provider.int, firewall.flows)],
      [settings.tunBridge, tunFlows(tunnels, bound.networks)],
      ...provider.physical,
    ]),
    physical: links,
    unmapped: provider.unmapped,
    filtered: new Map(bound.filtered.map((p) => [p.id, p.groups])),
    rejectedRules: firewall.rejected,
    zones: new Map(bound.filtered.map((p) => [p.ofport, p.id])),
  };
}
