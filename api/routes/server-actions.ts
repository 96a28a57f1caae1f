/**
 * What a Nova server request checks and changes beyond reading: the references of a
 * create (flavor, image, networks, ports), DELETE /servers/{id}, and
 * POST /servers/{id}/action (reboot, os-stop, os-start, pause, unpause, suspend, resume,
 * os-getConsoleOutput).
 *
 * Invariants: every reference is resolved read-only and refused with Nova's status and a
 * message naming it; an action starts a task only from the vm_state/task_state Nova
 * allows (409 naming the state otherwise), only on a host whose compute agent is alive,
 * and every new task gets a new task_id and a hint to that host; a delete never waits
 * for a dead agent (Nova's local delete: the agent's resync removes what is left).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, TransientError } from '../../contracts/errors.ts';
import { hostQueue } from '../../contracts/messages.ts';
import { isPlainObject, UUID, ValidationError } from '../../contracts/schema.ts';
import {
  ConsoleOutputAction,
  ConsoleOutputResult,
  type InstanceImage,
  type NetworkRequest,
  RebootAction,
  refId,
  SERVER_ACTIONS,
  type TaskState,
} from '../../contracts/servers.ts';
import type { AppDeps } from '../app.ts';
import { getFlavor, listFlavors } from '../db/flavors.ts';
import { getImage, type ImageRecord } from '../db/images.ts';
import type { Db } from '../db/index.ts';
import { getNetwork, listNetworks } from '../db/networks.ts';
import { getPort } from '../db/ports.ts';
import {
  type FlavorSnapshot,
  getInstanceRow,
  type ImageMeta,
  type InstanceRecord,
  startTask,
  type TaskRule,
} from '../db/servers.ts';
import { listSubnets, planOf } from '../db/subnets.ts';
import { canonicalIp, contains, parseIp } from '../ipam.ts';
import { finishDelete, hintInstance } from '../rpc-compute.ts';
import { COMPUTE_AGENT, computeAgentAlive, type Nic } from '../scheduler/compute.ts';

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

/* ------------------------------------------------------------- create refs */

/** The id a ref names; a malformed %-escape is the field's 400, not a 500. */
function idOf(ref: string, field: 'flavorRef' | 'imageRef'): string {
  try {
    return refId(ref);
  } catch {
    throw bad(`Invalid ${field} provided: '${ref}' is not an id or a URL.`);
  }
}

/** flavorRef: a flavor id (or URL), or else a flavor name. */
export async function resolveFlavor(db: Db, ref: string): Promise<FlavorSnapshot> {
  const id = idOf(ref, 'flavorRef');
  const f = (await getFlavor(db, id)) ?? (await listFlavors(db, {})).find((x) => x.name === id);
  if (!f) throw bad(`Invalid flavorRef provided: flavor ${id} could not be found.`);
  return { id: f.id, name: f.name, vcpus: f.vcpus, ram: f.ram, disk: f.disk };
}

/** `label` names the image in errors: "Image <id>", "Kernel image <id> (kernel_id …)". */
function snapshot(img: ImageRecord, label: string): InstanceImage {
  const { checksum, os_hash_value: hash, size, disk_format: format } = img;
  if (img.status !== 'active' || checksum === null || hash === null || size === null)
    throw bad(`${label} is not active.`);
  if (format === null) throw bad(`${label} has no disk_format.`);
  return {
    id: img.id,
    checksum,
    os_hash_algo: 'sha512',
    os_hash_value: hash,
    size,
    disk_format: format,
  };
}

async function imageOf(db: Db, id: string, label: string): Promise<InstanceImage> {
  const img = UUID.test(id) ? await getImage(db, id) : undefined;
  if (!img) throw bad(`${label} could not be found.`);
  return snapshot(img, label);
}

/** imageRef: an active image with data, its kernel/ramdisk too; Nova's flavor checks. */
export async function resolveImage(db: Db, ref: string, flavor: FlavorSnapshot) {
  const id = idOf(ref, 'imageRef');
  if (!UUID.test(id)) throw bad(`Invalid imageRef provided: ${id} is not an image id.`);
  const img = await getImage(db, id);
  if (!img) throw bad(`Image ${id} could not be found.`);
  const image = snapshot(img, `Image ${id}`);
  if (flavor.ram < img.min_ram) throw bad("Flavor's memory is too small for requested image.");
  if (flavor.disk > 0 && (flavor.disk < img.min_disk || flavor.disk * 1024 ** 3 < image.size))
    throw bad(
      `Flavor's disk is too small for requested image. Flavor disk is ${flavor.disk * 1024 ** 3} bytes, image is ${image.size} bytes.`,
    );
  const { kernel_id: k, ramdisk_id: r, os_command_line: cmdline } = img.properties;
  const meta: ImageMeta = {
    image,
    kernel:
      k === undefined ? null : await imageOf(db, k, `Kernel image ${k} (kernel_id of image ${id})`),
    ramdisk:
      r === undefined
        ? null
        : await imageOf(db, r, `Ramdisk image ${r} (ramdisk_id of image ${id})`),
    cmdline: cmdline ?? null,
  };
  return meta;
}

