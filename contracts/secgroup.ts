/**
 * Neutron v2.0 security groups and rules (securitygroup extension): the request schemas,
 * the shapes the API returns, Neutron's protocol table, and the pure validation that turns
 * a rule request into the rule Neutron stores.
 *
 * Invariants: a rule is stored as Neutron stores it — protocol as a lower-case name from
 * IP_PROTOCOL_MAP or a number 0-255 as text, null for any, ICMP on IPv6 as ipv6-icmp (58);
 * ports as integers, only on a protocol with ports (or ICMP's type and code); a remote IP
 * prefix in canonical network form (`10.0.0.1/24` → `10.0.0.0/24`, an address → /32 or
 * /128) matching the ethertype; every refusal is Neutron's exception type and message, and
 * nothing here touches a database. `protocolNumber` maps a stored protocol to the number
 * the OVS agent matches on.
 */
import { ApiError } from './errors.ts';
import { BITS, formatIp, parseIp } from './inet.ts';
import { nullable, obj, optional, projectId, type Schema, str, uuid } from './schema.ts';
import { IP_PROTOCOL_MAP, protocolNumber } from './sg-protocols.ts';

export { IP_PROTOCOL_MAP, protocolNumber };

/** Protocols whose port ranges are ports (Neutron's SG_PORT_PROTO_NUMS). */
const PORT_PROTOCOLS = new Set([6, 17, 33, 132, 136]);
const ICMP_PROTOCOLS = new Set([1, 58]);
/** Protocols only IPv6 carries (Neutron's _validate_ethertype_and_protocol). */
const IPV6_ONLY = new Set([41, 43, 44, 58, 59, 60]);
const ETHERTYPES = ['IPv4', 'IPv6'] as const;
export type SgEthertype = (typeof ETHERTYPES)[number];

/** Any JSON value: the rule converters below answer with Neutron's own errors. */
const raw = (): Schema<unknown> => ({
  kind: 'any',
  optional: true,
  parse: (value) => value,
});

const nameText = () => str({ max: 255 });

export const SecurityGroupCreate = obj({
  security_group: obj({
    name: optional(nameText()),
    description: optional(str({ max: 255 })),
    project_id: optional(projectId()),
    tenant_id: optional(projectId()),
  }),
});
export type SecurityGroupCreate = ReturnType<typeof SecurityGroupCreate.parse>['security_group'];

export const SecurityGroupUpdate = obj({
  security_group: obj({ name: optional(nameText()), description: optional(str({ max: 255 })) }),
});
export type SecurityGroupUpdate = ReturnType<typeof SecurityGroupUpdate.parse>['security_group'];

const ruleShape = {
  security_group_id: uuid(),
  direction: raw(),
  ethertype: raw(),
  protocol: raw(),
  port_range_min: raw(),
  port_range_max: raw(),
  remote_ip_prefix: raw(),
  remote_group_id: optional(nullable(uuid())),
  description: optional(str({ max: 255 })),
  project_id: optional(projectId()),
  tenant_id: optional(projectId()),
};
export const RuleBody = obj(ruleShape);
export type RuleBody = ReturnType<typeof RuleBody.parse>;

/** A rule ready to store (its group and project are checked by the caller). */
export interface RuleSpec {
  security_group_id: string;
  direction: 'ingress' | 'egress';
  ethertype: SgEthertype;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
  description: string;
}

export interface SecurityGroupRule extends Omit<RuleSpec, 'remote_group_id'> {
  id: string;
  remote_group_id: string | null;
  project_id: string;
  tenant_id: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
}

export interface SecurityGroup {
  id: string;
  name: string;
  description: string;
  security_group_rules: SecurityGroupRule[];
  project_id: string;
  tenant_id: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
  tags: string[];
}

const pyRepr = (v: unknown): string =>
  v === null || v === undefined ? 'None' : typeof v === 'string' ? v : JSON.stringify(v);

const badInput = (field: string, reason: string) =>
  new ApiError('HTTPBadRequest', `Invalid input for ${field}. Reason: ${reason}.`);

