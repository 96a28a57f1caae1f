/**
 * Routers, their ports and floating IPs written straight into kumo-api's database, for
 * tests of L3 scheduling that run before (or without) the router and floating IP routes:
 * real ports with real addresses through api/db/ports.ts, and the routers,
 * router_ports, router_routes and floatingips rows as migration 13 defines them; and
 * agents registered the way their report_state registers them (api/liveness.ts).
 *
 * Invariant: what it writes is what the router routes would write — a gateway port is a
 * network:router_gateway port on a router:external network named by routers.gw_port_id
 * and listed in router_ports; an interface is a network:router_interface port holding
 * its subnet's gateway address, listed in router_ports.
 */
import { randomUUID } from 'node:crypto';
import type { Db, Queryable } from '../../api/db/index.ts';
import { createPort } from '../../api/db/ports.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { type AgentKind, type AgentState, agentTypeByKind } from '../../contracts/agents.ts';
import {
  FLOATINGIP_OWNER,
  type Port,
  ROUTER_GATEWAY_OWNER,
  ROUTER_INTERFACE_OWNER,
} from '../../contracts/network.ts';
import { silentLogger } from '../../core/log.ts';

/** The report_state of a freshly started agent of `kind` on `host`. */
export function agentState(host: string, kind: AgentKind, configurations = {}): AgentState {
  const { agentType, binary, topic } = agentTypeByKind(kind);
  return { agent_type: agentType, binary, topic, host, start_flag: true, configurations };
}

/** Registers each of `states` as kumo-api does on its report_state, at `now`. */
export async function reportAgents(
  deps: Pick<Parameters<typeof createReportConsumer>[0], 'db' | 'broker'>,
  now: Date,
  states: readonly AgentState[],
) {
  const reports = createReportConsumer({
    ...deps,
    log: silentLogger(),
    clock: { now: () => now },
    agentDownTime: 30,
  });
  for (const agent_state of states) await reports.handle({ agent_state, time: now.toISOString() });
  await reports.close();
}

const AT = '2026-11-22T10:00:00Z';
const NOW = new Date('2026-11-22T10:00:00Z');

export async function seedRouter(
  db: Db,
  opts: { name?: string; adminStateUp?: boolean; project?: string } = {},
): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO routers (id, project_id, name, description, admin_state_up, status, gw_port_id,
       enable_snat, revision_number, created_at, updated_at)
     VALUES (?, ?, ?, '', ?, 'ACTIVE', NULL, ?, 1, ?, ?)`,
    [id, opts.project ?? 'p1', opts.name ?? '', opts.adminStateUp ?? true, true, AT, AT],
  );
  return id;
}

export async function seedGateway(db: Db, routerId: string, externalNetworkId: string) {
  const port = await createPort(
    db,
    { network_id: externalNetworkId, device_owner: ROUTER_GATEWAY_OWNER, device_id: routerId },
    NOW,
  );
  await db.query('INSERT INTO router_ports (router_id, port_id, port_type) VALUES (?, ?, ?)', [
    routerId,
    port.id,
    ROUTER_GATEWAY_OWNER,
  ]);
  await db.query('UPDATE routers SET gw_port_id = ? WHERE id = ?', [port.id, routerId]);
  return port;
}

export async function seedInterface(
  db: Db,
  routerId: string,
  subnet: { id: string; network_id: string; gateway_ip: string | null },
): Promise<Port> {
  const fixed = subnet.gateway_ip
    ? { subnet_id: subnet.id, ip_address: subnet.gateway_ip }
    : { subnet_id: subnet.id };
  const port = await createPort(
    db,
    {
      network_id: subnet.network_id,
      device_owner: ROUTER_INTERFACE_OWNER,
      device_id: routerId,
      fixed_ips: [fixed],
    },
    NOW,
  );
  await db.query('INSERT INTO router_ports (router_id, port_id, port_type) VALUES (?, ?, ?)', [
    routerId,
    port.id,
    ROUTER_INTERFACE_OWNER,
  ]);
  return port;
}

export async function seedRoute(
  db: Queryable,
  routerId: string,
  destination: string,
  nexthop: string,
) {
  await db.query('INSERT INTO router_routes (router_id, destination, nexthop) VALUES (?, ?, ?)', [
    routerId,
    destination,
    nexthop,
  ]);
}

/** A floating IP on `externalNetworkId`, associated to `fixed` through `routerId` if given. */
export async function seedFloatingIp(
  db: Db,
  externalNetworkId: string,
  routerId: string | null,
  fixed?: Port,
): Promise<{ id: string; floating_ip_address: string }> {
  const id = randomUUID();
  const port = await createPort(
    db,
    { network_id: externalNetworkId, device_owner: FLOATINGIP_OWNER, device_id: id },
    NOW,
  );
  const address = port.fixed_ips[0]?.ip_address ?? '';
  await db.query(
    `INSERT INTO floatingips (id, project_id, description, floating_network_id, floating_port_id,
       floating_ip_address, fixed_port_id, fixed_ip_address, router_id, status, revision_number,
       created_at, updated_at)
     VALUES (?, 'p1', '', ?, ?, ?, ?, ?, ?, 'DOWN', 1, ?, ?)`,
    [
      id,
      externalNetworkId,
      port.id,
      address,
      fixed?.id ?? null,
      fixed?.fixed_ips[0]?.ip_address ?? null,
      routerId,
      AT,
      AT,
    ],
  );
  return { id, floating_ip_address: address };
}

/** Every router binding, router id → agent id, for before/after comparisons. */
export async function bindingSnapshot(db: Db) {
  const rows = await db.query<{ router_id: string; agent_id: string }>(
    'SELECT router_id, agent_id FROM router_l3_agent_bindings ORDER BY router_id',
  );
  const ports = await db.query<{ id: string; host_id: string; revision_number: unknown }>(
    'SELECT id, host_id, revision_number FROM ports ORDER BY id',
  );
  return { bindings: rows.map((r) => ({ ...r })), ports: ports.map((p) => ({ ...p })) };
}
