/**
 * lock / unlock (nova/api/openstack/compute/lock_server.py, compute/api.py lock, unlock,
 * is_expected_locked_by): 202, no body.
 *
 * Invariants: what happens is decided by the conditional UPDATE (server-changes.ts lockAs,
 * unlockAs), never by the row read before it, so two racing callers cannot both win on
 * a stale lock; a non-admin's lock of a locked server changes nothing (Nova keeps the
 * first locker); only an admin may lift a lock that is not the caller's kind (Nova's
 * unlock_override policy, 403 otherwise); a server gone meanwhile is Nova's 404; lock
 * state never starts a task. `owner` is Nova's is_owner: the caller's project is the
 * server's (an admin in its own project locks as owner, as in Nova).
 */
import type { FastifyRequest } from 'fastify';
import { LockAction, UnlockAction } from '../../contracts/server-actions.ts';
import { lockAs, unlockAs } from '../db/server-changes.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { requireAdminNova } from './nova.ts';
import { loadInstance } from './server-action-rules.ts';

/**
 * Nova's is_owner: a non-admin (who only reaches its project's servers) or an admin with a
 * token of the server's project locks as `owner`; any other admin, and the static
 * admin_token (an operator's, of no project), as `admin`.
 */
const kindOf = (req: FastifyRequest, inst: InstanceRecord) =>
  req.role !== 'admin' || (req.caller.kind === 'token' && req.caller.projectId === inst.projectId)
    ? 'owner'
    : 'admin';

const logged = (deps: AppDeps, id: string, by: InstanceRecord['lockedBy']) =>
  deps.log.info({ instanceId: id, lockedBy: by }, by ? 'instance locked' : 'instance unlocked');

export async function lockServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  body: unknown,
) {
  LockAction.parse(body);
  const by = kindOf(req, inst);
  if (await lockAs(deps.db, inst.id, by, deps.clock.now())) return logged(deps, inst.id, by);
  await loadInstance(deps, req, inst.id);
}

export async function unlockServer(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  body: unknown,
) {
  UnlockAction.parse(body);
  if (await unlockAs(deps.db, inst.id, kindOf(req, inst), deps.clock.now()))
    return logged(deps, inst.id, null);
  await loadInstance(deps, req, inst.id);
  requireAdminNova(req, 'os_compute_api:os-lock-server:unlock:unlock_override');
  if (await unlockAs(deps.db, inst.id, 'admin', deps.clock.now()))
    return logged(deps, inst.id, null);
  await loadInstance(deps, req, inst.id);
}
