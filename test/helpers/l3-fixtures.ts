/**
 * Routers written straight into the database, shaped as the router API writes them
 * (migration 13): a `routers` row; a gateway port (device_owner network:router_gateway,
 * device_id the router, on the external network, no project) that routers.gw_port_id
 * names; interface ports (network:router_interface, device_id the router, holding an
 * address of the subnet, by default its gateway_ip), each listed in router_ports. For
 * suites that need a router without going through the router routes (floating IPs).
 *
 * Invariant: ports go through api/db/ports.ts's createPort, so their addresses are real
 * IPAM allocations and the floating IP code sees exactly what the router API leaves.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../../api/db/index.ts';
import { resourceTime } from '../../api/db/neutron.ts';
import { createPort } from '../../api/db/ports.ts';
import {
  type Port,
  ROUTER_GATEWAY_OWNER,
  ROUTER_INTERFACE_OWNER,
  type Subnet,
} from '../../contracts/network.ts';

const AT = resourceTime(new Date('2026-11-22T10:00:00Z'));

/** A router row of `projectId` without ports; its id. */
export async function insertRouter(db: Db, projectId: string, name = 'r'): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO routers (id, project_id, name, description, admin_state_up, status, gw_port_id,
       enable_snat, revision_number, created_at, updated_at)
     VALUES (?, ?, ?, '', ?, 'ACTIVE', NULL, ?, 1, ?, ?)`,
    [id, projectId, name, true, true, AT, AT],
  );
  return id;
}

/** Gives router `routerId` its gateway on external network `networkId`. */
export async function addGateway(db: Db, routerId: string, networkId: string): Promise<Port> {
  const port = await createPort(
    db,
    {
      network_id: networkId,
      project_id: '',
      device_owner: ROUTER_GATEWAY_OWNER,
      device_id: routerId,
    },
    new Date(),
  );
  await db.query('UPDATE routers SET gw_port_id = ? WHERE id = ?', [port.id, routerId]);
  await db.query('INSERT INTO router_ports (router_id, port_id, port_type) VALUES (?, ?, ?)', [
    routerId,
    port.id,
    ROUTER_GATEWAY_OWNER,
  ]);
  return port;
}

/** An interface of router `routerId` on `subnet` at `ip` (default: the subnet's gateway). */
export async function addInterface(
  db: Db,
  routerId: string,
  subnet: Subnet,
  ip: string | null = subnet.gateway_ip,
): Promise<Port> {
  const [router] = await db.query<{ project_id: string }>(
    'SELECT project_id FROM routers WHERE id = ?',
    [routerId],
  );
  const port = await createPort(
    db,
    {
      network_id: subnet.network_id,
      project_id: router?.project_id ?? '',
      device_owner: ROUTER_INTERFACE_OWNER,
      device_id: routerId,
      fixed_ips: [{ subnet_id: subnet.id, ...(ip ? { ip_address: ip } : {}) }],
    },
    new Date(),
  );
  await db.query('INSERT INTO router_ports (router_id, port_id, port_type) VALUES (?, ?, ?)', [
    routerId,
    port.id,
    ROUTER_INTERFACE_OWNER,
  ]);
  return port;
}
