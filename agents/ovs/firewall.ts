/**
 * The stateful OVS firewall on br-int, in the tables of Neutron's openvswitch firewall
 * driver: 60 dispatch to a local destination, 71/72 egress (anti-spoofing, then rules on
 * conntrack zone = the port's ofport), 81/82 ingress, 94 accepted egress. Pure.
 *
 * Invariants:
 * - a filtered port's traffic passes only through its own pipelines: packets from it enter
 *   table 71 (table 0), packets to it leave table 60 for 81 (reg5 = its ofport, reg6 = its
 *   local VLAN; also an IP packet for its own address in a broadcast or multicast frame),
 *   and only table 82/81 output to it, but for NORMAL's flood of packets for group
 *   addresses (broadcast, multicast: not filtered); everything not allowed is dropped;
 * - a connection no rule allows any more is marked (ct_mark=1) and dropped both ways, until
 *   a rule allows its original direction again (then unmarked: a re-added rule revives it);
 * - the same input gives the same sorted flows (conj ids included), so replace-flows after
 *   a restart changes nothing.
 */
import {
  type FilteredPort,
  type RejectedRule,
  ruleFlows,
  type SgInfo,
  type UnfilteredPort,
} from './sg-flows.ts';

export const T = {
  dispatch: 60,
  egressBase: 71,
  egressRules: 72,
  ingressBase: 81,
  ingressRules: 82,
  accepted: 94,
} as const;

/** The EUI-64 link-local address of a MAC (fe80::/64). */
export function linkLocal(mac: string): string {
  const b = mac.split(':').map((h) => Number.parseInt(h, 16));
  const g = (x: number, y: number) => ((x << 8) | y).toString(16);
  const [b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0] = b;
  return `fe80::${g(b0 ^ 2, b1)}:${g(b2, 0xff)}:${g(0xfe, b3)}:${g(b4, b5)}`;
}

/** Every (mac, address) a port may send from: its MAC with each fixed IP, and its pairs. */
function ownedAddresses(p: FilteredPort): [string, string][] {
  const own: [string, string][] = p.fixedIps.map((ip) => [p.mac, ip]);
  own.push([p.mac, linkLocal(p.mac)]);
  for (const pair of p.pairs) own.push([pair.mac_address, pair.ip_address]);
  return [...new Map(own.map((o) => [o.join(' '), o])).values()];
}

/** Table 0: each live port enters its pipeline with its VLAN in reg6 (and ofport in reg5). */
export function entryFlows(filtered: readonly FilteredPort[], open: readonly UnfilteredPort[]) {
  return [
    ...filtered.map(
      (p) =>
        `table=0,priority=100,in_port=${p.ofport},actions=set_field:${p.vlan}->reg6,set_field:${p.ofport}->reg5,resubmit(,${T.egressBase})`,
    ),
    ...open.map(
      (p) =>
        `table=0,priority=100,in_port=${p.ofport},actions=set_field:${p.vlan}->reg6,resubmit(,${T.dispatch})`,
    ),
  ];
}

const ICMP6_OUT_OK = [130, 131, 132, 133, 135, 143];
/** What may come from `::` (RFC 4861/3810: DAD solicitations, router solicitations, MLD reports). */
const ICMP6_OUT_UNSPECIFIED = [131, 132, 133, 135, 143];
const ICMP6_IN_OK = [130, 131, 132, 133, 134, 135, 136, 143];

/**
 * The control traffic a port may send without a rule (DHCP client, ND, MLD, RS), each from
 * an address it owns or the unspecified one only: a solicitation from another's address
 * would poison neighbours' caches, a DHCP client port would carry any spoofed UDP.
 */
function controlFlows(p: FilteredPort, owned: [string, string][]): string[] {
  const at = `table=${T.egressBase},priority=95`;
  const inp = `in_port=${p.ofport}`;
  const ok = `actions=resubmit(,${T.accepted})`;
  const v4: [string, string][] = [
    [p.mac, '0.0.0.0'],
    ...owned.filter(([, ip]) => !ip.includes(':')),
  ];
  const v6 = owned.filter(([, ip]) => ip.includes(':'));
  return [
    ...v4.map(
      ([mac, ip]) => `${at},udp,${inp},dl_src=${mac},nw_src=${ip},tp_src=68,tp_dst=67,${ok}`,
    ),
    ...v6.map(
      ([mac, ip]) => `${at},udp6,${inp},dl_src=${mac},ipv6_src=${ip},tp_src=546,tp_dst=547,${ok}`,
    ),
    ...v6.flatMap(([mac, ip]) => [
      ...ICMP6_OUT_OK.map(
        (t) => `${at},icmp6,${inp},dl_src=${mac},ipv6_src=${ip},icmp_type=${t},${ok}`,
      ),
      `${at},icmp6,${inp},dl_src=${mac},icmp_type=136,nd_target=${ip},${ok}`,
    ]),
    ...ICMP6_OUT_UNSPECIFIED.map(
      (t) => `${at},icmp6,${inp},dl_src=${p.mac},ipv6_src=::,icmp_type=${t},${ok}`,
    ),
  ];
}

