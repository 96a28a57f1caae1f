/**
 * LBaaS v1 health monitor writes and a pool's monitor associations.
 *
 * Invariants: one transaction per request, so a refused request changes nothing; delay is
 * never below timeout (DelayOrTimeoutInvalid, checked on the merged values of an update);
 * a monitor with associations is never deleted (HealthMonitorInUse: Neutron's agent-based
 * driver only removes it once every pool let go of it); a change of an associated monitor
 * bumps each of its pools' revisions and marks those associations pending; an association
 * gets the next seq of its pool, so a pool's monitors keep the order they were added in.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import type { MonitorCreate, MonitorUpdate } from '../../contracts/lbaas-api.ts';
import type { Db, Queryable } from './index.ts';
import { getRow, monitorNotFound } from './lbaas.ts';
import { bumpPool, PENDING_SET, setsOf } from './lbaas-writes.ts';
import { constraintKind, resourceTime } from './neutron.ts';

function checkDelay(delay: number, timeout: number) {
  if (delay < timeout)
    throw new ApiError('DelayOrTimeoutInvalid', 'Delay must be greater than or equal to timeout');
}

export async function createMonitor(
  db: Db,
  req: MonitorCreate & { project_id: string },
  now: Date,
): Promise<string> {
  checkDelay(req.delay, req.timeout);
  const id = randomUUID();
  const at = resourceTime(now);
  await db.query(
    `INSERT INTO lb_health_monitors (id, project_id, type, delay, timeout, max_retries,
       http_method, url_path, expected_codes, admin_state_up, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      id,
      req.project_id,
      req.type,
      req.delay,
      req.timeout,
      req.max_retries,
      req.http_method ?? 'GET',
      req.url_path ?? '/',
      req.expected_codes ?? '200',
      req.admin_state_up ?? true,
      at,
      at,
    ],
  );
  return id;
}

/** Bumps every pool `monitorId` is associated with and marks those associations pending. */
async function touchPoolsOf(tx: Queryable, monitorId: string, at: string): Promise<string[]> {
  const assocs = await tx.query<{ pool_id: string }>(
    'SELECT pool_id FROM lb_pool_monitors WHERE monitor_id = ? ORDER BY pool_id',
    [monitorId],
  );
  for (const { pool_id } of assocs) {
    const rev = await bumpPool(tx, pool_id, at);
    await tx.query(
      `UPDATE lb_pool_monitors SET ${PENDING_SET} WHERE pool_id = ? AND monitor_id = ?`,
      [rev, pool_id, monitorId],
    );
  }
  return assocs.map((a) => a.pool_id);
}

/** Applies `changes`; the pools whose agents must hear of it. */
export async function updateMonitor(
  db: Db,
  id: string,
  changes: MonitorUpdate,
  now: Date,
): Promise<string[]> {
  const sets = setsOf(changes);
  const at = resourceTime(now);
  return db.transaction(async (tx) => {
    const row = await getRow(tx, 'lb_health_monitors', id);
    if (!row) throw monitorNotFound(id);
    checkDelay(changes.delay ?? Number(row.delay), changes.timeout ?? Number(row.timeout));
    if (sets.sql === '') return [];
    await tx.query(`UPDATE lb_health_monitors SET ${sets.sql}, updated_at = ? WHERE id = ?`, [
      ...sets.params,
      at,
      id,
    ]);
    return touchPoolsOf(tx, id, at);
  });
}

export async function deleteMonitor(db: Db, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [assoc] = await tx.query('SELECT pool_id FROM lb_pool_monitors WHERE monitor_id = ?', [
      id,
    ]);
    if (assoc)
      throw new ApiError(
        'HealthMonitorInUse',
        `Health monitor ${id} still has associations with pools`,
      );
    const gone = await tx.query('DELETE FROM lb_health_monitors WHERE id = ? RETURNING id', [id]);
    if (gone.length === 0) throw monitorNotFound(id);
  });
}

const associationExists = (monitorId: string, poolId: string) =>
  new ApiError(
    'PoolMonitorAssociationExists',
    `health_monitor ${monitorId} is already associated with pool ${poolId}`,
  );

/** Associates monitor `monitorId` with pool `poolId` (Neutron's create_pool_health_monitor). */
export async function associateMonitor(db: Db, poolId: string, monitorId: string, now: Date) {
  try {
    await db.transaction(async (tx) => {
      if (!(await getRow(tx, 'lb_health_monitors', monitorId))) throw monitorNotFound(monitorId);
      const rev = await bumpPool(tx, poolId, resourceTime(now));
      const [dup] = await tx.query(
        'SELECT seq FROM lb_pool_monitors WHERE pool_id = ? AND monitor_id = ?',
        [poolId, monitorId],
      );
      if (dup) throw associationExists(monitorId, poolId);
      await tx.query(
        `INSERT INTO lb_pool_monitors (pool_id, monitor_id, seq, status, status_description,
           status_revision)
         SELECT ?, ?, COALESCE(MAX(seq), 0) + 1, 'PENDING_CREATE', NULL, ?
           FROM lb_pool_monitors WHERE pool_id = ?`,
        [poolId, monitorId, rev, poolId],
      );
    });
  } catch (e) {
    throw constraintKind(e) === 'unique' ? associationExists(monitorId, poolId) : e;
  }
}

/** Removes the association (Neutron's PoolMonitorAssociationNotFound when there is none). */
export async function disassociateMonitor(db: Db, poolId: string, monitorId: string, now: Date) {
  await db.transaction(async (tx) => {
    await bumpPool(tx, poolId, resourceTime(now));
    const gone = await tx.query(
      'DELETE FROM lb_pool_monitors WHERE pool_id = ? AND monitor_id = ? RETURNING pool_id',
      [poolId, monitorId],
    );
    if (gone.length === 0)
      throw new ApiError(
        'PoolMonitorAssociationNotFound',
        `Monitor ${monitorId} is not associated with Pool ${poolId}`,
      );
  });
}
