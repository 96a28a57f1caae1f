/**
 * The compute agent's resource kind `instance` for core/reconciler.ts: fetch (get_instance)
 * → target (pure, target.ts) → observe (read-only: domain, files, VIFs) → plan (pure) →
 * apply (runSteps with the agent's own step kinds) → report (update_instance, through the
 * status reporter: power_state from libvirt after the steps, the task_id it observed, and
 * the task it finished with its vm_state, fault, spawn timings, or `deleted`).
 *
 * Why one reconcile suffices for a spawn: the only thing a plan cannot observe up front is
 * a tap libvirt makes when the domain starts, so plugging is the phase step `plug-vifs`
 * (observe the VIFs, plan, run) inside the one step list; everything else is planned from
 * the first observation.
 *
 * Invariants:
 * - the hint's revision is the task_id: a hint for a task already applied is skipped, and
 *   a task this process finished (`ledger`) plans nothing and reports its outcome again
 *   (a lost or late report never makes a reboot happen twice); a failed task stays in the
 *   ledger until the next full resync (`forgetFailures`), which tries it again;
 * - errors by class: libvirt's and OVSDB's connection and timeout errors become a
 *   TransientError (retried, no status change); a task that fails is reported as the plan
 *   said (a spawn is torn down first and ends in ERROR) through a TaskFailedError, a
 *   PermanentError: not retried until the next resync; without a task, a PermanentError
 *   is not retried and any other error is (with backoff), and nothing is reported;
 * - a spawn waiting for its ports stops when the instance is no longer spawning (deleted
 *   meanwhile) and reports nothing: the next reconcile, queued by the hint, tears it down;
 * - an instance whose domain is not ours and that has no task is reported on never; one
 *   the API no longer knows only when what was left of it has been removed (`deleted`);
 * - its volume attachments are planned around its own steps (volume-plan.ts: secrets
 *   before, plugs and unplugs after) and, once an apply succeeded, each attachment of the
 *   spec is reported (report_status `attachment`, ACTIVE or ERROR, with its revision).
 */
import { PermanentError, TransientError } from '../../contracts/errors.ts';
import type { InstanceSpec, UpdateInstanceArgs } from '../../contracts/instances.ts';
import type { PowerState } from '../../contracts/servers.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { ResourceKindSpec } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import { classify } from '../lib/errors.ts';
import { type Applied, type ApplyDeps, runInstanceSteps } from './apply.ts';
import type { ComputeSettings } from './desired.ts';
import { type ObservedInstance, observeDomain, observeInstance } from './observe.ts';
import { failedTask, planInstance, powerStateOf, teardownSteps } from './plan.ts';
import { faultOf, type Report, spawnTimings, updateArgs } from './report.ts';
import { getInstance, type RpcDeps, SpawnAborted } from './rpc.ts';
import type { InstanceStep } from './steps.ts';
import {
  type FetchedInstance,
  type FinishedTask,
  type InstanceTarget,
  instanceTarget,
} from './target.ts';
import { planVolumes, volumeStatuses } from './volume-plan.ts';
import { observeVolumes } from './volumes.ts';

/** A task failed: what the API is told (vm_state and fault); not retried until a resync. */
export class TaskFailedError extends PermanentError {
  readonly update: UpdateInstanceArgs;
  constructor(update: UpdateInstanceArgs, cause: unknown) {
    super(update.fault?.message ?? 'task failed', { cause });
    this.name = 'TaskFailedError';
    this.update = update;
  }
}

/** Tasks this process finished, by instance id. */
export type TaskLedger = Map<string, FinishedTask>;

/** Called by a full resync: failed tasks the API still has open run again. */
export function forgetFailures(ledger: TaskLedger): void {
  for (const [id, d] of ledger) if (d.failed) ledger.delete(id);
}

