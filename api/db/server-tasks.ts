/**
 * The instance row updates that move a server through its tasks: an action or a delete
 * starts one, the hand-over passes it to its host, the agent's report ends it (and keeps
 * power_state and the settled vm_state in step), a failed or stuck build ends in ERROR.
 *
 * Invariants: every update is one conditional statement that checks the states it may
 * move from, so two writers racing on one row cannot both win; a new task always gets a
 * new task_id in the same statement; a report observed under an older task_id changes
 * nothing; a row that loses its host (a failed spawn, a delete while scheduling) loses
 * it in the very statement that ends or starts the task, so no request can see the task
 * over and the host still set.
 */

import type { SpawnTimings } from '../../contracts/instances.ts';
import type { TaskState, VmState } from '../../contracts/servers.ts';
import type { Param, Queryable } from './index.ts';
import { resourceTime } from './neutron.ts';
import { type Fault, type InstanceRecord, type InstanceRow, toRecord } from './servers.ts';

/**
 * Which vm_states and task_states a task may start from (`'any'`: no check); `unlocked`:
 * only while nobody holds the lock (a non-admin's task, Nova's check_instance_lock), so a
 * lock that lands between the route's check and the UPDATE is honoured.
 */
export interface TaskRule {
  vm: readonly VmState[] | 'any';
  tasks: readonly (TaskState | null)[] | 'any';
  unlocked?: boolean;
}

export function ruleSql(rule: TaskRule): { sql: string; params: Param[] } {
  const parts: string[] = [];
  const params: Param[] = [];
  if (rule.vm !== 'any') {
    parts.push(`vm_state IN (${rule.vm.map(() => '?').join(', ')})`);
    params.push(...rule.vm);
  }
  if (rule.tasks !== 'any') {
    const named = rule.tasks.filter((t): t is TaskState => t !== null);
    const alts = rule.tasks.includes(null) ? ['task_state IS NULL'] : [];
    if (named.length) alts.push(`task_state IN (${named.map(() => '?').join(', ')})`);
    parts.push(alts.length ? `(${alts.join(' OR ')})` : 'FALSE');
    params.push(...named);
  }
  if (rule.unlocked) parts.push('locked_by IS NULL');
  return { sql: parts.map((p) => ` AND ${p}`).join(''), params };
}

/** `AND task_id = ?` when the report names the task it was observed under. */
const observedSql = (observed: number | undefined) =>
  observed === undefined
    ? { sql: '', params: [] as Param[] }
    : { sql: ' AND task_id = ?', params: [observed] as Param[] };

/**
 * Starts action `task` (a new task_id) if the live row is on a host and satisfies `rule`;
 * the updated row, or undefined when the row is missing, deleted, hostless or in a state
 * the rule refuses. A hostless server (its build failed) can only be deleted.
 */
export async function startTask(
  db: Queryable,
  id: string,
  task: TaskState,
  rule: TaskRule,
  now: Date,
): Promise<InstanceRecord | undefined> {
  const cond = ruleSql(rule);
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET task_state = ?, task_id = task_id + 1, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL AND host <> ''${cond.sql} RETURNING *`,
    [task, resourceTime(now), id, ...cond.params],
  );
  return row && toRecord(row);
}

/**
 * Starts a delete from any state (`rule` narrows it: a non-admin's needs the lock free, a
 * reclaim a server still soft-deleted). A row still `scheduling` is not its host's yet: it
 * loses the host here, so the caller deletes it locally and the hand-over in flight
 * (which then finds the task moved on) releases the ports it made.
 */
export async function startDelete(
  db: Queryable,
  id: string,
  now: Date,
  rule: TaskRule = { vm: 'any', tasks: 'any' },
): Promise<InstanceRecord | undefined> {
  const cond = ruleSql(rule);
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET task_state = 'deleting', task_id = task_id + 1, updated_at = ?,
        host = CASE WHEN task_state = 'scheduling' THEN '' ELSE host END
      WHERE id = ? AND deleted_at IS NULL${cond.sql} RETURNING *`,
    [resourceTime(now), id, ...cond.params],
  );
  return row && toRecord(row);
}

/**
 * Starts the reclaim of a server soft-deleted (no task pending) before `before`: the
 * delete, only if the row is still in that state at the UPDATE, so a restore accepted
 * since the pass read its ids wins and of two reclaimers only one starts the delete.
 */
export async function startReclaim(
  db: Queryable,
  id: string,
  before: Date,
  now: Date,
): Promise<InstanceRecord | undefined> {
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET task_state = 'deleting', task_id = task_id + 1, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL AND vm_state = 'soft-delete' AND task_state IS NULL
        AND soft_deleted_at < ? RETURNING *`,
    [resourceTime(now), id, resourceTime(before)],
  );
  return row && toRecord(row);
}

/** scheduling → spawning once the ports are attached; false when the row moved on. */
export async function handOver(
  db: Queryable,
  id: string,
  portOrder: readonly string[],
  now: Date,
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE instances SET task_state = 'spawning', port_order = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL AND task_state = 'scheduling' RETURNING id`,
    [JSON.stringify(portOrder), resourceTime(now), id],
  );
  return rows.length > 0;
}

