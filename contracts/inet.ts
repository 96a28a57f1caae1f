/**
 * IPv4/IPv6 address text ↔ number, strictly, for every part of Kumo: kumo-api's IPAM and
 * the agents' host tools (dnsmasq files, `ip` arguments) share this one parser.
 *
 * Invariants: text is accepted only when it is exactly one address (no zone ids, no
 * leading zeros in IPv4 octets, no spaces), and formatted text is canonical (dotted quad;
 * RFC 5952 lower-case, `::`-compressed IPv6, IPv4-mapped addresses as `::ffff:a.b.c.d` as
 * RFC 5952 §5 recommends and netaddr, hence Neutron, prints them), so equal addresses are
 * equal strings. Pure.
 */

export type IpVersion = 4 | 6;

export interface Ip {
  version: IpVersion;
  value: bigint;
}

/** Address width in bits. */
export const BITS = { 4: 32, 6: 128 } as const;
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

/** In ::ffff:0:0/96: an IPv4 address written in IPv6 form (RFC 4291 §2.5.5.2). */
export const isV4Mapped = (ip: Ip): boolean => ip.version === 6 && ip.value >> 32n === 0xffffn;

export function formatIp(version: IpVersion, value: bigint): string {
  if (version === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  if (isV4Mapped({ version, value })) return `::ffff:${formatIp(4, value & 0xffffffffn)}`;
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
