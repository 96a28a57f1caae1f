/**
 * diff(target, observed) → the steps that bring one instance where its state asks, ending
 * with the report of its task. Pure and synchronous: steps are data with payload, the
 * executor (apply.ts) runs them. A rebuild's steps are in plan-rebuild.ts; soft delete
 * powers off (as Nova's libvirt driver does) and restore starts like os-start.
 *
 * Invariants:
 * - every start is Nova's: define, start paused, plug (a phase step: the taps exist only
 *   once the domain runs), (spawn: wait for the ports to be ACTIVE), resume, so a guest
 *   never runs before its network is there;
 * - a plan is convergent: a task whose effect is already there plans only its report, a
 *   task this process finished plans nothing, and without a task the power state is left
 *   alone, except after a host boot (`onStart`), when an active instance whose guest is
 *   off, or still paused by a start cut short, runs again (Nova's
 *   resume_guests_state_on_host_boot), and for a soft-deleted server, whose guest found
 *   running (started outside Kumo) is powered off again, as its soft delete did;
 * - a domain that is not this host's (foreign metadata, or none) is never touched: a task
 *   on it is refused with a fault, a teardown leaves it, and its OVS ports, alone; so is
 *   an instance directory whose owner marker does not name this host;
 * - a teardown removes the domain (with its managed save image), the OVS ports (from the
 *   bridge that holds each) and this host's instance directory, whatever state they are in;
 * - a task's report step says what it ends with on success and on failure (a spawn that
 *   fails is torn down and ends in ERROR; a rebuild or a delete that fails ends in
 *   ERROR; another task keeps its vm_state), so the executor never decides what to report.
 */
import { POWER_STATE, type PowerState } from '../../contracts/servers.ts';
import { DomainState } from '../../host/libvirt/enums.ts';
import { ownerText } from './desired.ts';
import { isActive } from './domain-state.ts';
import type { ObservedDomain, ObservedInstance } from './observe.ts';
import { rebuildSteps } from './plan-rebuild.ts';
import {
  ours,
  paused,
  plugVifs,
  resume,
  running,
  saved,
  stop,
  vifTarget,
  waitPorts,
} from './plan-steps.ts';
import { faultOf, type Report } from './report.ts';
import { type ComputeStep, fileSteps, type InstanceStep, type OnFailure } from './steps.ts';
import { type InstanceTarget, taskResult } from './target.ts';
import { planVifs, unplugStep } from './vif-plan.ts';

export { vifTarget } from './plan-steps.ts';

const S = DomainState;

/** Files a boot needs, when any is missing. */
function filesIfMissing(t: InstanceTarget, o: ObservedInstance): ComputeStep[] {
  const d = t.instance;
  const f = o.files;
  if (!d) return [];
  const missing =
    !f.dir ||
    (d.rootDisk.kind !== 'none' && !f.disk) ||
    (d.kernel !== null && !f.kernel) ||
    (d.ramdisk !== null && !f.ramdisk) ||
    (d.configDrive && !f.configDrive);
  const none = { disk: false, kernel: false, ramdisk: false, configDrive: false };
  return missing ? fileSteps(d, f.dir ? f : none, t.settings) : [];
}

/**
 * Start a guest that is off. With a managed save image, `restore` restores it (keeping
 * its XML); otherwise the image is discarded and the guest boots afresh.
 */
function bootSteps(
  t: InstanceTarget,
  o: ObservedInstance,
  opts: { waitPorts: boolean; restore: boolean },
): ComputeStep[] {
  const restore = opts.restore && saved(o.domain);
  const xml = t.instance?.xml ?? '';
  return [
    ...(saved(o.domain) && !restore
      ? [{ kind: 'discard-save', uuid: t.id, why: 'boot afresh' } as const]
      : []),
    ...(restore ? [] : filesIfMissing(t, o)),
    ...(restore ? [] : [{ kind: 'define', xml, why: 'domain XML from the spec' } as const]),
    {
      kind: 'start-paused',
      uuid: t.id,
      why: restore ? 'restore the managed save, paused' : 'start paused',
    },
    plugVifs(t, 'VIFs of the started domain'),
    ...(opts.waitPorts ? [waitPorts(t, 'ports ACTIVE (vif plugged)')] : []),
    resume(t),
  ];
}

/** Ethernet VIFs of an active guest that are not (or no longer) in the bridge. */
function replugIfNeeded(t: InstanceTarget, o: ObservedInstance): InstanceStep[] {
  if (t.vif !== 'ethernet' || !o.vifs || !isActive(o.domain)) return [];
  return planVifs(vifTarget(t), o.vifs);
}

