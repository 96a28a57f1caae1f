/**
 * api/periodic.ts, the replicas' periodic job runner (the old scheduler-sweeper test's
 * invariants included), with real timers, short leases on a
 * real SQLite file (each runner with a database handle of its own, as replicas have) and
 * loggers writing to memory.
 *
 * Invariants under test: of two runners with different holders, a job's passes run on
 * one at a time and, while both live, on one only; stop() waits for the pass under way,
 * runs nothing after, and releases the lease so the other takes it before it would have
 * expired; a runner that stops renewing (its database calls hang, as in a frozen process)
 * loses the job to the other once its lease ran out, within one lease period and never
 * before; a failed pass is logged and the next interval runs again; graceMs delays the
 * first claim; the first pass of each tenure, and only it, is told so.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { type Db, openDb } from '../../api/db/index.ts';
import { type LeaseRow, listLeases } from '../../api/db/leases.ts';
import { migrate } from '../../api/db/migrations.ts';
import { memoryOfTenure } from '../../api/jobs.ts';
import { type PeriodicJob, type PeriodicJobs, startPeriodicJobs } from '../../api/periodic.ts';
import { type TestDatabase, tempDir, testDatabase, waitFor } from '../helpers/env.ts';

const LEASE_MS = 600;

interface Pass {
  holder: string;
  /** The runner said this was the first pass of its tenure of the lease. */
  first: boolean;
  start: number;
  end: number;
}

function memoryLog() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

/** A database handle whose calls can be made to hang, as a frozen replica's would. */
function freezable(db: Db) {
  let frozen = false;
  const hung: ((e: Error) => void)[] = [];
  const handle: Db = {
    engine: db.engine,
    query: (sql, params) =>
      frozen ? new Promise((_, reject) => hung.push(reject)) : db.query(sql, params),
    transaction: (fn) => db.transaction(fn),
    listen: (channel, fn) => db.listen(channel, fn),
    close: () => db.close(),
  };
  return {
    handle,
    freeze: () => {
      frozen = true;
    },
    /** Fails the hung calls, so the runner can be stopped. */
    thaw: () => {
      frozen = false;
      for (const reject of hung.splice(0)) reject(new Error('thawed'));
    },
  };
}

/** After a's database froze: b takes the job once a's lease ran out, and not before. */
async function takenOver(
  leaseOf: (name: string) => Promise<LeaseRow | undefined>,
  passes: Pass[],
  b: PeriodicJobs,
) {
  const frozenAt = performance.now();
  await sleep(20);
  const last = await leaseOf('crash');
  assert.equal(last?.holder, 'a');
  const taken = await waitFor(
    'b to take the job within one lease period of the freeze',
    async () => {
      const l = await leaseOf('crash');
      return l?.holder === 'b' ? l : undefined;
    },
    LEASE_MS * 1.5,
    10,
  );
  assert.ok(
    taken.acquired_at >= (last?.expires_at ?? 0),
    "b took it only once a's last lease had run out",
  );
  const lastOfA = Math.max(...passes.filter((p) => p.holder === 'a').map((p) => p.start));
  assert.ok(lastOfA < frozenAt + LEASE_MS, 'a started no pass past its lease');
  await waitFor('a pass on b', () => passes.some((p) => p.holder === 'b'));
  assert.deepEqual(b.held(), ['crash']);
}

