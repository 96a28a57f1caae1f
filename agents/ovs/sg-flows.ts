/**
 * The rule flows of tables 72 (egress) and 82 (ingress): each rule of a filtered port's
 * groups, for packets of the original direction, commits the connection in the port's
 * zone (clearing a drop mark) and accepts it. A remote_group_id rule is expanded to the group's member addresses;
 * with more than one member or more than one port mask it becomes a two-dimension
 * conjunctive match (remotes × protocol/ports) instead of their product. Pure.
 *
 * Invariants: conj ids are numbered in a fixed order (ports by ofport, groups and rules by
 * id), so equal input gives equal flows; dimension flows with the same match and priority
 * are one flow carrying every conjunction() (OVS refuses duplicates); conjunctive flows
 * sit one priority above plain ones so no plain match can equal a dimension match; a rule
 * that cannot be expressed exactly is left out and reported (sg-match.ts).
 */
import type { FirewallRule } from '../../contracts/l2.ts';
import {
  ipBase,
  ipVersionOf,
  prefixMatch,
  protocolMatches,
  RuleRejected,
  remoteField,
} from './sg-match.ts';

export interface FilteredPort {
  id: string;
  name: string;
  ofport: number;
  vlan: number;
  mac: string;
  fixedIps: readonly string[];
  pairs: readonly { mac_address: string; ip_address: string }[];
  groups: readonly string[];
}

export interface UnfilteredPort {
  name: string;
  ofport: number;
  vlan: number;
}

export interface RejectedRule {
  port: string;
  rule: string;
  reason: string;
}

/** What security_group_info said: each group's rules and each remote group's members. */
export interface SgInfo {
  rules: ReadonlyMap<string, readonly FirewallRule[]>;
  members: ReadonlyMap<string, readonly string[]>;
}

export const EMPTY_SG: SgInfo = { rules: new Map(), members: new Map() };

const EGRESS_RULES = 72;
const INGRESS_RULES = 82;
const ACCEPTED = 94;
const PLAIN = 70;
const CONJ = 71;
/**
 * Packets of the original direction only: a marked connection's replies and related
 * packets never reach a rule (firewall.ts drops them), while its next original packet
 * does, and a rule that allows it again clears the mark (so a re-added rule revives it).
 */
const ORIGINAL = '+trk-inv-rel-rpl';

interface Expanded {
  protos: string[];
  /** Remote matches; [''] for any remote, [] for a remote group without members. */
  remotes: string[];
}

function expand(rule: FirewallRule, sg: SgInfo): Expanded {
  const protos = [...new Set(protocolMatches(rule))];
  if (rule.remote_group_id === null) return { protos, remotes: [prefixMatch(rule)] };
  if (rule.remote_ip_prefix !== null)
    throw new RuleRejected('remote_group_id and remote_ip_prefix together');
  const version = rule.ethertype === 'IPv4' ? 4 : 6;
  const field = remoteField(rule.ethertype, rule.direction);
  const members = sg.members.get(rule.remote_group_id) ?? [];
  const remotes = [...new Set(members.filter((m) => ipVersionOf(m) === version))]
    .sort()
    .map((m) => `${field}=${m}`);
  return { protos, remotes };
}

interface Acc {
  flows: Set<string>;
  /** Dimension flow (without actions) → its conjunction() actions. */
  dims: Map<string, string[]>;
  nextConj: number;
}

function addRule(acc: Acc, p: FilteredPort, rule: FirewallRule, e: Expanded) {
  const egress = rule.direction === 'egress';
  const table = `table=${egress ? EGRESS_RULES : INGRESS_RULES}`;
  const common = `reg5=${p.ofport},ct_state=${ORIGINAL}`;
  const commit = `ct(commit,zone=${p.ofport},exec(set_field:0->ct_mark))`;
  const accept = egress ? `${commit},resubmit(,${ACCEPTED})` : `${commit},output:${p.ofport}`;
  const grouped = rule.remote_group_id !== null;
  if (!grouped || (e.remotes.length <= 1 && e.protos.length <= 1)) {
    for (const proto of e.protos)
      for (const remote of e.remotes) {
        const match = [proto, common, remote].filter(Boolean).join(',');
        acc.flows.add(`${table},priority=${PLAIN},${match},actions=${accept}`);
      }
    return;
  }
  if (e.remotes.length === 0) return;
  const id = acc.nextConj++;
  const base = ipBase(rule.ethertype);
  const dim = (match: string, action: string) => {
    const key = `${table},priority=${CONJ},${match}`;
    acc.dims.set(key, [...(acc.dims.get(key) ?? []), action]);
  };
  for (const remote of e.remotes) dim(`${base},${common},${remote}`, `conjunction(${id},1/2)`);
  for (const proto of e.protos) dim(`${proto},${common}`, `conjunction(${id},2/2)`);
  acc.flows.add(
    `${table},priority=${CONJ},conj_id=${id},${base},reg5=${p.ofport},actions=${accept}`,
  );
}

const byId = (a: FirewallRule, b: FirewallRule) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The rule flows of every filtered port (sorted by ofport by the caller). */
export function ruleFlows(
  ports: readonly FilteredPort[],
  sg: SgInfo,
): { flows: string[]; rejected: RejectedRule[] } {
  const acc: Acc = { flows: new Set(), dims: new Map(), nextConj: 1 };
  const rejected = new Map<string, RejectedRule>();
  for (const p of ports)
    for (const group of [...new Set(p.groups)].sort())
      for (const rule of [...(sg.rules.get(group) ?? [])].sort(byId)) {
        try {
          addRule(acc, p, rule, expand(rule, sg));
        } catch (e) {
          if (!(e instanceof RuleRejected)) throw e;
          if (!rejected.has(rule.id))
            rejected.set(rule.id, { port: p.id, rule: rule.id, reason: e.message });
        }
      }
  for (const [match, actions] of acc.dims)
    acc.flows.add(`${match},actions=${[...actions].sort().join(',')}`);
  return { flows: [...acc.flows], rejected: [...rejected.values()] };
}
