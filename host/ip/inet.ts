/**
 * IPv4/IPv6 address and prefix text, strictly: the forms `ip` and dnsmasq are given.
 *
 * Invariant: a string accepted here contains only hex digits, `.`, `:` (and `/` plus a
 * decimal prefix for a CIDR): no zone ids, no leading zeros in IPv4 octets, no spaces,
 * so it is safe in an argv, an `ip -batch` line or a dnsmasq file. Pure, no I/O.
 */
import { isIPv6 } from 'node:net';

export type IpVersion = 4 | 6;

export interface Cidr {
  version: IpVersion;
  /** The address as written (host bits may be set: `10.0.0.5/24`). */
  address: string;
  prefix: number;
}

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const V6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;

export function isIPv4Text(text: string): boolean {
  return V4.test(text);
}

export function isIPv6Text(text: string): boolean {
  return V6_CHARS.test(text) && isIPv6(text);
}

/** 4, 6, or null when `text` is not a strictly formed address. */
export function ipVersion(text: string): IpVersion | null {
  if (isIPv4Text(text)) return 4;
  if (isIPv6Text(text)) return 6;
  return null;
}

export function parseCidr(text: string): Cidr | null {
  const m = /^([0-9A-Fa-f:.]{2,45})\/(\d{1,3})$/.exec(text);
  if (!m) return null;
  const address = m[1] as string;
  const prefix = Number(m[2]);
  const version = ipVersion(address);
  if (version === null || prefix > (version === 4 ? 32 : 128)) return null;
  if (m[2] !== String(prefix)) return null; // no leading zeros
  return { version, address, prefix };
}

function v4ToInt(text: string): number {
  return text.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function intToV4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

function v6ToBig(text: string): bigint {
  let t = text.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const tail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (tail) {
    const n = v4ToInt(tail[2] as string);
    t = `${tail[1]}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const [head = '', rest] = t.split('::');
  const h = head === '' ? [] : head.split(':');
  const r = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill('0'), ...r];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** RFC 5952 text: lowercase, longest run (≥ 2) of zero groups as `::`. */
function bigToV6(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
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

/** The network address of a CIDR in canonical text (`10.9.0.0`, `2001:db8::`). */
export function networkAddress(c: Cidr): string {
  if (c.version === 4) {
    const size = 2 ** (32 - c.prefix);
    return intToV4(Math.floor(v4ToInt(c.address) / size) * size);
  }
  const hostBits = BigInt(128 - c.prefix);
  return bigToV6((v6ToBig(c.address) >> hostBits) << hostBits);
}

/** The dotted netmask of an IPv4 prefix length (`24` → `255.255.255.0`). */
export function netmaskV4(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error('bad prefix');
  return intToV4(2 ** 32 - 2 ** (32 - prefix));
}

/** How many addresses a CIDR spans. */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt((c.version === 4 ? 32 : 128) - c.prefix);
}

/** Canonical text of an address (lowercase, compressed IPv6), for comparisons. */
export function canonicalIp(text: string): string {
  const v = ipVersion(text);
  if (v === null) throw new Error(`not an IP address: ${JSON.stringify(text)}`);
  return v === 4 ? text : bigToV6(v6ToBig(text));
}
