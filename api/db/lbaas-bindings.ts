/**
 * The pool_loadbalancer_agent_bindings table, the LBaaS agents it refers to, and the VIP
 * port that follows a pool's binding (the fence).
 *
 * Invariants: bindings and the host of a VIP's port change only inside
 * `lbaasSchedulerTransaction`, which holds the LBaaS scheduler lock (a PostgreSQL advisory
 * lock; SQLite's BEGIN IMMEDIATE serialises), so two API replicas never bind one pool twice
 * and a VIP port is never left bound to a host its pool was just moved away from. Every
 * pool needs a host (Neutron schedules a pool when it is created); a binding goes with its
 * pool and with its agent (ON DELETE CASCADE).
 */
import { agentTypeByKind } from '../../contracts/agents.ts';
import { queryIn } from './chunks.ts';
import type { Db, Queryable } from './index.ts';
import { resourceTime } from './neutron.ts';
import { lockedTransaction, schedulableAgents } from './scheduler-agents.ts';

export const LBAAS_AGENT_TYPE = agentTypeByKind('lbaas').agentType;
/** pg_advisory_xact_lock key for LBaaS scheduling ("kumo" + 4). */
const LBAAS_SCHEDULER_LOCK = 0x6b756d6f_04;
/** A pool's status_description while no LBaaS agent can take it. */
export const NO_LBAAS_AGENT = 'No eligible LBaaS agent';

/** A transaction holding the LBaaS scheduler lock (see the module invariants). */
export const lbaasSchedulerTransaction = <T>(db: Db, fn: (tx: Queryable) => Promise<T>) =>
  lockedTransaction(db, LBAAS_SCHEDULER_LOCK, fn);

/** Every LBaaS agent, with the number of pools bound to it. */
export const lbaasAgentInfos = (tx: Queryable, now: Date, downTime: number) =>
  schedulableAgents(tx, LBAAS_AGENT_TYPE, 'pool_loadbalancer_agent_bindings', now, downTime);

/** Every pool, optionally among `ids` (those that exist). */
export async function existingPools(tx: Queryable, ids?: readonly string[]): Promise<string[]> {
  const sql = (only: string) => `SELECT id FROM lb_pools ${only} ORDER BY id`;
  const rows = ids
    ? await queryIn<{ id: string }>(tx, ids, (list) => sql(`WHERE id IN ${list}`))
    : await tx.query<{ id: string }>(sql(''));
  return rows.map((r) => r.id);
}

/** Every binding: pool id → the id of the agent hosting it. */
export async function poolBindings(tx: Queryable): Promise<Map<string, string>> {
  const rows = await tx.query<{ pool_id: string; agent_id: string }>(
    'SELECT pool_id, agent_id FROM pool_loadbalancer_agent_bindings',
  );
  return new Map(rows.map((r) => [r.pool_id, r.agent_id]));
}

/** Binds (or rebinds) a pool to an agent. */
export async function bindPool(tx: Queryable, poolId: string, agentId: string) {
  await tx.query(
    `INSERT INTO pool_loadbalancer_agent_bindings (pool_id, agent_id) VALUES (?, ?)
     ON CONFLICT (pool_id) DO UPDATE SET agent_id = excluded.agent_id`,
    [poolId, agentId],
  );
}

/** Whether `agentId` is an admin-up LBaaS agent (read inside the scheduler lock). */
export async function isUsableLbaasAgent(tx: Queryable, agentId: string): Promise<boolean> {
  const [row] = await tx.query<{ admin_state_up: boolean | number }>(
    'SELECT admin_state_up FROM agents WHERE id = ? AND agent_type = ?',
    [agentId, LBAAS_AGENT_TYPE],
  );
  return Boolean(row?.admin_state_up);
}

/** The agent hosting a pool (id and host), if any. */
export async function poolAgent(db: Queryable, poolId: string) {
  const [row] = await db.query<{ id: string; host: string }>(
    `SELECT a.id, a.host FROM pool_loadbalancer_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE b.pool_id = ?`,
    [poolId],
  );
  return row;
}