function egressBase(p: FilteredPort): string[] {
  const at = `table=${T.egressBase}`;
  const inp = `in_port=${p.ofport}`;
  const owned = ownedAddresses(p);
  const flows = [
    `${at},priority=100,udp,${inp},tp_src=67,tp_dst=68,actions=drop`,
    `${at},priority=100,udp6,${inp},tp_src=547,tp_dst=546,actions=drop`,
    `${at},priority=100,icmp6,${inp},icmp_type=134,actions=drop`,
    ...controlFlows(p, owned),
  ];
  for (const [mac, ip] of owned) {
    if (ip.includes(':'))
      flows.push(
        `${at},priority=65,ipv6,${inp},dl_src=${mac},ipv6_src=${ip},actions=ct(table=${T.egressRules},zone=${p.ofport})`,
      );
    else {
      flows.push(
        `${at},priority=90,arp,${inp},dl_src=${mac},arp_sha=${mac},arp_spa=${ip},actions=resubmit(,${T.accepted})`,
      );
      flows.push(
        `${at},priority=65,ip,${inp},dl_src=${mac},nw_src=${ip},actions=ct(table=${T.egressRules},zone=${p.ofport})`,
      );
    }
  }
  return flows;
}

function ingressBase(p: FilteredPort): string[] {
  const at = `table=${T.ingressBase}`;
  const dst = `reg5=${p.ofport}`;
  const out = `actions=output:${p.ofport}`;
  return [
    `${at},priority=100,arp,${dst},${out}`,
    `${at},priority=95,udp,${dst},tp_src=67,tp_dst=68,${out}`,
    `${at},priority=95,udp6,${dst},tp_src=547,tp_dst=546,${out}`,
    ...ICMP6_IN_OK.map((t) => `${at},priority=95,icmp6,${dst},icmp_type=${t},${out}`),
    `${at},priority=90,ip,${dst},actions=ct(table=${T.ingressRules},zone=${p.ofport})`,
    `${at},priority=90,ipv6,${dst},actions=ct(table=${T.ingressRules},zone=${p.ofport})`,
  ];
}

const GROUP_DST = 'dl_dst=01:00:00:00:00:00/01:00:00:00:00:00';

/**
 * Table 60 flows sending packets of `match` on the port's network into its ingress tables,
 * tagged with the local VLAN (patches), untagged, or priority-tagged (VLAN 0, which an
 * access port accepts): NORMAL, which outputs without any filter, never sees them.
 */
function toIngress(p: FilteredPort, priority: number, match: string): string[] {
  const at = `table=${T.dispatch},priority=${priority},reg6=${p.vlan},${match}`;
  const go = `set_field:${p.ofport}->reg5,resubmit(,${T.ingressBase})`;
  return [
    `${at},dl_vlan=${p.vlan},actions=strip_vlan,${go}`,
    `${at},vlan_tci=0x1000/0x1fff,actions=strip_vlan,${go}`,
    `${at},vlan_tci=0x0000/0x1000,actions=${go}`,
  ];
}

const dispatch = (p: FilteredPort) => toIngress(p, 100, `dl_dst=${p.mac}`);

/**
 * Table 60: frames for an allowed pair's MAC (other than the port's own) go through the
 * ingress tables of the port that claims it, like its own MAC (else NORMAL, having learnt
 * the MAC from its egress, would deliver them unfiltered). A MAC that is a local filtered
 * port's own stays that port's (priority 100); one claimed by several ports is dropped.
 */
function pairMacs(ports: readonly FilteredPort[]): string[] {
  const own = new Set(ports.map((p) => `${p.vlan} ${p.mac}`));
  const claims = new Map<string, FilteredPort[]>();
  for (const p of ports)
    for (const mac of new Set(p.pairs.map((pair) => pair.mac_address))) {
      const key = `${p.vlan} ${mac}`;
      if (mac === p.mac || own.has(key)) continue;
      claims.set(key, [...(claims.get(key) ?? []), p]);
    }
  return [...claims].flatMap(([key, [only, ...more]]) => {
    const [vlan, mac] = key.split(' ');
    if (only && more.length === 0) return toIngress(only, 95, `dl_dst=${mac}`);
    return [`table=${T.dispatch},priority=95,reg6=${vlan},dl_dst=${mac},actions=drop`];
  });
}

