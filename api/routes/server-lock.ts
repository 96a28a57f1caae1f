/**
 * lock / unlock (nova/api/openstack/compute/lock_server.py, compute/api.py lock, unlock,
 * is_expected_locked_by): 202, no body. Kumo has one project, so the role stands for
 * Nova's owner test: an admin's lock is `admin`, anyone else's `owner`.
 *
 * Invariants: what happens is decided by the conditional UPDATE (server-changes.ts lockAs,
 * unlockAs), never by the row read before it, so two racing callers cannot both win on
 * a stale lock; a non-admin's lock of a locked server changes nothing (Nova keeps the
 * first locker); only an admin may lift a lock that is not the caller's kind (Nova's
 * unlock_override policy, 403 otherwise); a server gone meanwhile is Nova's 404; lock
 * state never starts a task.
 */
import type { FastifyRequest } from 'fastify';
import { LockAction, UnlockAction } from '../../contracts/server-actions.ts';
import { lockAs, unlockAs } from '../db/server-changes.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { requireAdminNova } from './nova.ts';
import { loadInstance } from './server-action-rules.ts';

const kindOf = (req: FastifyRequest) => (req.role === 'admin' ? 'admin' : 'owner');

const logged = (deps: AppDeps, id: string, by: InstanceRecord['lockedBy']) =>
  deps.log.info({ instanceId: id, lockedBy: by }, by ? 'instance locked' : 'instance unlocked');

export async function lockServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  body: unknown,
) {
  LockAction.parse(body);
  const by = kindOf(req);
  if (await lockAs(deps.db, inst.id, by, deps.clock.now())) return logged(deps, inst.id, by);
  await loadInstance(deps, inst.id);
}

export async function unlockServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  body: unknown,
) {
  UnlockAction.parse(body);
  if (await unlockAs(deps.db, inst.id, kindOf(req), deps.clock.now()))
    return logged(deps, inst.id, null);
  await loadInstance(deps, inst.id);
  requireAdminNova(req, 'os_compute_api:os-lock-server:unlock:unlock_override');
}
