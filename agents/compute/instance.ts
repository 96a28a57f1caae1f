/**
 * One instance's reconcile: ask the API for it (get_instance), observe, plan, apply, and
 * tell the API what happened (update_instance: power_state from libvirt, and the task it
 * finished with the vm_state it leads to, its fault, its spawn timings, or `deleted`).
 *
 * Invariants:
 * - a task is done at most once per agent process: its report is kept by task_id and
 *   sent again (with the current power state) when the same task comes back, so a lost
 *   or late report never makes a reboot happen twice;
 * - a spawn that fails for any reason but a lost connection (libvirtd, OVSDB, broker:
 *   those retry) removes everything it made (domain, files, OVS ports) and reports ERROR
 *   with the reason (so does a spawn onto a uuid whose domain is not ours, which is left
 *   alone); another task that fails reports the fault and leaves the vm_state as it was
 *   (Nova's reverts_task_state), and the host as it is;
 * - a spawn waiting for its ports stops waiting when the instance is no longer spawning
 *   (deleted meanwhile): the next reconcile, already queued by the hint, tears it down;
 * - without a task the API hears from us only when the power state changed since our
 *   last report, or the host changed; about an instance it no longer knows, only that
 *   what was left of it has been removed (`deleted`).
 */

import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import {
  GetInstanceResult,
  type InstanceSpec,
  type SpawnTimings,
  type UpdateInstanceArgs,
} from '../../contracts/servers.ts';
import type { Broker } from '../../core/amqp.ts';
import { type ApplyDeps, applyInstance, type StepTimes } from './apply.ts';
import {
  type ComputeSettings,
  type DesiredInstance,
  desiredInstance,
  intentOf,
  pathsOf,
  vifMode,
} from './desired.ts';
import { tapName } from './domain.ts';
import { observeDomain, observeInstance } from './observe.ts';
import { planInstance, powerStateOf } from './plan.ts';

type Report = Omit<UpdateInstanceArgs, 'host' | 'instance_id' | 'power_state'>;

export interface InstanceState {
  /** id → the last task this process finished and what it reported. */
  done: Map<string, { taskId: number; report: Report }>;
  /** id → the power state last reported. */
  lastPower: Map<string, number>;
  /** Ids whose next reconcile is the one of the agent's start. */
  onStart: Set<string>;
}

export interface InstanceDeps extends ApplyDeps {
  broker: Pick<Broker, 'call' | 'cast'>;
  settings: ComputeSettings;
  state: InstanceState;
}

/** The instance stopped spawning while we waited for its ports. */
class SpawnAborted extends Error {
  override name = 'SpawnAborted';
}

const TRANSIENT = new Set([
  'LibvirtConnectionError',
  'LibvirtTimeoutError',
  'OvsdbConnectionError',
  'OvsdbTimeoutError',
  'TransientError',
]);
const transient = (e: unknown) => e instanceof Error && TRANSIENT.has(e.name);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function getInstance(deps: InstanceDeps, id: string): Promise<InstanceSpec | null> {
  const args = { host: deps.settings.host, instance_id: id };
  return GetInstanceResult.parse(await deps.broker.call(PLUGIN_TOPIC, 'get_instance', args))
    .instance;
}

/**
 * Polls the API until every port of the instance is ACTIVE: first after 50 ms (the L2
 * agent binds a port in tens of milliseconds), then backing off to one call every 500 ms.
 */
export async function waitPortsActive(deps: InstanceDeps, id: string): Promise<void> {
  const timeoutMs = deps.settings.vifPluggingTimeoutMs;
  const deadline = Date.now() + timeoutMs;
  for (let pause = 50; ; pause = Math.min(500, pause * 1.5)) {
    const spec = await getInstance(deps, id);
    if (spec === null || intentOf(spec) !== 'spawn')
      throw new SpawnAborted('the instance is no longer spawning');
    const waiting = spec.ports.filter((p) => p.status !== 'ACTIVE').map((p) => p.id);
    if (waiting.length === 0 || timeoutMs === 0) return;
    if (Date.now() >= deadline)
      throw new Error(
        `Virtual interface creation failed: port(s) ${waiting.join(', ')} not ACTIVE within ${timeoutMs / 1000} s (vif_plugging_timeout)`,
      );
    await sleep(pause);
  }
}

async function send(deps: InstanceDeps, id: string, report: Report, power?: number) {
  const power_state = (power ??
    powerStateOf(await observeDomain(deps.libvirt, id))) as UpdateInstanceArgs['power_state'];
  const args = { host: deps.settings.host, instance_id: id, power_state, ...report };
  await deps.broker.cast(PLUGIN_TOPIC, 'update_instance', args);
  deps.state.lastPower.set(id, power_state);
  deps.log.info({ instanceId: id, ...report, power_state }, 'instance reported');
}

function spawnTimings(t: StepTimes): SpawnTimings {
  return {
    image: (t.images ?? 0) + (t.files ?? 0),
    define: (t.define ?? 0) + (t.start ?? 0),
    plug: t.plug ?? 0,
    wait_port: t['wait-ports'] ?? 0,
    boot: t.resume ?? 0,
  };
}

/** Contract strings carry no control characters: newlines of stacks and libvirt become spaces. */
const oneLine = (s: string, max: number) =>
  s
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
    .trim()
    .slice(0, max);

