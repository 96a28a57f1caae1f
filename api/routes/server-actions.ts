/**
 * What a Nova server request changes beyond create and rename: DELETE /servers/{id} and
 * POST /servers/{id}/action (reboot, os-stop, os-start, pause, unpause, suspend, resume,
 * os-getConsoleOutput). The references of a create are checked in server-refs.ts.
 *
 * Invariants: an action starts a task only from the vm_state/task_state Nova allows (409
 * naming the state otherwise), only on a server that has a host whose compute agent is
 * alive (a server whose build failed can only be deleted), and every new task gets a new
 * task_id and a hint to that host; a delete never waits for a dead agent (Nova's local
 * delete: the agent's resync removes what is left), and whether it is local is decided
 * from the row the delete's own UPDATE left, never from an earlier read.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, TransientError } from '../../contracts/errors.ts';
import { ConsoleOutputResult } from '../../contracts/instances.ts';
import { hostQueue } from '../../contracts/messages.ts';
import { isPlainObject, UUID, ValidationError } from '../../contracts/schema.ts';
import {
  ConsoleOutputAction,
  RebootAction,
  SERVER_ACTIONS,
  type TaskState,
} from '../../contracts/servers.ts';
import { startDelete, startTask, type TaskRule } from '../db/server-tasks.ts';
import { getInstanceRow, type InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { hintInstance } from '../hints.ts';
import { finishDelete } from '../instance-ports.ts';
import { COMPUTE_AGENT, computeAgentAlive } from '../scheduler/compute.ts';

const bad = (message: string) => new ApiError('BadRequest', message);
const conflict = (message: string) => new ApiError('Conflict', message);

export function instanceNotFound(id: string): ApiError {
  return new ApiError('NotFound', `Instance ${id} could not be found.`);
}

export async function loadInstance(deps: AppDeps, id: string): Promise<InstanceRecord> {
  const inst = UUID.test(id) ? await getInstanceRow(deps.db, id) : undefined;
  if (!inst || inst.deletedAt !== null) throw instanceNotFound(id);
  return inst;
}

/* ------------------------------------------------------------------ actions */

interface ActionSpec {
  /** Nova's name for it in "Cannot '<name>' instance …". */
  name: string;
  task: TaskState;
  rule: TaskRule;
}

const simple = (
  name: string,
  key: keyof typeof SERVER_ACTIONS,
  vm: 'active' | 'stopped' | 'paused' | 'suspended',
): ActionSpec => ({
  name,
  task: SERVER_ACTIONS[key] as TaskState,
  rule: { vm: [vm], tasks: [null] },
});

/** Nova's check_instance_state for each action (nova/compute/api.py). */
const ACTIONS: Record<string, ActionSpec> = {
  'os-stop': simple('stop', 'os-stop', 'active'),
  'os-start': simple('start', 'os-start', 'stopped'),
  pause: simple('pause', 'pause', 'active'),
  unpause: simple('unpause', 'unpause', 'paused'),
  suspend: simple('suspend', 'suspend', 'active'),
  resume: simple('resume', 'resume', 'suspended'),
};
const SOFT_REBOOT: ActionSpec = {
  name: 'reboot',
  task: 'rebooting',
  rule: { vm: ['active'], tasks: [null] },
};
/** ALLOW_HARD_REBOOT vm_states and task_states.ALLOW_REBOOT: a hard reboot overrides. */
const HARD_REBOOT: ActionSpec = {
  name: 'reboot',
  task: 'rebooting_hard',
  rule: {
    vm: ['active', 'stopped', 'paused', 'suspended', 'error'],
    tasks: [null, 'rebooting', 'rebooting_hard', 'resuming', 'unpausing', 'pausing', 'suspending'],
  },
};

function invalidState(spec: Pick<ActionSpec, 'name' | 'rule'>, inst: InstanceRecord): ApiError {
  const [attr, state] =
    spec.rule.vm !== 'any' && !spec.rule.vm.includes(inst.vmState)
      ? ['vm_state', inst.vmState]
      : ['task_state', inst.taskState];
  return conflict(`Cannot '${spec.name}' instance ${inst.id} while it is in ${attr} ${state}`);
}

const allows = (rule: TaskRule, inst: InstanceRecord) =>
  (rule.vm === 'any' || rule.vm.includes(inst.vmState)) &&
  (rule.tasks === 'any' || rule.tasks.includes(inst.taskState));

const notReady = (inst: InstanceRecord) => conflict(`Instance ${inst.id} is not ready.`);

