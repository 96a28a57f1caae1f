/**
 * The compute sweep: servers stuck in the hidden `scheduling` task (a kumo-api process
 * stopped between placing a server and handing it to its host) end in ERROR with a
 * fault, their host and ports released. kumo-api runs it periodically (api/jobs.ts).
 *
 * Invariants: only a row that has stayed `scheduling` longer than `stuckAfterS` is
 * failed, by a conditional UPDATE that re-checks both, so a hand-over that finishes
 * first wins; a hand-over still running elsewhere that loses finds the task moved on and
 * releases the ports it made after the sweep (scheduler/compute.ts), so nothing leaks
 * either way. Ports are released through the ports API's functions and hints.
 */
import { failStuckBuild, stuckBuildIds } from '../db/server-tasks.ts';
import { releasePorts } from '../instance-ports.ts';
import { buildFault, type HandOverDeps } from './compute.ts';

/** A hand-over takes seconds (a port and a hint per NIC); this is far beyond it. */
export const STUCK_SCHEDULING_S = 60;

/** Fails every build stuck in `scheduling` for more than `stuckAfterS`; their ids. */
export async function sweepStuckBuilds(
  deps: HandOverDeps,
  stuckAfterS = STUCK_SCHEDULING_S,
): Promise<string[]> {
  const now = deps.clock.now();
  const before = new Date(now.getTime() - stuckAfterS * 1000);
  const failed: string[] = [];
  for (const id of await stuckBuildIds(deps.db, before)) {
    const fault = buildFault(
      `Build of instance ${id} aborted: it was never handed to its host.`,
      `The instance stayed in task_state scheduling for more than ${stuckAfterS} s: the kumo-api that scheduled it stopped before its ports were attached.`,
      now,
    );
    const row = await failStuckBuild(deps.db, id, before, fault, now);
    if (!row) continue;
    deps.log.warn({ instanceId: id }, 'build stuck in scheduling: ERROR, host released');
    await releasePorts(deps, row);
    failed.push(id);
  }
  return failed;
}
