/**
 * core/reconcile.ts: the keyed reconcile queue.
 *
 * Workers are gated by hand (each run waits for the test to release it) and retry waits use
 * a manual fake timer, so nothing depends on wall-clock time.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { silentLogger } from '../../core/log.ts';
import { createReconcileQueue, type Timers } from '../../core/reconcile.ts';

/** A timer that only fires when the test says so. */
class ManualTimers implements Timers {
  private next = 1;
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  readonly delays: number[] = [];
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { fn, ms });
    this.delays.push(ms);
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    const due = [...this.pending.entries()];
    this.pending.clear();
    for (const [, t] of due) t.fn();
  }
}

/** Lets queued promise callbacks and the queue's follow-up work run. */
const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/**
 * A worker whose runs block until released; `fail(key, n)` makes the next n runs of key throw.
 */
function gatedWorker() {
  const calls: string[] = [];
  const gates: { key: string; release: () => void }[] = [];
  const failures = new Map<string, number>();
  const inFlight = new Map<string, number>();
  let maxPerKey = 0;
  const worker = async (key: string) => {
    calls.push(key);
    const n = (inFlight.get(key) ?? 0) + 1;
    inFlight.set(key, n);
    maxPerKey = Math.max(maxPerKey, n);
    await new Promise<void>((release) => gates.push({ key, release }));
    inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    const left = failures.get(key) ?? 0;
    if (left > 0) {
      failures.set(key, left - 1);
      throw new Error(`boom ${key}`);
    }
  };
  return {
    worker,
    calls,
    maxPerKey: () => maxPerKey,
    fail: (key: string, n: number) => failures.set(key, n),
    waiting: () => gates.map((g) => g.key),
    /** Releases every run currently blocked and lets the queue react. */
    async releaseAll() {
      for (const g of gates.splice(0)) g.release();
      await flush();
    },
    /** Releases runs until nothing is blocked any more. */
    async runToCompletion() {
      while (gates.length > 0) await this.releaseAll();
    },
  };
}

function queue(w: ReturnType<typeof gatedWorker>, concurrency = 4, timers = new ManualTimers()) {
  const q = createReconcileQueue({
    worker: w.worker,
    log: silentLogger(),
    concurrency,
    backoff: { initialMs: 100, maxMs: 350 },
    timers,
  });
  return { q, timers };
}

