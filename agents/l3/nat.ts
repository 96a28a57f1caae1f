/**
 * One router's NAT as an iptables model (host/iptables) under the L3 agent's own prefix:
 * Neutron's legacy router rules (neutron/agent/l3/router_info.py) in our chains.
 *
 * nat table, chains `kumo-l3-<name>`:
 * - PREROUTING and OUTPUT wrappers: per floating IP `-d FIP/32 -j DNAT --to-destination
 *   FIXED` (OUTPUT so that the router itself reaches floating IPs);
 * - POSTROUTING wrapper: `! -o QG -m conntrack ! --ctstate DNAT -j ACCEPT` (traffic that
 *   does not leave by the gateway and was not DNATed keeps its source: internal ↔ internal,
 *   and replies to outside traffic that came in to a floating IP), then `-j kumo-l3-snat`;
 * - snat: per floating IP `-s FIXED/32 -j SNAT --to-source FIP` first; then, with a gateway
 *   IP and enable_snat, per internal CIDR `-s CIDR -o QG -j SNAT --to-source GWIP`; then,
 *   with a gateway IP (as Neutron, whatever enable_snat says), per internal CIDR `-s CIDR
 *   -m conntrack --ctstate DNAT -j SNAT --to-source GWIP`, so that an internal host reaching
 *   a floating IP of its own subnet gets the replies back through the router. Neutron
 *   excludes outside traffic from that rule with a mangle mark set on the gateway; the
 *   source match on internal CIDRs does the same with the nat table alone.
 * All four chains exist even when empty, so the layout never changes, only rules do. The
 * filter table is not touched (FORWARD accepts by default).
 *
 * Invariants: every input value is checked before it becomes a token (device name as
 * host/ip/names.ts, IPv4 addresses and CIDRs strictly as contracts/inet.ts), and a bad one
 * throws a ValidationError naming its field; rules are written as iptables-save prints them
 * (so a second apply is a no-op); floating IPs come out sorted by address and CIDRs by
 * network, so equal inputs in any order give equal models. Pure.
 */
import { parseIp } from '../../contracts/inet.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { networkAddress, parseCidr } from '../../host/ip/inet.ts';
import { assertDeviceName, InvalidNameError } from '../../host/ip/names.ts';
import type { IptablesModel, Rule } from '../../host/iptables/model.ts';

export interface NatInput {
  qgDevice: string;
  /** The IPv4 address on qg-, or null when the router has none. */
  gatewayIp: string | null;
  enableSnat: boolean;
  /** IPv4 CIDRs of the router's interfaces. */
  internalCidrs: string[];
  floatingIps: { floatingIp: string; fixedIp: string }[];
}

export const L3_CHAIN_PREFIX = 'kumo-l3';

const SNAT_CHAIN = `${L3_CHAIN_PREFIX}-snat`;

/** One IPv4 address, exactly as written (contracts/inet.ts: no leading zeros, no spaces). */
function v4(value: unknown, field: string): { text: string; value: bigint } {
  const ip = typeof value === 'string' ? parseIp(value) : undefined;
  if (ip === undefined || ip.version !== 4)
    throw new ValidationError(field, `${JSON.stringify(value)} must be one IPv4 address`);
  return { text: value as string, value: ip.value };
}

/** An IPv4 CIDR with a prefix of 1-32 → its network in iptables-save's spelling. */
function v4Cidr(value: unknown, field: string): { text: string; value: bigint } {
  const cidr = typeof value === 'string' ? parseCidr(value) : null;
  if (cidr === null || cidr.version !== 4 || cidr.prefix < 1)
    throw new ValidationError(field, `${JSON.stringify(value)} must be an IPv4 CIDR /1-/32`);
  const network = networkAddress(cidr);
  return { text: `${network}/${cidr.prefix}`, value: v4(network, field).value };
}

