/**
 * Random request bodies for the property tests: values drawn from (and around) the space
 * the API's schemas accept — addresses in every textual form, CIDRs of every prefix,
 * special ranges, names with any Unicode — so the API's own validation decides what is
 * accepted, and whatever it accepts is fed to the agents' renderers.
 *
 * Invariant: deterministic for a seed (`KUMO_PROPERTY_SEED`, else a fresh one that the
 * test prints), so a failure is reproduced by running again with the printed seed.
 */
import { formatIp, parseIp } from '../../contracts/inet.ts';

export interface Rng {
  seed: number;
  /** [0, 1) */
  next(): number;
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  bigint(bits: number): bigint;
}

/** mulberry32: small, fast and good enough to explore a value space. */
export function rng(seed = Number(process.env.KUMO_PROPERTY_SEED ?? Date.now() % 2 ** 31)): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    seed,
    next,
    int,
    pick: (items) => items[int(0, items.length - 1)] as (typeof items)[number],
    chance: (p) => next() < p,
    bigint(bits) {
      let v = 0n;
      for (let i = 0; i < bits; i += 16) v = (v << 16n) | BigInt(int(0, 0xffff));
      return v & ((1n << BigInt(bits)) - 1n);
    },
  };
}

const SPECIAL_V4 = ['0.0.0.0', '255.255.255.255', '127.0.0.1', '224.0.0.1', '169.254.1.1'];
const SPECIAL_V6 = ['::', '::1', 'fe80::1', 'ff02::1', '::ffff:1.2.3.4', '::ffff:102:304'];

/** An IPv6 address in one of its many spellings (compressed, upper case, full, v4 tail). */
function spellV6(r: Rng, value: bigint): string {
  const canonical = formatIp(6, value);
  const full = Array.from({ length: 8 }, (_, i) =>
    ((value >> BigInt(112 - i * 16)) & 0xffffn).toString(16),
  ).join(':');
  return r.pick([canonical, canonical.toUpperCase(), full, full.replace(/(^|:)0(:|$)/, '$1$2')]);
}

export function ipText(r: Rng, version: 4 | 6): string {
  if (r.chance(0.1)) return r.pick(version === 4 ? SPECIAL_V4 : SPECIAL_V6);
  if (version === 4) return formatIp(4, r.bigint(32));
  // Mostly zero-rich addresses: they exercise `::` at the start, middle and end.
  const groups = Array.from({ length: 8 }, () => (r.chance(0.5) ? 0n : BigInt(r.int(0, 0xffff))));
  return spellV6(
    r,
    groups.reduce((acc, g) => (acc << 16n) | g, 0n),
  );
}

/** An address inside `cidr` (any host part, the network and last address included). */
export function ipIn(r: Rng, version: 4 | 6, network: bigint, prefix: number): string {
  const bits = version === 4 ? 32 : 128;
  const host = r.bigint(bits - prefix);
  const value =
    network | (r.chance(0.2) ? r.pick([0n, 1n, (1n << BigInt(bits - prefix)) - 1n]) : host);
  return version === 4 ? formatIp(4, value) : spellV6(r, value);
}

export interface CidrPick {
  text: string;
  version: 4 | 6;
  network: bigint;
  prefix: number;
}

export function cidrOf(r: Rng, version: 4 | 6): CidrPick {
  const bits = version === 4 ? 32 : 128;
  const prefix =
    version === 4
      ? r.pick([0, 8, 16, 20, 24, 24, 24, 24, 24, 24, 28, 29, 30, 31, 32])
      : r.pick([0, 48, 56, 64, 64, 64, 64, 64, 64, 96, 112, 120, 126, 127, 128]);
  const special =
    version === 4
      ? ['127.0.0.0', '224.0.0.0', '169.254.0.0', '0.0.0.0']
      : ['::', 'fe80::', 'ff00::', '::ffff:0:0'];
  const base = r.chance(0.1) ? (parseIp(r.pick(special))?.value ?? 0n) : r.bigint(bits);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  const network = base & mask;
  const addr = r.chance(0.1) ? base : network;
  const text = `${version === 4 ? formatIp(4, addr) : spellV6(r, addr)}/${prefix}`;
  return { text, version, network, prefix };
}

const NAME_CHARS = [
  'a',
  'Z',
  '0',
  ' ',
  '-',
  '_',
  '.',
  'é',
  '日',
  '😀',
  '"',
  "'",
  ',',
  ';',
  '#',
  '\u2028',
  '\u00a0',
];

export function name(r: Rng): string {
  const n = r.pick([0, 1, 8, 40, 255, 256]);
  return Array.from({ length: Math.min(n, 300) }, () => r.pick(NAME_CHARS)).join('');
}

export function mac(r: Rng): string {
  const bytes = Array.from({ length: 6 }, () => r.int(0, 255).toString(16).padStart(2, '0'));
  if (r.chance(0.5)) bytes.splice(0, 3, 'fa', '16', '3e');
  const text = bytes.join(':');
  return r.chance(0.3) ? text.toUpperCase() : text;
}

export const DEVICE_OWNERS = [
  '',
  'compute:nova',
  'compute:az1',
  'network:router_interface',
  'network:router_gateway',
  'network:floatingip',
  'anything else',
];