/** Everything of the instance this host owns, removed. */
export function teardownSteps(t: InstanceTarget, o: ObservedInstance): InstanceStep[] {
  const mine = ours(o.domain, t.settings.host);
  const ports = o.vifs?.ports ?? [];
  const steps: InstanceStep[] = [];
  if (mine && isActive(o.domain)) steps.push(stop(t, false, 'destroy'));
  if (mine) steps.push({ kind: 'undefine', uuid: t.id, why: 'undefine (with its managed save)' });
  if ((o.domain === null || mine) && ports.some((p) => p.bridge !== null))
    steps.push(unplugStep(ports, 'OVS ports of the instance'));
  if ((o.files.dir && o.files.owner === t.settings.host) || o.files.staging)
    steps.push({
      kind: 'remove-instance-dir',
      paths: t.paths,
      host: t.settings.host,
      why: "this host's instance directory",
    });
  return steps;
}

function spawn(t: InstanceTarget, o: ObservedInstance): ComputeStep[] {
  const dom = o.domain;
  if (running(dom))
    return [plugVifs(t, 'VIFs of the running domain'), waitPorts(t, 'ports ACTIVE')];
  if (paused(dom))
    return [
      plugVifs(t, 'VIFs of the paused domain'),
      waitPorts(t, 'ports ACTIVE (vif plugged)'),
      resume(t),
    ];
  return bootSteps(t, o, { waitPorts: true, restore: false });
}

function restart(t: InstanceTarget, o: ObservedInstance): ComputeStep[] {
  const dom = o.domain;
  const graceful = t.intent === 'reboot-soft' && running(dom);
  const off = isActive(dom)
    ? [stop(t, graceful, graceful ? 'shut down, then power off' : 'power off')]
    : [];
  return [...off, ...bootSteps(t, o, { waitPorts: false, restore: false })];
}

type TaskPlan = { steps: InstanceStep[]; refused?: string };
const refuse = (why: string): TaskPlan => ({ steps: [], refused: why });

function powerTask(t: InstanceTarget, o: ObservedInstance): TaskPlan {
  const dom = o.domain;
  const only = (step: ComputeStep): TaskPlan => ({ steps: [step] });
  switch (t.intent) {
    case 'stop':
      return { steps: isActive(dom) ? [stop(t, true, 'os-stop')] : [] };
    case 'soft-delete':
      // Nova's soft delete powers the guest off at once (libvirt has no soft_delete).
      return { steps: isActive(dom) ? [stop(t, false, 'soft delete: power off')] : [] };
    case 'start':
    case 'restore':
    case 'resume':
      if (running(dom)) return { steps: replugIfNeeded(t, o) };
      if (paused(dom)) return only(resume(t, 'run the paused guest'));
      // Nova's power_on is a hard reboot: a managed save image (a guest found suspended and
      // stopped by the power sync) is discarded; only resume restores it.
      return { steps: bootSteps(t, o, { waitPorts: false, restore: t.intent === 'resume' }) };
    case 'pause':
      if (paused(dom)) return { steps: [] };
      if (!running(dom)) return refuse('cannot pause: the guest is not running');
      return only({ kind: 'pause', uuid: t.id, why: 'pause' });
    case 'unpause':
      if (running(dom)) return { steps: [] };
      if (!paused(dom)) return refuse('cannot unpause: the guest is not paused');
      return only(resume(t, 'unpause'));
    case 'suspend':
      if (saved(dom)) return { steps: [] };
      if (!isActive(dom)) return refuse('cannot suspend: the guest is not running');
      return only({ kind: 'managed-save', uuid: t.id, why: 'suspend to a managed save image' });
    default:
      return { steps: [] };
  }
}

function settled(t: InstanceTarget, o: ObservedInstance): InstanceStep[] {
  const dom = o.domain;
  if (t.vmState === 'soft-delete')
    return isActive(dom) ? [stop(t, false, 'soft-deleted: power off the guest found running')] : [];
  if (t.onStart && t.vmState === 'active') {
    if (paused(dom))
      return [plugVifs(t, 'VIFs of the guest paused by a start cut short'), resume(t)];
    if (!isActive(dom) && !saved(dom)) return bootSteps(t, o, { waitPorts: false, restore: false });
  }
  return replugIfNeeded(t, o);
}

