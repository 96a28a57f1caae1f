/**
 * The volume side of kumo-api's agent traffic: which report_status entries are the
 * volume rows' (volume and snapshot from the Volume agent, attachment from the Compute
 * agent), applying them, and the hints their changes call for; and the end of a deleted
 * server's attachments.
 *
 * Invariants: hints go out only after the transaction that made their change committed
 * (an agent that hears one reads the change); a storage host is hinted with the revision
 * it must serve, a compute host with the instance's task_id; a hint never fails the
 * report or the delete that caused it (hints.ts).
 */
import { agentTypeByKind } from '../contracts/agents.ts';
import type { ReportStatusArgs, ResourceStatus } from '../contracts/status.ts';
import { applyAttachmentReport } from './db/attachment-status.ts';
import type { Db } from './db/index.ts';
import { detachInstance } from './db/volume-attachments.ts';
import { applyEach, applyStorageReport, type VolumeHints } from './db/volume-status.ts';
import { type HintDeps, hintInstance, hintVolume } from './hints.ts';
import { type Clock, systemClock } from './liveness.ts';

const VOLUME_AGENT = agentTypeByKind('volume').agentType;
const COMPUTE_AGENT = agentTypeByKind('compute').agentType;

export interface VolumeDeps extends HintDeps {
  db: Db;
  clock?: Clock;
}

/** Whether `s` (of the report `args`) is applied to the volume rows. */
export const isVolumeReport = (args: ReportStatusArgs) => (s: ResourceStatus) =>
  (args.agent_type === VOLUME_AGENT && (s.resource === 'volume' || s.resource === 'snapshot')) ||
  (args.agent_type === COMPUTE_AGENT && s.resource === 'attachment');

/** Hints every agent a committed change concerns (never rejects). */
export async function sendVolumeHints(deps: HintDeps, hints: VolumeHints): Promise<void> {
  for (const v of hints.volumes) if (v.host) await hintVolume(deps, v.host, v.id, v.revision);
  for (const i of hints.instances) await hintInstance(deps, i.host, i.id, i.taskId);
}

/** Applies the volume entries of one agent's report, then sends the hints they call for. */
export async function applyVolumeReport(
  deps: VolumeDeps,
  args: ReportStatusArgs,
  statuses: readonly ResourceStatus[],
): Promise<void> {
  const now = (deps.clock ?? systemClock).now();
  const apply = args.agent_type === VOLUME_AGENT ? applyStorageReport : applyAttachmentReport;
  const { ignored, hints } = await applyEach(deps.db, args.host, statuses, now, apply);
  if (ignored.length)
    deps.log.info(
      { host: args.host, agentType: args.agent_type, ids: ignored },
      'volume statuses of a host not serving them ignored',
    );
  await sendVolumeHints(deps, hints);
}

/** A server is gone: its attachments go, its volumes detach on their storage hosts. */
export async function detachServerVolumes(deps: VolumeDeps, instanceId: string): Promise<void> {
  const bumped = await detachInstance(deps.db, instanceId, (deps.clock ?? systemClock).now());
  for (const v of bumped)
    deps.log.info({ instanceId, volumeId: v.id }, 'volume detached from a deleted server');
  await sendVolumeHints(deps, { volumes: bumped, instances: [] });
}
