/**
 * Instance row updates of the actions that change more than the task: lock/unlock, the
 * security groups, a rebuild (new image, name, metadata, addresses, password with its
 * task), a soft delete and a restore, and the soft-deleted rows a reclaim pass reads.
 *
 * Invariants: each is one conditional statement on a live row (deleted_at IS NULL), so a
 * concurrent delete wins and nothing changes a deleted server; a rebuild's new image and
 * its task are written together, so an agent never sees the new task with the old image;
 * a soft delete starts only on a server that has a host and was launched (Nova's
 * must_have_launched), and records when it began in the same statement; lock and unlock
 * are decided by their own UPDATE's condition, never by an earlier read of the lock.
 */

import type { Param, Queryable } from './index.ts';
import { resourceTime } from './neutron.ts';
import { ruleSql, type TaskRule } from './server-tasks.ts';
import type { ImageMeta, InstanceRecord, InstanceRow } from './servers.ts';
import { toRecord } from './servers.ts';

type LockKind = NonNullable<InstanceRecord['lockedBy']>;

/**
 * Locks the live row as `by` (Nova's lock): an admin's lock replaces any, an owner's
 * only takes an unlocked server (Nova keeps the first locker). False when nothing
 * changed: the row is gone, or (an owner's) someone holds the lock already.
 */
export async function lockAs(db: Queryable, id: string, by: LockKind, now: Date) {
  const rows = await db.query(
    `UPDATE instances SET locked_by = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL${by === 'owner' ? ' AND locked_by IS NULL' : ''}
      RETURNING id`,
    [by, resourceTime(now), id],
  );
  return rows.length > 0;
}

/**
 * Unlocks the live row for a caller of kind `by`: an admin lifts any lock, an owner only
 * none or its own (Nova's is_expected_locked_by; the override is the admin's). False
 * when nothing changed: the row is gone, or an owner met an admin's lock.
 */
export async function unlockAs(db: Queryable, id: string, by: LockKind, now: Date) {
  const rows = await db.query(
    `UPDATE instances SET locked_by = NULL, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL${by === 'owner' ? " AND (locked_by IS NULL OR locked_by = 'owner')" : ''}
      RETURNING id`,
    [resourceTime(now), id],
  );
  return rows.length > 0;
}

/** Replaces the names of the server's security groups; false when the row is gone. */
export async function setSecurityGroups(
  db: Queryable,
  id: string,
  groups: readonly string[],
  now: Date,
): Promise<boolean> {
  const rows = await db.query(
    'UPDATE instances SET security_groups = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING id',
    [JSON.stringify(groups), resourceTime(now), id],
  );
  return rows.length > 0;
}

/** What a rebuild changes besides the task: the image always, the rest when asked. */
export interface RebuildChanges {
  imageMeta: ImageMeta;
  adminPass: string;
  name?: string;
  metadata?: Record<string, string>;
  accessIPv4?: string;
  accessIPv6?: string;
}

/** The optional columns of a rebuild, as SET clauses with their values. */
function optionalSets(c: RebuildChanges): { sql: string; params: Param[] } {
  const pairs: [string, Param | undefined][] = [
    ['name', c.name],
    ['metadata', c.metadata && JSON.stringify(c.metadata)],
    ['access_ipv4', c.accessIPv4],
    ['access_ipv6', c.accessIPv6],
  ];
  const given = pairs.filter((p): p is [string, Param] => p[1] !== undefined);
  return {
    sql: given.map(([column]) => `, ${column} = ?`).join(''),
    params: given.map(([, value]) => value),
  };
}

/**
 * Starts a rebuild (task `rebuilding`, a new task_id) with its changes, if the live row
 * is on a host and satisfies `rule`; the row as left, or undefined.
 */
export async function startRebuild(
  db: Queryable,
  id: string,
  c: RebuildChanges,
  rule: TaskRule,
  now: Date,
): Promise<InstanceRecord | undefined> {
  const cond = ruleSql(rule);
  const sets = optionalSets(c);
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET task_state = 'rebuilding', task_id = task_id + 1, image_id = ?,
        image_meta = ?, admin_pass = ?, updated_at = ?${sets.sql}
      WHERE id = ? AND deleted_at IS NULL AND host <> ''${cond.sql} RETURNING *`,
    [
      c.imageMeta.image.id,
      JSON.stringify(c.imageMeta),
      c.adminPass,
      resourceTime(now),
      ...sets.params,
      id,
      ...cond.params,
    ],
  );
  return row && toRecord(row);
}

/**
 * Starts a soft delete (task `soft-deleting`, soft_deleted_at now) of a launched server on
 * a host that is not soft-deleted or being deleted already (and, `unlocked`, that nobody
 * has locked); the row, or undefined.
 */
export async function startSoftDelete(
  db: Queryable,
  id: string,
  now: Date,
  unlocked: boolean,
): Promise<InstanceRecord | undefined> {
  const at = resourceTime(now);
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET task_state = 'soft-deleting', task_id = task_id + 1,
        soft_deleted_at = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL AND host <> '' AND launched_at IS NOT NULL
        AND vm_state <> 'soft-delete'
        AND (task_state IS NULL OR task_state NOT IN ('scheduling', 'deleting'))${unlocked ? ' AND locked_by IS NULL' : ''}
      RETURNING *`,
    [at, at, id],
  );
  return row && toRecord(row);
}

/**
 * Nova's restore: a server soft-deleted with no task pending (and, `rule.unlocked`, no
 * lock) starts `restoring` under a new task_id; one without a host is restored here and
 * now (vm_state active, no task), as Nova's API does. The row as left, or undefined.
 */
export async function startRestore(
  db: Queryable,
  id: string,
  rule: TaskRule,
  now: Date,
): Promise<InstanceRecord | undefined> {
  const cond = ruleSql(rule);
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET task_id = task_id + 1, updated_at = ?,
        task_state = CASE WHEN host = '' THEN NULL ELSE 'restoring' END,
        vm_state = CASE WHEN host = '' THEN 'active' ELSE vm_state END,
        soft_deleted_at = CASE WHEN host = '' THEN NULL ELSE soft_deleted_at END
      WHERE id = ? AND deleted_at IS NULL${cond.sql} RETURNING *`,
    [resourceTime(now), id, ...cond.params],
  );
  return row && toRecord(row);
}

/** Ids of the soft-deleted servers (no task pending) whose soft delete began before `before`. */
export async function reclaimableIds(db: Queryable, before: Date): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM instances WHERE deleted_at IS NULL AND vm_state = 'soft-delete'
        AND task_state IS NULL AND soft_deleted_at < ? ORDER BY id`,
    [resourceTime(before)],
  );
  return rows.map((r) => r.id);
}