/** Why the host's objects of this uuid are not ours to change; undefined when they are. */
function foreign(t: InstanceTarget, o: ObservedInstance): string | undefined {
  const dom = o.domain;
  if (dom && !ours(dom, t.settings.host)) {
    const owner = dom.meta ? `host ${dom.meta.host ?? '(none)'}` : 'nothing Kumo knows';
    return `domain ${dom.dom.name} with this uuid belongs to ${owner}`;
  }
  const f = o.files;
  if (f.dir && f.owner !== t.settings.host)
    return `the instance directory belongs to ${ownerText(f.owner)}`;
  return undefined;
}

/** The task's report step, ending `steps`; none without a task (nor anything deleted). */
function reported(t: InstanceTarget, steps: InstanceStep[], report: Report, fail?: OnFailure) {
  if (t.taskId === null && Object.keys(report).length === 0) return steps;
  const onFailure =
    fail ??
    (t.taskId === null
      ? null
      : {
          report: failedTask(t, t.taskId),
          teardown: t.intent === 'spawn',
        });
  const timings = t.intent === 'spawn' && steps.some((s) => s.kind === 'resume');
  const step: ComputeStep = { kind: 'report', report, onFailure, timings, why: 'tell the API' };
  return [...steps, step];
}

/** Tasks whose failure leaves the server in ERROR (Nova's); others keep their vm_state. */
const FAIL_TO_ERROR = new Set(['spawn', 'absent', 'rebuild']);

/** What a task that failed ends with (spawn, rebuild, delete: ERROR; others keep the vm_state). */
export function failedTask(t: InstanceTarget, taskId: number): Report {
  const vmState = FAIL_TO_ERROR.has(t.intent) ? 'error' : t.vmState;
  return { task_done: taskId, ...(vmState ? { vm_state: vmState } : {}) };
}

const task = (t: InstanceTarget): Report => (t.taskId === null ? {} : { task_done: t.taskId });

/**
 * A task that cannot be done: its fault reported. A spawn ends in ERROR, and with
 * `cleanup` (its spec cannot become a domain) what an earlier attempt left is removed.
 */
function failed(t: InstanceTarget, o: ObservedInstance, why: string, cleanup: boolean) {
  if (t.taskId === null) return [];
  const spawning = t.intent === 'spawn';
  const report: Report = { ...failedTask(t, t.taskId), fault: faultOf(why) };
  const steps = spawning && cleanup ? teardownSteps(t, o) : [];
  return reported(t, steps, report, { report, teardown: false });
}

export function planInstance(t: InstanceTarget, o: ObservedInstance): InstanceStep[] {
  if (t.finished) return [];
  if (t.intent === 'absent') {
    const steps = teardownSteps(t, o);
    const deleted = steps.length > 0 || t.vmState !== null;
    return reported(t, steps, { ...task(t), ...(deleted ? { deleted: true } : {}) });
  }
  const conflict = foreign(t, o);
  if (conflict !== undefined) return failed(t, o, conflict, false);
  if (t.problem !== null) return failed(t, o, t.problem, true);
  const vmState = taskResult(t);
  const done = (p: TaskPlan) =>
    p.refused !== undefined
      ? failed(t, o, p.refused, false)
      : reported(t, p.steps, {
          ...task(t),
          ...(t.taskId !== null && vmState ? { vm_state: vmState } : {}),
        });
  switch (t.intent) {
    case 'spawn':
      return done({ steps: spawn(t, o) });
    case 'reboot-soft':
    case 'reboot-hard':
      return done({ steps: restart(t, o) });
    case 'rebuild':
      return done({ steps: rebuildSteps(t, o) });
    case 'settled':
      return settled(t, o);
    default:
      return done(powerTask(t, o));
  }
}

/** Nova's power_state of what libvirt says (a managed-saved guest is SUSPENDED). */
export function powerStateOf(d: ObservedDomain | null): PowerState {
  const P = POWER_STATE;
  if (d === null) return P.NOSTATE;
  switch (d.state) {
    case S.RUNNING:
    case S.BLOCKED:
      return P.RUNNING;
    case S.PAUSED:
      return P.PAUSED;
    case S.SHUTDOWN:
      return P.SHUTDOWN;
    case S.SHUTOFF:
      return d.managedSave ? P.SUSPENDED : P.SHUTDOWN;
    case S.CRASHED:
      return P.CRASHED;
    case S.PMSUSPENDED:
      return P.SUSPENDED;
    default:
      return P.NOSTATE;
  }
}
