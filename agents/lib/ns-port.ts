/**
 * Ports inside a network namespace (one in qdhcp, several in qrouter, qlbaas next): the
 * namespace with lo up (the first line of its first batch: no process of its own), OVS
 * internal ports on the integration bridge, moved into the
 * namespace, with their MACs, MTUs, up state and addresses. Pure: observed state in, kit
 * Steps out.
 *
 * Invariants:
 * - ports that are already right plan nothing; what differs on the links (and the
 *   caller's extra lines, e.g. routes) is set in ONE `ip -batch` inside the namespace;
 * - missing ports are plugged in one OVSDB transaction carrying each one's iface-id,
 *   attached-mac, MAC and MTU, applied by ovs-vswitchd before `ip link set netns` moves the
 *   devices it made (one command for one device, one `ip -batch` for several);
 * - links of the namespace's owner that are not desired lose their OVS ports first;
 * - an OVS row whose device is not in the namespace (the namespace was deleted, the agent
 *   died before the move) is removed in its own applied transaction first, so OVS makes a
 *   fresh device to move instead of keeping a row with nothing behind it;
 * - OVS ports are removed from the bridge observed to hold them; the namespace goes last.
 */
import type { LinkInfo } from '../../host/ip/link.ts';
import {
  addrDel,
  addrReplace,
  type IpArgs,
  ipBatch,
  ipCommand,
  linkSetMac,
  linkSetMtu,
  linkSetNetns,
  linkUp,
} from '../../host/ip/link.ts';
import { netnsAddCommand, netnsDelCommand } from '../../host/ip/netns.ts';
import { type ObservedPort, plugOps, unplugOps } from '../../host/ovs/ports.ts';
import type { Step } from './steps.ts';

/** The port a namespace must have. */
export interface NsPort {
  netns: string;
  device: string;
  portId: string;
  mac: string;
  mtu: number;
  /** CIDRs on the device. */
  addresses: readonly string[];
  bridge: string;
  /** Where ovs-vswitchd makes the device, when not in the agent's namespace (the lab). */
  vswitchdNetns?: string;
}

/** What the host has for a namespace and its ports. */
export interface NsObserved {
  netnsExists: boolean;
  /** The owner's links inside the namespace (e.g. every `tap…` of a qdhcp namespace). */
  links: readonly LinkInfo[];
  /** OVS ports by name: the desired device's and those of `links`. */
  ovsPorts: readonly ObservedPort[];
}

/** The global-scope CIDRs of a link (what an agent puts there). */
export const globalAddresses = (link: LinkInfo | undefined): string[] =>
  (link?.addrs ?? []).filter((a) => a.scope === 'global').map((a) => a.cidr);

/** `ip netns add` when the namespace is missing (lo goes up in its first batch). */
export function namespaceSteps(netns: string, exists: boolean): Step[] {
  return exists ? [] : [{ kind: 'command', spec: netnsAddCommand(netns), why: 'namespace' }];
}

/** One applied transaction removing `ports` from their bridges (none when nothing holds them). */
export function unplugSteps(ports: readonly ObservedPort[], why: string): Step[] {
  const ops = unplugOps(ports);
  return ops.length ? [{ kind: 'ovsdb', ops, applied: true, why }] : [];
}

const vifOf = (p: NsPort) => ({
  name: p.device,
  kind: 'internal' as const,
  portId: p.portId,
  attachedMac: p.mac,
  mac: p.mac,
  mtu: p.mtu,
});

/** `ip link set netns` of each device from where ovs-vswitchd made it: one process. */
function moveSteps(ports: readonly NsPort[]): Step[] {
  const byNetns = new Map<string | undefined, NsPort[]>();
  for (const p of ports) byNetns.set(p.vswitchdNetns, [...(byNetns.get(p.vswitchdNetns) ?? []), p]);
  return [...byNetns].map(([from, group]) => {
    const lines = group.map((p) => linkSetNetns(p.device, p.netns));
    const [only] = lines;
    return {
      kind: 'command' as const,
      spec: lines.length === 1 && only ? ipCommand(only, from) : ipBatch(lines, from),
      why:
        lines.length === 1
          ? 'move the port into its namespace'
          : 'move the ports into their namespace',
    };
  });
}