function device(value: unknown, field: string): string {
  try {
    return assertDeviceName(value as string, field);
  } catch (e) {
    if (e instanceof InvalidNameError) throw new ValidationError(field, e.message);
    throw e;
  }
}

/** By address, then by text (so 10.0.0.0/16 and 10.0.0.0/24 have a fixed order too). */
const byValue = (a: { value: bigint; text: string }, b: { value: bigint; text: string }) =>
  a.value < b.value ? -1 : a.value > b.value ? 1 : a.text < b.text ? -1 : a.text > b.text ? 1 : 0;

interface Checked {
  qg: string;
  gw: string | null;
  snat: boolean;
  cidrs: string[];
  fips: { floating: string; fixed: string }[];
}

function checkArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new ValidationError(field, 'must be an array');
  return value;
}

function checkFloatingIps(value: unknown): Checked['fips'] {
  const seen = new Set<string>();
  const fips = checkArray(value, 'floatingIps').map((item, i) => {
    const field = `floatingIps[${i}]`;
    if (typeof item !== 'object' || item === null)
      throw new ValidationError(field, 'not an object');
    const { floatingIp, fixedIp } = item as Record<string, unknown>;
    const floating = v4(floatingIp, `${field}.floatingIp`);
    const fixed = v4(fixedIp, `${field}.fixedIp`);
    if (seen.has(floating.text))
      throw new ValidationError(`${field}.floatingIp`, `${floating.text} given twice`);
    seen.add(floating.text);
    return { floating: floating.text, fixed: fixed.text, ...floating };
  });
  return fips.sort(byValue).map(({ floating, fixed }) => ({ floating, fixed }));
}

function check(input: NatInput): Checked {
  if (typeof input !== 'object' || input === null)
    throw new ValidationError('', 'NAT input must be an object');
  if (typeof input.enableSnat !== 'boolean')
    throw new ValidationError('enableSnat', 'must be true or false');
  const cidrs = checkArray(input.internalCidrs, 'internalCidrs').map((c, i) =>
    v4Cidr(c, `internalCidrs[${i}]`),
  );
  const unique = [...new Map(cidrs.map((c) => [c.text, c])).values()].sort(byValue);
  return {
    qg: device(input.qgDevice, 'qgDevice'),
    gw: input.gatewayIp === null ? null : v4(input.gatewayIp, 'gatewayIp').text,
    snat: input.enableSnat,
    cidrs: unique.map((c) => c.text),
    fips: checkFloatingIps(input.floatingIps),
  };
}

const snatTo = (ip: string) => ['-j', 'SNAT', '--to-source', ip];
const dnatTo = (ip: string) => ['-j', 'DNAT', '--to-destination', ip];

function snatRules({ qg, gw, snat, cidrs, fips }: Checked): Rule[] {
  const floating = fips.map((f) => ['-s', `${f.fixed}/32`, ...snatTo(f.floating)]);
  if (gw === null) return floating;
  const toGateway = snatTo(gw);
  const outbound = snat ? cidrs.map((c) => ['-s', c, '-o', qg, ...toGateway]) : [];
  const hairpin = cidrs.map((c) => ['-s', c, '-m', 'conntrack', '--ctstate', 'DNAT', ...toGateway]);
  return [...floating, ...outbound, ...hairpin];
}

/** The router's NAT (see the module comment); throws ValidationError on a bad value. */
export function natModel(input: NatInput): IptablesModel {
  const c = check(input);
  const dnat = c.fips.map((f) => ['-d', `${f.floating}/32`, ...dnatTo(f.fixed)]);
  const keepSource = ['!', '-o', c.qg, '-m', 'conntrack', '!', '--ctstate', 'DNAT', '-j', 'ACCEPT'];
  return {
    family: 4,
    prefix: L3_CHAIN_PREFIX,
    tables: {
      nat: {
        PREROUTING: dnat,
        OUTPUT: dnat,
        POSTROUTING: [keepSource, ['-j', SNAT_CHAIN]],
        snat: snatRules(c),
      },
    },
  };
}
