/**
 * Links, addresses and routes through `ip`, in its own vocabulary. Changes are data: an
 * `IpArgs` is the words after `ip` (`['addr', 'add', '10.9.0.2/24', 'dev', 'tap1']`);
 * `ipCommand` turns one into a CommandSpec, `ipBatch` turns many into one `ip -batch -`
 * process (ARCHITECTURE §4), optionally inside a namespace (`ip -n NS`).
 *
 * Invariants: every device name, namespace, address and MAC is checked before a command
 * exists; every word of a batch line is a single `ip -batch` token (no whitespace,
 * quotes, `#` or backslash), so a line can never be split or extended. `ip -batch`
 * without `-force` stops at the first failing line and exits non-zero, which the runner
 * raises as a CommandError.
 */
import { CommandError, type CommandRunner, type CommandSpec } from '../../core/exec.ts';
import { type IpVersion, ipVersion, parseCidr } from './inet.ts';
import { assertDeviceName, assertNetnsName } from './names.ts';

export type IpArgs = readonly string[];

const TOKEN = /^[A-Za-z0-9_.:/@+=-]+$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function assertCidr(cidr: string, field = 'address'): string {
  if (typeof cidr !== 'string' || parseCidr(cidr) === null)
    throw new Error(`invalid ${field} ${JSON.stringify(cidr)}: must be an IP address/prefix`);
  return cidr;
}

function assertIp(ip: string, field: string): string {
  if (typeof ip !== 'string' || ipVersion(ip) === null)
    throw new Error(`invalid ${field} ${JSON.stringify(ip)}: must be an IP address`);
  return ip;
}

function assertToken(word: string): string {
  if (typeof word !== 'string' || !TOKEN.test(word))
    throw new Error(`invalid ip argument ${JSON.stringify(word)}`);
  return word;
}

function nsFlag(netns: string | undefined): string[] {
  return netns === undefined ? [] : ['-n', assertNetnsName(netns)];
}

/** One `ip` invocation: `ip [-n NS] ARGS...`. */
export function ipCommand(args: IpArgs, netns?: string): CommandSpec {
  if (args.length === 0) throw new Error('empty ip arguments');
  return { argv: ['ip', ...nsFlag(netns), ...args.map(assertToken)] };
}

/** Many changes as one process: `ip [-n NS] -batch -` with one line per change. */
export function ipBatch(lines: readonly IpArgs[], netns?: string): CommandSpec {
  if (lines.length === 0) throw new Error('empty ip batch');
  const text = lines
    .map((l) => {
      if (l.length === 0) throw new Error('empty line in ip batch');
      return l.map(assertToken).join(' ');
    })
    .join('\n');
  return { argv: ['ip', ...nsFlag(netns), '-batch', '-'], stdin: `${text}\n` };
}

// ---- links ----

/** A veth pair; each end optionally created directly in a namespace. */
export function vethAdd(
  name: string,
  peer: string,
  opts: { netns?: string; peerNetns?: string } = {},
): IpArgs {
  return [
    'link',
    'add',
    assertDeviceName(name),
    ...(opts.netns === undefined ? [] : ['netns', assertNetnsName(opts.netns)]),
    'type',
    'veth',
    'peer',
    'name',
    assertDeviceName(peer, 'peer device name'),
    ...(opts.peerNetns === undefined ? [] : ['netns', assertNetnsName(opts.peerNetns)]),
  ];
}

export function linkDel(dev: string): IpArgs {
  return ['link', 'del', 'dev', assertDeviceName(dev)];
}

export function linkUp(dev: string): IpArgs {
  return ['link', 'set', 'dev', assertDeviceName(dev), 'up'];
}

export function linkDown(dev: string): IpArgs {
  return ['link', 'set', 'dev', assertDeviceName(dev), 'down'];
}

/** Moves a device into another namespace (its addresses are lost). */
export function linkSetNetns(dev: string, netns: string): IpArgs {
  return ['link', 'set', 'dev', assertDeviceName(dev), 'netns', assertNetnsName(netns)];
}

export function linkSetMac(dev: string, mac: string): IpArgs {
  const m = typeof mac === 'string' ? mac.toLowerCase() : mac;
  if (!MAC.test(m)) throw new Error(`invalid MAC address ${JSON.stringify(mac)}`);
  return ['link', 'set', 'dev', assertDeviceName(dev), 'address', m];
}

export function linkSetMtu(dev: string, mtu: number): IpArgs {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535)
    throw new Error(`invalid MTU ${JSON.stringify(mtu)}`);
  return ['link', 'set', 'dev', assertDeviceName(dev), 'mtu', String(mtu)];
}

