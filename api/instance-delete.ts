/**
 * Deleting an instance now (DELETE without soft delete, forceDelete, the reclaim of
 * soft-deleted servers), and the reclaim pass kumo-api runs periodically when
 * `[compute] reclaim_instance_interval` is set (Nova's _reclaim_queued_deletes).
 *
 * Invariants: a delete never waits for a dead agent (Nova's local delete: the agent's
 * resync removes what is left), and whether it is local is decided from the row the
 * delete's own UPDATE left, never from an earlier read; a non-admin's delete needs the
 * lock free in that UPDATE; the reclaim reads the due ids, then starts each delete with
 * an UPDATE that requires the row still soft-deleted with no task (startReclaim), so a
 * restore accepted in between wins and of two reclaimers (replicas) only one deletes.
 */

import { reclaimableIds } from './db/server-changes.ts';
import { startDelete, startReclaim } from './db/server-tasks.ts';
import type { InstanceRecord } from './db/servers.ts';
import { hintInstance } from './hints.ts';
import { type ComputeDeps, finishDelete, nowOf } from './instance-ports.ts';
import { computeAgentAlive } from './scheduler/compute.ts';

/**
 * Carries out a delete its UPDATE started: local when the row has no host (left it in
 * the delete's own UPDATE, or never had one) or its agent is dead, else a hint to the host.
 */
async function carryOut(deps: ComputeDeps, started: InstanceRecord, agentDownTime: number) {
  const now = nowOf(deps);
  const local =
    started.host === '' || !(await computeAgentAlive(deps.db, started.host, now, agentDownTime));
  deps.log.info({ instanceId: started.id, host: started.host, local }, 'instance delete requested');
  if (local) await finishDelete(deps, started);
  else await hintInstance(deps, started.host, started.id, started.taskId);
}

/**
 * Starts the delete of a live row (with `unlocked`, only while nobody holds its lock)
 * and carries it out. False when the row was gone already (or locked).
 */
export async function deleteNow(
  deps: ComputeDeps,
  id: string,
  agentDownTime: number,
  unlocked = false,
): Promise<boolean> {
  const started = await startDelete(deps.db, id, nowOf(deps), {
    vm: 'any',
    tasks: 'any',
    unlocked,
  });
  if (!started) return false;
  await carryOut(deps, started, agentDownTime);
  return true;
}

/** Reclaims one server read as due: false when it was restored, deleted or reclaimed since. */
export async function reclaimOne(
  deps: ComputeDeps,
  id: string,
  before: Date,
  agentDownTime: number,
): Promise<boolean> {
  const started = await startReclaim(deps.db, id, before, nowOf(deps));
  if (!started) return false;
  await carryOut(deps, started, agentDownTime);
  return true;
}

/** The moment before which a soft delete is due for reclaim. */
export const reclaimBefore = (deps: ComputeDeps, intervalS: number) =>
  new Date(nowOf(deps).getTime() - intervalS * 1000);

/** Deletes every server soft-deleted longer than `intervalS` ago; their ids. */
export async function reclaimSoftDeleted(
  deps: ComputeDeps,
  intervalS: number,
  agentDownTime: number,
): Promise<string[]> {
  const before = reclaimBefore(deps, intervalS);
  const reclaimed: string[] = [];
  for (const id of await reclaimableIds(deps.db, before)) {
    if (!(await reclaimOne(deps, id, before, agentDownTime))) continue;
    deps.log.info({ instanceId: id, intervalS }, 'soft-deleted instance reclaimed');
    reclaimed.push(id);
  }
  return reclaimed;
}