export interface InstanceDeps extends ApplyDeps, RpcDeps {
  settings: ComputeSettings;
  reporter: StatusReporter<UpdateInstanceArgs>;
  ledger: TaskLedger;
  /** Ids to run again if active and off: the host booted, and they are not reconciled since. */
  onStart: ReadonlySet<string>;
  /** An apply of the instance succeeded. */
  applied(id: string): void;
  /**
   * report_status of attachments (`attachment:<id>`), sent after each successful apply;
   * absent (a harness of instances alone): not reported.
   */
  attachments?: StatusReporter<ResourceStatus>;
  /** The attachment ids each instance's last fetched spec listed (orphan secrets: resync). */
  volumeIds?: Map<string, ReadonlySet<string>>;
}

/** What an apply leaves for the report: the power state after it, and the task's report. */
interface Outcome {
  /** null: the domain is not ours (nothing to say about it without a task). */
  power: PowerState | null;
  report: Report | null;
  abandoned: boolean;
}

async function powerAfter(deps: InstanceDeps, id: string): Promise<PowerState | null> {
  const dom = await observeDomain(deps.libvirt, id);
  return dom && dom.meta?.host !== deps.settings.host ? null : powerStateOf(dom);
}

/** Removes what a failed spawn made (best effort; a daemon away is retried). */
async function tearDown(deps: InstanceDeps, target: InstanceTarget): Promise<void> {
  const t = { ...target, intent: 'absent' as const };
  try {
    const observed = await observeInstance(deps, t);
    await runInstanceSteps(deps, t.id, teardownSteps(t, observed));
  } catch (e) {
    const err = classify(e);
    if (err instanceof TransientError) throw err;
    deps.log.warn({ instanceId: t.id, err: err.message }, 'teardown after a failed task failed');
  }
}

async function failTask(
  deps: InstanceDeps,
  target: InstanceTarget,
  steps: readonly InstanceStep[],
  e: Error,
): Promise<never> {
  const onFailure = steps.find((s) => s.kind === 'report')?.onFailure;
  if (!onFailure) throw e;
  deps.log.warn({ instanceId: target.id, err: e.message }, 'task failed');
  if (onFailure.teardown) await tearDown(deps, target);
  const report: Report = { ...onFailure.report, fault: faultOf(e) };
  const taskId = report.task_done ?? null;
  if (taskId !== null) deps.ledger.set(target.id, { taskId, report, failed: true });
  const power = (await powerAfter(deps, target.id).catch(() => null)) ?? 0;
  throw new TaskFailedError(updateArgs(deps.settings.host, target.id, taskId, power, report), e);
}

/** An observation that failed: a task fails with it (no plan, nothing to tear down). */
function unobserved(deps: InstanceDeps, t: InstanceTarget, err: Error): Error {
  if (err instanceof TransientError || err instanceof TaskFailedError || t.taskId === null)
    return err;
  const report: Report = { ...failedTask(t, t.taskId), fault: faultOf(err) };
  deps.ledger.set(t.id, { taskId: t.taskId, report, failed: true });
  return new TaskFailedError(updateArgs(deps.settings.host, t.id, t.taskId, 0, report), err);
}

function reportOf(applied: Applied): Report | null {
  const step = applied.report;
  if (!step) return null;
  return step.timings ? { ...step.report, timings: spawnTimings(applied.times) } : step.report;
}

interface KindState {
  /** The target of the reconcile in flight per id (one at a time per id: the queue's rule). */
  targets: Map<string, InstanceTarget>;
  /** What the apply of that reconcile leaves for its report. */
  outcomes: Map<string, Outcome>;
}

async function applyInstance(
  deps: InstanceDeps,
  st: KindState,
  steps: readonly InstanceStep[],
  id: string,
): Promise<void> {
  let applied: Applied;
  try {
    applied = await runInstanceSteps(deps, id, steps);
  } catch (e) {
    const err = classify(e);
    if (err instanceof TransientError) throw err;
    if (err instanceof SpawnAborted) {
      deps.log.info({ instanceId: id }, 'spawn abandoned: the instance is no longer spawning');
      st.outcomes.set(id, { power: null, report: null, abandoned: true });
      return;
    }
    return failTask(deps, st.targets.get(id) as InstanceTarget, steps, err);
  }
  await reportVolumes(deps, st.targets.get(id), applied.volumeFailures);
  const report = reportOf(applied);
  if (report?.task_done !== undefined)
    deps.ledger.set(id, { taskId: report.task_done, report, failed: false });
  st.outcomes.set(id, { power: await powerAfter(deps, id), report, abandoned: false });
  deps.applied(id);
}

