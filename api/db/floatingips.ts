/**
 * Floating IP rows: list and read, the filters of GET /v2.0/floatingips, and what the
 * rest of kumo-api asks of them — the port code (a deleted port's floating IPs are
 * disassociated in its transaction; a floating IP's own port is never deleted through
 * the ports API; a port keeps the fixed addresses its floating IPs use) and the L3 RPC
 * (a router's associated floating IPs, the agent's statuses).
 *
 * Invariants: an associated floating IP names its fixed port, fixed address and router
 * together, a disassociated one none of them (every write here sets or clears the three at
 * once, and status DOWN with them); the agent's statuses reach only floating IPs of the
 * router it reported for. Every change bumps revision_number. This module imports no
 * other db module that writes ports, so ports.ts may import it (floatingip-writes.ts holds
 * the creates and updates, which need ports.ts).
 */
import { ApiError } from '../../contracts/errors.ts';
import type { FloatingIp } from '../../contracts/floatingip.ts';
import type { FloatingIpStatus } from '../../contracts/l3.ts';
import { FLOATINGIP_OWNER } from '../../contracts/network.ts';
import type { Queryable, Row } from './index.ts';
import { type ColumnFilter, resourceTime, standardAttributes, whereSql } from './neutron.ts';

export interface FloatingIpRow extends Row {
  id: string;
  project_id: string;
  description: string;
  floating_network_id: string;
  floating_port_id: string;
  floating_ip_address: string;
  fixed_port_id: string | null;
  fixed_ip_address: string | null;
  router_id: string | null;
  status: string;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

export function toFloatingIp(row: FloatingIpRow): FloatingIp {
  return {
    id: row.id,
    floating_ip_address: row.floating_ip_address,
    floating_network_id: row.floating_network_id,
    router_id: row.router_id,
    port_id: row.fixed_port_id,
    fixed_ip_address: row.fixed_ip_address,
    status: row.status as FloatingIpStatus,
    description: row.description,
    ...standardAttributes(row),
  };
}

/**
 * Filterable attribute → column (Neutron maps port_id to fixed_port_id); the address
 * columns hold canonical text, so the route canonicalises those filter values first.
 */
export const FLOATINGIP_FILTERS = {
  id: { column: 'id', type: 'text' },
  description: { column: 'description', type: 'text' },
  project_id: { column: 'project_id', type: 'text' },
  tenant_id: { column: 'project_id', type: 'text' },
  floating_network_id: { column: 'floating_network_id', type: 'text' },
  router_id: { column: 'router_id', type: 'text' },
  port_id: { column: 'fixed_port_id', type: 'text' },
  status: { column: 'status', type: 'text' },
  floating_ip_address: { column: 'floating_ip_address', type: 'text' },
  fixed_ip_address: { column: 'fixed_ip_address', type: 'text' },
} as const;

export function floatingIpNotFound(id: string): ApiError {
  return new ApiError('FloatingIPNotFound', `Floating IP ${id} could not be found`);
}

export async function listFloatingIps(q: Queryable, filter: ColumnFilter): Promise<FloatingIp[]> {
  const where = whereSql(filter);
  const rows = await q.query<FloatingIpRow>(
    `SELECT * FROM floatingips${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  return rows.map(toFloatingIp);
}

export async function floatingIpRow(q: Queryable, id: string): Promise<FloatingIpRow | undefined> {
  const [row] = await q.query<FloatingIpRow>('SELECT * FROM floatingips WHERE id = ?', [id]);
  return row;
}

export async function getFloatingIp(q: Queryable, id: string): Promise<FloatingIp | undefined> {
  const row = await floatingIpRow(q, id);
  return row && toFloatingIp(row);
}

const distinctRouters = (rows: { router_id: string | null }[]) => [
  ...new Set(rows.flatMap((r) => (r.router_id ? [r.router_id] : []))),
];

/**
 * The port `portId` is being deleted: every floating IP associated with it is
 * disassociated (status DOWN), as Neutron does. Run in the delete's transaction; returns
 * the routers that served them, to be told after commit.
 */
export async function disassociatePort(
  tx: Queryable,
  portId: string,
  now: Date = new Date(),
): Promise<string[]> {
  const rows = await tx.query<{ id: string; router_id: string | null }>(
    'SELECT id, router_id FROM floatingips WHERE fixed_port_id = ?',
    [portId],
  );
  if (rows.length === 0) return [];
  await tx.query(
    `UPDATE floatingips SET fixed_port_id = NULL, fixed_ip_address = NULL, router_id = NULL,
        status = 'DOWN', revision_number = revision_number + 1, updated_at = ?
      WHERE fixed_port_id = ?`,
    [resourceTime(now), portId],
  );
  return distinctRouters(rows);
}

/** Neutron's L3PortInUse: a floating IP's own port goes only with its floating IP. */
export async function refuseFloatingPortDelete(tx: Queryable, portId: string): Promise<void> {
  const [held] = await tx.query('SELECT id FROM floatingips WHERE floating_port_id = ?', [portId]);
  if (held)
    throw new ApiError(
      'L3PortInUse',
      `Port ${portId} has owner ${FLOATINGIP_OWNER} and therefore cannot be deleted directly via the port API.`,
    );
}

/**
 * Neutron's prevent_internal_ip_change_for_fip: a port's new fixed IPs must keep every
 * address a floating IP is associated with. Run after the reallocation, in its transaction.
 */
export async function refuseFixedIpChangeForFip(tx: Queryable, portId: string): Promise<void> {
  const [lost] = await tx.query(
    `SELECT f.id FROM floatingips f
      WHERE f.fixed_port_id = ? AND NOT EXISTS (
        SELECT 1 FROM ipallocations a WHERE a.port_id = f.fixed_port_id
           AND a.ip_address = f.fixed_ip_address)`,
    [portId],
  );
  if (lost)
    throw new ApiError(
      'BadRequest',
      `Bad port request: Cannot update the fixed_ips of the port ${portId}, because its original fixed_ip has been associated to a floating ip.`,
    );
}

/**
 * The L3 agent's report for router `routerId`: sets each listed floating IP's status,
 * only where that floating IP is (still) served by this router, bumping the revision
 * where it changed. Returns how many rows changed.
 */
export async function setFloatingIpStatuses(
  tx: Queryable,
  routerId: string,
  statuses: readonly { id: string; status: FloatingIpStatus }[],
  now: Date = new Date(),
): Promise<number> {
  let updated = 0;
  for (const { id, status } of statuses) {
    const rows = await tx.query(
      `UPDATE floatingips SET status = ?, revision_number = revision_number + 1, updated_at = ?
        WHERE id = ? AND router_id = ? AND status <> ? RETURNING id`,
      [status, resourceTime(now), id, routerId, status],
    );
    updated += rows.length;
  }
  return updated;
}

/** What the L3 agent needs of a router's associated floating IPs. */
export interface RouterFloatingIp {
  id: string;
  floating_ip_address: string;
  fixed_ip_address: string;
  port_id: string;
  status: FloatingIpStatus;
}

/** The floating IPs associated through router `routerId`, oldest first. */
export async function floatingIpsOfRouter(
  q: Queryable,
  routerId: string,
): Promise<RouterFloatingIp[]> {
  const rows = await q.query<FloatingIpRow>(
    `SELECT * FROM floatingips
      WHERE router_id = ? AND fixed_port_id IS NOT NULL AND fixed_ip_address IS NOT NULL
      ORDER BY created_at, id`,
    [routerId],
  );
  return rows.map((r) => ({
    id: r.id,
    floating_ip_address: r.floating_ip_address,
    fixed_ip_address: r.fixed_ip_address as string,
    port_id: r.fixed_port_id as string,
    status: r.status as FloatingIpStatus,
  }));
}
