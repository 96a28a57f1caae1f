/**
 * Deleting an instance now (DELETE without soft delete, forceDelete, the reclaim of
 * soft-deleted servers), and the reclaim pass kumo-api runs periodically when
 * `[compute] reclaim_instance_interval` is set (Nova's _reclaim_queued_deletes).
 *
 * Invariants: a delete never waits for a dead agent (Nova's local delete: the agent's
 * resync removes what is left), and whether it is local is decided from the row the
 * delete's own UPDATE left, never from an earlier read; the reclaim takes only servers
 * soft-deleted (no task pending) for longer than the interval, each through that same
 * delete, so a restore that starts first wins (its task is then pending).
 */

import { reclaimableIds } from './db/server-changes.ts';
import { startDelete } from './db/server-tasks.ts';
import { hintInstance } from './hints.ts';
import { type ComputeDeps, finishDelete, nowOf } from './instance-ports.ts';
import { computeAgentAlive } from './scheduler/compute.ts';

/**
 * Starts the delete of a live row; local when the row has no host (left it in the
 * delete's own UPDATE, or never had one) or its agent is dead, else a hint to the host.
 * False when the row was gone already.
 */
export async function deleteNow(
  deps: ComputeDeps,
  id: string,
  agentDownTime: number,
): Promise<boolean> {
  const now = nowOf(deps);
  const started = await startDelete(deps.db, id, now);
  if (!started) return false;
  const local =
    started.host === '' || !(await computeAgentAlive(deps.db, started.host, now, agentDownTime));
  deps.log.info({ instanceId: id, host: started.host, local }, 'instance delete requested');
  if (local) await finishDelete(deps, started);
  else await hintInstance(deps, started.host, id, started.taskId);
  return true;
}

/** Deletes every server soft-deleted longer than `intervalS` ago; their ids. */
export async function reclaimSoftDeleted(
  deps: ComputeDeps,
  intervalS: number,
  agentDownTime: number,
): Promise<string[]> {
  const before = new Date(nowOf(deps).getTime() - intervalS * 1000);
  const reclaimed: string[] = [];
  for (const id of await reclaimableIds(deps.db, before)) {
    if (!(await deleteNow(deps, id, agentDownTime))) continue;
    deps.log.info({ instanceId: id, intervalS }, 'soft-deleted instance reclaimed');
    reclaimed.push(id);
  }
  return reclaimed;
}

/** Reclaims every `everyMs` (nothing when the interval is 0); stop() waits for a pass. */
export function startReclaimer(
  deps: ComputeDeps,
  opts: { intervalS: number; agentDownTime: number; everyMs: number },
) {
  if (opts.intervalS <= 0) return { stop: async () => {} };
  let running: Promise<unknown> | undefined;
  const pass = () => {
    if (running) return;
    running = reclaimSoftDeleted(deps, opts.intervalS, opts.agentDownTime)
      .catch((e: Error) => deps.log.error({ err: e.message }, 'reclaim of soft deletes failed'))
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(pass, opts.everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