/** Missing ports: stale rows cleared, all plugged in one applied transaction, then moved. */
function plugSteps(missing: readonly NsPort[], o: NsObserved): Step[] {
  if (missing.length === 0) return [];
  const names = new Set(missing.map((p) => p.device));
  const bridges = [...new Set(missing.map((p) => p.bridge))];
  const ops = bridges.flatMap((br) =>
    plugOps(br, missing.filter((p) => p.bridge === br).map(vifOf)),
  );
  return [
    ...unplugSteps(
      o.ovsPorts.filter((r) => names.has(r.name)),
      'clear an OVS port whose device is gone',
    ),
    { kind: 'ovsdb', ops, applied: true, why: `plug into ${bridges.join(', ')}` },
    ...moveSteps(missing),
  ];
}

/** What differs on one port's link, as `ip -batch` lines. */
export function linkLines(p: NsPort, link: LinkInfo | undefined): IpArgs[] {
  const have = globalAddresses(link);
  return [
    ...(link?.mac === p.mac ? [] : [linkSetMac(p.device, p.mac)]),
    ...(link?.mtu === p.mtu ? [] : [linkSetMtu(p.device, p.mtu)]),
    ...(link?.up ? [] : [linkUp(p.device)]),
    ...p.addresses.filter((a) => !have.includes(a)).map((a) => addrReplace(p.device, a)),
    ...have.filter((a) => !p.addresses.includes(a)).map((a) => addrDel(p.device, a)),
  ];
}

/** The caller's own lines in a namespace's batch: `before` the links change, `lines` after. */
export interface BatchExtra {
  before?: readonly IpArgs[];
  lines?: readonly IpArgs[];
  why?: string;
}

/**
 * Ports of one namespace, the namespace existing: plug and move the missing ones, then one
 * `ip -batch` with every link's changes between the caller's lines (e.g. routes: removed
 * before an address they use goes, added once the addresses are there).
 */
export function portsSteps(
  netns: string,
  ports: readonly NsPort[],
  o: NsObserved,
  extra: BatchExtra = {},
): Step[] {
  const linkOf = (p: NsPort) => o.links.find((l) => l.name === p.device);
  const lines = [
    ...(extra.before ?? []),
    ...ports.flatMap((p) => linkLines(p, linkOf(p))),
    ...(extra.lines ?? []),
  ];
  const why = extra.why ?? 'link and addresses';
  return [
    ...plugSteps(
      ports.filter((p) => !linkOf(p)),
      o,
    ),
    ...(lines.length ? [{ kind: 'command' as const, spec: ipBatch(lines, netns), why }] : []),
  ];
}

/** One port, its namespace existing: plug and move it if missing, then one `ip -batch`. */
export function portSteps(p: NsPort, o: NsObserved): Step[] {
  return portsSteps(p.netns, [p], o);
}

/**
 * A namespace holding exactly `ports` (all with this `netns`): the namespace, the OVS ports
 * of other observed links removed (replaced or no longer wanted), and the ports.
 */
export function planNsPorts(
  netns: string,
  ports: readonly NsPort[],
  o: NsObserved,
  extra: BatchExtra = {},
): Step[] {
  if (ports.some((p) => p.netns !== netns)) throw new Error(`ports outside ${netns}`);
  const wanted = new Set(ports.map((p) => p.device));
  const others = new Set(o.links.filter((l) => !wanted.has(l.name)).map((l) => l.name));
  const lo = o.netnsExists ? [] : [linkUp('lo')];
  return [
    ...namespaceSteps(netns, o.netnsExists),
    ...unplugSteps(
      o.ovsPorts.filter((r) => others.has(r.name)),
      'unplug a replaced port',
    ),
    ...portsSteps(netns, ports, o, { ...extra, before: [...lo, ...(extra.before ?? [])] }),
  ];
}

/**
 * A namespace holding exactly one port: the namespace, the OVS ports of other links in it
 * removed (a replaced port), and the port.
 */
export function planNsPort(p: NsPort, o: NsObserved): Step[] {
  return planNsPorts(p.netns, [p], o);
}

/** Everything of a namespace gone: its ports unplugged, then the namespace deleted. */
export function teardownNsPort(netns: string, o: NsObserved): Step[] {
  return [
    ...unplugSteps(o.ovsPorts, 'unplug'),
    ...(o.netnsExists
      ? [{ kind: 'command' as const, spec: netnsDelCommand(netns), why: 'remove namespace' }]
      : []),
  ];
}
