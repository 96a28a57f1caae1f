/**
 * The reconcile queue: agents turn hints, resyncs and retries into keyed reconcile jobs.
 *
 * Invariants:
 * - at most one reconcile runs per key; a key enqueued while it runs is run once more
 *   afterwards (any number of hints in between coalesce into that one run);
 * - live jobs run before resync jobs; within a priority, keys run in arrival order;
 * - a failed job is retried with exponential backoff, and a new hint for the key cuts the
 *   wait short; `drain()` stops new work and resolves once running jobs have finished;
 * - `onRetry` hears of exactly the failures that get a retry timer (not those a newer
 *   request already reruns, nor those of a draining queue).
 */
import type { Logger } from './log.ts';

export type Priority = 'live' | 'resync';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ReconcileQueueOptions {
  worker: (key: string) => Promise<void>;
  log: Logger;
  concurrency?: number;
  backoff?: { initialMs: number; maxMs: number };
  timers?: Timers;
  /** Told of each failed job the queue will run again after `delayMs` (metrics). */
  onRetry?: (key: string, attempts: number, delayMs: number) => void;
}

export interface ReconcileQueue {
  enqueue(key: string, priority?: Priority): void;
  /** Resolves when nothing is queued, running or waiting to retry. */
  idle(): Promise<void>;
  /** Stops taking work; resolves when running jobs are done. Retries are dropped. */
  drain(): Promise<void>;
  stats(): { queued: number; running: number; retrying: number };
}

interface Entry {
  priority: Priority;
  attempts: number;
  retryTimer?: unknown;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export function createReconcileQueue(opts: ReconcileQueueOptions): ReconcileQueue {
  const concurrency = opts.concurrency ?? 4;
  const { initialMs, maxMs } = opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
  const timers = opts.timers ?? realTimers;
  const entries = new Map<string, Entry>();
  const ready: Record<Priority, string[]> = { live: [], resync: [] };
  const running = new Set<string>();
  const dirty = new Set<string>();
  let draining = false;
  let waiters: (() => void)[] = [];

  const isIdle = () => entries.size === 0 && running.size === 0;
  const settle = () => {
    if (!isIdle()) return;
    for (const w of waiters.splice(0)) w();
  };

  const makeReady = (key: string, entry: Entry) => {
    if (entry.retryTimer !== undefined) {
      timers.clearTimeout(entry.retryTimer);
      entry.retryTimer = undefined;
    }
    for (const p of ['live', 'resync'] as const) ready[p] = ready[p].filter((k) => k !== key);
    ready[entry.priority].push(key);
  };

  const pump = () => {
    while (!draining && running.size < concurrency) {
      const key = ready.live.shift() ?? ready.resync.shift();
      if (key === undefined) break;
      void runJob(key);
    }
    settle();
  };

  const runJob = async (key: string) => {
    running.add(key);
    const entry = entries.get(key) as Entry;
    let failed = false;
    try {
      await opts.worker(key);
    } catch (e) {
      failed = true;
      entry.attempts++;
      opts.log.warn(
        { key, attempts: entry.attempts, err: (e as Error).message },
        'reconcile failed',
      );
    }
    running.delete(key);
    if (dirty.delete(key)) {
      entry.attempts = 0;
      makeReady(key, entry);
    } else if (failed && !draining) {
      const delay = Math.min(maxMs, initialMs * 2 ** (entry.attempts - 1));
      opts.onRetry?.(key, entry.attempts, delay);
      entry.retryTimer = timers.setTimeout(() => {
        entry.retryTimer = undefined;
        makeReady(key, entry);
        pump();
      }, delay);
    } else {
      entries.delete(key);
    }
    pump();
  };

  return {
    enqueue(key, priority = 'live') {
      if (draining) return;
      const existing = entries.get(key);
      if (existing) {
        if (priority === 'live') existing.priority = 'live';
        if (running.has(key)) dirty.add(key);
        else makeReady(key, existing);
      } else {
        const entry: Entry = { priority, attempts: 0 };
        entries.set(key, entry);
        makeReady(key, entry);
      }
      pump();
    },
    idle() {
      return isIdle() ? Promise.resolve() : new Promise((r) => waiters.push(r));
    },
    async drain() {
      draining = true;
      for (const [key, entry] of entries) {
        if (entry.retryTimer !== undefined) timers.clearTimeout(entry.retryTimer);
        if (!running.has(key)) entries.delete(key);
      }
      ready.live = [];
      ready.resync = [];
      dirty.clear();
      await new Promise<void>((r) => {
        waiters.push(r);
        settle();
      });
      waiters = [];
    },
    stats: () => ({
      queued: ready.live.length + ready.resync.length,
      running: running.size,
      retrying: [...entries.values()].filter((e) => e.retryTimer !== undefined).length,
    }),
  };
}
