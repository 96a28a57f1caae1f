/**
 * tgtd as the volume agent uses it (host/tgt/tgtadm.ts over `tgtadm -C <tgt_control_port>`):
 * the targets it shows, its CHAP accounts, and every change made inside one lock.
 *
 * Invariants: a new target's tid is picked and the target made inside one lock
 * (`exclusive`), so concurrent reconciles never pick the same tid; tids come from a
 * counter started past the highest tid tgtd shows (one show, not one per target), and a
 * tid tgtd already has (a target made behind our back, a restarted tgtd) resets it, so
 * the retry picks from a fresh show; the other changes run in the lock too, one at a
 * time; reads (show, accounts) need no lock; every argument is validated by
 * host/tgt before tgtadm runs (a TgtArgumentError, permanent), and tgtadm's refusals are
 * its CommandError, stderr saying why.
 */
import type { CommandRunner } from '../../core/exec.ts';
import * as tgtadm from '../../host/tgt/tgtadm.ts';

export type TgtTarget = tgtadm.TgtTarget;

export interface TgtOps {
  freeTid(): Promise<number>;
  newTarget(tid: number, iqn: string): Promise<void>;
  deleteTarget(tid: number, force: boolean): Promise<void>;
  newLun(tid: number, lun: number, backing: string): Promise<void>;
  newAccount(user: string, secret: string): Promise<void>;
  deleteAccount(user: string): Promise<void>;
  bindAccount(tid: number, user: string): Promise<void>;
  unbindAccount(tid: number, user: string): Promise<void>;
  bindInitiator(tid: number, initiator: string): Promise<void>;
  unbindInitiator(tid: number, initiator: string): Promise<void>;
}

export interface Tgt {
  show(): Promise<TgtTarget[]>;
  accounts(): Promise<string[]>;
  exclusive<T>(fn: (ops: TgtOps) => Promise<T>): Promise<T>;
}

/** A lock: `fn`s run one after another, in call order, whatever each one's outcome. */
export function serial() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

/** Past the highest tid shown: tids below it may be free, but the counter never reuses one. */
const pastHighest = (targets: readonly TgtTarget[]) =>
  targets.reduce((max, x) => Math.max(max, x.tid), 0) + 1;

export function createTgt(runner: CommandRunner, controlPort: number): Tgt {
  const t: tgtadm.TgtControl = { runner, controlPort };
  let next: number | undefined;
  const ops: TgtOps = {
    freeTid: async () => {
      next ??= pastHighest(await tgtadm.showTargets(t));
      return next++;
    },
    newTarget: (tid, iqn) =>
      tgtadm.newTarget(t, tid, iqn).catch((e: unknown) => {
        if (tgtadm.tgtadmRefusal(e) === 'exists') next = undefined;
        throw e;
      }),
    deleteTarget: (tid, force) => tgtadm.deleteTarget(t, tid, force),
    newLun: (tid, lun, backing) => tgtadm.newLun(t, tid, lun, backing),
    newAccount: (user, secret) => tgtadm.newAccount(t, user, secret),
    deleteAccount: (user) => tgtadm.deleteAccount(t, user),
    bindAccount: (tid, user) => tgtadm.bindAccount(t, tid, user),
    unbindAccount: (tid, user) => tgtadm.unbindAccount(t, tid, user),
    bindInitiator: (tid, name) => tgtadm.bindInitiator(t, tid, name),
    unbindInitiator: (tid, name) => tgtadm.unbindInitiator(t, tid, name),
  };
  const lock = serial();
  return {
    show: () => tgtadm.showTargets(t),
    accounts: () => tgtadm.showAccounts(t),
    exclusive: (fn) => lock(() => fn(ops)),
  };
}
