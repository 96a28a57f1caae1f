/**
 * What the DHCP, L3 and LBaaS schedulers share of the database (api/db/dhcp-bindings.ts,
 * l3-bindings.ts, lbaas-bindings.ts): the transaction that holds a scheduler's lock, and each agent of a type
 * with whether it may be scheduled to and how many resources its bindings give it.
 *
 * Invariant: every read or change of a scheduler's bindings runs under its lock — a
 * PostgreSQL transaction-scoped advisory lock every replica takes first (SQLite's BEGIN
 * IMMEDIATE already serialises) — so two API replicas never decide from the same state.
 */
import { isAlive } from './agents.ts';
import type { Db, Queryable } from './index.ts';
import { bool } from './neutron.ts';

/** An agent as a scheduler sees it. */
export interface SchedulableAgent {
  id: string;
  host: string;
  /** Alive and admin-up: may be scheduled to. */
  eligible: boolean;
  /** Resources bound to it. */
  load: number;
}

/** A transaction holding the scheduler lock `key`, a constant (see the module invariant). */
export function lockedTransaction<T>(
  db: Db,
  key: number,
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(`SELECT pg_advisory_xact_lock(${key})`);
    return fn(tx);
  });
}

/** The binding tables, each with an `agent_id` column. */
export type BindingTable =
  | 'network_dhcp_agent_bindings'
  | 'router_l3_agent_bindings'
  | 'pool_loadbalancer_agent_bindings';

/** Every agent of `agentType`, by host, with its load in `bindings`. */
export async function schedulableAgents(
  tx: Queryable,
  agentType: string,
  bindings: BindingTable,
  now: Date,
  downTime: number,
): Promise<SchedulableAgent[]> {
  const rows = await tx.query<{
    id: string;
    host: string;
    admin_state_up: unknown;
    heartbeat_timestamp: string;
    load: unknown;
  }>(
    `SELECT a.id, a.host, a.admin_state_up, a.heartbeat_timestamp,
        (SELECT COUNT(*) FROM ${bindings} b WHERE b.agent_id = a.id) AS load
       FROM agents a WHERE a.agent_type = ? ORDER BY a.host`,
    [agentType],
  );
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    eligible: bool(r.admin_state_up) && isAlive(r.heartbeat_timestamp, now, downTime),
    load: Number(r.load),
  }));
}
