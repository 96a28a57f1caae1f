/**
 * The instance kind's `desired`: what the API's InstanceSpec (and what this agent process
 * knows of it: a task it already finished, a host boot) asks of this host — the intent of
 * its (vm_state, task_state), the open task, the domain to boot (desired.ts). Pure.
 *
 * Invariants:
 * - a spec that cannot become a domain does not throw here: it becomes `problem`, which
 *   the plan turns into the task's failure (a spawn tears down and ends in ERROR), so a
 *   bad spec is reported like any other failed task and never half-built;
 * - a task this process already finished (`finished`) asks for nothing but its report:
 *   a reboot or a stop is done at most once per task, however often it is reconciled;
 * - the NICs are known for every intent (the teardown looks up OVS rows by tap name too).
 */
import type { InstanceSpec } from '../../contracts/instances.ts';
import type { VmState } from '../../contracts/servers.ts';
import type { InstanceVolume } from '../../contracts/volume.ts';
import {
  type ComputeSettings,
  type DesiredInstance,
  type DesiredNic,
  desiredInstance,
  type InstancePaths,
  initiatorOf,
  nicsOf,
  pathsOf,
  type VifMode,
  vifMode,
} from './desired.ts';
import type { Report } from './report.ts';
import { attachDisks } from './volume-xml.ts';

/** What the instance's state asks of this host. `settled`: no task, only report. */
export type Intent =
  | 'absent'
  | 'spawn'
  | 'reboot-soft'
  | 'reboot-hard'
  | 'stop'
  | 'start'
  | 'pause'
  | 'unpause'
  | 'suspend'
  | 'resume'
  | 'rebuild'
  | 'soft-delete'
  | 'restore'
  | 'settled';

/** The vm_state a finished task leads to (Nova's). */
const TASK_RESULT: Partial<Record<Intent, VmState>> = {
  spawn: 'active',
  'reboot-soft': 'active',
  'reboot-hard': 'active',
  stop: 'stopped',
  start: 'active',
  pause: 'paused',
  unpause: 'active',
  suspend: 'suspended',
  resume: 'active',
  'soft-delete': 'soft-delete',
  restore: 'active',
};

/** The vm_state a finished task of `t` leads to: a rebuild keeps a stopped server stopped
 * (Nova), and brings any other (active, error) to active. */
export function taskResult(t: Pick<InstanceTarget, 'intent' | 'vmState'>): VmState | undefined {
  if (t.intent === 'rebuild') return t.vmState === 'stopped' ? 'stopped' : 'active';
  return TASK_RESULT[t.intent];
}

const TASK_INTENT: Record<string, Intent> = {
  scheduling: 'spawn',
  spawning: 'spawn',
  rebooting: 'reboot-soft',
  rebooting_hard: 'reboot-hard',
  'powering-off': 'stop',
  'powering-on': 'start',
  pausing: 'pause',
  unpausing: 'unpause',
  suspending: 'suspend',
  resuming: 'resume',
  rebuilding: 'rebuild',
  'soft-deleting': 'soft-delete',
  restoring: 'restore',
};

export function intentOf(spec: InstanceSpec | null): Intent {
  if (spec === null || spec.vm_state === 'deleted' || spec.task_state === 'deleting')
    return 'absent';
  const byTask = spec.task_state ? TASK_INTENT[spec.task_state] : undefined;
  return byTask ?? (spec.vm_state === 'building' ? 'spawn' : 'settled');
}

/** A task this agent process finished, and what it reported. */
export interface FinishedTask {
  taskId: number;
  report: Report;
  /** The task failed: a resync forgets it, so it is tried again if the API still has it. */
  failed: boolean;
}

/** What `fetch` returns: the API's spec and this process's memory of the instance. */
export interface FetchedInstance {
  spec: InstanceSpec | null;
  /** The host booted since the agent last ran, and this instance is not reconciled since. */
  onStart: boolean;
  /** The spec's open task, when this process already finished it. */
  finished: FinishedTask | null;
}

export interface InstanceTarget {
  id: string;
  intent: Intent;
  settings: ComputeSettings;
  vif: VifMode;
  /** The open task (task_state set), if any. */
  taskId: number | null;
  /** The API's vm_state (null: the API does not know the instance). */
  vmState: VmState | null;
  onStart: boolean;
  finished: FinishedTask | null;
  paths: InstancePaths;
  nics: DesiredNic[];
  /** The domain to boot; null for `absent`, or when the spec cannot become one. */
  instance: DesiredInstance | null;
  /** Why the spec cannot become a domain. */
  problem: string | null;
  /** The spec's volume attachments (attach and detach entries). */
  volumes: InstanceVolume[];
  /** This host's iSCSI initiator name. */
  initiator: string;
  /** Attachments whose `attach` entry cannot be a disk, and why (reported ERROR). */
  volumeProblems: ReadonlyMap<string, string>;
}

function buildable(spec: InstanceSpec | null, intent: Intent, s: ComputeSettings) {
  if (spec === null || intent === 'absent') return { instance: null, problem: null };
  try {
    return { instance: desiredInstance(spec, s), problem: null };
  } catch (e) {
    return { instance: null, problem: (e as Error).message };
  }
}

/** The NICs whose tap names can be derived (a teardown looks for what it can name). */
function knownNics(spec: InstanceSpec | null): DesiredNic[] {
  return (spec?.ports ?? []).flatMap((p) => {
    try {
      return nicsOf({ ...spec, ports: [p] } as InstanceSpec);
    } catch {
      return [];
    }
  });
}

export function instanceTarget(
  f: FetchedInstance,
  id: string,
  settings: ComputeSettings,
): InstanceTarget {
  const intent = intentOf(f.spec);
  const { instance, problem } = buildable(f.spec, intent, settings);
  return {
    id,
    intent,
    settings,
    vif: vifMode(settings),
    taskId: f.spec?.task_state ? f.spec.task_id : null,
    vmState: f.spec?.vm_state ?? null,
    onStart: f.onStart,
    finished: f.finished,
    paths: pathsOf(settings, id),
    nics: instance?.nics ?? knownNics(f.spec),
    instance,
    problem,
    volumes: f.spec?.volumes ?? [],
    initiator: initiatorOf(settings),
    volumeProblems: attachDisks(f.spec?.volumes ?? [], initiatorOf(settings)).problems,
  };
}