describe('periodic jobs under leases (SQLite)', { timeout: 60_000 }, () => {
  const dir = tempDir('kumo-periodic-');
  let database: TestDatabase;
  const handles: Db[] = [];
  const running: PeriodicJobs[] = [];
  const open = () => {
    const db = openDb(database.url);
    handles.push(db);
    return db;
  };
  const start = (db: Db, holder: string, jobs: PeriodicJob[], log = memoryLog().log) => {
    const r = startPeriodicJobs({ db, log, leaseMs: LEASE_MS, holder }, jobs);
    running.push(r);
    return r;
  };
  /** A job whose passes take `ms` and are recorded under the runner's holder. */
  const recorded = (name: string, passes: Pass[], holder: string, ms = 20): PeriodicJob => ({
    name,
    everyMs: 40,
    pass: async ({ first }) => {
      const p = { holder, first, start: performance.now(), end: Number.POSITIVE_INFINITY };
      passes.push(p);
      await sleep(ms);
      p.end = performance.now();
    },
  });
  const leaseOf = async (name: string) =>
    (await listLeases(handles[0] as Db)).find((l) => l.name === name);

  before(async () => {
    database = testDatabase('sqlite', dir.path);
    await migrate(open());
  });
  after(async () => {
    await Promise.all(running.map((r) => r.stop()));
    for (const db of handles) await db.close();
    dir.cleanup();
  });

  test('two runners: passes one at a time (even when they overrun), all on one holder while both live', async () => {
    const passes: Pass[] = [];
    // Passes of 60 ms every 40 ms: each overruns its interval, and must not be overlapped.
    const a = start(open(), 'a', [recorded('excl', passes, 'a', 60)]);
    const b = start(open(), 'b', [recorded('excl', passes, 'b', 60)]);
    await waitFor('six passes', () => passes.filter((p) => p.end < Infinity).length >= 6, 10_000);
    await Promise.all([a.stop(), b.stop()]);
    const holders = new Set(passes.map((p) => p.holder));
    assert.equal(holders.size, 1, `passes ran on ${[...holders]}`);
    const sorted = [...passes].sort((x, y) => x.start - y.start);
    for (let i = 1; i < sorted.length; i++)
      assert.ok(
        (sorted[i] as Pass).start >= (sorted[i - 1] as Pass).end,
        `pass ${i} started before pass ${i - 1} ended`,
      );
  });

  test('stop() waits for the pass under way, then hands the job over before the lease ran out', async () => {
    const passes: Pass[] = [];
    const a = start(open(), 'a', [recorded('handover', passes, 'a', 150)]);
    await waitFor('a pass under way on a', () => passes.some((p) => p.holder === 'a'));
    const b = start(open(), 'b', [recorded('handover', passes, 'b')]);
    const lease = await leaseOf('handover');
    assert.equal(lease?.holder, 'a');
    await a.stop();
    assert.ok(
      passes.every((p) => p.end < Infinity),
      'stop() returned after the pass under way ended',
    );
    const byA = passes.filter((p) => p.holder === 'a').length;
    const taken = await waitFor('b to take the job', async () => {
      const l = await leaseOf('handover');
      return l?.holder === 'b' ? l : undefined;
    });
    assert.ok(
      taken.acquired_at < (lease?.expires_at ?? 0),
      'b took it before a lease would have run out: stop() released it',
    );
    await waitFor('a pass on b', () => passes.some((p) => p.holder === 'b'));
    assert.equal(
      passes.filter((p) => p.holder === 'a').length,
      byA,
      'nothing ran on a after stop()',
    );
    assert.deepEqual(a.held(), []);
    assert.deepEqual(b.held(), ['handover']);
    assert.deepEqual(
      passes.map((p) => [p.holder, p.first]).slice(byA - 1, byA + 1),
      [
        ['a', byA === 1],
        ['b', true],
      ],
      "b's first pass is told it starts a tenure",
    );
    assert.equal(passes.filter((p) => p.first).length, 2, 'one first pass per tenure');
  });

  test('a runner that stops renewing loses the job within one lease period, never before', async () => {
    const passes: Pass[] = [];
    const frozen = freezable(open());
    start(frozen.handle, 'a', [recorded('crash', passes, 'a')]);
    await waitFor('a pass on a', () => passes.some((p) => p.holder === 'a'));
    const b = start(open(), 'b', [recorded('crash', passes, 'b')]);
    frozen.freeze();
    try {
      await takenOver(leaseOf, passes, b);
    } finally {
      frozen.thaw();
    }
  });

  test('a failed pass is logged and the next interval runs again', async () => {
    const { log, lines } = memoryLog();
    let passes = 0;
    const job: PeriodicJob = {
      name: 'flaky',
      everyMs: 30,
      pass: async () => {
        passes++;
        if (passes === 1) throw new Error('database away');
      },
    };
    const r = start(open(), 'a', [job], log);
    await waitFor('a pass after the failed one', () => passes >= 3);
    await r.stop();
    const failed = lines.filter((l) => l.msg === 'flaky failed');
    assert.deepEqual(
      failed.map((l) => [l.job, l.err]),
      [['flaky', 'database away']],
    );
  });

  test('graceMs: no claim, no pass before it has passed', async () => {
    let first = Number.POSITIVE_INFINITY;
    const startedAt = performance.now();
    start(open(), 'a', [
      {
        name: 'grace',
        everyMs: 1000,
        graceMs: 400,
        pass: async () => {
          first = Math.min(first, performance.now());
        },
      },
    ]);
    await sleep(200);
    assert.equal(await leaseOf('grace'), undefined, 'no claim during the grace period');
    await waitFor('the first pass', () => first < Infinity);
    assert.ok(
      first - startedAt >= 399,
      `the first pass waited the grace (${first - startedAt} ms)`,
    );
  });
});

test("the L3 and LBaaS sweeps' memory of their previous pass does not outlive a tenure", () => {
  const memory = { unhosted: new Set(['router-1']) };
  assert.deepEqual([...memoryOfTenure({ first: false }, memory).unhosted], ['router-1']);
  assert.deepEqual([...memoryOfTenure({ first: true }, memory).unhosted], []);
});