/** A build the API itself gave up on: ERROR with the fault, no host, no task. */
export async function failBuild(db: Queryable, id: string, fault: Fault, now: Date) {
  await db.query(
    `UPDATE instances SET vm_state = 'error', task_state = NULL, host = '', fault = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL`,
    [JSON.stringify(fault), resourceTime(now), id],
  );
}

/** Live rows still `scheduling` whose last change is older than `before`. */
export async function stuckBuildIds(db: Queryable, before: Date): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM instances WHERE deleted_at IS NULL AND task_state = 'scheduling'
        AND updated_at < ? ORDER BY id`,
    [resourceTime(before)],
  );
  return rows.map((r) => r.id);
}

/** failBuild for a row still stuck in `scheduling` since before `before`; the row as
 * left (hostless), or undefined when it moved on meanwhile. */
export async function failStuckBuild(
  db: Queryable,
  id: string,
  before: Date,
  fault: Fault,
  now: Date,
): Promise<InstanceRecord | undefined> {
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET vm_state = 'error', task_state = NULL, host = '', fault = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL AND task_state = 'scheduling' AND updated_at < ?
      RETURNING *`,
    [JSON.stringify(fault), resourceTime(now), id, resourceTime(before)],
  );
  return row && toRecord(row);
}

/** Soft-deletes; false when the row was already deleted (or never existed). */
export async function markDeleted(db: Queryable, id: string, now: Date): Promise<boolean> {
  const at = resourceTime(now);
  const rows = await db.query(
    `UPDATE instances SET vm_state = 'deleted', task_state = NULL, deleted_at = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL RETURNING id`,
    [at, at, id],
  );
  return rows.length > 0;
}

/* ------------------------------------------------------- an agent's report */

/** Stores the power state the agent saw while the row's task is the one it observed. */
export async function setPowerState(
  db: Queryable,
  id: string,
  power: number,
  observed: number | undefined,
  now: Date,
) {
  const obs = observedSql(observed);
  await db.query(
    `UPDATE instances SET power_state = ?,
        updated_at = CASE WHEN power_state = ? THEN updated_at ELSE ? END
      WHERE id = ? AND deleted_at IS NULL${obs.sql}`,
    [power, power, resourceTime(now), id, ...obs.params],
  );
}

export interface TaskResult {
  vmState: VmState;
  fault: Fault | null;
  timings: SpawnTimings | null;
}

/**
 * Ends task `taskId` with its outcome; the row's host afterwards, or undefined when the
 * row's current task is another one. A delete ends with the row, or else only in ERROR
 * (it failed; the user may retry). A spawn ending in ERROR leaves its host in the same
 * statement (Nova nils out host and node): the capacity is free again, later reports
 * from that host are ignored, and a DELETE from then on is local. launched_at is set on
 * the first active; soft_deleted_at is kept (or set) while the task ends soft-deleted and
 * cleared otherwise (a restore).
 */
export async function finishTask(
  db: Queryable,
  id: string,
  taskId: number,
  r: TaskResult,
  now: Date,
): Promise<{ host: string } | undefined> {
  const at = resourceTime(now);
  const [row] = await db.query<{ host: string }>(
    `UPDATE instances SET task_state = NULL, vm_state = ?,
        host = CASE WHEN task_state = 'spawning' AND ? = 'error' THEN '' ELSE host END,
        launched_at = CASE WHEN ? = 'active' THEN COALESCE(launched_at, ?) ELSE launched_at END,
        soft_deleted_at = CASE WHEN ? = 'soft-delete' THEN COALESCE(soft_deleted_at, ?) END,
        fault = COALESCE(?, fault), timings = COALESCE(?, timings), updated_at = ?
      WHERE id = ? AND task_id = ? AND deleted_at IS NULL
        AND task_state IS NOT NULL AND task_state <> 'scheduling'
        AND (task_state <> 'deleting' OR ? = 'error')
      RETURNING host`,
    [
      r.vmState,
      r.vmState,
      r.vmState,
      at,
      r.vmState,
      at,
      r.fault && JSON.stringify(r.fault),
      r.timings && JSON.stringify(r.timings),
      at,
      id,
      taskId,
      r.vmState,
    ],
  );
  return row && { host: row.host };
}

/**
 * Nova's power sync: with no task pending and the row still in vm_state `from` (and under
 * the observed task), the vm_state becomes `to`; false when the row moved on.
 */
export async function followPower(
  db: Queryable,
  id: string,
  change: { from: VmState; to: VmState; observed: number | undefined },
  now: Date,
): Promise<boolean> {
  const obs = observedSql(change.observed);
  const rows = await db.query(
    `UPDATE instances SET vm_state = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL AND task_state IS NULL AND vm_state = ?${obs.sql}
      RETURNING id`,
    [change.to, resourceTime(now), id, change.from, ...obs.params],
  );
  return rows.length > 0;
}
