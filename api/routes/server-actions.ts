/**
 * POST /servers/{id}/action and DELETE /servers/{id}: the power actions (reboot, os-stop,
 * os-start, pause, unpause, suspend, resume) and os-getConsoleOutput here; lock/unlock
 * (server-lock.ts), rebuild (server-rebuild.ts), the security groups
 * (server-secgroups.ts), delete, restore and forceDelete (server-soft-delete.ts); what
 * every task checks first is in server-action-rules.ts. The references of a create are
 * checked in server-refs.ts.
 *
 * Invariants: an action starts a task only from the vm_state/task_state Nova allows (409
 * naming the state otherwise), on a server not locked against the caller, only on a
 * server that has a host whose compute agent is alive (a server whose build failed can
 * only be deleted), and every new task gets a new task_id and a hint to that host.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, TransientError } from '../../contracts/errors.ts';
import { ConsoleOutputResult } from '../../contracts/instances.ts';
import { hostQueue } from '../../contracts/messages.ts';
import { isPlainObject, ValidationError } from '../../contracts/schema.ts';
import {
  ConsoleOutputAction,
  RebootAction,
  SERVER_ACTIONS,
  type TaskState,
} from '../../contracts/servers.ts';
import type { InstanceRecord } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { COMPUTE_AGENT } from '../scheduler/compute.ts';
import {
  type ActionSpec,
  bad,
  conflict,
  invalidState,
  liveHost,
  loadInstance,
  runAction,
} from './server-action-rules.ts';
import { lockServer, unlockServer } from './server-lock.ts';
import { rebuildServer } from './server-rebuild.ts';
import { changeSecurityGroup } from './server-secgroups.ts';
import { deleteServer, forceDeleteServer, restoreServer } from './server-soft-delete.ts';

export { instanceNotFound, loadInstance } from './server-action-rules.ts';

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

async function askConsole(deps: AppDeps, host: string, id: string, length: number | undefined) {
  if (!deps.broker.call)
    throw new ApiError('ServiceUnavailable', 'Console output needs an AMQP RPC client.');
  try {
    return await deps.broker.call(hostQueue(COMPUTE_AGENT.topic, host), 'get_console_output', {
      instance_id: id,
      ...(length === undefined ? {} : { length }),
    });
  } catch (e) {
    const err = e as Error;
    if (err instanceof TransientError)
      throw new ApiError(
        'ServiceUnavailable',
        `The compute agent on ${host} did not answer for the console output of instance ${id}: ${err.message}`,
      );
    throw conflict(`Console output of instance ${id} is not available: ${err.message}`);
  }
}

async function consoleOutput(deps: AppDeps, inst: InstanceRecord, length: number | undefined) {
  if (inst.taskState === 'deleting')
    throw invalidState({ name: 'get_console_output', rule: { vm: 'any', tasks: [] } }, inst);
  const host = await liveHost(deps, inst);
  const reply = await askConsole(deps, host, inst.id, length);
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

/** The power action a body names (400 for one Kumo does not have). */
function powerSpec(key: string, body: Record<string, unknown>): ActionSpec {
  if (key === 'reboot')
    return RebootAction.parse(body).reboot.type === 'HARD' ? HARD_REBOOT : SOFT_REBOOT;
  const spec = Object.hasOwn(ACTIONS, key) ? ACTIONS[key] : undefined;
  if (!spec) throw bad(`There is no such action: ${key}`);
  noArguments(key, body[key]);
  return spec;
}

type ById = FastifyRequest<{ Params: { id: string } }>;

/** Actions that answer with a body (200, or rebuild's 202 with the server). */
async function answered(deps: AppDeps, req: ById, reply: FastifyReply, key: string) {
  const body = req.body as Record<string, unknown>;
  const inst = await loadInstance(deps, req, req.params.id);
  if (key === 'os-getConsoleOutput') {
    const length = ConsoleOutputAction.parse(body)['os-getConsoleOutput'].length ?? undefined;
    return reply.status(200).send(await consoleOutput(deps, inst, length));
  }
  return reply.status(202).send(await rebuildServer(deps, req, inst, body));
}

/** Actions that answer 202 without a body. */
async function accepted(deps: AppDeps, req: ById, key: string) {
  const body = req.body as Record<string, unknown>;
  const inst = await loadInstance(deps, req, req.params.id);
  switch (key) {
    case 'lock':
      return lockServer(deps, req, inst, body);
    case 'unlock':
      return unlockServer(deps, req, inst, body);
    case 'addSecurityGroup':
    case 'removeSecurityGroup':
      return changeSecurityGroup(deps, inst, key, body);
    case 'restore':
      noArguments(key, body[key]);
      return restoreServer(deps, req, inst);
    case 'forceDelete':
      noArguments(key, body[key]);
      return forceDeleteServer(deps, req, inst);
    default:
      return runAction(deps, req, inst, powerSpec(key, body));
  }
}

async function action(deps: AppDeps, req: ById, reply: FastifyReply) {
  const body = req.body;
  if (!isPlainObject(body) || Object.keys(body).length !== 1)
    throw bad('Invalid input: the action body must be an object with exactly one action.');
  const key = Object.keys(body)[0] as string;
  if (key === 'os-getConsoleOutput' || key === 'rebuild') return answered(deps, req, reply, key);
  await accepted(deps, req, key);
  return reply.status(202).send();
}

export function serverActionRoutes(scope: FastifyInstance, deps: AppDeps) {
  scope.post('/servers/:id/action', (req: ById, reply) => action(deps, req, reply));

  scope.delete('/servers/:id', async (req: ById, reply) => {
    await deleteServer(deps, req, req.params.id);
    return reply.status(204).send();
  });
}