/** Hosts of the LBaaS agents bound to a pool. */
export async function lbaasHostsOfPool(db: Queryable, poolId: string): Promise<string[]> {
  const row = await poolAgent(db, poolId);
  return row ? [row.host] : [];
}

/**
 * Binds the pool's VIP port to `host`: the fence — the L2 agent of any other host stops
 * wiring it. A port that moved gets a new revision and status DOWN. Returns its id if it moved.
 */
export async function bindVipPort(
  tx: Queryable,
  poolId: string,
  host: string,
  now: Date,
): Promise<string[]> {
  const rows = await tx.query<{ id: string }>(
    `UPDATE ports SET host_id = ?, status = 'DOWN', revision_number = revision_number + 1,
        updated_at = ?
      WHERE host_id <> ? AND id IN (SELECT port_id FROM lb_vips WHERE pool_id = ?)
      RETURNING id`,
    [host, resourceTime(now), host, poolId],
  );
  return rows.map((r) => r.id);
}

/** The host the pool's VIP port is bound to other than `host`, if any. */
export async function formerVipHost(tx: Queryable, poolId: string, host: string) {
  const [row] = await tx.query<{ host_id: string }>(
    `SELECT p.host_id FROM ports p JOIN lb_vips v ON v.port_id = p.id
      WHERE v.pool_id = ? AND p.host_id <> ? AND p.host_id <> ''`,
    [poolId, host],
  );
  return row?.host_id ?? null;
}

/** Bound pools whose VIP port is bound to another host than theirs. */
export async function poolsWithStrayVip(tx: Queryable): Promise<string[]> {
  const rows = await tx.query<{ pool_id: string }>(
    `SELECT b.pool_id FROM pool_loadbalancer_agent_bindings b
       JOIN agents a ON a.id = b.agent_id
       JOIN lb_vips v ON v.pool_id = b.pool_id JOIN ports p ON p.id = v.port_id
      WHERE p.host_id <> a.host ORDER BY b.pool_id`,
  );
  return rows.map((r) => r.pool_id);
}

/**
 * Says on each of `unhosted` pools that no agent can take it (while it waits in a PENDING_*
 * status), and takes that back from the hosted ones `hosted`.
 */
export async function markUnhosted(
  tx: Queryable,
  unhosted: readonly string[],
  hosted: readonly string[],
) {
  for (const id of unhosted)
    await tx.query(
      `UPDATE lb_pools SET status_description = ?
        WHERE id = ? AND status LIKE 'PENDING_%' AND status_description IS NULL`,
      [NO_LBAAS_AGENT, id],
    );
  for (const id of hosted)
    await tx.query(
      'UPDATE lb_pools SET status_description = NULL WHERE id = ? AND status_description = ?',
      [id, NO_LBAAS_AGENT],
    );
}

/** The pools bound to the LBaaS agent of `host`. */
export async function poolsOfHost(db: Queryable, host: string): Promise<string[]> {
  const rows = await db.query<{ pool_id: string }>(
    `SELECT b.pool_id FROM pool_loadbalancer_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE a.host = ? AND a.agent_type = ? ORDER BY b.pool_id`,
    [host, LBAAS_AGENT_TYPE],
  );
  return rows.map((r) => r.pool_id);
}

/** The pools bound to one agent. */
export async function poolsOfAgent(db: Queryable, agentId: string): Promise<string[]> {
  const rows = await db.query<{ pool_id: string }>(
    'SELECT pool_id FROM pool_loadbalancer_agent_bindings WHERE agent_id = ? ORDER BY pool_id',
    [agentId],
  );
  return rows.map((r) => r.pool_id);
}

/** Whether the pool is bound to the LBaaS agent of `host`. */
export async function servesPool(db: Queryable, poolId: string, host: string) {
  const [bound] = await db.query(
    `SELECT 1 AS one FROM pool_loadbalancer_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE b.pool_id = ? AND a.host = ? AND a.agent_type = ?`,
    [poolId, host, LBAAS_AGENT_TYPE],
  );
  return bound !== undefined;
}
