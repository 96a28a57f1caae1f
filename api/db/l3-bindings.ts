/**
 * The router_l3_agent_bindings table, the L3 agents it refers to, and the router ports
 * that follow a binding (the fence).
 *
 * Invariants: bindings and the host of a router's ports change only inside
 * `l3SchedulerTransaction`, which holds the L3 scheduler lock (a PostgreSQL advisory lock;
 * SQLite's BEGIN IMMEDIATE serialises), so two API replicas never bind one router twice
 * and a router's ports are never left bound to a host it was just moved away from. A
 * router needs a host when it is admin-up and has a gateway or an interface.
 */
import { agentTypeByKind } from '../../contracts/agents.ts';
import { ROUTER_INTERFACE_OWNER } from '../../contracts/network.ts';
import { queryIn } from './chunks.ts';
import type { Db, Queryable } from './index.ts';
import { resourceTime } from './neutron.ts';
import { lockedTransaction, schedulableAgents } from './scheduler-agents.ts';

export const L3_AGENT_TYPE = agentTypeByKind('l3').agentType;
/** pg_advisory_xact_lock key for L3 scheduling ("kumo" + 3). */
const L3_SCHEDULER_LOCK = 0x6b756d6f_03;

/** A transaction holding the L3 scheduler lock (see the module invariants). */
export const l3SchedulerTransaction = <T>(db: Db, fn: (tx: Queryable) => Promise<T>) =>
  lockedTransaction(db, L3_SCHEDULER_LOCK, fn);

const OVS_AGENT_TYPE = agentTypeByKind('ovs').agentType;

/** The physical networks each host's OVS agent reports in its bridge_mappings. */
async function mappedPhysnets(tx: Queryable): Promise<Map<string, Set<string>>> {
  const rows = await tx.query<{ host: string; configurations: string }>(
    'SELECT host, configurations FROM agents WHERE agent_type = ?',
    [OVS_AGENT_TYPE],
  );
  const out = new Map<string, Set<string>>();
  for (const r of rows) {
    let mappings: unknown;
    try {
      mappings = (JSON.parse(r.configurations) as { bridge_mappings?: unknown }).bridge_mappings;
    } catch {
      mappings = undefined;
    }
    const names = mappings && typeof mappings === 'object' ? Object.keys(mappings) : [];
    out.set(r.host, new Set(names));
  }
  return out;
}

/**
 * Every L3 agent, with the number of routers bound to it and the physical networks its
 * host's OVS agent maps (null when that host has no OVS agent row: not known, not refused).
 */
export async function l3AgentInfos(tx: Queryable, now: Date, downTime: number) {
  const agents = await schedulableAgents(
    tx,
    L3_AGENT_TYPE,
    'router_l3_agent_bindings',
    now,
    downTime,
  );
  const physnets = await mappedPhysnets(tx);
  return agents.map((a) => ({ ...a, physnets: physnets.get(a.host) ?? null }));
}

/** Router → the physical network its gateway's (flat or VLAN) external network needs. */
export async function gatewayPhysnets(tx: Queryable): Promise<Map<string, string>> {
  const rows = await tx.query<{ id: string; physical_network: string }>(
    `SELECT r.id, n.physical_network FROM routers r
       JOIN ports p ON p.id = r.gw_port_id JOIN networks n ON n.id = p.network_id
      WHERE n.network_type IN ('flat', 'vlan') AND n.physical_network IS NOT NULL`,
  );
  return new Map(rows.map((r) => [r.id, r.physical_network]));
}

/** Admin-up routers with a gateway or an interface, optionally among `ids`. */
export async function routersNeedingHost(tx: Queryable, ids?: readonly string[]) {
  const sql = (only: string) =>
    `SELECT r.id FROM routers r WHERE r.admin_state_up = ? AND (r.gw_port_id IS NOT NULL
        OR EXISTS (SELECT 1 FROM router_ports p WHERE p.router_id = r.id AND p.port_type = ?))
        ${only} ORDER BY r.id`;
  const params = [true, ROUTER_INTERFACE_OWNER];
  const rows = ids
    ? await queryIn<{ id: string }>(tx, ids, (list) => sql(`AND r.id IN ${list}`), params)
    : await tx.query<{ id: string }>(sql(''), params);
  return rows.map((r) => r.id);
}

/** Every binding: router id → the id of the agent hosting it. */
export async function routerBindings(tx: Queryable): Promise<Map<string, string>> {
  const rows = await tx.query<{ router_id: string; agent_id: string }>(
    'SELECT router_id, agent_id FROM router_l3_agent_bindings',
  );
  return new Map(rows.map((r) => [r.router_id, r.agent_id]));
}

/** Binds (or rebinds) a router to an agent. */
export async function bindRouter(tx: Queryable, routerId: string, agentId: string) {
  await tx.query(
    `INSERT INTO router_l3_agent_bindings (router_id, agent_id) VALUES (?, ?)
     ON CONFLICT (router_id) DO UPDATE SET agent_id = excluded.agent_id`,
    [routerId, agentId],
  );
}