/** The update_instance after a successful reconcile; undefined: nothing to say. */
function reportAfter(
  host: string,
  id: string,
  fetched: FetchedInstance,
  o: Outcome | undefined,
): UpdateInstanceArgs | undefined {
  if (!o || o.abandoned) return undefined;
  const report = o.report ?? fetched.finished?.report ?? null;
  if (fetched.spec === null && !report?.deleted) return undefined;
  if (report === null && o.power === null) return undefined;
  return updateArgs(host, id, fetched.spec?.task_id ?? null, o.power ?? 0, report ?? {});
}

/** The attachment statuses after a successful apply, sent at once. */
async function reportVolumes(
  deps: InstanceDeps,
  t: InstanceTarget | undefined,
  failures: ReadonlyMap<string, string>,
): Promise<void> {
  const reporter = deps.attachments;
  if (!t || !reporter) return;
  const statuses = volumeStatuses(t, failures);
  for (const s of statuses) reporter.set(`attachment:${s.id}`, s);
  if (statuses.length > 0) await reporter.flush();
}

/** Remembers the attachments the spec lists; those it no longer lists are forgotten. */
function rememberVolumes(deps: InstanceDeps, id: string, spec: InstanceSpec | null): void {
  const known = deps.volumeIds;
  if (!known) return;
  const now = new Set((spec?.volumes ?? []).map((v) => v.attachment_id));
  for (const old of known.get(id) ?? [])
    if (!now.has(old)) deps.attachments?.drop(`attachment:${old}`);
  if (now.size > 0) known.set(id, now);
  else known.delete(id);
}

/** The instance as observe.ts sees it, and (its domain ours, or none) its volumes. */
async function observeAll(deps: InstanceDeps, t: InstanceTarget): Promise<ObservedInstance> {
  const o = await observeInstance(deps, t);
  if (o.domain !== null && o.domain.meta?.host !== deps.settings.host) return o;
  return { ...o, volumes: await observeVolumes(deps.libvirt, o.domain, t.volumes.length) };
}

/** The instance's own steps, with its volumes' around them (volume-plan.ts). */
function planAll(target: InstanceTarget, observed: ObservedInstance): InstanceStep[] {
  const v = planVolumes(target, observed.domain, observed.volumes);
  return [...v.before, ...planInstance(target, observed), ...v.after];
}

async function fetchInstance(deps: InstanceDeps, id: string): Promise<FetchedInstance> {
  const spec = await getInstance(deps, id);
  rememberVolumes(deps, id, spec);
  const prior = deps.ledger.get(id);
  const open = spec?.task_state ? spec.task_id : null;
  const finished = prior && prior.taskId === open ? prior : null;
  return { spec, onStart: deps.onStart.has(id), finished };
}

type InstanceKind = ResourceKindSpec<
  FetchedInstance,
  InstanceTarget,
  ObservedInstance,
  InstanceStep,
  UpdateInstanceArgs
>;

export function createInstanceKind(deps: InstanceDeps): InstanceKind {
  const st: KindState = { targets: new Map(), outcomes: new Map() };
  const done = (id: string) => {
    const o = st.outcomes.get(id);
    st.outcomes.delete(id);
    st.targets.delete(id);
    return o;
  };
  return {
    fetch: (id) => fetchInstance(deps, id),
    desired: (fetched, id) => instanceTarget(fetched, id, deps.settings),
    async observe(id, target) {
      st.targets.set(id, target);
      try {
        return await observeAll(deps, target);
      } catch (e) {
        throw unobserved(deps, target, classify(e));
      }
    },
    plan: planAll,
    apply: (steps, id) => applyInstance(deps, st, steps, id),
    revisionOf: (fetched) => fetched.spec?.task_id,
    status: {
      reporter: deps.reporter,
      ok: (fetched, _target, id) => reportAfter(deps.settings.host, id, fetched, done(id)),
      failed(error, id) {
        done(id);
        return error instanceof TaskFailedError ? error.update : undefined;
      },
    },
  };
}
