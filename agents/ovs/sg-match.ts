/**
 * One security group rule in OpenFlow match vocabulary, as Neutron's openvswitch firewall
 * driver writes it: the protocol part (`tcp`, `icmp6,icmp_type=128`, `ip,nw_proto=47`),
 * the destination port as prefix masks, and the remote as an address or prefix. Pure.
 *
 * Invariant: a rule is turned into matches only when every field can be enforced exactly;
 * anything else (a port range on a protocol OVS cannot match ports of, ICMPv6 on an IPv4
 * rule, a prefix of the other IP version, min > max) throws a RuleRejected, so the caller
 * leaves that rule out (fail closed: a rule it cannot express allows nothing).
 */
import type { Ethertype, FirewallRule } from '../../contracts/l2.ts';

export class RuleRejected extends Error {}

const TCP = 6;
const UDP = 17;
const SCTP = 132;
const ICMP = 1;
const ICMPV6 = 58;
const PORT_PROTOCOLS: Record<number, [string, string]> = {
  [TCP]: ['tcp', 'tcp6'],
  [UDP]: ['udp', 'udp6'],
  [SCTP]: ['sctp', 'sctp6'],
};
const MAX_PORT = 65535;

/** The base match of an ethertype: `ip` or `ipv6`. */
export const ipBase = (ethertype: Ethertype) => (ethertype === 'IPv4' ? 'ip' : 'ipv6');

/** The address field of a remote for a direction: egress matches nw_dst, ingress nw_src. */
export function remoteField(ethertype: Ethertype, direction: 'ingress' | 'egress'): string {
  const end = direction === 'egress' ? 'dst' : 'src';
  return ethertype === 'IPv4' ? `nw_${end}` : `ipv6_${end}`;
}

export const ipVersionOf = (addr: string): 4 | 6 => (addr.includes(':') ? 6 : 4);

/** `[min, max]` as value/mask prefixes (Neutron's port_rule_masking); [] for every port. */
export function portMasks(min: number, max: number): string[] {
  if (min === 0 && max === MAX_PORT) return [];
  const out: string[] = [];
  let lo = min;
  while (lo <= max) {
    let size = 1;
    while (lo % (size * 2) === 0 && lo + size * 2 - 1 <= max && size * 2 <= MAX_PORT) size *= 2;
    out.push(
      size === 1 ? String(lo) : `0x${lo.toString(16)}/0x${(0xffff & ~(size - 1)).toString(16)}`,
    );
    lo += size;
  }
  return out;
}

function icmpParts(rule: FirewallRule): string[] {
  const { port_range_min: type, port_range_max: code } = rule;
  if (type === null && code !== null) throw new RuleRejected('an ICMP code needs an ICMP type');
  if ((type ?? 0) > 255 || (code ?? 0) > 255)
    throw new RuleRejected('ICMP type and code must be 0-255');
  const base = rule.ethertype === 'IPv4' ? 'icmp' : 'icmp6';
  const parts =
    type === null ? '' : `,icmp_type=${type}${code === null ? '' : `,icmp_code=${code}`}`;
  return [`${base}${parts}`];
}

function portParts(rule: FirewallRule, names: [string, string]): string[] {
  const base = rule.ethertype === 'IPv4' ? names[0] : names[1];
  const min = rule.port_range_min;
  const max = rule.port_range_max ?? min;
  if (min === null || max === null) {
    if (rule.port_range_max !== null)
      throw new RuleRejected('port_range_max without port_range_min');
    return [base];
  }
  if (min > max) throw new RuleRejected('port_range_min is greater than port_range_max');
  const masks = portMasks(min, max);
  return masks.length ? masks.map((m) => `${base},tp_dst=${m}`) : [base];
}

/** The protocol (and port or ICMP) matches of a rule, one per port mask. */
export function protocolMatches(rule: FirewallRule): string[] {
  const p = rule.protocol;
  const v4 = rule.ethertype === 'IPv4';
  const hasPorts = rule.port_range_min !== null || rule.port_range_max !== null;
  if (p === ICMP || p === ICMPV6) {
    if (p === ICMPV6 && v4) throw new RuleRejected('ICMPv6 on an IPv4 rule');
    return icmpParts(rule);
  }
  const named = p === null ? undefined : PORT_PROTOCOLS[p];
  if (named) return portParts(rule, named);
  if (hasPorts) throw new RuleRejected(`ports cannot be matched for protocol ${p ?? 'any'}`);
  const base = ipBase(rule.ethertype);
  return [p === null ? base : `${base},nw_proto=${p}`];
}

/** The remote address match of a prefix rule ('' for any), checked against the ethertype. */
export function prefixMatch(rule: FirewallRule): string {
  const prefix = rule.remote_ip_prefix;
  if (prefix === null) return '';
  const version = rule.ethertype === 'IPv4' ? 4 : 6;
  if (ipVersionOf(prefix) !== version)
    throw new RuleRejected(`remote_ip_prefix ${prefix} does not match ethertype ${rule.ethertype}`);
  if (prefix.endsWith('/0')) return '';
  return `${remoteField(rule.ethertype, rule.direction)}=${prefix}`;
}
