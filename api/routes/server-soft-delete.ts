/**
 * DELETE /servers/{id}, restore and forceDelete (nova/api/openstack/compute/servers.py
 * _delete, deferred_delete.py; compute/api.py soft_delete, delete, restore, force_delete).
 *
 * With `[compute] reclaim_instance_interval` > 0 a DELETE soft-deletes a server that was
 * launched (task `soft-deleting`: the agent powers the guest off, vm_state `soft-delete`,
 * status SOFT_DELETED), `restore` starts it again, `forceDelete` deletes it now, and the
 * API's reclaim pass (instance-delete.ts) deletes it once the interval is over. A server
 * never launched, already soft-deleted, or whose agent is dead is deleted at once, as
 * Nova's API falls back to delete and to a local delete.
 *
 * Invariants: every call checks the lock first (409 for a non-admin, as Nova's
 * check_instance_lock); restore only from vm_state `soft-delete` with no task (Nova's
 * 409 naming the state otherwise, whatever the interval); forceDelete from any vm_state
 * with no task pending (Nova's check_instance_state(task_state=None)).
 */
import type { FastifyRequest } from 'fastify';
import { startSoftDelete } from '../db/server-changes.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { deleteNow } from '../instance-delete.ts';
import { computeAgentAlive } from '../scheduler/compute.ts';
import {
  type ActionSpec,
  allows,
  announce,
  checkLock,
  instanceNotFound,
  invalidState,
  loadInstance,
  runAction,
} from './server-action-rules.ts';

const RESTORE: ActionSpec = {
  name: 'restore',
  task: 'restoring',
  rule: { vm: ['soft-delete'], tasks: [null] },
};
const FORCE_DELETE = { name: 'forceDelete', rule: { vm: 'any', tasks: [null] } } as const;

/** Starts a soft delete; false when the server must be deleted at once instead. */
async function softDelete(deps: AppDeps, inst: InstanceRecord): Promise<boolean> {
  if (inst.launchedAt === null || inst.host === '' || inst.vmState === 'soft-delete') return false;
  const now = deps.clock.now();
  if (!(await computeAgentAlive(deps.db, inst.host, now, deps.settings.agentDownTime)))
    return false;
  const started = await startSoftDelete(deps.db, inst.id, now);
  if (!started) return false;
  await announce(deps, started);
  return true;
}

async function hardDelete(deps: AppDeps, inst: InstanceRecord) {
  if (!(await deleteNow(deps, inst.id, deps.settings.agentDownTime)))
    throw instanceNotFound(inst.id);
}

export async function deleteServer(deps: AppDeps, req: FastifyRequest, id: string) {
  const inst = await loadInstance(deps, id);
  checkLock(req, inst);
  if ((deps.settings.reclaimInstanceInterval ?? 0) > 0 && (await softDelete(deps, inst))) return;
  await hardDelete(deps, inst);
}

export const restoreServer = (deps: AppDeps, req: FastifyRequest, inst: InstanceRecord) =>
  runAction(deps, req, inst, RESTORE);

export async function forceDeleteServer(deps: AppDeps, req: FastifyRequest, inst: InstanceRecord) {
  checkLock(req, inst);
  if (!allows(FORCE_DELETE.rule, inst)) throw invalidState(FORCE_DELETE, inst);
  await hardDelete(deps, inst);
}
