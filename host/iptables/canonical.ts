/**
 * A rule's tokens → the spelling `iptables-save` prints for it, so a model can be compared
 * with what the kernel holds token for token (iptables 1.8, both backends).
 *
 * Covered (each checked against real iptables by the integration test):
 * - long option names → short ones (`--source` → `-s`, `--jump` → `-j`, `--destination-port`
 *   → `--dport` …);
 * - `-s -d -i -o -p -f` (with their `!`) moved in front, in that order; addresses get their
 *   prefix length (`/32`, `/128`), host bits cleared, IPv6 compressed; `/0` and `-p all`
 *   dropped (they match everything);
 * - `-p` lower-cased, numbers named (`6` → `tcp`), `icmpv6` → `ipv6-icmp`;
 * - the implicit protocol match: `-p tcp --dport 22` → `-p tcp -m tcp --dport 22`, `--syn`
 *   → `--tcp-flags FIN,SYN,RST,ACK SYN`, `--sport` before `--dport`.
 * Anything else must be written as iptables-save prints it (ICMP types as numbers, `-j MARK
 * --set-xmark`); a rule that is not is still applied correctly, but every apply rewrites its
 * chain because the comparison never matches.
 *
 * Invariant: the output of canonicalRule is a fixed point (canonicalRule(canonicalRule(r)) =
 * canonicalRule(r)), and -s/-d take exactly one IP address or CIDR of the model's family
 * (never a hostname or a list, which iptables would resolve or expand into several rules).
 */

import { BITS, formatIp, parseIp } from '../../contracts/inet.ts';
import { ValidationError } from '../../contracts/schema.ts';

const ALIASES: Readonly<Record<string, string>> = {
  '--source': '-s',
  '--src': '-s',
  '--destination': '-d',
  '--dst': '-d',
  '--in-interface': '-i',
  '--out-interface': '-o',
  '--protocol': '-p',
  '--fragment': '-f',
  '--match': '-m',
  '--jump': '-j',
  '--goto': '-g',
  '--source-port': '--sport',
  '--destination-port': '--dport',
};

/** The basic options, in the order iptables-save prints them. */
const BASIC = ['-s', '-d', '-i', '-o', '-p', '-f'];

const PROTOCOL_NUMBERS: Readonly<Record<string, string>> = {
  '0': 'all',
  '1': 'icmp',
  '6': 'tcp',
  '17': 'udp',
  '33': 'dccp',
  '47': 'gre',
  '50': 'esp',
  '51': 'ah',
  '58': 'ipv6-icmp',
  '132': 'sctp',
  icmpv6: 'ipv6-icmp',
};

/** Protocol → its implicit match module and that module's options in save order. */
const PROTOCOL_MATCHES: Readonly<Record<string, { module: string; options: string[] }>> = {
  tcp: { module: 'tcp', options: ['--sport', '--dport', '--tcp-flags', '--syn', '--tcp-option'] },
  udp: { module: 'udp', options: ['--sport', '--dport'] },
  sctp: { module: 'sctp', options: ['--sport', '--dport', '--chunk-types'] },
  icmp: { module: 'icmp', options: ['--icmp-type'] },
  'ipv6-icmp': { module: 'icmp6', options: ['--icmpv6-type'] },
};

const ARITY: Readonly<Record<string, number>> = {
  '--syn': 0,
  '--tcp-flags': 2,
  '--chunk-types': 2,
};

function targetIndex(tokens: readonly string[]): number {
  const i = tokens.findIndex((t) => t === '-j' || t === '-g');
  return i < 0 ? tokens.length : i;
}

/** `10.0.0.7/24` → `10.0.0.0/24`; `2001:DB8::1` → `2001:db8::1/128`; `/0` → null (drop). */
function canonicalAddress(value: string, family: 4 | 6, field: string): string | null {
  const [addr = '', len, extra] = value.split('/');
  const ip = parseIp(addr);
  const bits = BITS[family];
  if (ip === undefined || ip.version !== family || extra !== undefined)
    throw new ValidationError(field, `${value} must be one IPv${family} address or CIDR`);
  if (len !== undefined && !(/^\d{1,3}$/.test(len) && Number(len) <= bits))
    throw new ValidationError(field, `${value} must have a prefix length 0-${bits}`);
  const prefix = len === undefined ? bits : Number(len);
  if (prefix === 0) return null;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  return `${formatIp(family, ip.value & mask)}/${prefix}`;
}

function canonicalProtocol(value: string): string {
  const lower = value.toLowerCase();
  return PROTOCOL_NUMBERS[lower] ?? lower;
}

