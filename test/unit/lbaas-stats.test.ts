/**
 * The LBaaS agent's stats loop with `show stat` rows passed in (the socket client is
 * host/haproxy/stats.ts's, tested against a real haproxy there; the loop is run against
 * one in test/integration/lbaas-agent.test.ts): member health from haproxy's status words,
 * counters summed across reloads with the base kept in stats.json (an agent restart keeps
 * it), a report only when something changed, and one pool's failing socket not stopping
 * another's report.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  advance,
  readBase,
  readRows,
  type StatRowLike,
  type StatsTarget,
  statsPass,
} from '../../agents/lbaas/stats.ts';
import { UpdatePoolStatsArgs } from '../../contracts/lbaas.ts';
import { silentLogger } from '../../core/log.ts';
import { tempDir } from '../helpers/env.ts';
import { M1, M2, POOL, VIP } from '../helpers/lbaas-fixtures.ts';

const row = (svname: string, o: Partial<StatRowLike> = {}): StatRowLike => ({
  pxname: POOL,
  svname,
  scur: 0,
  stot: 0,
  bin: 0,
  bout: 0,
  status: 'UP',
  check_status: 'L7OK',
  ...o,
});

const rows = (stot: number, m2 = 'UP', scur = 1): StatRowLike[] => [
  row('FRONTEND', { pxname: VIP, stot: stot + 100, status: 'OPEN' }),
  row(M1, { stot: stot / 2 }),
  row(M2, { stot: stot / 2, status: m2, check_status: m2 === 'UP' ? 'L7OK' : 'L4CON' }),
  row('BACKEND', { stot, bin: stot * 10, bout: stot * 20, scur }),
];

describe('readRows and advance', () => {
  test('the backend row counts; members UP/no check/going down ACTIVE, DOWN/MAINT INACTIVE', () => {
    const r = readRows(
      [
        ...rows(10),
        row('aaaaaaaa-0000-4000-8000-000000000001', { status: 'no check', check_status: '' }),
        row('aaaaaaaa-0000-4000-8000-000000000002', { status: 'UP 1/3' }),
        row('aaaaaaaa-0000-4000-8000-000000000003', { status: 'MAINT', check_status: '' }),
      ],
      POOL,
    );
    assert.deepEqual(r.now, { bytes_in: 100, bytes_out: 200, total_connections: 10 });
    assert.equal(r.active, 1);
    assert.deepEqual(
      r.members.map((m) => m.status),
      ['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'INACTIVE'],
    );
    assert.deepEqual(r.reasons, [{ id: 'aaaaaaaa-0000-4000-8000-000000000003', reason: 'MAINT' }]);
    const down = readRows(rows(10, 'DOWN'), POOL);
    assert.deepEqual(down.reasons, [{ id: M2, reason: 'L4CON' }]);
  });

  test('a new pid adds what the old process last counted to the base', () => {
    const c = (n: number) => ({ bytes_in: n, bytes_out: n, total_connections: n });
    const a = advance(null, 100, c(5));
    assert.deepEqual(a, { pid: 100, base: c(0), last: c(5) });
    const b = advance(a, 100, c(7));
    assert.deepEqual(b, { pid: 100, base: c(0), last: c(7) });
    assert.deepEqual(advance(b, 200, c(1)), { pid: 200, base: c(7), last: c(1) });
    // The same pid counting less: a new process that got the old pid (a host reboot).
    assert.deepEqual(advance(b, 100, c(3)), { pid: 100, base: c(7), last: c(3) });
  });
});

describe('statsPass', () => {
  const tmp = tempDir('kumo-lbaas-stats-');
  after(() => tmp.cleanup());
  const base = join(tmp.path, 'stats.json');
  const sent: UpdatePoolStatsArgs[] = [];
  let pid = 100;
  /** What `show info` answers next (then `pid`): a reload between two reads. */
  const infoPids: number[] = [];
  let now = rows(10);
  const OTHER = '99999999-0000-4000-8000-000000000000';
  const targets = new Map<string, StatsTarget>([
    [OTHER, { socket: '/broken.sock', basePath: join(tmp.path, 'o.json'), pid: async () => 7 }],
    [POOL, { socket: '/pool.sock', basePath: base, pid: async () => pid }],
  ]);
  const deps = {
    host: 'lbaas-test-host',
    log: silentLogger(),
    targets: () => targets,
    async showStat(socket: string) {
      if (socket === '/broken.sock') throw new Error('connect ENOENT /broken.sock');
      return now;
    },
    showPid: async () => infoPids.shift() ?? pid,
    send: async (args: UpdatePoolStatsArgs) => {
      sent.push(args);
    },
  };

  test('reports a pool despite another one’s failing socket; nothing again when unchanged', async () => {
    const pass = statsPass(deps);
    await pass();
    assert.deepEqual(sent, [
      {
        host: 'lbaas-test-host',
        pool_id: POOL,
        stats: { bytes_in: 100, bytes_out: 200, total_connections: 10, active_connections: 1 },
        members: [
          { id: M1, status: 'ACTIVE' },
          { id: M2, status: 'ACTIVE' },
        ],
      },
    ]);
    await pass();
    assert.equal(sent.length, 1, 'unchanged: not sent');
    now = rows(10, 'DOWN');
    await pass();
    assert.equal(sent.length, 2);
    assert.deepEqual(
      sent[1],
      {
        host: 'lbaas-test-host',
        pool_id: POOL,
        members: [
          { id: M1, status: 'ACTIVE' },
          { id: M2, status: 'INACTIVE' },
        ],
        reasons: [{ id: M2, reason: 'L4CON' }],
      },
      'only the health changed: no stats',
    );
  });

  test('a reload (new pid, counters from zero) keeps the sum, also for a restarted agent', async () => {
    pid = 200;
    now = rows(2);
    const restarted = statsPass(deps);
    await restarted();
    const last = sent.at(-1) as UpdatePoolStatsArgs;
    assert.deepEqual(last.stats, {
      bytes_in: 120,
      bytes_out: 240,
      total_connections: 12,
      active_connections: 1,
    });
    const saved = await readBase(base);
    assert.equal(saved?.pid, 200);
    assert.deepEqual(saved?.base, { bytes_in: 100, bytes_out: 200, total_connections: 10 });
    assert.match(readFileSync(base, 'utf8'), /"pid":200/);
  });

  test('a reload between show info and show stat: that period is skipped, the sum kept', async () => {
    const pass = statsPass(deps);
    const before = readFileSync(base, 'utf8');
    const count = sent.length;
    infoPids.push(200, 300);
    now = rows(1);
    await pass();
    assert.equal(sent.length, count, 'nothing sent');
    assert.equal(readFileSync(base, 'utf8'), before, 'stats.json unchanged');
    pid = 300;
    now = rows(3);
    await pass();
    assert.deepEqual((sent.at(-1) as UpdatePoolStatsArgs).stats, {
      bytes_in: 150,
      bytes_out: 300,
      total_connections: 15,
      active_connections: 1,
    });
  });

  test('counters that change with the same health carry no members', async () => {
    const pass = statsPass(deps);
    now = rows(3, 'DOWN');
    await pass();
    const count = sent.length;
    now = rows(4, 'DOWN', 2);
    await pass();
    assert.equal(sent.length, count + 1);
    assert.deepEqual(sent.at(-1), {
      host: 'lbaas-test-host',
      pool_id: POOL,
      stats: { bytes_in: 160, bytes_out: 320, total_connections: 16, active_connections: 2 },
    });
    for (const args of sent) assert.deepEqual(UpdatePoolStatsArgs.parse(args), args, 'valid');
  });
});

describe('UpdatePoolStatsArgs', () => {
  test('stats or members required; reasons only with members', () => {
    const head = { host: 'lbaas-test-host', pool_id: POOL };
    const stats = { bytes_in: 1, bytes_out: 2, total_connections: 3, active_connections: 0 };
    assert.throws(
      () => UpdatePoolStatsArgs.parse(head),
      /^ValidationError: stats: or members is required$/,
    );
    assert.throws(
      () => UpdatePoolStatsArgs.parse({ ...head, stats, reasons: [{ id: M1, reason: 'L4CON' }] }),
      /reasons: needs members/,
    );
    assert.deepEqual(UpdatePoolStatsArgs.parse({ ...head, stats }), { ...head, stats });
    const members = [{ id: M1, status: 'INACTIVE' }];
    assert.deepEqual(UpdatePoolStatsArgs.parse({ ...head, members }), { ...head, members });
  });
});