/** Binds a router that has no agent; false when it already had one. */
export async function bindUnhosted(tx: Queryable, routerId: string, agentId: string) {
  const rows = await tx.query(
    `INSERT INTO router_l3_agent_bindings (router_id, agent_id) VALUES (?, ?)
     ON CONFLICT DO NOTHING RETURNING router_id`,
    [routerId, agentId],
  );
  return rows.length > 0;
}

/** Unbinds a router from one agent; false when that agent did not host it. */
export async function unbindRouter(tx: Queryable, routerId: string, agentId: string) {
  const rows = await tx.query(
    'DELETE FROM router_l3_agent_bindings WHERE router_id = ? AND agent_id = ? RETURNING router_id',
    [routerId, agentId],
  );
  return rows.length > 0;
}

/** The agent hosting a router (id and host), if any. */
export async function hostingAgent(db: Queryable, routerId: string) {
  const [row] = await db.query<{ id: string; host: string }>(
    `SELECT a.id, a.host FROM router_l3_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE b.router_id = ?`,
    [routerId],
  );
  return row;
}

/** Hosts of the L3 agents bound to a router. */
export async function l3HostsOfRouter(db: Queryable, routerId: string): Promise<string[]> {
  const row = await hostingAgent(db, routerId);
  return row ? [row.host] : [];
}

/**
 * Binds every port of the router (its router_ports and its gateway port) to `host`: the
 * fence — the L2 agent of any other host stops wiring them. Each port that moved gets a
 * new revision and status DOWN. Returns the ids of the ports that moved.
 */
export async function bindRouterPorts(
  tx: Queryable,
  routerId: string,
  host: string,
  now: Date,
): Promise<string[]> {
  const rows = await tx.query<{ id: string }>(
    `UPDATE ports SET host_id = ?, status = 'DOWN', revision_number = revision_number + 1,
        updated_at = ?
      WHERE host_id <> ? AND id IN (
        SELECT port_id FROM router_ports WHERE router_id = ?
        UNION SELECT gw_port_id FROM routers WHERE id = ? AND gw_port_id IS NOT NULL)
      RETURNING id`,
    [host, resourceTime(now), host, routerId, routerId],
  );
  return rows.map((r) => r.id).sort();
}

/**
 * The host a router's ports are bound to other than `host`, if any: where a router that
 * lost its binding (its agent deleted) may still be served, until its L3 agent hears.
 */
export async function formerPortHost(tx: Queryable, routerId: string, host: string) {
  const [row] = await tx.query<{ host_id: string }>(
    `SELECT DISTINCT host_id FROM ports WHERE host_id <> ? AND host_id <> '' AND id IN (
        SELECT port_id FROM router_ports WHERE router_id = ?
        UNION SELECT gw_port_id FROM routers WHERE id = ? AND gw_port_id IS NOT NULL)
      ORDER BY host_id`,
    [host, routerId, routerId],
  );
  return row?.host_id ?? null;
}

/** Bound routers with a port (interface or gateway) bound to another host than theirs. */
export async function routersWithStrayPorts(tx: Queryable): Promise<string[]> {
  const rows = await tx.query<{ router_id: string }>(
    `SELECT DISTINCT b.router_id FROM router_l3_agent_bindings b
       JOIN agents a ON a.id = b.agent_id
       JOIN routers r ON r.id = b.router_id
       JOIN ports p ON p.id = r.gw_port_id
          OR p.id IN (SELECT port_id FROM router_ports rp WHERE rp.router_id = b.router_id)
      WHERE p.host_id <> a.host ORDER BY b.router_id`,
  );
  return rows.map((r) => r.router_id);
}

/** The routers bound to the L3 agent of `host`. */
export async function routersOfHost(db: Queryable, host: string): Promise<string[]> {
  const rows = await db.query<{ router_id: string }>(
    `SELECT b.router_id FROM router_l3_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE a.host = ? AND a.agent_type = ? ORDER BY b.router_id`,
    [host, L3_AGENT_TYPE],
  );
  return rows.map((r) => r.router_id);
}

/** The routers bound to one agent. */
export async function routersOfAgent(db: Queryable, agentId: string): Promise<string[]> {
  const rows = await db.query<{ router_id: string }>(
    'SELECT router_id FROM router_l3_agent_bindings WHERE agent_id = ? ORDER BY router_id',
    [agentId],
  );
  return rows.map((r) => r.router_id);
}

/** Whether the router is bound to the L3 agent of `host`. */
export async function servesRouter(db: Queryable, routerId: string, host: string) {
  const [bound] = await db.query(
    `SELECT 1 AS one FROM router_l3_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE b.router_id = ? AND a.host = ? AND a.agent_type = ?`,
    [routerId, host, L3_AGENT_TYPE],
  );
  return bound !== undefined;
}

/** The routers with a port (interface or gateway) on network `networkId`. */
export async function routersOnNetwork(db: Queryable, networkId: string): Promise<string[]> {
  const rows = await db.query<{ router_id: string }>(
    `SELECT DISTINCT rp.router_id FROM router_ports rp JOIN ports p ON p.id = rp.port_id
      WHERE p.network_id = ? ORDER BY rp.router_id`,
    [networkId],
  );
  return rows.map((r) => r.router_id);
}
