/**
 * The network_dhcp_agent_bindings table and the DHCP agents it refers to.
 *
 * Invariant: bindings change only inside `schedulerTransaction`, which holds the
 * scheduler lock (a PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE serialises), so two
 * API replicas never double-schedule.
 */
import { agentTypeByKind } from '../../contracts/agents.ts';
import type { DhcpAgentInfo } from '../scheduler/dhcp-plan.ts';
import { isAlive } from './agents.ts';
import type { Db, Queryable } from './index.ts';
import { bool } from './neutron.ts';

export const DHCP_AGENT_TYPE = agentTypeByKind('dhcp').agentType;
/** pg_advisory_xact_lock key for DHCP scheduling ("kumo dhcp"). */
const SCHEDULER_LOCK = 0x6b756d6f_01;

/**
 * A transaction holding the scheduler lock: on PostgreSQL an advisory lock every replica
 * takes before reading or changing bindings; SQLite's BEGIN IMMEDIATE already serialises.
 */
export function schedulerTransaction<T>(db: Db, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(`SELECT pg_advisory_xact_lock(${SCHEDULER_LOCK})`);
    return fn(tx);
  });
}

export async function dhcpAgentInfos(
  tx: Queryable,
  now: Date,
  downTime: number,
): Promise<DhcpAgentInfo[]> {
  const rows = await tx.query<{
    id: string;
    host: string;
    admin_state_up: unknown;
    heartbeat_timestamp: string;
    load: unknown;
  }>(
    `SELECT a.id, a.host, a.admin_state_up, a.heartbeat_timestamp,
        (SELECT COUNT(*) FROM network_dhcp_agent_bindings b WHERE b.agent_id = a.id) AS load
       FROM agents a WHERE a.agent_type = ? ORDER BY a.host`,
    [DHCP_AGENT_TYPE],
  );
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    eligible: bool(r.admin_state_up) && isAlive(r.heartbeat_timestamp, now, downTime),
    load: Number(r.load),
  }));
}

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