function direction(v: unknown): 'ingress' | 'egress' {
  if (v === 'ingress' || v === 'egress') return v;
  if (v === undefined)
    throw new ApiError(
      'HTTPBadRequest',
      "Failed to parse request. Required attribute 'direction' not specified",
    );
  throw badInput('direction', `'${pyRepr(v).slice(0, 40)}' is not in ['ingress', 'egress']`);
}

/** Neutron's convert_ethertype_to_case_insensitive (default IPv4). */
function ethertype(v: unknown): SgEthertype {
  if (v === undefined) return 'IPv4';
  const found = ETHERTYPES.find(
    (e) => typeof v === 'string' && e.toLowerCase() === v.toLowerCase(),
  );
  if (found) return found;
  throw new ApiError(
    'SecurityGroupRuleInvalidEtherType',
    `Security group rule for ethertype '${pyRepr(v).slice(0, 40)}' not supported. Allowed values are ['IPv4', 'IPv6'].`,
  );
}

const SUPPORTED = `[None, ${Object.keys(IP_PROTOCOL_MAP)
  .map((p) => `'${p}'`)
  .join(', ')}]`;

/** Neutron's convert_protocol: a known name (lower-cased), a number 0-255 as text, or null. */
export function storedProtocol(v: unknown): string | null {
  if (v === undefined || v === null || v === 'any') return null;
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : '';
  if (/^\d{1,3}$/.test(text) && Number(text) <= 255) return String(Number(text));
  const name = typeof v === 'string' ? v.toLowerCase() : '';
  if (Object.hasOwn(IP_PROTOCOL_MAP, name)) return name;
  throw new ApiError(
    'SecurityGroupRuleInvalidProtocol',
    `Security group rule protocol ${pyRepr(v).slice(0, 40)} not supported. Only protocol values ${SUPPORTED} and integer representations [0 to 255] are supported.`,
  );
}

/** Neutron's convert_validate_port_value: 0-65535 as an integer or digits. */
function port(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : '';
  if (/^\d{1,5}$/.test(text) && Number(text) <= 65535) return Number(text);
  throw new ApiError(
    'SecurityGroupInvalidPortValue',
    `Invalid value for port ${pyRepr(v).slice(0, 40)}`,
  );
}

/** The remote prefix in canonical network form, with its IP version. */
function prefix(v: unknown): { text: string; version: 4 | 6 } | null {
  if (v === undefined || v === null) return null;
  const bad = () =>
    badInput('remote_ip_prefix', `'${pyRepr(v).slice(0, 50)}' is not a valid IP subnet`);
  if (typeof v !== 'string') throw bad();
  const m = /^([0-9A-Fa-f.:]{2,45})(?:\/(\d{1,3}))?$/.exec(v);
  const ip = m?.[1] ? parseIp(m[1]) : undefined;
  if (!m || !ip) throw bad();
  const bits = BITS[ip.version];
  const len = m[2] === undefined ? bits : Number(m[2]);
  if (len > bits) throw bad();
  const hostMask = (1n << BigInt(bits - len)) - 1n;
  return { text: `${formatIp(ip.version, ip.value & ~hostMask)}/${len}`, version: ip.version };
}

