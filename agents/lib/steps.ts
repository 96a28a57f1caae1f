/**
 * One step type and one executor for every agent: a plan is a list of these, data only,
 * and `runSteps` is the only code that turns it into host changes.
 *
 * Invariants:
 * - steps run in order and the first failure stops the run, raising the tool's own typed
 *   error (CommandError with argv and stderr, OVSDB errors): nothing is swallowed, and the
 *   reconcile retries from what the host then has;
 * - each step is logged with its kind, its `why` and how long it took;
 * - an OVSDB step with `applied` returns only once ovs-vswitchd has applied it, so a
 *   following command can use the device it made;
 * - an agent's own step kinds (libvirt calls …) are data too, run by the `extra` handler
 *   it passes in: plain functions branching on `kind`, no subclassing;
 * - with `metrics`, each step is counted once it succeeded, by a bounded `tool` label (a
 *   command's basename, a kit kind, a daemon's tool, an agent's own kind — never a path,
 *   pid or id), and so are the reloads operators watch: dnsmasq's SIGHUP, or its restart
 *   (a start of a dnsmasq the same run stopped: dhcp/plan.ts restarts as stop + start, so
 *   a first start or a teardown is no reload), haproxy's hitless `-sf` reload, and every
 *   iptables-restore / ip6tables-restore.
 */
import { mkdir, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import { writeFileAtomic } from '../../host/fs/atomic.ts';
import type { OvsdbClient, OvsdbOperation } from '../../host/ovs/ovsdb.ts';
import { transactApplied } from '../../host/ovs/ports.ts';
import {
  type DaemonSignal,
  signalIfRunning,
  startDaemon,
  stopByPidfile,
} from '../../host/process/daemon.ts';

/** A daemon Kumo runs: found by its pid file and a word its command line must carry. */
export interface DaemonRef {
  pidfile: string;
  expected: string;
  /** The daemon's program (dnsmasq, haproxy), for metrics; `daemon` when absent. */
  tool?: string;
}

export type Step =
  | { kind: 'command'; spec: CommandSpec; why: string }
  | { kind: 'ovsdb'; ops: OvsdbOperation[]; applied: boolean; why: string }
  | { kind: 'file'; path: string; content: string; mode?: number; why: string }
  | { kind: 'mkdir'; path: string; mode?: number; why: string }
  | { kind: 'remove'; path: string; why: string }
  | { kind: 'signal'; daemon: DaemonRef; signal: DaemonSignal; why: string }
  | { kind: 'daemon'; action: 'start'; daemon: DaemonRef; spec: CommandSpec; why: string }
  | { kind: 'daemon'; action: 'stop'; daemon: DaemonRef; why: string };

export interface ExecutorDeps {
  runner: CommandRunner;
  log: Logger;
  /** The OVSDB connection, for agents whose plans carry `ovsdb` steps. */
  ovsdb?: () => Promise<OvsdbClient>;
  now?: () => number;
  /** Steps applied by tool, and reloads (stepCounter); none counted when absent. */
  metrics?: StepMetrics;
}

/** What a step is about in the log: the resource it belongs to. */
export type StepContext = Record<string, string | number>;

async function runStep(deps: ExecutorDeps, step: Step): Promise<void> {
  switch (step.kind) {
    case 'command':
      await deps.runner.run(step.spec);
      return;
    case 'ovsdb': {
      if (!deps.ovsdb) throw new Error('this agent has no OVSDB connection for an ovsdb step');
      const client = await deps.ovsdb();
      if (step.applied) await transactApplied(client, step.ops);
      else await client.transact('Open_vSwitch', step.ops);
      return;
    }
    case 'file':
      await writeFileAtomic(step.path, step.content, step.mode);
      return;
    case 'mkdir':
      await mkdir(step.path, { recursive: true, mode: step.mode ?? 0o755 });
      return;
    case 'remove':
      await rm(step.path, { recursive: true, force: true });
      return;
    case 'signal':
      await signalIfRunning(step.daemon.pidfile, step.daemon.expected, step.signal);
      return;
    case 'daemon':
      if (step.action === 'stop') await stopByPidfile(step.daemon.pidfile, step.daemon.expected);
      else await startDaemon(deps.runner, step.spec, step.daemon);
      return;
  }
}

/**
 * Runs `steps` in order; `extra` runs the agent's own kinds. Throws the first failure.
 */
export async function runSteps<E extends { kind: string; why: string } = never>(
  deps: ExecutorDeps,
  steps: readonly (Step | E)[],
  ctx: StepContext = {},
  extra?: (step: E) => Promise<void>,
): Promise<void> {
  const now = deps.now ?? (() => performance.now());
  const count = stepCounter(deps.metrics);
  for (const step of steps) {
    const started = now();
    const own = isKitStep(step);
    if (!own && !extra) throw new Error(`no handler for ${step.kind} steps`);
    await (own ? runStep(deps, step) : (extra as (s: E) => Promise<void>)(step as E));
    const ms = Math.round((now() - started) * 10) / 10;
    deps.log.info({ ...ctx, step: step.kind, why: step.why, ms }, 'step');
    count(step);
  }
}

const KIT_KINDS = new Set(['command', 'ovsdb', 'file', 'mkdir', 'remove', 'signal', 'daemon']);

function isKitStep(step: { kind: string }): step is Step {
  return KIT_KINDS.has(step.kind);
}

const RESTORES = new Set(['iptables-restore', 'ip6tables-restore']);

/** The `tool` label of a step: who does the work. */
export function toolOf(step: Step | { kind: string }): string {
  const s = step as Step;
  switch (s.kind) {
    case 'command':
      return basename(s.spec.argv[0] ?? 'command');
    case 'daemon':
      return s.action === 'start'
        ? basename(s.spec.argv[0] ?? 'daemon')
        : (s.daemon.tool ?? 'daemon');
    case 'signal':
      return s.daemon.tool ?? 'daemon';
    default:
      return step.kind;
  }
}

/** One run's counter: call it with each step after the step succeeded. */
export function stepCounter(metrics: StepMetrics | undefined) {
  const stopped = new Set<string>();
  return (step: Step | { kind: string }): void => {
    if (!metrics) return;
    const tool = toolOf(step);
    metrics.applied.inc({ tool });
    const s = step as Step;
    if (s.kind === 'command') {
      if (RESTORES.has(tool)) metrics.iptablesRestores.inc();
      if (tool === 'haproxy' && s.spec.argv.includes('-sf')) metrics.haproxyReloads.inc();
    } else if (s.kind === 'signal') {
      if (tool === 'dnsmasq' && s.signal === 'SIGHUP')
        metrics.dnsmasqReloads.inc({ how: 'sighup' });
    } else if (s.kind === 'daemon') {
      if (s.action === 'stop') stopped.add(s.daemon.pidfile);
      else if (tool === 'dnsmasq' && stopped.has(s.daemon.pidfile))
        metrics.dnsmasqReloads.inc({ how: 'restart' });
    }
  };
}
