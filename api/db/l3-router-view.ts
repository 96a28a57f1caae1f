/**
 * Routers in Neutron's router shape for the L3 agent-scheduler API (GET …/l3-routers):
 * id, name, description, admin_state_up, status, external_gateway_info, routes and the
 * standard attributes.
 *
 * Invariant: read-only; a router is shown as stored, its gateway's fixed IPs from the
 * gateway port's allocations and its routes from router_routes, each in a stable order.
 */
import { queryIn } from './chunks.ts';
import type { Queryable } from './index.ts';
import { bool, standardAttributes } from './neutron.ts';

interface RouterRow {
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
  gw_network_id: string | null;
}

export interface RouterView {
  id: string;
  name: string;
  description: string;
  admin_state_up: boolean;
  status: string;
  external_gateway_info: {
    network_id: string;
    enable_snat: boolean;
    external_fixed_ips: { subnet_id: string; ip_address: string }[];
  } | null;
  routes: { destination: string; nexthop: string }[];
  [key: string]: unknown;
}

/** The routers of `ids` that exist, oldest first. */
export async function routerViews(db: Queryable, ids: readonly string[]): Promise<RouterView[]> {
  const rows = await queryIn<RouterRow & Record<string, unknown>>(
    db,
    ids,
    (list) => `SELECT r.*, p.network_id AS gw_network_id FROM routers r
      LEFT JOIN ports p ON p.id = r.gw_port_id WHERE r.id IN ${list}`,
  );
  rows.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  const gwIds = rows.flatMap((r) => (r.gw_port_id ? [r.gw_port_id] : []));
  const ips = await queryIn<{ port_id: string; subnet_id: string; ip_address: string }>(
    db,
    gwIds,
    (list) => `SELECT a.port_id, a.subnet_id, a.ip_address FROM ipallocations a
      JOIN subnets s ON s.id = a.subnet_id WHERE a.port_id IN ${list}
      ORDER BY s.created_at, s.id, a.ip_address`,
  );
  const routes = await queryIn<{ router_id: string; destination: string; nexthop: string }>(
    db,
    ids,
    (list) => `SELECT router_id, destination, nexthop FROM router_routes
      WHERE router_id IN ${list} ORDER BY destination, nexthop`,
  );
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    description: r.description,
    admin_state_up: bool(r.admin_state_up),
    status: r.status,
    external_gateway_info:
      r.gw_port_id && r.gw_network_id
        ? {
            network_id: r.gw_network_id,
            enable_snat: bool(r.enable_snat),
            external_fixed_ips: ips
              .filter((ip) => ip.port_id === r.gw_port_id)
              .map((ip) => ({ subnet_id: ip.subnet_id, ip_address: ip.ip_address })),
          }
        : null,
    routes: routes
      .filter((x) => x.router_id === r.id)
      .map((x) => ({ destination: x.destination, nexthop: x.nexthop })),
    ...standardAttributes(r),
  }));
}

/** Whether a router exists. */
export async function routerExists(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('SELECT 1 AS one FROM routers WHERE id = ?', [id])).length > 0;
}