/** Neutron's _validate_port_range, on the stored protocol. */
function checkPorts(proto: string | null, min: number | null, max: number | null): void {
  if (min === null && max === null) return;
  if (proto === null)
    throw new ApiError(
      'SecurityGroupProtocolRequiredWithPorts',
      'Must also specify protocol if port range is given.',
    );
  const n = protocolNumber(proto) as number;
  if (PORT_PROTOCOLS.has(n)) {
    if (min === 0 || max === 0)
      throw new ApiError('SecurityGroupInvalidPortValue', 'Invalid value for port 0');
    if (min !== null && max !== null && min <= max) return;
    throw new ApiError(
      'SecurityGroupInvalidPortRange',
      'For TCP/UDP protocols, port_range_min must be <= port_range_max',
    );
  }
  if (!ICMP_PROTOCOLS.has(n))
    throw new ApiError(
      'SecurityGroupInvalidProtocolForPort',
      `Invalid protocol ${n} for port range, only supported for DCCP, SCTP, TCP, UDP, UDPLITE protocols.`,
    );
  for (const [attr, field, value] of [
    ['port_range_min', 'type', min],
    ['port_range_max', 'code', max],
  ] as const)
    if (value !== null && value > 255)
      throw new ApiError(
        'SecurityGroupInvalidIcmpValue',
        `Invalid value for ICMP ${field} (${attr}) ${value}. It must be 0 to 255.`,
      );
  if (min === null && max !== null)
    throw new ApiError(
      'SecurityGroupMissingIcmpType',
      `ICMP code (port-range-max) ${max} is provided but ICMP type (port-range-min) is missing.`,
    );
}

/** Neutron's _make_canonical_ipv6_icmp_protocol: ICMP on IPv6 is stored as ipv6-icmp (58). */
function canonicalIcmp(eth: SgEthertype, proto: string | null): string | null {
  if (eth !== 'IPv6') return proto;
  if (proto === 'icmp' || proto === 'icmpv6') return 'ipv6-icmp';
  return proto === '1' ? '58' : proto;
}

/**
 * A rule request → the rule to store, checked in Neutron's order: the attribute converters,
 * then port range, prefix against ethertype, protocol against ethertype, and a remote given
 * twice. Pure; the groups it names are checked by the caller.
 */
export function ruleSpec(body: RuleBody): RuleSpec {
  const dir = direction(body.direction);
  const eth = ethertype(body.ethertype);
  const proto = canonicalIcmp(eth, storedProtocol(body.protocol));
  const min = port(body.port_range_min);
  const max = port(body.port_range_max);
  const remote = prefix(body.remote_ip_prefix);
  checkPorts(proto, min, max);
  if (remote && eth !== `IPv${remote.version}`)
    throw new ApiError(
      'SecurityGroupRuleParameterConflict',
      `Conflicting value ethertype ${eth} for CIDR ${String(body.remote_ip_prefix)}`,
    );
  if (proto !== null && eth === 'IPv4' && IPV6_ONLY.has(protocolNumber(proto) as number))
    throw new ApiError(
      'SecurityGroupEthertypeConflictWithProtocol',
      `Invalid ethertype ${eth} for protocol ${proto}.`,
    );
  if (remote && body.remote_group_id)
    throw new ApiError(
      'SecurityGroupRemoteGroupAndRemoteIpPrefix',
      'Only remote_ip_prefix or remote_group_id may be provided.',
    );
  return {
    security_group_id: body.security_group_id,
    direction: dir,
    ethertype: eth,
    protocol: proto,
    port_range_min: min,
    port_range_max: max,
    remote_ip_prefix: remote?.text ?? null,
    remote_group_id: body.remote_group_id ?? null,
    description: body.description ?? '',
  };
}

/** Neutron's _rule_to_key: a protocol by number, ICMP on IPv6 as ipv6-icmp. */
function protocolKey(r: RuleSpec): number | null {
  const n = protocolNumber(r.protocol) ?? null;
  return r.ethertype === 'IPv6' && n === 1 ? 58 : n;
}

/** Neutron's _rule_to_key: the whole address space is the same as no prefix. */
const prefixKey = (p: string | null) => (p === '0.0.0.0/0' || p === '::/0' ? null : p);

/** Two rules are one when everything but id and description matches (Neutron's keys). */
export function sameRule(a: RuleSpec, b: RuleSpec): boolean {
  return (
    a.security_group_id === b.security_group_id &&
    a.direction === b.direction &&
    a.ethertype === b.ethertype &&
    protocolKey(a) === protocolKey(b) &&
    a.port_range_min === b.port_range_min &&
    a.port_range_max === b.port_range_max &&
    prefixKey(a.remote_ip_prefix) === prefixKey(b.remote_ip_prefix) &&
    a.remote_group_id === b.remote_group_id
  );
}