describe('reconcile queue', () => {
  test('at most one run per key, other keys run in parallel', async () => {
    const w = gatedWorker();
    const { q } = queue(w);
    q.enqueue('a');
    q.enqueue('b');
    await flush();
    q.enqueue('a');
    q.enqueue('a');
    await flush();
    assert.deepEqual(w.waiting().sort(), ['a', 'b'], 'a and b run together, a only once');
    assert.deepEqual(q.stats(), { queued: 0, running: 2, retrying: 0 });
    await w.runToCompletion();
    await q.idle();
    assert.equal(w.maxPerKey(), 1);
  });

  test('N enqueues during a run coalesce into exactly one more run', async () => {
    const w = gatedWorker();
    const { q } = queue(w);
    q.enqueue('net-1');
    await flush();
    for (let i = 0; i < 10; i++) q.enqueue('net-1');
    await w.releaseAll();
    assert.deepEqual(w.waiting(), ['net-1'], 'the second run started');
    await w.runToCompletion();
    await q.idle();
    assert.deepEqual(w.calls, ['net-1', 'net-1']);
    assert.deepEqual(q.stats(), { queued: 0, running: 0, retrying: 0 });
  });

  test('enqueues of a key that is only queued do not run it twice', async () => {
    const w = gatedWorker();
    const { q } = queue(w, 1);
    q.enqueue('busy');
    q.enqueue('x');
    q.enqueue('x');
    q.enqueue('x', 'resync');
    assert.equal(q.stats().queued, 1);
    await w.runToCompletion();
    await q.idle();
    assert.deepEqual(w.calls, ['busy', 'x']);
  });

  test('live jobs run before resync jobs, each in arrival order', async () => {
    const w = gatedWorker();
    const { q } = queue(w, 1);
    q.enqueue('first', 'resync');
    await flush();
    q.enqueue('r1', 'resync');
    q.enqueue('r2', 'resync');
    q.enqueue('l1', 'live');
    q.enqueue('r3', 'resync');
    q.enqueue('l2');
    q.enqueue('r3', 'live'); // a live hint promotes a queued resync job
    assert.deepEqual(q.stats(), { queued: 5, running: 1, retrying: 0 });
    await w.runToCompletion();
    await q.idle();
    assert.deepEqual(w.calls, ['first', 'l1', 'l2', 'r3', 'r1', 'r2']);
  });

  test('a failed job is retried with exponential backoff capped at maxMs', async () => {
    const w = gatedWorker();
    const { q, timers } = queue(w);
    w.fail('port-1', 4);
    q.enqueue('port-1');
    for (let attempt = 1; attempt <= 4; attempt++) {
      await w.releaseAll();
      assert.equal(timers.pending.size, 1, `a retry is scheduled after failure ${attempt}`);
      assert.deepEqual(q.stats(), { queued: 0, running: 0, retrying: 1 });
      timers.fireAll();
      await flush();
    }
    let idle = false;
    void q.idle().then(() => {
      idle = true;
    });
    await flush();
    assert.equal(idle, false, 'not idle while a run is in flight');
    await w.releaseAll();
    await flush();
    assert.equal(idle, true);
    assert.deepEqual(timers.delays, [100, 200, 350, 350]);
    assert.equal(w.calls.length, 5);
  });

  test('a new enqueue cuts a retry wait short', async () => {
    const w = gatedWorker();
    const { q, timers } = queue(w);
    w.fail('r', 1);
    q.enqueue('r');
    await w.releaseAll();
    assert.equal(timers.pending.size, 1);
    q.enqueue('r');
    await flush();
    assert.equal(timers.pending.size, 0, 'the retry timer was cancelled');
    assert.deepEqual(w.waiting(), ['r'], 'ran again without waiting for the timer');
    await w.runToCompletion();
    await q.idle();
    assert.deepEqual(w.calls, ['r', 'r']);
  });

  test('drain waits for running jobs, drops queued work and retries', async () => {
    const w = gatedWorker();
    const { q, timers } = queue(w, 1);
    w.fail('retrying', 1);
    q.enqueue('retrying');
    await w.releaseAll();
    assert.equal(q.stats().retrying, 1);
    q.enqueue('running');
    await flush();
    q.enqueue('queued');
    q.enqueue('running'); // dirty: would run again, but drain drops it
    let drained = false;
    const done = q.drain().then(() => {
      drained = true;
    });
    await flush();
    assert.equal(drained, false, 'drain waits for the running job');
    assert.equal(timers.pending.size, 0, 'the retry timer was cleared');
    q.enqueue('after-drain');
    await w.releaseAll();
    await done;
    assert.equal(drained, true);
    await flush();
    assert.deepEqual(w.calls, ['retrying', 'running'], 'nothing else ran');
    assert.deepEqual(q.stats(), { queued: 0, running: 0, retrying: 0 });
    await q.idle();
  });

  test('drain on an idle queue resolves at once; idle() on an empty queue too', async () => {
    const w = gatedWorker();
    const { q } = queue(w);
    await q.idle();
    await q.drain();
    q.enqueue('x');
    await flush();
    assert.deepEqual(w.calls, [], 'a drained queue takes no work');
  });

  test('idle() waits for queued, running and retrying jobs', async () => {
    const w = gatedWorker();
    const { q, timers } = queue(w, 1);
    w.fail('a', 1);
    q.enqueue('a');
    q.enqueue('b');
    let idle = false;
    void q.idle().then(() => {
      idle = true;
    });
    await w.releaseAll(); // a fails and waits to retry; b starts
    assert.equal(idle, false);
    await w.releaseAll(); // b done; a still waiting for its timer
    assert.equal(idle, false, 'a retry wait is not idle');
    timers.fireAll();
    await flush();
    await w.releaseAll();
    assert.equal(idle, true);
    assert.deepEqual(w.calls, ['a', 'b', 'a']);
  });
});
