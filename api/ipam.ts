/**
 * IP address arithmetic for subnets and IPAM, IPv4 and IPv6, as BigInt.
 *
 * Invariants: every address leaves this module in its canonical text form (dotted quad;
 * RFC 5952 lower-case, `::`-compressed IPv6), so equal addresses are equal strings and the
 * database's UNIQUE(subnet_id, ip_address) really means one address once. Pure: no I/O.
 */

export type IpVersion = 4 | 6;

export interface Ip {
  version: IpVersion;
  value: bigint;
}

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

const BITS = { 4: 32, 6: 128 } as const;
const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEXTET = /^[0-9a-fA-F]{1,4}$/;

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
}

function parseV6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.length > 45) return undefined;
  let text = s;
  if (s.includes('.')) {
    // An embedded IPv4 tail (::ffff:192.0.2.1) becomes its two hextets.
    const lastColon = s.lastIndexOf(':');
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    text = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string | undefined) => (h ? h.split(':') : []);
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  if (![...head, ...rest].every((g) => HEXTET.test(g))) return undefined;
  const given = head.length + rest.length;
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined;
  const all = [
    ...head.map((g) => BigInt(`0x${g}`)),
    ...Array<bigint>(8 - given).fill(0n),
    ...rest.map((g) => BigInt(`0x${g}`)),
  ];
  return all.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Parses an address; undefined when the text is not exactly one IPv4 or IPv6 address. */
export function parseIp(s: string): Ip | undefined {
  if (s.includes(':')) {
    const value = parseV6(s);
    return value === undefined ? undefined : { version: 6, value };
  }
  const value = parseV4(s);
  return value === undefined ? undefined : { version: 4, value };
}

export function formatIp(version: IpVersion, value: bigint): string {
  if (version === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) => (value >> BigInt(112 - i * 16)) & 0xffffn);
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0n) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0n) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The canonical form of an address, or undefined when it is not one. */
export function canonicalIp(s: string): string | undefined {
  const ip = parseIp(s);
  return ip ? formatIp(ip.version, ip.value) : undefined;
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
