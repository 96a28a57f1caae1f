/**
 * The network_dhcp_agent_bindings table, the DHCP agents it refers to, and the reads the
 * DHCP scheduler and the DHCP agents' RPC make of networks, subnets and DHCP ports.
 *
 * Invariant: bindings change only inside `schedulerTransaction`, which holds the
 * scheduler lock (a PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE serialises), so two
 * API replicas never double-schedule.
 */
import { agentTypeByKind } from '../../contracts/agents.ts';
import { DHCP_OWNER } from '../../contracts/network.ts';
import type { Db, Queryable } from './index.ts';
import type { ColumnFilter } from './neutron.ts';
import { lockedTransaction, schedulableAgents } from './scheduler-agents.ts';

export const DHCP_AGENT_TYPE = agentTypeByKind('dhcp').agentType;
/** pg_advisory_xact_lock key for DHCP scheduling ("kumo dhcp"). */
const SCHEDULER_LOCK = 0x6b756d6f_01;

/** A transaction holding the DHCP scheduler lock (see the module invariant). */
export const schedulerTransaction = <T>(db: Db, fn: (tx: Queryable) => Promise<T>) =>
  lockedTransaction(db, SCHEDULER_LOCK, fn);

/** Every DHCP agent, with the number of networks bound to it. */
export const dhcpAgentInfos = (tx: Queryable, now: Date, downTime: number) =>
  schedulableAgents(tx, DHCP_AGENT_TYPE, 'network_dhcp_agent_bindings', now, downTime);

/** Hosts of the DHCP agents bound to a network. */
export async function dhcpHostsOf(db: Queryable, networkId: string): Promise<string[]> {
  const rows = await db.query<{ host: string }>(
    `SELECT a.host FROM network_dhcp_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE b.network_id = ? ORDER BY a.host`,
    [networkId],
  );
  return rows.map((r) => r.host);
}

/** Ids of the DHCP agents bound to a network. */
export async function dhcpAgentIdsOf(db: Queryable, networkId: string): Promise<string[]> {
  const rows = await db.query<{ agent_id: string }>(
    'SELECT agent_id FROM network_dhcp_agent_bindings WHERE network_id = ? ORDER BY agent_id',
    [networkId],
  );
  return rows.map((r) => r.agent_id);
}

/** Binds a network to an agent; false when it already was. */
export async function addBinding(tx: Queryable, networkId: string, agentId: string) {
  const rows = await tx.query(
    `INSERT INTO network_dhcp_agent_bindings (network_id, agent_id) VALUES (?, ?)
     ON CONFLICT DO NOTHING RETURNING network_id`,
    [networkId, agentId],
  );
  return rows.length > 0;
}

/** Unbinds; false when there was no such binding. */
export async function removeBinding(tx: Queryable, networkId: string, agentId: string) {
  const rows = await tx.query(
    'DELETE FROM network_dhcp_agent_bindings WHERE network_id = ? AND agent_id = ? RETURNING network_id',
    [networkId, agentId],
  );
  return rows.length > 0;
}

/** Networks that need DHCP: those with a DHCP-enabled subnet. */
export async function networksNeedingDhcp(tx: Queryable): Promise<string[]> {
  const rows = await tx.query<{ network_id: string }>(
    'SELECT DISTINCT network_id FROM subnets WHERE enable_dhcp = ? ORDER BY network_id',
    [true],
  );
  return rows.map((r) => r.network_id);
}

/** Every binding: network id → the ids of the agents serving it. */
export async function allBindings(tx: Queryable): Promise<Map<string, string[]>> {
  const rows = await tx.query<{ network_id: string; agent_id: string }>(
    'SELECT network_id, agent_id FROM network_dhcp_agent_bindings',
  );
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.network_id, [...(out.get(r.network_id) ?? []), r.agent_id]);
  return out;
}

/** A network's DHCP-enabled subnets, oldest first (a DHCP port's fixed IPs follow them). */
export async function dhcpSubnetIds(db: Queryable, networkId: string): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    'SELECT id FROM subnets WHERE network_id = ? AND enable_dhcp = ? ORDER BY created_at, id',
    [networkId, true],
  );
  return rows.map((r) => r.id);
}

/** SQL LIKE pattern of a scheduler-made DHCP port's device_id (see dhcpDeviceId). */
const DEVICE_ID_LIKE = 'dhcp________-____-5___-____-____________-%';

/**
 * Networks whose DHCP ports do not match their bindings: a scheduler-made DHCP port whose
 * (network, host) has no binding any more, or a bound agent without a DHCP port.
 */
export async function networksWithStaleDhcpPorts(db: Queryable): Promise<string[]> {
  const rows = await db.query<{ network_id: string }>(
    `SELECT DISTINCT p.network_id FROM ports p
      WHERE p.device_owner = ? AND p.device_id LIKE ? AND NOT EXISTS (
        SELECT 1 FROM network_dhcp_agent_bindings b JOIN agents a ON a.id = b.agent_id
         WHERE b.network_id = p.network_id AND a.host = p.host_id)
     UNION
     SELECT DISTINCT b.network_id FROM network_dhcp_agent_bindings b
       JOIN agents a ON a.id = b.agent_id
      WHERE EXISTS (SELECT 1 FROM subnets s WHERE s.network_id = b.network_id AND s.enable_dhcp = ?)
        AND NOT EXISTS (SELECT 1 FROM ports p WHERE p.network_id = b.network_id
          AND p.device_owner = ? AND p.host_id = a.host)`,
    [DHCP_OWNER, DEVICE_ID_LIKE, true, DHCP_OWNER],
  );
  return rows.map((r) => r.network_id);
}

/** The networks bound to the DHCP agent of `host`. */
export async function dhcpNetworksOfHost(db: Queryable, host: string): Promise<string[]> {
  const rows = await db.query<{ network_id: string }>(
    `SELECT b.network_id FROM network_dhcp_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE a.host = ? AND a.agent_type = ? ORDER BY b.network_id`,
    [host, DHCP_AGENT_TYPE],
  );
  return rows.map((r) => r.network_id);
}

/** Whether the network is bound to the DHCP agent of `host`. */
export async function servesNetwork(db: Queryable, networkId: string, host: string) {
  const [bound] = await db.query(
    `SELECT 1 AS one FROM network_dhcp_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE b.network_id = ? AND a.host = ? AND a.agent_type = ?`,
    [networkId, host, DHCP_AGENT_TYPE],
  );
  return bound !== undefined;
}

/** A network list filter: the networks bound to one agent. */
export const agentNetworksFilter = (agentId: string): ColumnFilter => ({
  columns: {},
  clauses: [
    {
      sql: 'id IN (SELECT network_id FROM network_dhcp_agent_bindings WHERE agent_id = ?)',
      params: [agentId],
    },
  ],
});
