/**
 * diff(intent, desired, observed) → the steps that bring one instance where its state asks,
 * and the report that follows them. Pure and synchronous: steps are data, the executor
 * (apply.ts) runs them.
 *
 * Invariants:
 * - every start is Nova's: define, start paused, plug, (spawn: wait for the ports to be
 *   ACTIVE), resume, so a guest never runs before its network is there;
 * - a plan is convergent: a task whose effect is already there plans nothing (re-running
 *   it after a crash or a lost report only reports again), and without a task the power
 *   state is left alone, except after a host boot (`onStart`), when an active instance
 *   whose guest is off, or still paused by a start cut short, runs again (Nova's
 *   resume_guests_state_on_host_boot);
 * - a domain that is not this host's (foreign metadata, or none) is never touched: a task
 *   on it is refused with a conflict, a teardown leaves it, and its OVS ports, alone; so
 *   is an instance directory whose owner marker does not name this host;
 * - a teardown removes the domain (with its managed save image), the OVS ports and this
 *   host's instance directory, whatever state they are in.
 */
import { POWER_STATE, type PowerState, type VmState } from '../../contracts/servers.ts';
import { DomainState } from '../../host/libvirt/client.ts';
import {
  type DesiredInstance,
  type Intent,
  ownerText,
  TASK_RESULT,
  type VifMode,
} from './desired.ts';
import { isActive, type ObservedDomain, type ObservedInstance } from './observe.ts';

export type Step =
  | { kind: 'images'; why: string }
  | { kind: 'files'; why: string }
  | { kind: 'define'; why: string }
  | { kind: 'start'; why: string }
  | { kind: 'plug'; why: string }
  | { kind: 'wait-ports'; why: string }
  | { kind: 'resume'; why: string }
  | { kind: 'pause'; why: string }
  | { kind: 'stop'; graceful: boolean; why: string }
  | { kind: 'managed-save'; why: string }
  | { kind: 'discard-save'; why: string }
  | { kind: 'undefine'; why: string }
  | { kind: 'unplug'; why: string }
  | { kind: 'remove-files'; why: string };

export interface PlanInput {
  intent: Intent;
  /** Null only for `absent`. */
  desired: DesiredInstance | null;
  observed: ObservedInstance;
  host: string;
  vif: VifMode;
  /** The host booted since the agent last ran, and this instance is not reconciled since. */
  onStart: boolean;
  /** The API's vm_state (null: the API does not know the instance). */
  vmState: VmState | null;
}

export interface Plan {
  steps: Step[];
  /** The task cannot be done from what the host has; reported as the task's fault. */
  conflict?: string;
  /** vm_state the finished task leads to. */
  vmState?: VmState;
  deleted?: boolean;
}

const S = DomainState;
const ours = (d: ObservedDomain | null, host: string) => d !== null && d.meta?.host === host;
const running = (d: ObservedDomain | null) =>
  d !== null && (d.state === S.RUNNING || d.state === S.BLOCKED);
const paused = (d: ObservedDomain | null) => d !== null && d.state === S.PAUSED;
const saved = (d: ObservedDomain | null) => d !== null && d.state === S.SHUTOFF && d.managedSave;

/** Files a boot needs that are missing: the images first, then the instance's own files. */
function fileSteps(d: DesiredInstance, o: ObservedInstance): Step[] {
  const f = o.files;
  const missing =
    !f.dir ||
    (d.rootDisk.kind !== 'none' && !f.disk) ||
    (d.kernel !== null && !f.kernel) ||
    (d.ramdisk !== null && !f.ramdisk);
  if (!missing) return [];
  return [
    { kind: 'images', why: 'base images in the cache' },
    { kind: 'files', why: 'instance directory, disk, kernel and ramdisk' },
  ];
}

/**
 * Start a guest that is off. With a managed save image, `restore` restores it (keeping
 * its XML); otherwise the image is discarded and the guest boots afresh.
 */
function bootSteps(
  d: DesiredInstance,
  o: ObservedInstance,
  opts: { waitPorts: boolean; restore: boolean },
): Step[] {
  const restore = opts.restore && saved(o.domain);
  const discard: Step[] =
    saved(o.domain) && !restore ? [{ kind: 'discard-save', why: 'boot afresh' }] : [];
  const waitPorts = opts.waitPorts;
  return [
    ...discard,
    ...(restore ? [] : fileSteps(d, o)),
    ...(restore ? [] : [{ kind: 'define', why: 'domain XML from the spec' } as const]),
    { kind: 'start', why: restore ? 'restore the managed save, paused' : 'start paused' },
    { kind: 'plug', why: 'VIFs of the started domain' },
    ...(waitPorts ? [{ kind: 'wait-ports', why: 'ports ACTIVE (vif plugged)' } as const] : []),
    { kind: 'resume', why: 'run the guest' },
  ];
}

/** Ethernet VIFs of a running guest that are not (or no longer) in the bridge. */
function needsPlug(p: PlanInput): boolean {
  if (p.vif !== 'ethernet' || !p.desired || !isActive(p.observed.domain)) return false;
  return p.desired.nics.some(
    (n) =>
      p.observed.taps[n.tap] !== 'vswitchd' ||
      !p.observed.ovsPorts.some((r) => r.name === n.tap && r.ifaceId === n.portId),
  );
}

const plugIfNeeded = (p: PlanInput): Step[] =>
  needsPlug(p) ? [{ kind: 'plug', why: 'a VIF is not in the bridge' }] : [];