/**
 * Takes the basic options out of the rule (iptables reads them anywhere in the line);
 * returns them in save order, the other tokens in their order, and the protocol option.
 */
function splitBasic(tokens: readonly string[], family: 4 | 6, field: string) {
  const basic = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const neg = tokens[i] === '!' && BASIC.includes(tokens[i + 1] as string);
    const opt = tokens[neg ? i + 1 : i] as string;
    if (!BASIC.includes(opt)) {
      rest.push(tokens[i] as string);
      continue;
    }
    if (basic.has(opt)) throw new ValidationError(`${field}[${i}]`, `${opt} given twice`);
    const at = neg ? i + 1 : i;
    const raw = opt === '-f' ? undefined : tokens[at + 1];
    if (opt !== '-f' && (raw === undefined || raw.startsWith('-')))
      throw new ValidationError(`${field}[${at}]`, `${opt} needs a value`);
    i = opt === '-f' ? at : at + 1;
    const value = basicValue(opt, raw, family, `${field}[${at + 1}]`);
    if (value === null && !neg) continue;
    basic.set(opt, [...(neg ? ['!'] : []), opt, ...(raw === undefined ? [] : [value ?? raw])]);
  }
  return { basic: BASIC.flatMap((o) => basic.get(o) ?? []), rest, protocol: basic.get('-p') };
}

/** The canonical value of a basic option; null when it matches everything. */
function basicValue(opt: string, raw: string | undefined, family: 4 | 6, field: string) {
  if (raw === undefined) return undefined;
  if (opt === '-s' || opt === '-d') return canonicalAddress(raw, family, field);
  if (opt === '-p') {
    const p = canonicalProtocol(raw);
    return p === 'all' ? null : p;
  }
  return raw;
}

/** Splits a match's options into items: `[!] --opt value…`. */
function optionItems(tokens: readonly string[]): string[][] | null {
  const items: string[][] = [];
  for (let i = 0; i < tokens.length; ) {
    const neg = tokens[i] === '!';
    const opt = tokens[neg ? i + 1 : i] as string;
    const n = ARITY[opt] ?? 1;
    const end = (neg ? i + 2 : i + 1) + n;
    if (!opt.startsWith('--') || end > tokens.length) return null;
    items.push(tokens.slice(i, end));
    i = end;
  }
  return items;
}

/** Orders one protocol match's options as save does and expands `--syn`. */
function canonicalGroup(group: readonly string[], options: readonly string[]): string[] {
  const expanded = group.flatMap((t) =>
    t === '--syn' ? ['--tcp-flags', 'FIN,SYN,RST,ACK', 'SYN'] : [t],
  );
  const items = optionItems(expanded);
  if (items === null) return expanded;
  const rank = (item: string[]) =>
    options.indexOf(item[0] === '!' ? (item[1] as string) : (item[0] as string));
  if (items.some((item) => rank(item) < 0)) return expanded;
  return items.sort((a, b) => rank(a) - rank(b)).flat();
}

/** Adds the implicit `-m <proto>` before the first protocol option and orders that match. */
function withProtocolMatch(rest: readonly string[], protocol: string | undefined): string[] {
  const match = protocol === undefined ? undefined : PROTOCOL_MATCHES[protocol];
  if (match === undefined) return [...rest];
  const end = targetIndex(rest);
  const isOpt = (i: number) =>
    match.options.includes(rest[i] as string) ||
    (rest[i] === '!' && match.options.includes(rest[i + 1] as string));
  let out = [...rest];
  let start = out.findIndex((t, i) => t === '-m' && out[i + 1] === match.module && i < end);
  if (start < 0) {
    const first = out.findIndex((_, i) => i < end && isOpt(i));
    if (first < 0) return out;
    out = [...out.slice(0, first), '-m', match.module, ...out.slice(first)];
    start = first;
  }
  const groupEnd = out.findIndex((t, i) => i > start + 1 && (t === '-m' || i >= targetIndex(out)));
  const stop = groupEnd < 0 ? out.length : groupEnd;
  const group = canonicalGroup(out.slice(start + 2, stop), match.options);
  return [...out.slice(0, start + 2), ...group, ...out.slice(stop)];
}

/** The tokens of a rule as iptables-save prints them (see the module comment for limits). */
export function canonicalRule(rule: readonly string[], family: 4 | 6, field = 'rule'): string[] {
  const tokens = rule.map((t) => ALIASES[t] ?? t);
  const { basic, rest, protocol } = splitBasic(tokens, family, field);
  const negatedProtocol = protocol?.[0] === '!';
  const name = negatedProtocol ? undefined : protocol?.[protocol.length - 1];
  return [...basic, ...withProtocolMatch(rest, name)];
}