/**
 * Table 60: an IP packet for a local filtered port's own address in a broadcast or
 * multicast frame goes through that port's ingress tables only, never NORMAL's flood (the
 * guest takes a packet for its address in any frame). Such a frame for an address two
 * local ports own (a shared pair) is dropped; pairs that are prefixes are left to NORMAL.
 */
function groupFramesToOwn(ports: readonly FilteredPort[]): string[] {
  const owners = new Map<string, { vlan: number; ip: string; ports: Set<FilteredPort> }>();
  for (const p of ports)
    for (const [, owned] of ownedAddresses(p)) {
      const ip = owned.replace(/\/(32|128)$/, '');
      if (ip.includes('/')) continue;
      const o = owners.get(`${p.vlan} ${ip}`) ?? { vlan: p.vlan, ip, ports: new Set() };
      owners.set(`${p.vlan} ${ip}`, o.ports.add(p) && o);
    }
  return [...owners.values()].flatMap((o) => {
    const match = `${o.ip.includes(':') ? `ipv6,${GROUP_DST},ipv6_dst` : `ip,${GROUP_DST},nw_dst`}=${o.ip}`;
    const [only, ...more] = o.ports;
    if (only && more.length === 0) return toIngress(only, 90, match);
    return [`table=${T.dispatch},priority=90,reg6=${o.vlan},${match},actions=drop`];
  });
}

/** Replies and related packets of the port's accepted connections (before any rule). */
function established(p: FilteredPort): string[] {
  const at = `table=${T.ingressRules},priority=90,reg5=${p.ofport}`;
  return [
    `${at},ct_state=+trk-new+est-rel+rpl,ct_mark=0,actions=output:${p.ofport}`,
    `${at},ct_state=+trk+rel-inv,ct_mark=0,actions=output:${p.ofport}`,
  ];
}

/**
 * The rule tables' shared flows: invalid drop, replies and related packets of unmarked
 * connections, mark-and-drop fallback. A marked connection's replies fall to priority 0;
 * its original packets meet the rules again (sg-flows.ts), which unmark it if one allows.
 */
function sharedFlows(): string[] {
  const zone = 'zone=NXM_NX_REG5[0..15]';
  const markDrop = `actions=ct(commit,${zone},exec(set_field:0x1->ct_mark))`;
  const eg = `table=${T.egressRules}`;
  const ing = `table=${T.ingressRules}`;
  return [
    `table=${T.dispatch},priority=0,actions=NORMAL`,
    `table=${T.egressBase},priority=0,actions=drop`,
    `${eg},priority=95,ct_state=+inv+trk,actions=drop`,
    `${eg},priority=90,ct_state=+trk-new+est-rel+rpl,ct_mark=0,actions=resubmit(,${T.accepted})`,
    `${eg},priority=90,ct_state=+trk+rel-inv,ct_mark=0,actions=resubmit(,${T.accepted})`,
    `${eg},priority=40,ct_state=+trk+est-rel-rpl,ip,${markDrop}`,
    `${eg},priority=40,ct_state=+trk+est-rel-rpl,ipv6,${markDrop}`,
    `${eg},priority=0,actions=drop`,
    `table=${T.ingressBase},priority=0,actions=drop`,
    `${ing},priority=95,ct_state=+inv+trk,actions=drop`,
    `${ing},priority=40,ct_state=+trk+est-rel-rpl,ip,${markDrop}`,
    `${ing},priority=40,ct_state=+trk+est-rel-rpl,ipv6,${markDrop}`,
    `${ing},priority=0,actions=drop`,
    `table=${T.accepted},priority=0,actions=ct_clear,resubmit(,${T.dispatch})`,
  ];
}

/** Every firewall flow of br-int (tables 60-94), sorted, and the rules left out. */
export function firewallFlows(
  ports: readonly FilteredPort[],
  sg: SgInfo,
): { flows: string[]; rejected: RejectedRule[] } {
  const sorted = [...ports].sort((a, b) => a.ofport - b.ofport);
  const flows = new Set(sharedFlows());
  for (const p of sorted)
    for (const f of [...dispatch(p), ...egressBase(p), ...ingressBase(p), ...established(p)])
      flows.add(f);
  for (const f of [...groupFramesToOwn(sorted), ...pairMacs(sorted)]) flows.add(f);
  const rules = ruleFlows(sorted, sg);
  for (const f of rules.flows) flows.add(f);
  return { flows: [...flows].sort(), rejected: rules.rejected };
}

export type { FilteredPort, RejectedRule, SgInfo, UnfilteredPort };
