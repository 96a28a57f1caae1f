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
 * check_instance_lock), and a non-admin's UPDATE requires it still free; restore only
 * from vm_state `soft-delete` with no task (Nova's 409 naming the state otherwise,
 * whatever the interval), without asking whether the host's agent is alive (Nova casts
 * anyway: the task waits for the agent), and a server without a host is restored at
 * once (Nova's API does it itself); forceDelete from any vm_state and any task_state
 * (Nova's check_instance_state(task_state=None)).
 */
import type { FastifyRequest } from 'fastify';
import { startRestore, startSoftDelete } from '../db/server-changes.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { deleteNow } from '../instance-delete.ts';
import { computeAgentAlive } from '../scheduler/compute.ts';
import {
  type ActionSpec,
  allows,
  announce,
  checkLock,
  conflict,
  invalidState,
  loadInstance,
  lockedRule,
} from './server-action-rules.ts';

const RESTORE: Pick<ActionSpec, 'name' | 'rule'> = {
  name: 'restore',
  rule: { vm: ['soft-delete'], tasks: [null] },
};

const unlockedFor = (req: FastifyRequest) => req.role !== 'admin';

/** Starts a soft delete; false when the server must be deleted at once instead. */
async function softDelete(deps: AppDeps, req: FastifyRequest, inst: InstanceRecord) {
  if (inst.launchedAt === null || inst.host === '' || inst.vmState === 'soft-delete') return false;
  const now = deps.clock.now();
  if (!(await computeAgentAlive(deps.db, inst.host, now, deps.settings.agentDownTime)))
    return false;
  const started = await startSoftDelete(deps.db, inst.id, now, unlockedFor(req));
  if (!started) return false;
  await announce(deps, started);
  return true;
}

/** Deletes now; a row its UPDATE did not take is gone (404) or was locked meanwhile (409). */
async function hardDelete(deps: AppDeps, req: FastifyRequest, inst: InstanceRecord) {
  if (await deleteNow(deps, inst.id, deps.settings.agentDownTime, unlockedFor(req))) return;
  await loadInstance(deps, req, inst.id);
  throw conflict(`Instance ${inst.id} is locked`);
}

export async function deleteServer(deps: AppDeps, req: FastifyRequest, id: string) {
  const inst = await loadInstance(deps, req, id);
  checkLock(req, inst);
  if ((deps.settings.reclaimInstanceInterval ?? 0) > 0 && (await softDelete(deps, req, inst)))
    return;
  await hardDelete(deps, req, inst);
}

export async function restoreServer(deps: AppDeps, req: FastifyRequest, inst: InstanceRecord) {
  checkLock(req, inst);
  if (!allows(RESTORE.rule, inst)) throw invalidState(RESTORE, inst);
  const rule = lockedRule(req, RESTORE.rule);
  const started = await startRestore(deps.db, inst.id, rule, deps.clock.now());
  if (!started) {
    const current = await loadInstance(deps, req, inst.id);
    checkLock(req, current);
    throw invalidState(RESTORE, current);
  }
  if (started.taskState === 'restoring') return announce(deps, started);
  deps.log.info({ instanceId: inst.id }, 'instance without a host restored');
}

export async function forceDeleteServer(deps: AppDeps, req: FastifyRequest, inst: InstanceRecord) {
  checkLock(req, inst);
  await hardDelete(deps, req, inst);
}
