/**
 * IPv4/IPv6 address and prefix text, strictly: the forms `ip` and dnsmasq are given. The
 * address parsing itself is contracts/inet.ts, the one parser kumo-api's IPAM uses too.
 *
 * Invariant: a string accepted here contains only hex digits, `.`, `:` (and `/` plus a
 * decimal prefix for a CIDR): no zone ids, no leading zeros in IPv4 octets, no spaces,
 * so it is safe in an argv, an `ip -batch` line or a dnsmasq file. Pure, no I/O.
 */
import { BITS, formatIp, type IpVersion, parseIp } from '../../contracts/inet.ts';

export type { IpVersion };

export interface Cidr {
  version: IpVersion;
  /** The address as written (host bits may be set: `10.0.0.5/24`). */
  address: string;
  prefix: number;
}

/** 4, 6, or null when `text` is not a strictly formed address. */
export function ipVersion(text: string): IpVersion | null {
  return parseIp(text)?.version ?? null;
}

export function parseCidr(text: string): Cidr | null {
  const m = /^([0-9A-Fa-f:.]{2,45})\/(\d{1,3})$/.exec(text);
  if (!m) return null;
  const address = m[1] as string;
  const prefix = Number(m[2]);
  const version = ipVersion(address);
  if (version === null || prefix > BITS[version]) return null;
  if (m[2] !== String(prefix)) return null; // no leading zeros
  return { version, address, prefix };
}

/** The network address of a CIDR in canonical text (`10.9.0.0`, `2001:db8::`). */
export function networkAddress(c: Cidr): string {
  const ip = parseIp(c.address);
  if (!ip) throw new Error(`not an IP address: ${JSON.stringify(c.address)}`);
  const hostBits = BigInt(BITS[c.version] - c.prefix);
  return formatIp(c.version, (ip.value >> hostBits) << hostBits);
}

/** The dotted netmask of an IPv4 prefix length (`24` → `255.255.255.0`). */
export function netmaskV4(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error('bad prefix');
  return formatIp(4, (1n << 32n) - (1n << BigInt(32 - prefix)));
}

/** How many addresses a CIDR spans. */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(BITS[c.version] - c.prefix);
}

/** Canonical text of an address (lowercase, compressed IPv6), for comparisons. */
export function canonicalIp(text: string): string {
  const ip = parseIp(text);
  if (!ip) throw new Error(`not an IP address: ${JSON.stringify(text)}`);
  return formatIp(ip.version, ip.value);
}
