/**
 * Routes an agent owns inside a namespace, in `ip`'s vocabulary: they carry `proto static`
 * (what `ip route` gives routes nobody marked is `boot`, the kernel's connected routes are
 * `kernel`), so observing them is one `ip -j route show table all proto static` for both
 * families (or a second line of the `ip -j -batch` that lists the links), and nothing the
 * kernel made is ever taken for ours.
 *
 * Invariants: a destination is a canonical CIDR (network address, prefix always written:
 * `0.0.0.0/0`, never `default`, so a batch line names its family); gateways are canonical
 * addresses; every word passes host/ip/inet's strict parsing before a line exists, so a
 * line is always valid `ip -batch` input. Observing is read-only and parses `ip -j`.
 */
import { formatIp, parseIp } from '../../contracts/inet.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { type Cidr, networkAddress, parseCidr } from './inet.ts';
import { type IpArgs, type LinkInfo, parseLinks } from './link.ts';
import { assertDeviceName, assertNetnsName } from './names.ts';

export interface StaticRoute {
  /** Canonical `network/prefix`. */
  destination: string;
  /** Canonical gateway address. */
  via: string;
  /** The device, when the route is pinned to one. */
  dev?: string;
  /** The gateway is on the device's link though on none of its subnets (needs `dev`). */
  onlink?: boolean;
}

/** `10.1.0.5/16` → `10.1.0.0/16` (canonical text); null when not a CIDR. */
export function canonicalCidr(text: string): string | null {
  const c: Cidr | null = parseCidr(text);
  return c && `${networkAddress(c)}/${c.prefix}`;
}

function canonicalIpOrNull(text: string): string | null {
  const ip = parseIp(text);
  return ip ? formatIp(ip.version, ip.value) : null;
}

function checked(r: StaticRoute): { destination: string; via: string } {
  const destination = canonicalCidr(r.destination);
  const via = canonicalIpOrNull(r.via);
  if (destination !== r.destination || via !== r.via)
    throw new Error(`invalid route ${JSON.stringify(r)}: canonical CIDR and gateway required`);
  if (parseIp(via)?.version !== parseCidr(destination)?.version)
    throw new Error(`invalid route ${JSON.stringify(r)}: gateway of another family`);
  return { destination, via };
}

/** `route replace DEST via GW [dev DEV] proto static`. */
export function staticRouteReplace(r: StaticRoute): IpArgs {
  const { destination, via } = checked(r);
  if (r.onlink && r.dev === undefined) throw new Error('an onlink route needs its device');
  const dev = r.dev === undefined ? [] : ['dev', assertDeviceName(r.dev)];
  const onlink = r.onlink ? ['onlink'] : [];
  return ['route', 'replace', destination, 'via', via, ...dev, ...onlink, 'proto', 'static'];
}

/** `route del DEST via GW proto static`. */
export function staticRouteDel(r: StaticRoute): IpArgs {
  const { destination, via } = checked(r);
  return ['route', 'del', destination, 'via', via, 'proto', 'static'];
}

interface RawRoute {
  dst?: string;
  gateway?: string;
  dev?: string;
  table?: string;
  flags?: unknown;
}

/** One `ip -j route` entry as a StaticRoute; null for what is not gateway-routed here. */
function toRoute(raw: RawRoute): StaticRoute | null {
  if (typeof raw.gateway !== 'string' || typeof raw.dst !== 'string') return null;
  if (raw.table !== undefined && raw.table !== 'main') return null;
  const via = canonicalIpOrNull(raw.gateway);
  if (via === null) return null;
  const v6 = via.includes(':');
  const dst =
    raw.dst === 'default'
      ? v6
        ? '::/0'
        : '0.0.0.0/0'
      : raw.dst.includes('/')
        ? raw.dst
        : `${raw.dst}/${v6 ? 128 : 32}`;
  const destination = canonicalCidr(dst);
  if (destination === null) return null;
  const onlink = Array.isArray(raw.flags) && raw.flags.includes('onlink') ? { onlink: true } : {};
  return { destination, via, ...(typeof raw.dev === 'string' ? { dev: raw.dev } : {}), ...onlink };
}

const SHOW_STATIC = ['route', 'show', 'table', 'all', 'proto', 'static'];

function parseRoutes(stdout: string): StaticRoute[] {
  if (stdout.trim() === '') return [];
  const parsed = JSON.parse(stdout) as unknown;
  if (!Array.isArray(parsed)) throw new Error('ip -j route show: expected a JSON array');
  return (parsed as RawRoute[]).flatMap((r) => toRoute(r) ?? []);
}

/** The `proto static` routes of the main table, both families, in a namespace. */
export async function listStaticRoutes(
  runner: CommandRunner,
  netns: string,
): Promise<StaticRoute[]> {
  const { stdout } = await runner.run({
    argv: ['ip', '-n', assertNetnsName(netns), '-j', ...SHOW_STATIC],
  });
  return parseRoutes(stdout);
}

/**
 * A namespace's links (with addresses) and its `proto static` routes from ONE process:
 * `ip -n NS -j -batch -` with `addr show` and the route listing, which prints one JSON
 * array per command, one a line.
 */
export async function listLinksAndStaticRoutes(
  runner: CommandRunner,
  netns: string,
): Promise<{ links: LinkInfo[]; routes: StaticRoute[] }> {
  const { stdout } = await runner.run({
    argv: ['ip', '-n', assertNetnsName(netns), '-j', '-batch', '-'],
    stdin: `addr show\n${SHOW_STATIC.join(' ')}\n`,
  });
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  const [addrs, routes] = lines;
  if (lines.length !== 2 || addrs === undefined || routes === undefined)
    throw new Error(`ip -j -batch in ${netns}: expected 2 JSON lines, got ${lines.length}`);
  return { links: parseLinks(addrs), routes: parseRoutes(routes) };
}

/**
 * Equal routes: same destination, gateway and onlink flag (the kernel picks the device
 * unless `a` pins one).
 */
export const sameRoute = (a: StaticRoute, b: StaticRoute) =>
  a.destination === b.destination &&
  a.via === b.via &&
  !!a.onlink === !!b.onlink &&
  (a.dev === undefined || a.dev === b.dev);