/** The instance's host, if its compute agent can be asked now (409 otherwise). */
async function liveHost(deps: AppDeps, inst: InstanceRecord): Promise<string> {
  if (inst.host === '' || inst.taskState === 'scheduling') throw notReady(inst);
  if (!(await computeAgentAlive(deps.db, inst.host, deps.clock.now(), deps.settings.agentDownTime)))
    throw conflict(
      `Service is unavailable at this time: the compute agent on ${inst.host} is not alive.`,
    );
  return inst.host;
}

async function runAction(deps: AppDeps, inst: InstanceRecord, spec: ActionSpec) {
  if (!allows(spec.rule, inst)) throw invalidState(spec, inst);
  await liveHost(deps, inst);
  const started = await startTask(deps.db, inst.id, spec.task, spec.rule, deps.clock.now());
  if (!started) {
    const current = await loadInstance(deps, inst.id);
    throw current.host === '' ? notReady(current) : invalidState(spec, current);
  }
  deps.log.info({ instanceId: inst.id, task: spec.task, taskId: started.taskId }, 'task started');
  await hintInstance(deps, started.host, inst.id, started.taskId);
}

async function consoleOutput(deps: AppDeps, inst: InstanceRecord, length: number | undefined) {
  if (inst.taskState === 'deleting')
    throw invalidState({ name: 'get_console_output', rule: { vm: 'any', tasks: [] } }, inst);
  const host = await liveHost(deps, inst);
  if (!deps.broker.call)
    throw new ApiError('ServiceUnavailable', 'Console output needs an AMQP RPC client.');
  let reply: unknown;
  try {
    reply = await deps.broker.call(hostQueue(COMPUTE_AGENT.topic, host), 'get_console_output', {
      instance_id: inst.id,
      ...(length === undefined ? {} : { length }),
    });
  } catch (e) {
    const err = e as Error;
    if (err instanceof TransientError)
      throw new ApiError(
        'ServiceUnavailable',
        `The compute agent on ${host} did not answer for the console output of instance ${inst.id}: ${err.message}`,
      );
    throw conflict(`Console output of instance ${inst.id} is not available: ${err.message}`);
  }
  try {
    return ConsoleOutputResult.parse(reply);
  } catch (e) {
    throw new ApiError(
      'InternalError',
      `The compute agent on ${host} answered badly: ${(e as Error).message}`,
    );
  }
}

/** Nova's action bodies carry null (or an empty object) for actions without arguments. */
function noArguments(key: string, value: unknown) {
  if (value !== null && !(isPlainObject(value) && Object.keys(value).length === 0))
    throw new ValidationError(key, 'must be null');
}

async function action(
  deps: AppDeps,
  req: FastifyRequest<{ Params: { id: string } }>,
  reply: FastifyReply,
) {
  const body = req.body;
  if (!isPlainObject(body) || Object.keys(body).length !== 1)
    throw bad('Invalid input: the action body must be an object with exactly one action.');
  const key = Object.keys(body)[0] as string;
  const inst = await loadInstance(deps, req.params.id);
  if (key === 'os-getConsoleOutput') {
    const length = ConsoleOutputAction.parse(body)['os-getConsoleOutput'].length ?? undefined;
    return reply.status(200).send(await consoleOutput(deps, inst, length));
  }
  let spec: ActionSpec | undefined;
  if (key === 'reboot') {
    spec = RebootAction.parse(body).reboot.type === 'HARD' ? HARD_REBOOT : SOFT_REBOOT;
  } else {
    spec = Object.hasOwn(ACTIONS, key) ? ACTIONS[key] : undefined;
    if (!spec) throw bad(`There is no such action: ${key}`);
    noArguments(key, body[key]);
  }
  await runAction(deps, inst, spec);
  return reply.status(202).send();
}

/** Starts the delete; local when the row has no host (left it in the delete's own UPDATE,
 * or never had one) or its agent is dead, else a hint to the host. */
async function deleteServer(deps: AppDeps, id: string) {
  const inst = await loadInstance(deps, id);
  const now = deps.clock.now();
  const started = await startDelete(deps.db, inst.id, now);
  if (!started) throw instanceNotFound(inst.id);
  const local =
    started.host === '' ||
    !(await computeAgentAlive(deps.db, started.host, now, deps.settings.agentDownTime));
  deps.log.info({ instanceId: inst.id, host: started.host, local }, 'instance delete requested');
  if (local) await finishDelete(deps, started);
  else await hintInstance(deps, started.host, inst.id, started.taskId);
}

export function serverActionRoutes(scope: FastifyInstance, deps: AppDeps) {
  scope.post('/servers/:id/action', (req: FastifyRequest<{ Params: { id: string } }>, reply) =>
    action(deps, req, reply),
  );

  scope.delete('/servers/:id', async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    await deleteServer(deps, req.params.id);
    return reply.status(204).send();
  });
}
