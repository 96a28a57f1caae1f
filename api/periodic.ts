/**
 * Periodic jobs under database leases: each job (a sweep, failover, key rotation) runs on
 * exactly one kumo-api replica at a time, the one holding the job's lease (db/leases.ts).
 *
 * Invariants:
 * - a replica runs a pass only while it holds the job's lease; it renews every third of
 *   the lease, and a replica that does not hold it tries again the moment it expires, so
 *   a dead holder's jobs move to a survivor within one lease period;
 * - never two passes of one job at once in a process (a slow pass makes the next tick a
 *   no-op); a failed pass is logged and the next one tries again; a pass may outlive its
 *   interval while renewals go on beside it, but a pass under way is not stopped when a
 *   renewal fails: if this replica cannot reach the database for a whole lease, another
 *   may start the job while that pass ends. The scheduler's writes take their own locks
 *   (advisory locks, conditional updates), so such an overlap stays safe;
 * - a pass starts only before the lease's end as measured from before the claim was sent
 *   (a late answer from a slow database does not start one), and never after stop();
 * - a job's first pass waits `graceMs` after this replica started;
 * - a pass is told whether it is the first since this replica (re)took the lease, so a
 *   job's memory of "the previous pass" never spans another replica's passes;
 * - stop() waits for the passes under way, then releases the leases held, so a peer takes
 *   over at its next attempt instead of after the lease runs out.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../core/log.ts';
import type { Db } from './db/index.ts';
import { claimLease, releaseLease } from './db/leases.ts';

export interface PeriodicJob {
  /** The lease's name, and the job's in logs. */
  name: string;
  /** How often a pass runs while this replica holds the lease. */
  everyMs: number;
  /** How long after this replica's start it may first take the lease (default 0). */
  graceMs?: number;
  pass(tenure: PassTenure): Promise<unknown>;
}

export interface PassTenure {
  /**
   * The first pass since this replica took the lease: the job's previous pass may have
   * run on another replica, so whatever this replica remembers from its own earlier
   * passes is not "the previous pass" any more.
   */
  first: boolean;
}

export interface PeriodicDeps {
  db: Db;
  log: Logger;
  leaseMs: number;
  /** This replica's holder id; unique per process by default. */
  holder?: string;
}

export interface PeriodicJobs {
  readonly holder: string;
  /** Names of the leases this replica holds now. */
  held(): string[];
  stop(): Promise<void>;
}

/** A holder id naming the host and process, unique per start. */
export const newHolder = () => `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

export function startPeriodicJobs(deps: PeriodicDeps, jobs: PeriodicJob[]): PeriodicJobs {
  const holder = deps.holder ?? newHolder();
  const runners = jobs.map((job) => runJob(deps, holder, job));
  return {
    holder,
    held: () => runners.filter((r) => r.holds()).map((r) => r.name),
    async stop() {
      await Promise.all(runners.map((r) => r.stop()));
    },
  };
}

function runJob(deps: PeriodicDeps, holder: string, job: PeriodicJob) {
  const log = deps.log.child({ job: job.name });
  const renewMs = deps.leaseMs / 3;
  let stopped = false;
  let held = false;
  let heldUntil = 0;
  let lastPass = Number.NEGATIVE_INFINITY;
  let newTenure = true;
  let tenure = Number.NaN;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let running: Promise<unknown> | undefined;

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(
      () => {
        ticking = tick();
      },
      Math.max(0, ms),
    );
  };
  const runPass = () => {
    lastPass = performance.now();
    const first = newTenure;
    newTenure = false;
    running = job
      .pass({ first })
      .catch((e: Error) => log.error({ err: e.message }, `${job.name} failed`))
      .finally(() => {
        running = undefined;
      });
  };
  // A claim answered late (a slow database) may already have run out: check the clock.
  const due = () =>
    !stopped &&
    !running &&
    performance.now() < heldUntil &&
    performance.now() - lastPass >= job.everyMs;
  const tick = async () => {
    const before = performance.now();
    let next = renewMs;
    try {
      const lease = await claimLease(deps.db, job.name, holder, deps.leaseMs);
      if (lease.held !== held)
        log.info({ holder, from: lease.holder }, lease.held ? 'lease taken' : 'lease lost');
      // acquired_at changes exactly when a tenure starts (db/leases.ts).
      if (lease.held && lease.acquiredAt !== tenure) newTenure = true;
      if (lease.held) tenure = lease.acquiredAt;
      held = lease.held;
      heldUntil = before + lease.remainingMs;
      if (!held) next = Math.min(renewMs, Math.max(50, lease.remainingMs + 25));
      else if (due()) runPass();
      const untilDue = lastPass + job.everyMs - performance.now();
      // A pass that overran its interval: the ticks only renew until it ends.
      if (held)
        next = running && untilDue <= 0 ? renewMs : Math.min(renewMs, Math.max(50, untilDue));
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'lease not renewed');
      held = false;
    }
    schedule(next);
  };
  schedule(job.graceMs ?? 0);
  return {
    name: job.name,
    holds: () => held && performance.now() < heldUntil,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await ticking;
      clearTimeout(timer);
      await running;
      if (held) await releaseLease(deps.db, job.name, holder).catch(() => {});
      held = false;
    },
  };
}