function teardown(p: PlanInput): Step[] {
  const o = p.observed;
  const mine = ours(o.domain, p.host);
  const steps: Step[] = [];
  if (mine && isActive(o.domain)) steps.push({ kind: 'stop', graceful: false, why: 'destroy' });
  if (mine) steps.push({ kind: 'undefine', why: 'undefine (with its managed save)' });
  if ((o.domain === null || mine) && o.ovsPorts.length > 0)
    steps.push({ kind: 'unplug', why: 'OVS ports of the instance' });
  if ((o.files.dir && o.files.owner === p.host) || o.files.staging)
    steps.push({ kind: 'remove-files', why: "this host's instance directory" });
  return steps;
}

function spawn(p: PlanInput, d: DesiredInstance): Step[] {
  const dom = p.observed.domain;
  if (running(dom))
    return [
      { kind: 'plug', why: 'VIFs of the running domain' },
      { kind: 'wait-ports', why: 'ports ACTIVE' },
    ];
  if (paused(dom))
    return [
      { kind: 'plug', why: 'VIFs of the paused domain' },
      { kind: 'wait-ports', why: 'ports ACTIVE (vif plugged)' },
      { kind: 'resume', why: 'run the guest' },
    ];
  return bootSteps(d, p.observed, { waitPorts: true, restore: false });
}

function restart(p: PlanInput, d: DesiredInstance): Step[] {
  const dom = p.observed.domain;
  const graceful = p.intent === 'reboot-soft' && running(dom);
  const stop: Step[] = isActive(dom)
    ? [{ kind: 'stop', graceful, why: graceful ? 'shut down, then power off' : 'power off' }]
    : [];
  return [...stop, ...bootSteps(d, p.observed, { waitPorts: false, restore: false })];
}

type TaskPlan = { steps: Step[]; conflict?: string };
const refuse = (why: string): TaskPlan => ({ steps: [], conflict: why });

function powerTask(p: PlanInput, d: DesiredInstance): TaskPlan {
  const dom = p.observed.domain;
  switch (p.intent) {
    case 'stop':
      return { steps: isActive(dom) ? [{ kind: 'stop', graceful: true, why: 'os-stop' }] : [] };
    case 'start':
    case 'resume':
      if (running(dom)) return { steps: plugIfNeeded(p) };
      if (paused(dom)) return { steps: [{ kind: 'resume', why: 'run the paused guest' }] };
      // Nova's power_on is a hard reboot: a managed save image (a guest found suspended and
      // stopped by the power sync) is discarded; only resume restores it.
      return {
        steps: bootSteps(d, p.observed, { waitPorts: false, restore: p.intent === 'resume' }),
      };
    case 'pause':
      if (paused(dom)) return { steps: [] };
      if (!running(dom)) return refuse('cannot pause: the guest is not running');
      return { steps: [{ kind: 'pause', why: 'pause' }] };
    case 'unpause':
      if (running(dom)) return { steps: [] };
      if (!paused(dom)) return refuse('cannot unpause: the guest is not paused');
      return { steps: [{ kind: 'resume', why: 'unpause' }] };
    case 'suspend':
      if (saved(dom)) return { steps: [] };
      if (!isActive(dom)) return refuse('cannot suspend: the guest is not running');
      return { steps: [{ kind: 'managed-save', why: 'suspend to a managed save image' }] };
    default:
      return { steps: [] };
  }
}

function settled(p: PlanInput, d: DesiredInstance): Step[] {
  const dom = p.observed.domain;
  if (p.onStart && p.vmState === 'active') {
    if (paused(dom))
      return [
        { kind: 'plug', why: 'VIFs of the guest paused by a start cut short' },
        { kind: 'resume', why: 'run the guest' },
      ];
    if (!isActive(dom) && !saved(dom))
      return bootSteps(d, p.observed, { waitPorts: false, restore: false });
  }
  return plugIfNeeded(p);
}

/** Why the host's objects of this uuid are not ours to change; undefined when they are. */
function foreign(p: PlanInput): string | undefined {
  const dom = p.observed.domain;
  if (dom && !ours(dom, p.host)) {
    const owner = dom.meta ? `host ${dom.meta.host ?? '(none)'}` : 'nothing Kumo knows';
    return `domain ${dom.dom.name} with this uuid belongs to ${owner}`;
  }
  const f = p.observed.files;
  if (f.dir && f.owner !== p.host) return `the instance directory belongs to ${ownerText(f.owner)}`;
  return undefined;
}

export function planInstance(p: PlanInput): Plan {
  if (p.intent === 'absent') {
    const steps = teardown(p);
    return { steps, deleted: steps.length > 0 || p.vmState !== null };
  }
  const d = p.desired;
  if (!d) throw new Error(`planInstance: intent ${p.intent} needs the desired instance`);
  const conflict = foreign(p);
  if (conflict !== undefined)
    return p.intent === 'settled' ? { steps: [] } : { steps: [], conflict };
  const vmState = TASK_RESULT[p.intent];
  const done = (plan: TaskPlan): Plan => ({ ...plan, ...(vmState ? { vmState } : {}) });
  switch (p.intent) {
    case 'spawn':
      return done({ steps: spawn(p, d) });
    case 'reboot-soft':
    case 'reboot-hard':
      return done({ steps: restart(p, d) });
    case 'settled':
      return { steps: settled(p, d) };
    default:
      return done(powerTask(p, d));
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
