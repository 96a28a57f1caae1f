/**
 * What an LBaaS agent reports of a pool it serves, applied to the lb_* rows: the pool
 * status (report_status `pool` with the revision it served) and the stats and member
 * health (update_pool_stats).
 *
 * Invariants: a report is applied only while the reporting host's LBaaS agent hosts the
 * pool, checked under the LBaaS scheduler lock (a fenced copy's report changes nothing);
 * ACTIVE at revision R turns ACTIVE exactly the objects of the pool (pool, VIP, members,
 * monitor associations) that became PENDING_* at a revision <= R — a change made after
 * the served revision stays pending; rejected members become ERROR with their reason, and
 * a member in ERROR that is no longer rejected at a revision >= its own turns ACTIVE; the
 * pool itself leaves an ERROR its agent reported once a later ACTIVE covers its revision;
 * ERROR sets only the pool's status and reason. The pool's status_revision records the
 * revision of the last report applied to it, and a report (ACTIVE or ERROR, and its
 * rejected members) older than an object's status_revision leaves that object alone: two
 * API replicas may apply one agent's reports out of order, and a late one must not undo
 * a newer one. An update_pool_stats report writes only the parts it carries (stats, member
 * health), leaving the other as stored. Member health is written only for the pool's own
 * members (an unknown id is ignored). A report locks its pool's row before any other row of the pool, as every API
 * write does (bumpPool), so the two never deadlock.
 */
import type { UpdatePoolStatsArgs } from '../../contracts/lbaas.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { Db, Queryable } from './index.ts';
import { lbaasSchedulerTransaction, servesPool } from './lbaas-bindings.ts';

const PENDING = "status LIKE 'PENDING_%'";

/**
 * Whether `host` hosts the pool, having locked the pool's row first: every write of a
 * pool's rows (the API's, under bumpPool, and these) takes that row before any other, so
 * a report racing a member change or the pool's delete never deadlocks with it.
 */
async function lockServed(tx: Queryable, poolId: string, host: string): Promise<boolean> {
  const locked = await tx.query(
    'UPDATE lb_pools SET revision_number = revision_number WHERE id = ? RETURNING id',
    [poolId],
  );
  return locked.length > 0 && servesPool(tx, poolId, host);
}

/** ACTIVE at `revision`: the pending objects it covers, the rejected and cleared members. */
async function applyActive(tx: Queryable, s: ResourceStatus, revision: number) {
  const rejected = new Map((s.rejected ?? []).map((r) => [r.id, r.reason]));
  const active = "status = 'ACTIVE', status_description = NULL";
  await tx.query(
    `UPDATE lb_pools SET ${active}, status_revision = ? WHERE id = ? AND status_revision <= ?`,
    [revision, s.id, revision],
  );
  for (const table of ['lb_vips', 'lb_pool_monitors'])
    await tx.query(
      `UPDATE ${table} SET ${active} WHERE pool_id = ? AND ${PENDING} AND status_revision <= ?`,
      [s.id, revision],
    );
  const members = await tx.query<{ id: string }>(
    `SELECT id FROM lb_members
      WHERE pool_id = ? AND (${PENDING} OR status = 'ERROR') AND status_revision <= ?`,
    [s.id, revision],
  );
  for (const m of members.filter((x) => !rejected.has(x.id)))
    await tx.query(`UPDATE lb_members SET ${active} WHERE id = ?`, [m.id]);
}

/**
 * `status_revision <= ?` bound to the report's revision; a report without one (an older
 * agent) is taken as covering every revision.
 */
const covered = (s: ResourceStatus) => s.revision ?? Number.MAX_SAFE_INTEGER;

/** Rejected members of the pool, unless changed since: ERROR with the agent's reason. */
async function applyRejected(tx: Queryable, s: ResourceStatus) {
  for (const part of s.rejected ?? [])
    if (part.resource === 'member')
      await tx.query(
        `UPDATE lb_members SET status = 'ERROR', status_description = ?
          WHERE id = ? AND pool_id = ? AND status_revision <= ?`,
        [part.reason, part.id, s.id, covered(s)],
      );
}

/** ERROR: the pool's status and reason at the report's revision, unless a later one covers it. */
async function applyError(tx: Queryable, s: ResourceStatus) {
  await tx.query(
    `UPDATE lb_pools SET status = 'ERROR', status_description = ?,
        status_revision = COALESCE(?, status_revision)
      WHERE id = ? AND status_revision <= ?`,
    [s.reason ?? 'The LBaaS agent could not serve the pool', s.revision ?? null, s.id, covered(s)],
  );
}

async function applyOne(tx: Queryable, host: string, s: ResourceStatus): Promise<boolean> {
  if (!(await lockServed(tx, s.id, host))) return false;
  if (s.status === 'ERROR') await applyError(tx, s);
  else if (s.revision !== undefined) await applyActive(tx, s, s.revision);
  await applyRejected(tx, s);
  return true;
}

/**
 * Applies the pool statuses `statuses` reported by the LBaaS agent of `host`, in order;
 * returns the ids of those ignored (the host does not host the pool: fenced or gone).
 */
export async function applyPoolStatuses(
  db: Db,
  host: string,
  statuses: readonly ResourceStatus[],
): Promise<string[]> {
  return lbaasSchedulerTransaction(db, async (tx) => {
    const ignored: string[] = [];
    for (const s of statuses) if (!(await applyOne(tx, host, s))) ignored.push(s.id);
    return ignored;
  });
}

type Counted = NonNullable<UpdatePoolStatsArgs['stats']>;

async function storeCounters(tx: Queryable, poolId: string, stats: Counted): Promise<void> {
  const { bytes_in, bytes_out, active_connections, total_connections } = stats;
  await tx.query(
    `INSERT INTO lb_pool_stats
       (pool_id, bytes_in, bytes_out, active_connections, total_connections)
     VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (pool_id) DO UPDATE SET bytes_in = excluded.bytes_in,
       bytes_out = excluded.bytes_out, active_connections = excluded.active_connections,
       total_connections = excluded.total_connections`,
    [poolId, bytes_in, bytes_out, active_connections, total_connections],
  );
}

/** The health of the pool's own members named in the report; how many rows it wrote. */
async function storeHealth(tx: Queryable, args: UpdatePoolStatsArgs): Promise<number> {
  const reasons = new Map((args.reasons ?? []).map((r) => [r.id, r.reason]));
  let updated = 0;
  for (const m of args.members ?? []) {
    const why = m.status === 'INACTIVE' ? (reasons.get(m.id) ?? null) : null;
    const rows = await tx.query(
      `UPDATE lb_members SET health = ?, health_description = ?
        WHERE id = ? AND pool_id = ? RETURNING id`,
      [m.status, why, m.id, args.pool_id],
    );
    updated += rows.length;
  }
  return updated;
}

/**
 * Stores what the report carries of a pool: its stats (when present) and its members'
 * health (when present), leaving the absent part as it was; the rows written (the stats row
 * counts one), 0 when `host` does not host the pool.
 */
export async function storePoolStats(db: Db, args: UpdatePoolStatsArgs): Promise<number> {
  return lbaasSchedulerTransaction(db, async (tx) => {
    if (!(await lockServed(tx, args.pool_id, args.host))) return 0;
    if (args.stats !== undefined) await storeCounters(tx, args.pool_id, args.stats);
    return (args.stats !== undefined ? 1 : 0) + (await storeHealth(tx, args));
  });
}
