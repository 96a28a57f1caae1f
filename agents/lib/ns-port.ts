/**
 * A port inside a network namespace (qdhcp now, qrouter and qlbaas next): the namespace
 * with lo up, an OVS internal port on the integration bridge, moved into the namespace,
 * with its MAC, MTU, up state and addresses. Pure: observed state in, kit Steps out.
 *
 * Invariants:
 * - a port that is already right plans nothing; what differs on the link is set in ONE
 *   `ip -batch` inside the namespace;
 * - the port is plugged in one OVSDB transaction carrying iface-id, attached-mac, MAC and
 *   MTU, applied by ovs-vswitchd before `ip link set netns` moves the device it made;
 * - an OVS row whose device is not in the namespace (the namespace was deleted, the agent
 *   died before the move) is removed in its own applied transaction first, so OVS makes a
 *   fresh device to move instead of keeping a row with nothing behind it;
 * - OVS ports are removed from the bridge observed to hold them; the namespace goes last.
 */
import type { LinkInfo } from '../../host/ip/link.ts';
import {
  addrDel,
  addrReplace,
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

/** `ip netns add` and lo up, when the namespace is missing. */
export function namespaceSteps(netns: string, exists: boolean): Step[] {
  if (exists) return [];
  return [
    { kind: 'command', spec: netnsAddCommand(netns), why: 'namespace' },
    { kind: 'command', spec: ipCommand(linkUp('lo'), netns), why: 'loopback' },
  ];
}

/** One applied transaction removing `ports` from their bridges (none when nothing holds them). */
export function unplugSteps(ports: readonly ObservedPort[], why: string): Step[] {
  const ops = unplugOps(ports);
  return ops.length ? [{ kind: 'ovsdb', ops, applied: true, why }] : [];
}

function plugSteps(p: NsPort, stale: ObservedPort | undefined): Step[] {
  const vif = {
    name: p.device,
    kind: 'internal' as const,
    portId: p.portId,
    attachedMac: p.mac,
    mac: p.mac,
    mtu: p.mtu,
  };
  return [
    ...unplugSteps(stale ? [stale] : [], 'clear an OVS port whose device is gone'),
    { kind: 'ovsdb', ops: plugOps(p.bridge, [vif]), applied: true, why: `plug into ${p.bridge}` },
    {
      kind: 'command',
      spec: ipCommand(linkSetNetns(p.device, p.netns), p.vswitchdNetns),
      why: 'move the port into its namespace',
    },
  ];
}

function linkLines(p: NsPort, link: LinkInfo | undefined) {
  const have = globalAddresses(link);
  return [
    ...(link?.mac === p.mac ? [] : [linkSetMac(p.device, p.mac)]),
    ...(link?.mtu === p.mtu ? [] : [linkSetMtu(p.device, p.mtu)]),
    ...(link?.up ? [] : [linkUp(p.device)]),
    ...p.addresses.filter((a) => !have.includes(a)).map((a) => addrReplace(p.device, a)),
    ...have.filter((a) => !p.addresses.includes(a)).map((a) => addrDel(p.device, a)),
  ];
}

/** One port, its namespace existing: plug and move it if missing, then one `ip -batch`. */
export function portSteps(p: NsPort, o: NsObserved): Step[] {
  const link = o.links.find((l) => l.name === p.device);
  const row = o.ovsPorts.find((r) => r.name === p.device);
  const lines = linkLines(p, link);
  return [
    ...(link ? [] : plugSteps(p, row)),
    ...(lines.length
      ? [{ kind: 'command' as const, spec: ipBatch(lines, p.netns), why: 'link and addresses' }]
      : []),
  ];
}

/**
 * A namespace holding exactly one port: the namespace, the OVS ports of other links in it
 * removed (a replaced port), and the port.
 */
export function planNsPort(p: NsPort, o: NsObserved): Step[] {
  const others = new Set(o.links.filter((l) => l.name !== p.device).map((l) => l.name));
  return [
    ...namespaceSteps(p.netns, o.netnsExists),
    ...unplugSteps(
      o.ovsPorts.filter((r) => others.has(r.name)),
      'unplug a replaced port',
    ),
    ...portSteps(p, o),
  ];
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