function faultOf(e: unknown): NonNullable<Report['fault']> {
  if (!(e instanceof Error)) return { message: oneLine(String(e), 255) };
  const causes: string[] = [];
  for (let c: unknown = e.cause; c instanceof Error && causes.length < 5; c = c.cause)
    causes.push(`${c.name}: ${c.message}`);
  const details = [`${e.name}: ${e.message}`, ...causes.map((c) => `caused by ${c}`)];
  return { message: oneLine(e.message, 255), details: oneLine(details.join('; '), 65535) };
}

const tapsOf = (spec: InstanceSpec | null) => spec?.ports.map((p) => tapName(p.id)) ?? [];

/** Removes everything of the instance from the host (teardown plan, applied). */
async function teardown(deps: InstanceDeps, id: string, spec: InstanceSpec | null) {
  const nics = (spec?.ports ?? []).map((p) => ({
    portId: p.id,
    mac: p.mac_address,
    tap: tapName(p.id),
    mtu: p.mtu,
  }));
  const observed = await observeInstance(deps, id, pathsOf(deps.settings, id), {
    nics,
    ovs: true,
  });
  const plan = planInstance({
    intent: 'absent',
    desired: null,
    observed,
    host: deps.settings.host,
    vif: vifMode(deps.settings),
    onStart: false,
    vmState: null,
  });
  const target = { id, desired: null, taps: tapsOf(spec), dom: observed.domain?.dom ?? null };
  await applyInstance(deps, target, plan.steps);
}

async function failSpawn(deps: InstanceDeps, spec: InstanceSpec, e: unknown) {
  deps.log.warn({ instanceId: spec.id, err: (e as Error).message }, 'spawn failed; tearing down');
  await teardown(deps, spec.id, spec);
  const report: Report = { task_done: spec.task_id, vm_state: 'error', fault: faultOf(e) };
  deps.state.done.set(spec.id, { taskId: spec.task_id, report });
  await send(deps, spec.id, report);
}

async function run(
  deps: InstanceDeps,
  id: string,
  spec: InstanceSpec | null,
  onStart: boolean,
): Promise<Report | null> {
  const intent = intentOf(spec);
  const desired: DesiredInstance | null =
    spec && intent !== 'absent' ? desiredInstance(spec, deps.settings) : null;
  const vif = vifMode(deps.settings);
  const observed = await observeInstance(deps, id, desired?.paths ?? pathsOf(deps.settings, id), {
    nics: desired?.nics ?? [],
    ovs: intent === 'absent' || vif === 'ethernet',
  });
  const plan = planInstance({
    intent,
    desired,
    observed,
    host: deps.settings.host,
    vif,
    onStart,
    vmState: spec?.vm_state ?? null,
  });
  const taskId = spec?.task_state ? spec.task_id : undefined;
  if (plan.conflict !== undefined) {
    if (taskId === undefined) return null;
    const vmState = intent === 'spawn' ? 'error' : spec?.vm_state;
    return { task_done: taskId, vm_state: vmState, fault: faultOf(plan.conflict) };
  }
  if (plan.steps.length > 0)
    deps.log.info({ instanceId: id, intent, steps: plan.steps.map((s) => s.kind) }, 'apply');
  const target = { id, desired, taps: tapsOf(spec), dom: observed.domain?.dom ?? null };
  const times = await applyInstance(deps, target, plan.steps);
  const booted = intent === 'spawn' && plan.steps.some((s) => s.kind === 'resume');
  const report: Report = {
    ...(taskId !== undefined ? { task_done: taskId } : {}),
    ...(taskId !== undefined && plan.vmState ? { vm_state: plan.vmState } : {}),
    ...(booted ? { timings: spawnTimings(times) } : {}),
    ...(plan.deleted ? { deleted: true } : {}),
  };
  const quiet = taskId === undefined && !plan.deleted && plan.steps.length === 0;
  return quiet ? {} : report;
}

export async function reconcileInstance(deps: InstanceDeps, id: string): Promise<void> {
  const spec = await getInstance(deps, id);
  const onStart = deps.state.onStart.delete(id);
  const taskId = spec?.task_state ? spec.task_id : undefined;
  const prior = deps.state.done.get(id);
  if (taskId !== undefined && prior?.taskId === taskId) return send(deps, id, prior.report);
  let report: Report | null;
  try {
    report = await run(deps, id, spec, onStart);
  } catch (e) {
    if (e instanceof SpawnAborted) {
      deps.log.info({ instanceId: id }, 'spawn abandoned: the instance is no longer spawning');
      return;
    }
    if (transient(e) || !spec || taskId === undefined) throw e;
    if (intentOf(spec) === 'spawn') return failSpawn(deps, spec, e);
    report = { task_done: taskId, vm_state: spec.vm_state, fault: faultOf(e) };
  }
  if (report === null) return;
  if (spec === null) {
    deps.state.done.delete(id);
    deps.state.lastPower.delete(id);
    if (report.deleted) await send(deps, id, report);
    return;
  }
  if (taskId !== undefined) deps.state.done.set(id, { taskId, report });
  const power = powerStateOf(await observeDomain(deps.libvirt, id));
  const changed = deps.state.lastPower.get(id) !== power;
  if (Object.keys(report).length > 0 || changed) await send(deps, id, report, power);
}
