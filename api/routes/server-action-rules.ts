/**
 * What every server action checks before it starts a task: the server exists (404
 * otherwise), its lock (Nova's check_instance_lock: 409 "Instance <id> is locked" for a
 * non-admin), the vm_state/task_state Nova allows (409 naming the state), a host whose
 * compute agent is alive (409 otherwise); then the task starts with a new task_id in one
 * conditional UPDATE and its host is hinted.
 *
 * Invariants: the lock is checked before the state, as Nova's decorators nest; a
 * non-admin's task UPDATE requires the lock free too (`lockedRule`), so a lock that lands
 * after the check is honoured; a task whose conditional UPDATE loses a race answers the
 * lock or the state the row is in then, never a stale one; an admin is never refused for
 * a lock.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { UUID } from '../../contracts/schema.ts';
import type { TaskState } from '../../contracts/servers.ts';
import { startTask, type TaskRule } from '../db/server-tasks.ts';
import { getInstanceRow, type InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { hintInstance } from '../hints.ts';
import { owns } from '../policy.ts';
import { computeAgentAlive } from '../scheduler/compute.ts';

export const bad = (message: string) => new ApiError('BadRequest', message);
export const conflict = (message: string) => new ApiError('Conflict', message);

export function instanceNotFound(id: string): ApiError {
  return new ApiError('NotFound', `Instance ${id} could not be found.`);
}

/**
 * The live server `id` as the caller may see it: another project's server is answered
 * exactly as a missing one (Nova's admin_or_owner rules), so its existence never leaks.
 */
export async function loadInstance(
  deps: AppDeps,
  req: FastifyRequest,
  id: string,
): Promise<InstanceRecord> {
  const inst = UUID.test(id) ? await getInstanceRow(deps.db, id) : undefined;
  if (!inst || inst.deletedAt !== null || !owns(req, inst.projectId)) throw instanceNotFound(id);
  return inst;
}

export interface ActionSpec {
  /** Nova's name for it in "Cannot '<name>' instance …". */
  name: string;
  task: TaskState;
  rule: TaskRule;
}

export function invalidState(
  spec: Pick<ActionSpec, 'name' | 'rule'>,
  inst: InstanceRecord,
): ApiError {
  const [attr, state] =
    spec.rule.vm !== 'any' && !spec.rule.vm.includes(inst.vmState)
      ? ['vm_state', inst.vmState]
      : ['task_state', inst.taskState];
  return conflict(`Cannot '${spec.name}' instance ${inst.id} while it is in ${attr} ${state}`);
}

export const allows = (rule: TaskRule, inst: InstanceRecord) =>
  (rule.vm === 'any' || rule.vm.includes(inst.vmState)) &&
  (rule.tasks === 'any' || rule.tasks.includes(inst.taskState));

export const notReady = (inst: InstanceRecord) => conflict(`Instance ${inst.id} is not ready.`);

/** Nova's check_instance_lock: a locked server refuses a non-admin. */
export function checkLock(req: FastifyRequest, inst: InstanceRecord) {
  if (inst.lockedBy !== null && req.role !== 'admin')
    throw conflict(`Instance ${inst.id} is locked`);
}

/** `rule` as the caller's UPDATE must meet it: a non-admin's only while unlocked. */
export const lockedRule = (req: FastifyRequest, rule: TaskRule): TaskRule => ({
  ...rule,
  unlocked: req.role !== 'admin',
});

/** The instance's host, if its compute agent can be asked now (409 otherwise). */
export async function liveHost(deps: AppDeps, inst: InstanceRecord): Promise<string> {
  if (inst.host === '' || inst.taskState === 'scheduling') throw notReady(inst);
  if (!(await computeAgentAlive(deps.db, inst.host, deps.clock.now(), deps.settings.agentDownTime)))
    throw conflict(
      `Service is unavailable at this time: the compute agent on ${inst.host} is not alive.`,
    );
  return inst.host;
}

/** Everything before a task starts: lock, state, a live host (see the module invariants). */
export async function checkAction(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  spec: Pick<ActionSpec, 'name' | 'rule'>,
) {
  checkLock(req, inst);
  if (!allows(spec.rule, inst)) throw invalidState(spec, inst);
  await liveHost(deps, inst);
}

/** The error of a task whose conditional UPDATE found the row moved on (or locked). */
export async function lostRace(
  deps: AppDeps,
  req: FastifyRequest,
  id: string,
  spec: Pick<ActionSpec, 'name' | 'rule'>,
) {
  const current = await loadInstance(deps, req, id);
  checkLock(req, current);
  return current.host === '' ? notReady(current) : invalidState(spec, current);
}

/** Logs a started task and hints its host. */
export async function announce(deps: AppDeps, started: InstanceRecord) {
  const ctx = { instanceId: started.id, task: started.taskState, taskId: started.taskId };
  deps.log.info(ctx, 'task started');
  await hintInstance(deps, started.host, started.id, started.taskId);
}

/** Starts `spec`'s task on the server after every check. */
export async function runAction(
  deps: AppDeps,
  req: FastifyRequest,
  inst: InstanceRecord,
  spec: ActionSpec,
) {
  await checkAction(deps, req, inst, spec);
  const rule = lockedRule(req, spec.rule);
  const started = await startTask(deps.db, inst.id, spec.task, rule, deps.clock.now());
  if (!started) throw await lostRace(deps, req, inst.id, spec);
  await announce(deps, started);
}