async function checkFixedIp(db: Db, networkId: string, raw: string, seen: Set<string>) {
  const text = canonicalIp(raw);
  const ip = parseIp(raw);
  if (!text || !ip) throw bad(`Invalid fixed IP address (${raw})`);
  const subnets = await listSubnets(db, { columns: { network_id: [networkId] }, clauses: [] });
  if (!subnets.some((s) => contains(planOf(s).cidr, ip)))
    throw bad(`Fixed IP ${text} is not a valid ip address for network ${networkId}.`);
  const [used] = await db.query<{ device_id: string }>(
    `SELECT p.device_id FROM ipallocations a JOIN ports p ON p.id = a.port_id
      WHERE a.network_id = ? AND a.ip_address = ?`,
    [networkId, text],
  );
  if (used) throw bad(`Fixed IP address ${text} is already in use on instance ${used.device_id}.`);
  if (seen.has(text)) throw bad(`Fixed IP address ${text} is requested more than once.`);
  seen.add(text);
  return text;
}

async function networkNic(db: Db, id: string): Promise<Nic> {
  const net = await getNetwork(db, id);
  if (!net) throw bad(`Network ${id} could not be found.`);
  if (net.subnets.length === 0)
    throw bad(`Network ${id} requires a subnet in order to boot instances on.`);
  return { kind: 'network', networkId: id };
}

/** networks: new ports on networks, existing unused ports, "auto" (the only one), "none". */
export async function resolveNics(
  db: Db,
  networks: NetworkRequest[] | 'auto' | 'none' | undefined,
): Promise<Nic[]> {
  if (networks === undefined || networks === 'none') return [];
  if (networks === 'auto') {
    const nets = await listNetworks(db, { columns: { external: [false] }, clauses: [] });
    if (nets.length > 1)
      throw conflict('Multiple possible networks found, use a Network ID to be more specific.');
    if (!nets[0]) throw bad('Unable to automatically allocate a network: there is no network.');
    return [await networkNic(db, nets[0].id)];
  }
  const nics: Nic[] = [];
  const ips = new Set<string>();
  for (const n of networks) {
    if (n.port !== undefined) {
      const port = await getPort(db, n.port);
      if (!port) throw bad(`Port id ${n.port} could not be found.`);
      if (port.device_id !== '' || nics.some((x) => x.kind === 'port' && x.portId === n.port))
        throw conflict(`Port ${n.port} is still in use.`);
      nics.push({ kind: 'port', portId: port.id });
    } else {
      const nic = await networkNic(db, n.uuid as string);
      if (n.fixed_ip !== undefined && nic.kind === 'network')
        nic.fixedIp = await checkFixedIp(db, nic.networkId, n.fixed_ip, ips);
      nics.push(nic);
    }
  }
  return nics;
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

/** The instance's host, if its compute agent can be asked now (409 otherwise). */
async function liveHost(deps: AppDeps, inst: InstanceRecord): Promise<string> {
  if (inst.host === '' || inst.taskState === 'scheduling')
    throw conflict(`Instance ${inst.id} is not ready.`);
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
  if (!started) throw invalidState(spec, await loadInstance(deps, inst.id));
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

export function serverActionRoutes(scope: FastifyInstance, deps: AppDeps) {
  scope.post('/servers/:id/action', (req: FastifyRequest<{ Params: { id: string } }>, reply) =>
    action(deps, req, reply),
  );

  scope.delete('/servers/:id', async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const inst = await loadInstance(deps, req.params.id);
    const now = deps.clock.now();
    const started = await startTask(deps.db, inst.id, 'deleting', { vm: 'any', tasks: 'any' }, now);
    if (!started) throw instanceNotFound(inst.id);
    const local =
      started.host === '' ||
      inst.taskState === 'scheduling' ||
      !(await computeAgentAlive(deps.db, started.host, now, deps.settings.agentDownTime));
    deps.log.info({ instanceId: inst.id, host: started.host, local }, 'instance delete requested');
    if (local) await finishDelete(deps, started);
    else await hintInstance(deps, started.host, inst.id, started.taskId);
    return reply.status(204).send();
  });
}
