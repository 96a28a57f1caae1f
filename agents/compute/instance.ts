/**
 * One instance's reconcile: ask the API for it (get_instance), observe, plan, apply, and
 * tell the API what happened (update_instance: power_state from libvirt, the task_id it
 * observed, and the task it finished with the vm_state it leads to, its fault, its spawn
 * timings, or `deleted`).
 *
 * Invariants:
 * - a task that succeeded is done at most once per agent process: its report is kept by
 *   task_id and sent again (with the current power state) when the same task comes back,
 *   so a lost or late report never makes a reboot happen twice; a failed task's report is
 *   kept the same way until the next full resync (`forgetFailures`), after which a task
 *   the API still has open (its report was lost) is tried again;
 * - a spawn that fails for any reason but a lost connection (libvirtd, OVSDB, broker:
 *   those retry) removes everything it made (domain, files, OVS ports) and reports ERROR
 *   with the reason (so does a spawn onto a uuid whose domain or directory is not ours,
 *   which is left alone); a delete that fails reports ERROR with the reason (the user may
 *   delete again); another task that fails reports the fault and leaves the vm_state as
 *   it was (Nova's reverts_task_state), and the host as it is;
 * - every report carries the spec's task_id as `observed_task_id`, so the API can drop a
 *   report overtaken by a newer task;
 * - a spawn waiting for its ports stops waiting when the instance is no longer spawning
 *   (deleted meanwhile): the next reconcile, already queued by the hint, tears it down;
 * - an instance in `onStart` (the host booted) stays there until one of its reconciles
 *   succeeds (the caller removes it), so a failed restart is retried as a restart;
 * - without a task the API hears from us only when the power state changed since our
 *   last report, or the host changed; about an instance it no longer knows, only that
 *   what was left of it has been removed (`deleted`).
 */

import type { InstanceSpec, UpdateInstanceArgs } from '../../contracts/instances.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { type ApplyDeps, applyInstance } from './apply.ts';
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
import {
  faultOf,
  getInstance,
  type Report,
  type RpcDeps,
  SpawnAborted,
  spawnTimings,
} from './rpc.ts';

interface Done {
  taskId: number;
  report: Report;
  /** The task failed: a resync forgets it, so it is tried again if the API still has it. */
  failed: boolean;
}

export interface InstanceState {
  /** id → the last task this process finished and what it reported. */
  done: Map<string, Done>;
  /** id → the power state last reported. */
  lastPower: Map<string, number>;
  /** Ids to run again if active and off: the host booted, and they are not reconciled since. */
  onStart: Set<string>;
}

/** Called by a full resync: failed tasks the API still has open run again. */
export function forgetFailures(state: InstanceState): void {
  for (const [id, d] of state.done) if (d.failed) state.done.delete(id);
}

export interface InstanceDeps extends ApplyDeps, RpcDeps {
  settings: ComputeSettings;
  state: InstanceState;
}

const TRANSIENT = new Set([
  'LibvirtConnectionError',
  'LibvirtTimeoutError',
  'OvsdbConnectionError',
  'OvsdbTimeoutError',
  'TransientError',
]);
const transient = (e: unknown) => e instanceof Error && TRANSIENT.has(e.name);

async function send(
  deps: InstanceDeps,
  id: string,
  spec: InstanceSpec | null,
  report: Report,
  power?: number,
) {
  const power_state = (power ??
    powerStateOf(await observeDomain(deps.libvirt, id))) as UpdateInstanceArgs['power_state'];
  const args: UpdateInstanceArgs = {
    host: deps.settings.host,
    instance_id: id,
    power_state,
    ...(spec ? { observed_task_id: spec.task_id } : {}),
    ...report,
  };
  await deps.broker.cast(PLUGIN_TOPIC, 'update_instance', args);
  deps.state.lastPower.set(id, power_state);
  deps.log.info({ instanceId: id, ...report, power_state }, 'instance reported');
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

type Outcome = { report: Report; failed: boolean } | null;

/** A failed spawn: everything it made is removed (best effort), and it ends in ERROR. */
async function failSpawn(deps: InstanceDeps, spec: InstanceSpec, e: unknown): Promise<Outcome> {
  deps.log.warn({ instanceId: spec.id, err: (e as Error).message }, 'spawn failed; tearing down');
  try {
    await teardown(deps, spec.id, spec);
  } catch (cleanup) {
    if (transient(cleanup)) throw cleanup;
    const err = (cleanup as Error).message;
    deps.log.warn({ instanceId: spec.id, err }, 'teardown after a failed spawn failed');
  }
  return {
    report: { task_done: spec.task_id, vm_state: 'error', fault: faultOf(e) },
    failed: true,
  };
}

/** Observes the instance and plans for its intent. */
async function observeAndPlan(
  deps: InstanceDeps,
  id: string,
  spec: InstanceSpec | null,
  onStart: boolean,
) {
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
  return { intent, desired, observed, plan };
}

/** Runs the plan; the report it leads to (null: a conflict without a task, nothing to say). */
async function run(
  deps: InstanceDeps,
  id: string,
  spec: InstanceSpec | null,
  onStart: boolean,
): Promise<Report | null> {
  const { intent, desired, observed, plan } = await observeAndPlan(deps, id, spec, onStart);
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
  return {
    ...(taskId !== undefined ? { task_done: taskId } : {}),
    ...(taskId !== undefined && plan.vmState ? { vm_state: plan.vmState } : {}),
    ...(booted ? { timings: spawnTimings(times) } : {}),
    ...(plan.deleted ? { deleted: true } : {}),
  };
}

/** Runs the instance's plan; a task's failure becomes its report (transient ones throw). */
async function attempt(
  deps: InstanceDeps,
  id: string,
  spec: InstanceSpec | null,
  taskId: number | undefined,
): Promise<Outcome> {
  try {
    const report = await run(deps, id, spec, deps.state.onStart.has(id));
    return report === null ? null : { report, failed: false };
  } catch (e) {
    if (e instanceof SpawnAborted) {
      deps.log.info({ instanceId: id }, 'spawn abandoned: the instance is no longer spawning');
      return null;
    }
    if (transient(e) || !spec || taskId === undefined) throw e;
    const intent = intentOf(spec);
    if (intent === 'spawn') return failSpawn(deps, spec, e);
    const vm_state = intent === 'absent' ? 'error' : spec.vm_state;
    return { report: { task_done: taskId, vm_state, fault: faultOf(e) }, failed: true };
  }
}

export async function reconcileInstance(deps: InstanceDeps, id: string): Promise<void> {
  const spec = await getInstance(deps, id);
  const taskId = spec?.task_state ? spec.task_id : undefined;
  const prior = deps.state.done.get(id);
  if (taskId !== undefined && prior?.taskId === taskId) return send(deps, id, spec, prior.report);
  const outcome = await attempt(deps, id, spec, taskId);
  if (outcome === null) return;
  const { report, failed } = outcome;
  if (spec === null) {
    deps.state.done.delete(id);
    deps.state.lastPower.delete(id);
    if (report.deleted) await send(deps, id, null, report);
    return;
  }
  if (taskId !== undefined) deps.state.done.set(id, { taskId, report, failed });
  const power = powerStateOf(await observeDomain(deps.libvirt, id));
  const changed = deps.state.lastPower.get(id) !== power;
  if (Object.keys(report).length > 0 || changed) await send(deps, id, spec, report, power);
}
