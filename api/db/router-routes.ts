/**
 * A router's extra routes (extraroute, extraroute-atomic): validation, storage, reading.
 *
 * Invariants: a stored route is canonical — its destination a network CIDR (host bits
 * refused, as Neutron's validate_subnet), its nexthop an address in canonical text — so
 * nothing else can reach the agent's `ip route`; its nexthop lies in a subnet the router
 * has a port on and is not one of the router's own addresses; a router has at most
 * MAX_ROUTES routes, none twice. Validated inside the router's write transaction.
 */
import { ApiError } from '../../contracts/errors.ts';
import { MAX_ROUTES, type Route } from '../../contracts/router.ts';
import { canonicalIp, contains, formatCidr, parseCidr, parseIp } from '../ipam.ts';
import { queryIn } from './chunks.ts';
import type { Queryable } from './index.ts';
import { badInput } from './port-ipam.ts';
import { attachedAddresses } from './router-ports.ts';

/** Python's repr of a route list, as Neutron's messages print it. */
const repr = (routes: readonly Route[]) =>
  `[${routes.map((r) => `{'destination': '${r.destination}', 'nexthop': '${r.nexthop}'}`).join(', ')}]`;

const key = (r: Route) => `${r.destination} ${r.nexthop}`;

/** The routes in canonical form; a malformed or repeated one is a 400 naming `routes`. */
export function canonicalRoutes(routes: readonly Route[]): Route[] {
  const seen = new Set<string>();
  return routes.map((r) => {
    const dest = parseCidr(r.destination);
    if ('reason' in dest) throw badInput('routes', dest.reason);
    const nexthop = canonicalIp(r.nexthop);
    if (nexthop === undefined) throw badInput('routes', `'${r.nexthop}' is not a valid IP address`);
    const route = { destination: formatCidr(dest.cidr), nexthop };
    if (seen.has(key(route)))
      throw badInput('routes', `Duplicate hostroute '${repr([route]).slice(1, -1)}'`);
    seen.add(key(route));
    return route;
  });
}

/** _validate_routes: the count, and every nexthop on an attached subnet, not the router's. */
async function validateRoutes(tx: Queryable, routerId: string, routes: readonly Route[]) {
  if (routes.length > MAX_ROUTES)
    throw new ApiError(
      'RoutesExhausted',
      `Unable to complete operation for ${routerId}. The number of routes exceeds the maximum ${MAX_ROUTES}.`,
    );
  const attached = await attachedAddresses(tx, routerId);
  const cidrs = attached.flatMap((a) => {
    const c = parseCidr(a.cidr);
    return 'cidr' in c ? [c.cidr] : [];
  });
  const own = new Set(attached.map((a) => a.ip_address));
  const invalid = (reason: string) =>
    new ApiError('InvalidRoutes', `Invalid format for routes: ${repr(routes)}, ${reason}`);
  for (const r of routes) {
    const ip = parseIp(r.nexthop);
    if (!ip || !cidrs.some((c) => contains(c, ip)))
      throw invalid('the nexthop is not connected with router');
    if (own.has(r.nexthop)) throw invalid('the nexthop is used by router');
  }
}

/** Replaces router `routerId`'s routes with `routes` (validated first) inside `tx`. */
export async function replaceRoutes(tx: Queryable, routerId: string, routes: readonly Route[]) {
  const wanted = canonicalRoutes(routes);
  await validateRoutes(tx, routerId, wanted);
  await tx.query('DELETE FROM router_routes WHERE router_id = ?', [routerId]);
  for (const r of wanted)
    await tx.query('INSERT INTO router_routes (router_id, destination, nexthop) VALUES (?, ?, ?)', [
      routerId,
      r.destination,
      r.nexthop,
    ]);
}

/** router id → its routes, in a stable order. */
export async function routesOf(q: Queryable, routerIds: string[]): Promise<Map<string, Route[]>> {
  const out = new Map<string, Route[]>(routerIds.map((id) => [id, []]));
  const rows = await queryIn<{ router_id: string; destination: string; nexthop: string }>(
    q,
    routerIds,
    (ids) => `SELECT router_id, destination, nexthop FROM router_routes
        WHERE router_id IN ${ids} ORDER BY destination, nexthop`,
  );
  for (const r of rows)
    out.get(r.router_id)?.push({ destination: r.destination, nexthop: r.nexthop });
  return out;
}

/** extraroute-atomic: the current routes plus `added` (each once), or minus `removed`. */
export function mergeRoutes(current: readonly Route[], added: readonly Route[]): Route[] {
  const have = new Set(current.map(key));
  return [...current, ...canonicalRoutes(added).filter((r) => !have.has(key(r)))];
}

export function withoutRoutes(current: readonly Route[], removed: readonly Route[]): Route[] {
  const gone = new Set(canonicalRoutes(removed).map(key));
  return current.filter((r) => !gone.has(key(r)));
}

/** Whether a route of router `routerId` goes through subnet `cidr` (RouterInterfaceInUseByRoute). */
export async function routeThrough(q: Queryable, routerId: string, cidr: string) {
  const c = parseCidr(cidr);
  if (!('cidr' in c)) return false;
  const routes = (await routesOf(q, [routerId])).get(routerId) ?? [];
  return routes.some((r) => {
    const ip = parseIp(r.nexthop);
    return ip !== undefined && contains(c.cidr, ip);
  });
}
