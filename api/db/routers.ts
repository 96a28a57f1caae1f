/**
 * Router rows (Neutron l3 + ext-gw-mode + extraroute): list, read, create, update, delete,
 * and the helpers other modules read routers with (getRouter, routersById — the L3
 * agent-scheduler API's one view of a router — routerPorts, routerView).
 *
 * Invariants: every write is one transaction that first bumps the router's revision (which
 * also locks its row against a concurrent change on PostgreSQL), so a refused request
 * changes nothing and two writers of one router run one after the other; the gateway port
 * and the router_ports rows change in that same transaction (router-gateway.ts); a router
 * with interfaces is never deleted; a create is held to the owner's `router` quota.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import type { FixedIp } from '../../contracts/network.ts';
import type { Route, Router, RouterCreate, RouterUpdate } from '../../contracts/router.ts';
import { forgetResourceStatuses } from './agent-status.ts';
import { queryIn } from './chunks.ts';
import type { Db, Queryable, Row } from './index.ts';
import {
  bool,
  type ColumnFilter,
  guardQuota,
  type QuotaGuard,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
} from './neutron.ts';
import { removePort } from './ports.ts';
import { setGateway } from './router-gateway.ts';
import { replaceRoutes, routesOf } from './router-routes.ts';

export interface RouterRow extends Row {
  id: string;
  project_id: string;
  name: string;
  description: string;
  admin_state_up: unknown;
  status: string;
  gw_port_id: string | null;
  enable_snat: unknown;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

/** The gateway port as a router shows it: its network and fixed IPs. */
export interface GatewayPort {
  network_id: string;
  fixed_ips: FixedIp[];
}

export const ROUTER_FILTERS = {
  ...STANDARD_FILTERS,
  status: { column: 'status', type: 'text' },
  admin_state_up: { column: 'admin_state_up', type: 'bool' },
} as const;

export function routerNotFound(id: string): ApiError {
  return new ApiError('RouterNotFound', `Router ${id} could not be found`);
}

/** A router as the API shows it, from its row, its gateway port (or null) and routes. Pure. */
export function routerView(
  row: RouterRow,
  gw: GatewayPort | null,
  routes: readonly { destination: string; nexthop: string }[],
): Router {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    admin_state_up: bool(row.admin_state_up),
    status: 'ACTIVE',
    external_gateway_info: gw && {
      network_id: gw.network_id,
      enable_snat: bool(row.enable_snat),
      external_fixed_ips: gw.fixed_ips.map((f) => ({
        subnet_id: f.subnet_id,
        ip_address: f.ip_address,
      })),
    },
    routes: routes.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
    ...standardAttributes(row),
  };
}

/** gateway port id → its network and fixed IPs. */
async function gatewayPorts(q: Queryable, portIds: string[]): Promise<Map<string, GatewayPort>> {
  const out = new Map<string, GatewayPort>();
  const rows = await queryIn<{ id: string; network_id: string; subnet_id: unknown; ip: unknown }>(
    q,
    portIds,
    (ids) => `SELECT p.id, p.network_id, a.subnet_id, a.ip_address AS ip FROM ports p
         LEFT JOIN ipallocations a ON a.port_id = p.id
         LEFT JOIN subnets s ON s.id = a.subnet_id
        WHERE p.id IN ${ids} ORDER BY s.created_at, s.id, a.ip_address`,
  );
  for (const r of rows) {
    const gw = out.get(r.id) ?? { network_id: r.network_id, fixed_ips: [] };
    out.set(r.id, gw);
    if (typeof r.subnet_id === 'string' && typeof r.ip === 'string')
      gw.fixed_ips.push({ subnet_id: r.subnet_id, ip_address: r.ip });
  }
  return out;
}

async function views(q: Queryable, rows: RouterRow[]): Promise<Router[]> {
  const gws = await gatewayPorts(
    q,
    rows.flatMap((r) => (r.gw_port_id ? [r.gw_port_id] : [])),
  );
  const routes = await routesOf(
    q,
    rows.map((r) => r.id),
  );
  return rows.map((r) =>
    routerView(r, (r.gw_port_id && gws.get(r.gw_port_id)) || null, routes.get(r.id) ?? []),
  );
}

