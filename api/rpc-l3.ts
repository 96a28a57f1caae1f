/**
 * The L3 agent's q-plugin calls (contracts/l3.ts): which routers a host's L3 agent serves,
 * one router as that host's qrouter namespace must serve it, and the floating IP statuses
 * the agent reports back.
 *
 * Invariants: a host is told only about routers bound to its L3 agent; for any other
 * router, a deleted one or an admin-down one get_router_info answers `{router: null}`, so
 * the agent tears it down (fencing after a move); a router is read from one snapshot (one
 * read-only REPEATABLE READ transaction on PostgreSQL, SQLite's one connection), so its
 * ports, addresses, routes and floating IPs are of one moment; floating IP statuses are
 * written only for the router's own floating IPs and only from its hosting host, the
 * floating IPs read and written by api/db/floatingips.ts as the API's own routes do.
 */
import type { L3FixedIp, L3Port, L3Route, L3Router } from '../contracts/l3.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import { ROUTER_INTERFACE_OWNER } from '../contracts/network.ts';
import { queryIn } from './db/chunks.ts';
import { floatingIpsOfRouter, setFloatingIpStatuses } from './db/floatingips.ts';
import type { Db, Queryable } from './db/index.ts';
import { l3SchedulerTransaction, routersOfHost, servesRouter } from './db/l3-bindings.ts';
import { bool } from './db/neutron.ts';

/**
 * PostgreSQL's default (READ COMMITTED) gives each statement its own snapshot; a read-only
 * REPEATABLE READ transaction reads every statement from the first one's, and never fails.
 */
export const ONE_SNAPSHOT = 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY';

export async function getActiveRouters(
  db: Db,
  args: ArgsOf<'get_active_routers'>,
): Promise<{ routers: string[] }> {
  return { routers: await routersOfHost(db, args.host) };
}

/** The router's ports with their network's MTU and each address's subnet CIDR and gateway. */
async function l3Ports(tx: Queryable, ids: readonly string[]): Promise<Map<string, L3Port>> {
  const rows = await queryIn<{ id: string; network_id: string; mac_address: string; mtu: unknown }>(
    tx,
    ids,
    (list) => `SELECT p.id, p.network_id, p.mac_address, n.mtu FROM ports p
      JOIN networks n ON n.id = p.network_id WHERE p.id IN ${list}`,
  );
  const ips = await queryIn<L3FixedIp & { port_id: string }>(
    tx,
    ids,
    (list) => `SELECT a.port_id, a.subnet_id, a.ip_address, s.cidr, s.gateway_ip
      FROM ipallocations a JOIN subnets s ON s.id = a.subnet_id
      WHERE a.port_id IN ${list} ORDER BY s.created_at, s.id, a.ip_address`,
  );
  const out = new Map<string, L3Port>();
  for (const r of rows) {
    const fixed_ips = ips
      .filter((ip) => ip.port_id === r.id)
      .map(({ subnet_id, ip_address, cidr, gateway_ip }) => ({
        subnet_id,
        ip_address,
        cidr,
        gateway_ip,
      }));
    const port = { id: r.id, network_id: r.network_id, mac_address: r.mac_address };
    out.set(r.id, { ...port, mtu: Number(r.mtu), fixed_ips });
  }
  return out;
}

async function routerParts(tx: Queryable, routerId: string) {
  const interfaces = await tx.query<{ port_id: string }>(
    'SELECT port_id FROM router_ports WHERE router_id = ? AND port_type = ? ORDER BY port_id',
    [routerId, ROUTER_INTERFACE_OWNER],
  );
  const routes = await tx.query<L3Route>(
    `SELECT destination, nexthop FROM router_routes WHERE router_id = ?
      ORDER BY destination, nexthop`,
    [routerId],
  );
  const floating_ips = await floatingIpsOfRouter(tx, routerId);
  const routeList = routes.map((r) => ({ destination: r.destination, nexthop: r.nexthop }));
  return { interfaceIds: interfaces.map((i) => i.port_id), routes: routeList, floating_ips };
}

/** One router as `host`'s L3 agent must serve it, or null (see the module invariants). */
export async function getRouterInfo(
  db: Db,
  args: ArgsOf<'get_router_info'>,
): Promise<{ router: L3Router | null }> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(ONE_SNAPSHOT);
    if (!(await servesRouter(tx, args.router_id, args.host))) return { router: null };
    const [r] = await tx.query<{
      admin_state_up: unknown;
      gw_port_id: string | null;
      enable_snat: unknown;
      revision_number: unknown;
    }>(
      'SELECT admin_state_up, gw_port_id, enable_snat, revision_number FROM routers WHERE id = ?',
      [args.router_id],
    );
    if (!r || !bool(r.admin_state_up)) return { router: null };
    const parts = await routerParts(tx, args.router_id);
    const gw = r.gw_port_id === null ? [] : [r.gw_port_id];
    const ports = await l3Ports(tx, [...gw, ...parts.interfaceIds]);
    const router: L3Router = {
      id: args.router_id,
      revision_number: Number(r.revision_number),
      gw_port: r.gw_port_id === null ? null : (ports.get(r.gw_port_id) ?? null),
      enable_snat: bool(r.enable_snat),
      interfaces: parts.interfaceIds.flatMap((id) => ports.get(id) ?? []),
      routes: parts.routes,
      floating_ips: parts.floating_ips,
    };
    return { router };
  });
}

/**
 * Sets the statuses of the router's floating IPs, only while `host` hosts the router:
 * under the L3 scheduler lock, so a move cannot commit between the check and the write.
 */
export async function updateFloatingIpStatuses(
  db: Db,
  args: ArgsOf<'update_floatingip_statuses'>,
  now: Date = new Date(),
): Promise<{ updated: number }> {
  return l3SchedulerTransaction(db, async (tx) => {
    if (!(await servesRouter(tx, args.router_id, args.host))) return { updated: 0 };
    return { updated: await setFloatingIpStatuses(tx, args.router_id, args.statuses, now) };
  });
}
