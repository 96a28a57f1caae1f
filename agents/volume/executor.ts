/**
 * The one executor of the volume agent's plans (plan.ts): each step kind is one call of
 * the data backend (backend-file.ts / backend-lvm.ts) or of tgtd (tgt.ts), run in order
 * by agents/lib/steps.ts runSteps, which logs each with its `why` and stops at the first
 * failure (the tool's typed error, reported and retried by the reconciler).
 *
 * Invariants:
 * - a new target's tid is picked and the target made inside tgt.ts's lock, so concurrent
 *   reconciles never pick the same tid; its LUN, account binding and ACL follow outside
 *   the lock (the target is this reconcile's alone: one reconcile runs per id), so ten
 *   volumes being made do not wait on each other's tgtadm runs; a target is made whole or
 *   not at all: one that fails half-made is deleted again (the retry makes it anew);
 * - a `keep` step changes nothing: it only says, in the log, what was left and why;
 * - a copy that fails removes what it made (the plan copies only into an object that did
 *   not exist, and one reconcile runs per id): a half-copied object never stays to be
 *   taken for the volume by the next reconcile, and a refused one leaves nothing.
 */
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import { runSteps } from '../lib/steps.ts';
import type { DataBackend } from './backend.ts';
import type { DesiredTarget } from './desired.ts';
import type { VolumeStep } from './plan.ts';
import type { Tgt } from './tgt.ts';

export interface ExecutorDeps {
  backend: DataBackend;
  tgt: Tgt;
  log: Logger;
  /** Steps applied by kind (agents/lib/steps.ts); none counted when absent. */
  metrics?: StepMetrics;
}

/** The whole target (LUN, account bound, ACL), or none: a half-made one is deleted. */
async function createTarget(tgt: Tgt, t: DesiredTarget): Promise<void> {
  const { tid, ops } = await tgt.exclusive(async (ops) => {
    const tid = await ops.freeTid();
    await ops.newTarget(tid, t.iqn);
    return { tid, ops };
  });
  try {
    await ops.newLun(tid, t.lun, t.backing);
    await ops.bindAccount(tid, t.user);
    for (const initiator of t.initiators) await ops.bindInitiator(tid, initiator);
  } catch (e) {
    await ops.deleteTarget(tid, true).catch(() => {});
    throw e;
  }
}

async function runTgtStep(tgt: Tgt, step: VolumeStep): Promise<void> {
  await tgt.exclusive(async (ops) => {
    switch (step.kind) {
      case 'account-new':
        return ops.newAccount(step.user, step.secret);
      case 'account-delete':
        return ops.deleteAccount(step.user);
      case 'account-bind':
        return ops.bindAccount(step.tid, step.user);
      case 'account-unbind':
        return ops.unbindAccount(step.tid, step.user);
      case 'acl-bind':
        return ops.bindInitiator(step.tid, step.initiator);
      case 'acl-unbind':
        return ops.unbindInitiator(step.tid, step.initiator);
      case 'lun-new':
        return ops.newLun(step.tid, step.lun, step.backing);
      case 'target-delete':
        return ops.deleteTarget(step.tid, step.force);
      default:
        throw new Error(`not a tgt step: ${step.kind}`);
    }
  });
}

/** A copy, or nothing: what a failed copy made is removed (see the module comment). */
async function copyOrNothing(b: DataBackend, step: Extract<VolumeStep, { kind: 'data-copy' }>) {
  try {
    await b.copy(step.name, step.source, step.sizeGb);
  } catch (e) {
    if ((e as { kind?: unknown }).kind !== 'exists') await b.remove(step.name).catch(() => {});
    throw e;
  }
}

async function runDataStep(b: DataBackend, step: VolumeStep): Promise<boolean> {
  switch (step.kind) {
    case 'data-create':
      await b.create(step.name, step.sizeGb);
      return true;
    case 'data-copy':
      await copyOrNothing(b, step);
      return true;
    case 'data-snapshot':
      await b.snapshot(step.name, step.origin, step.sizeGb);
      return true;
    case 'data-extend':
      await b.extend(step.name, step.sizeGb);
      return true;
    case 'data-zero':
      await b.zero(step.name);
      return true;
    case 'data-remove':
      await b.remove(step.name);
      return true;
    default:
      return false;
  }
}

async function runStep(deps: ExecutorDeps, step: VolumeStep): Promise<void> {
  if (step.kind === 'keep') {
    deps.log.warn({ why: step.why }, 'left on the host');
    return;
  }
  if (step.kind === 'target-create') return createTarget(deps.tgt, step.target);
  if (await runDataStep(deps.backend, step)) return;
  await runTgtStep(deps.tgt, step);
}

export async function applyVolumeSteps(
  deps: ExecutorDeps & { runner: CommandRunner },
  steps: readonly VolumeStep[],
  ctx: Record<string, string>,
): Promise<void> {
  await runSteps<VolumeStep>(deps, steps, ctx, (step) => runStep(deps, step));
}