// ---- addresses ----

export function addrAdd(dev: string, cidr: string): IpArgs {
  return ['addr', 'add', assertCidr(cidr), 'dev', assertDeviceName(dev)];
}

/** Like addrAdd, but no error when the address is already there. */
export function addrReplace(dev: string, cidr: string): IpArgs {
  return ['addr', 'replace', assertCidr(cidr), 'dev', assertDeviceName(dev)];
}

export function addrDel(dev: string, cidr: string): IpArgs {
  return ['addr', 'del', assertCidr(cidr), 'dev', assertDeviceName(dev)];
}

export function addrFlush(dev: string): IpArgs {
  return ['addr', 'flush', 'dev', assertDeviceName(dev)];
}

// ---- routes ----

/** `route replace DEST [via GW] [dev DEV]`; `default` is accepted as DEST. */
export function routeReplace(dest: string, opts: { via?: string; dev?: string }): IpArgs {
  if (opts.via === undefined && opts.dev === undefined) throw new Error('route needs via or dev');
  return [
    'route',
    'replace',
    dest === 'default' ? dest : assertCidr(dest, 'route destination'),
    ...(opts.via === undefined ? [] : ['via', assertIp(opts.via, 'route gateway')]),
    ...(opts.dev === undefined ? [] : ['dev', assertDeviceName(opts.dev)]),
  ];
}

export function routeDel(dest: string): IpArgs {
  return ['route', 'del', dest === 'default' ? dest : assertCidr(dest, 'route destination')];
}

// ---- observing ----

export interface AddrInfo {
  version: IpVersion;
  address: string;
  prefix: number;
  /** `address/prefix`, as ip prints and accepts it. */
  cidr: string;
  scope: string;
}

export interface LinkInfo {
  name: string;
  ifindex: number;
  mac: string | undefined;
  mtu: number;
  up: boolean;
  /** The peer's name for veth and friends (`link` in `ip -j`). */
  peer: string | undefined;
  addrs: AddrInfo[];
}

interface RawAddr {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
}
interface RawLink {
  ifindex?: number;
  ifname?: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  link?: string;
  addr_info?: RawAddr[];
}

function toLink(raw: RawLink): LinkInfo {
  if (typeof raw.ifname !== 'string' || typeof raw.ifindex !== 'number')
    throw new Error('ip -j: link without ifname/ifindex');
  const addrs: AddrInfo[] = [];
  for (const a of raw.addr_info ?? []) {
    if ((a.family !== 'inet' && a.family !== 'inet6') || typeof a.local !== 'string') continue;
    const prefix = a.prefixlen ?? (a.family === 'inet' ? 32 : 128);
    addrs.push({
      version: a.family === 'inet' ? 4 : 6,
      address: a.local,
      prefix,
      cidr: `${a.local}/${prefix}`,
      scope: a.scope ?? 'global',
    });
  }
  return {
    name: raw.ifname,
    ifindex: raw.ifindex,
    mac: raw.address,
    mtu: raw.mtu ?? 0,
    up: raw.flags?.includes('UP') ?? false,
    peer: raw.link,
    addrs,
  };
}

/** `ip -j addr show` output as links (empty output: none). */
export function parseLinks(stdout: string): LinkInfo[] {
  if (stdout.trim() === '') return [];
  const parsed = JSON.parse(stdout) as unknown;
  if (!Array.isArray(parsed)) throw new Error('ip -j addr: expected a JSON array');
  return (parsed as RawLink[]).map(toLink);
}

/** Every link of a namespace (or the caller's) with its addresses: `ip -j addr show`. */
export async function listLinks(runner: CommandRunner, netns?: string): Promise<LinkInfo[]> {
  const { stdout } = await runner.run({ argv: ['ip', ...nsFlag(netns), '-j', 'addr', 'show'] });
  return parseLinks(stdout);
}

/**
 * The addresses of one device (`ip -j addr show dev DEV`), link-local ones included;
 * null when the device does not exist. A missing namespace is a CommandError.
 */
export async function listAddrs(
  runner: CommandRunner,
  netns: string | undefined,
  dev: string,
): Promise<AddrInfo[] | null> {
  const spec: CommandSpec = {
    argv: ['ip', ...nsFlag(netns), '-j', 'addr', 'show', 'dev', assertDeviceName(dev)],
  };
  try {
    const { stdout } = await runner.run(spec);
    return parseLinks(stdout)[0]?.addrs ?? null;
  } catch (e) {
    if (e instanceof CommandError && /does not exist/.test(e.stderr)) return null;
    throw e;
  }
}
