/**
 * tgtd as the volume agent uses it: the targets it shows (host/tgt), its CHAP accounts,
 * and every change made inside one lock.
 *
 * Invariants: tgtd is reached only through `tgtadm -C <tgt_control_port>` (host/tgt);
 * changes run one at a time (`exclusive`), so a tid picked by `freeTid` inside the lock
 * is still free when the target is made; reads (show, accounts) need no lock.
 */
import type { CommandRunner } from '../../core/exec.ts';

export interface TgtTargetView {
  tid: number;
  iqn: string;
  luns: { lun: number; backing: string | null }[];
  accounts: string[];
  acl: string[];
  sessions: number;
}

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
  show(): Promise<TgtTargetView[]>;
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

export function createTgt(_runner: CommandRunner, _port: number): Tgt {
  throw new Error('host/tgt not merged yet');
}