export async function listRouters(q: Queryable, filter: ColumnFilter): Promise<Router[]> {
  const where = whereSql(filter);
  const rows = await q.query<RouterRow>(
    `SELECT * FROM routers${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  return views(q, rows);
}

/** The routers of `ids` that exist, as the API shows them, oldest first. */
export async function routersById(q: Queryable, ids: readonly string[]): Promise<Router[]> {
  const rows = await queryIn<RouterRow>(
    q,
    ids,
    (list) => `SELECT * FROM routers WHERE id IN ${list}`,
  );
  rows.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  return views(q, rows);
}

/** The router `id` as the API shows it, or undefined. */
export async function getRouter(q: Queryable, id: string): Promise<Router | undefined> {
  const rows = await q.query<RouterRow>('SELECT * FROM routers WHERE id = ?', [id]);
  return (await views(q, rows))[0];
}

/** Every port router `routerId` owns (interfaces and gateway), with its port_type (owner). */
export async function routerPorts(
  q: Queryable,
  routerId: string,
): Promise<{ port_id: string; port_type: string }[]> {
  return q.query<{ port_id: string; port_type: string }>(
    'SELECT port_id, port_type FROM router_ports WHERE router_id = ? ORDER BY port_id',
    [routerId],
  );
}

/** Bumps the router's revision inside `tx` (locking its row); RouterNotFound if absent. */
export async function touchRouter(tx: Queryable, id: string, now: Date): Promise<RouterRow> {
  const [row] = await tx.query<RouterRow>(
    `UPDATE routers SET revision_number = revision_number + 1, updated_at = ?
      WHERE id = ? RETURNING *`,
    [resourceTime(now), id],
  );
  if (!row) throw routerNotFound(id);
  return row;
}

async function mustGet(db: Queryable, id: string): Promise<Router> {
  const router = await getRouter(db, id);
  if (!router) throw routerNotFound(id);
  return router;
}

export async function createRouter(
  db: Db,
  req: RouterCreate & { project_id: string },
  now: Date,
  quota?: QuotaGuard,
): Promise<Router> {
  const id = randomUUID();
  const at = resourceTime(now);
  await db.transaction(async (tx) => {
    await guardQuota(tx, quota, req.project_id, 'router');
    const [row] = await tx.query<RouterRow>(
      `INSERT INTO routers (id, project_id, name, description, admin_state_up, status,
         gw_port_id, enable_snat, revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 'ACTIVE', NULL, ?, 1, ?, ?) RETURNING *`,
      [
        id,
        req.project_id,
        req.name ?? '',
        req.description ?? '',
        req.admin_state_up ?? true,
        true,
        at,
        at,
      ],
    );
    if (row && req.external_gateway_info) await setGateway(tx, row, req.external_gateway_info, now);
  });
  return mustGet(db, id);
}

/** Applies `changes`: gateway first (as Neutron), then routes, then the plain columns. */
export async function updateRouter(
  db: Db,
  id: string,
  changes: RouterUpdate,
  now: Date,
): Promise<Router> {
  await db.transaction(async (tx) => {
    const row = await touchRouter(tx, id, now);
    if (changes.external_gateway_info !== undefined)
      await setGateway(tx, row, changes.external_gateway_info, now);
    if (changes.routes !== undefined) await replaceRoutes(tx, id, changes.routes ?? []);
    const sets: string[] = [];
    const params: (string | boolean)[] = [];
    for (const key of ['name', 'description', 'admin_state_up'] as const) {
      const v = changes[key];
      if (v === undefined) continue;
      sets.push(`${key} = ?`);
      params.push(v);
    }
    if (sets.length)
      await tx.query(`UPDATE routers SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
  });
  return mustGet(db, id);
}

/**
 * extraroute-atomic: the router's routes become `edit(current)`, read and written in one
 * transaction after the row is locked, so concurrent edits never lose one another.
 */
export async function editRoutes(
  db: Db,
  id: string,
  edit: (current: Route[]) => Route[],
  now: Date,
): Promise<Router> {
  await db.transaction(async (tx) => {
    await touchRouter(tx, id, now);
    const current = (await routesOf(tx, [id])).get(id) ?? [];
    await replaceRoutes(tx, id, edit(current));
  });
  return mustGet(db, id);
}

/**
 * Deletes a router and its gateway port. One with interfaces is RouterInUse (409); a
 * gateway a floating IP uses is RouterExternalGatewayInUseByFloatingIp (409).
 */
export async function deleteRouter(db: Db, id: string, now: Date): Promise<void> {
  await db.transaction(async (tx) => {
    const row = await touchRouter(tx, id, now);
    const ports = await routerPorts(tx, id);
    if (ports.some((p) => p.port_id !== row.gw_port_id))
      throw new ApiError('RouterInUse', `Router ${id} still has ports`);
    await setGateway(tx, row, null, now);
    for (const p of ports) await removePort(tx, p.port_id);
    await tx.query('DELETE FROM router_routes WHERE router_id = ?', [id]);
    await tx.query('DELETE FROM routers WHERE id = ?', [id]);
    await forgetResourceStatuses(tx, 'router', id);
  });
}
