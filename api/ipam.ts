/**
 * IP address arithmetic for subnets and IPAM, IPv4 and IPv6, as BigInt.
 *
 * Invariants: every address leaves this module in its canonical text form (dotted quad;
 * RFC 5952 lower-case, `::`-compressed IPv6), so equal addresses are equal strings and the
 * database's UNIQUE(subnet_id, ip_address) really means one address once. Pure: no I/O.
 */

import { BITS, formatIp, type Ip, type IpVersion, parseIp } from '../contracts/inet.ts';

export {
  canonicalIp,
  formatIp,
  type Ip,
  type IpVersion,
  isV4Mapped,
  parseIp,
} from '../contracts/inet.ts';

export interface Cidr {
  version: IpVersion;
  network: bigint;
  prefix: number;
}

export interface Range {
  start: bigint;
  end: bigint;
}

export interface Pool {
  start: string;
  end: string;
}

const mask = (version: IpVersion, prefix: number) => {
  const bits = BigInt(BITS[version]);
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
};

/**
 * Parses `a.b.c.d/n`. Neutron refuses a CIDR with host bits set (it recommends the
 * network form in the message), and so do we: `reason` says what is wrong.
 */
export function parseCidr(s: string): { cidr: Cidr } | { reason: string } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  const ip = m?.[1] ? parseIp(m[1]) : undefined;
  const prefix = Number(m?.[2]);
  if (!ip || !m || prefix > BITS[ip.version] || m[2]?.startsWith('0') !== (m[2] === '0')) {
    return { reason: `'${s}' is not a valid IP subnet` };
  }
  const network = ip.value & mask(ip.version, prefix);
  if (network !== ip.value) {
    const recommended = `${formatIp(ip.version, network)}/${prefix}`;
    return {
      reason: `'${s}' isn't a recognized IP subnet cidr, '${recommended}' is recommended`,
    };
  }
  return { cidr: { version: ip.version, network, prefix } };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.version, c.network)}/${c.prefix}`;
}

export function lastAddress(c: Cidr): bigint {
  return c.network | ((1n << BigInt(BITS[c.version] - c.prefix)) - 1n);
}

export function contains(c: Cidr, ip: Ip): boolean {
  return ip.version === c.version && ip.value >= c.network && ip.value <= lastAddress(c);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.version === b.version && a.network <= lastAddress(b) && b.network <= lastAddress(a);
}

/** `inner` lies wholly inside `outer` (CIDR blocks either nest or are disjoint). */
export const within = (inner: Cidr, outer: Cidr): boolean =>
  inner.prefix >= outer.prefix && cidrsOverlap(inner, outer);

/** ::ffff:0:0/96, the IPv4-mapped addresses: IPv4 written in IPv6 form, never on a wire. */
export const V4_MAPPED: Cidr = { version: 6, network: 0xffffn << 32n, prefix: 96 };

/** The addresses a pool may use: without the network address and (IPv4) broadcast. */
export function usableRange(c: Cidr): Range {
  const last = lastAddress(c);
  return { start: c.network + 1n, end: c.version === 4 ? last - 1n : last };
}

/** Neutron's default pools: the usable range minus the gateway, as one or two pools. */
export function defaultPools(c: Cidr, gateway: bigint | null): Range[] {
  const { start, end } = usableRange(c);
  if (start > end) return [];
  if (gateway === null || gateway < start || gateway > end) return [{ start, end }];
  return [
    { start, end: gateway - 1n },
    { start: gateway + 1n, end },
  ].filter((r) => r.start <= r.end);
}

export const toPools = (version: IpVersion, ranges: readonly Range[]): Pool[] =>
  ranges.map((r) => ({ start: formatIp(version, r.start), end: formatIp(version, r.end) }));

export const poolSize = (ranges: readonly Range[]): bigint =>
  ranges.reduce((n, r) => n + (r.end - r.start + 1n), 0n);

export const inRanges = (ranges: readonly Range[], v: bigint): boolean =>
  ranges.some((r) => v >= r.start && v <= r.end);

/**
 * The lowest address in `ranges` (in pool order) not in `taken`, or undefined when the
 * pools are full. Allocation is sequential, so a freed address is the next one handed out.
 */
export function firstFree(ranges: readonly Range[], taken: Iterable<bigint>): bigint | undefined {
  const used = [...taken].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const r of ranges) {
    let candidate = r.start;
    for (const u of used) {
      if (u < candidate) continue;
      if (u > candidate) break;
      candidate++;
    }
    if (candidate <= r.end) return candidate;
  }
  return undefined;
}
