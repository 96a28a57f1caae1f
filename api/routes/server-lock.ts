/**
 * lock / unlock (nova/api/openstack/compute/lock_server.py, compute/api.py lock, unlock,
 * is_expected_locked_by): 202, no body. Kumo has one project, so the role stands for
 * Nova's owner test: an admin's lock is `admin`, anyone else's `owner`.
 *
 * Invariants: a non-admin's lock of a locked server changes nothing (Nova keeps the first
 * locker); only an admin may lift a lock that is not the caller's kind (Nova's
 * unlock_override policy, 403 otherwise); lock state never starts a task.
 */
import type { FastifyRequest } from 'fastify';
import { LockAction, UnlockAction } from '../../contracts/server-actions.ts';
import { setLockedBy } from '../db/server-changes.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { requireAdminNova } from './nova.ts';
import { instanceNotFound } from './server-action-rules.ts';

const kindOf = (req: FastifyRequest) => (req.role === 'admin' ? 'admin' : 'owner');

async function store(deps: AppDeps, inst: InstanceRecord, by: InstanceRecord['lockedBy']) {
  if (!(await setLockedBy(deps.db, inst.id, by, deps.clock.now()))) throw instanceNotFound(inst.id);
  deps.log.info(
    { instanceId: inst.id, lockedBy: by },
    by ? 'instance locked' : 'instance unlocked',
  );
}

export async function lockServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  body: unknown,
) {
  LockAction.parse(body);
  if (inst.lockedBy !== null && kindOf(req) === 'owner') return;
  await store(deps, inst, kindOf(req));
}

export async function unlockServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  body: unknown,
) {
  UnlockAction.parse(body);
  if (inst.lockedBy !== null && inst.lockedBy !== kindOf(req))
    requireAdminNova(req, 'os_compute_api:os-lock-server:unlock:unlock_override');
  await store(deps, inst, null);
}
