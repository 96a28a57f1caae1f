/**
 * api/db against both engines: a SQLite file and a fresh PostgreSQL database.
 *
 * Invariants under test: migrations apply once; `alive` is computed from the heartbeat and
 * the `now` given at read time; a failed transaction leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  deleteAgent,
  getAgent,
  listAgents,
  neutronTime,
  updateAgent,
} from '../../api/db/agents.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { MIGRATIONS, migrate } from '../../api/db/migrations.ts';
import { storeReport, storeReports } from '../../api/db/reports.ts';
import type { AgentState } from '../../contracts/agents.ts';
import { type TestDatabase, tempDir, testDatabase } from '../helpers/env.ts';

const DOWN = 30; // agent_down_time, seconds
const T0 = new Date('2024-05-01T10:00:00.000Z');
const at = (sec: number) => new Date(T0.getTime() + sec * 1000);

function state(host: string, over: Partial<AgentState> = {}): AgentState {
  return {
    agent_type: 'DHCP agent',
    binary: 'kumo-dhcp-agent',
    topic: 'dhcp_agent',
    host,
    configurations: { networks: 1 },
    ...over,
  };
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`api/db on ${engine}`, () => {
    const dir = tempDir(`kumo-db-${engine}-`);
    let database: TestDatabase | undefined;
    let db: Db;
    const report = (s: AgentState, now: Date) =>
      db.transaction((tx) => storeReport(tx, s, now, DOWN));

    before(async () => {
      database = testDatabase(engine, dir.path);
      db = openDb(database.url);
      assert.deepEqual(
        await migrate(db),
        MIGRATIONS.map((m) => m.version),
      );
    });
    after(async () => {
      await db?.close();
      database?.cleanup();
      dir.cleanup();
    });

    test('migrate is idempotent', async () => {
      assert.equal(db.engine, engine);
      assert.deepEqual(await migrate(db), [], 'a second run applies nothing');
      const rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
      assert.deepEqual(
        rows.map((r) => Number(r.version)),
        MIGRATIONS.map((m) => m.version),
      );
    });

    test('storeReport: new, then alive within down time, then dead after it', async () => {
      const first = await report(state('life-1', { start_flag: true }), at(0));
      assert.equal(first.previous, 'new');
      const again = await report(state('life-1'), at(DOWN - 1));
      assert.deepEqual(again, { previous: 'alive', id: first.id });
      const late = await report(state('life-1'), at(DOWN - 1 + DOWN + 5));
      assert.deepEqual(late, { previous: 'dead', id: first.id });
      const [row] = await listAgents(db, { host: ['life-1'] }, at(DOWN - 1 + DOWN + 5), DOWN);
      assert.equal(row?.heartbeat_timestamp, neutronTime(at(DOWN - 1 + DOWN + 5).toISOString()));
      assert.equal(row?.created_at, neutronTime(T0.toISOString()), 'created_at never moves');
    });

    test('start_flag updates started_at; without it started_at stays', async () => {
      const { id } = await report(state('flag-1', { start_flag: true }), at(0));
      await report(state('flag-1', { configurations: { networks: 5 } }), at(10));
      let a = await getAgent(db, id, at(10), DOWN);
      assert.equal(a?.started_at, neutronTime(T0.toISOString()));
      assert.deepEqual(a?.configurations, { networks: 5 }, 'the report itself was stored');
      await report(state('flag-1', { start_flag: false }), at(20));
      a = await getAgent(db, id, at(20), DOWN);
      assert.equal(
        a?.started_at,
        neutronTime(T0.toISOString()),
        'start_flag false keeps started_at',
      );
      await report(state('flag-1', { start_flag: true }), at(40));
      a = await getAgent(db, id, at(40), DOWN);
      assert.equal(a?.started_at, neutronTime(at(40).toISOString()));
      assert.equal(a?.heartbeat_timestamp, neutronTime(at(40).toISOString()));
    });

    test('storeReports: a large mixed batch, duplicates written once, starts merged', async () => {
      const hosts = Array.from({ length: 150 }, (_, i) => `batch-${i}`);
      const first = await db.transaction((tx) =>
        storeReports(
          tx,
          [
            ...hosts.map((h) => state(h)),
            state('batch-0', {
              agent_type: 'L3 agent',
              binary: 'kumo-l3-agent',
              topic: 'l3_agent',
            }),
          ],
          at(0),
          DOWN,
        ),
      );
      assert.equal(first.length, 151);
      assert.ok(first.every((r) => r.previous === 'new'));
      assert.equal(new Set(first.map((r) => r.id)).size, 151, 'one row per (agent_type, host)');
      const batch = [
        state('batch-1', { configurations: { networks: 7 } }),
        state('batch-1', { start_flag: true, configurations: { networks: 8 } }),
        state('batch-1', { configurations: { networks: 9 } }),
        state('batch-2'),
      ];
      const second = await db.transaction((tx) => storeReports(tx, batch, at(DOWN + 10), DOWN));
      assert.deepEqual(
        second.map((r) => r.previous),
        ['dead', 'alive', 'alive', 'dead'],
      );
      assert.equal(second[0]?.id, first[1]?.id);
      const [b1] = await listAgents(db, { host: ['batch-1'] }, at(DOWN + 10), DOWN);
      assert.deepEqual(b1?.configurations, { networks: 9 }, 'the last report wins');
      assert.equal(
        b1?.started_at,
        neutronTime(at(DOWN + 10).toISOString()),
        'a start within the batch counts',
      );
      const [b2] = await listAgents(db, { host: ['batch-2'] }, at(DOWN + 10), DOWN);
      assert.equal(b2?.started_at, neutronTime(T0.toISOString()), 'no start, started_at kept');
      assert.equal((await listAgents(db, { host: hosts }, at(DOWN + 10), DOWN)).length, 151);
    });

    test('listAgents filters and computes alive from the given now', async () => {
      const l3 = { agent_type: 'L3 agent', binary: 'kumo-l3-agent', topic: 'l3_agent' };
      const a = await report(state('list-a'), at(0));
      const b = await report(state('list-b', { availability_zone: 'az1' }), at(0));
      const c = await report(state('list-c', l3), at(100));
      assert.equal(
        await updateAgent(db, b.id, { admin_state_up: false, description: 'maintenance' }),
        true,
      );

      const hosts = await listAgents(
        db,
        { host: ['list-a', 'list-c', 'no-such-host'] },
        at(100),
        DOWN,
      );
      assert.deepEqual(
        hosts.map((x) => [x.host, x.alive]),
        [
          ['list-a', false],
          ['list-c', true],
        ],
        'host values are OR-ed; alive is computed from now',
      );
      const earlier = await listAgents(db, { host: ['list-a'] }, at(DOWN), DOWN);
      assert.equal(
        earlier[0]?.alive,
        true,
        'exactly agent_down_time after the heartbeat is still alive',
      );

      const down = await listAgents(
        db,
        { admin_state_up: [false], host: ['list-a', 'list-b', 'list-c'] },
        at(0),
        DOWN,
      );
      assert.deepEqual(
        down.map((x) => x.id),
        [b.id],
      );
      assert.equal(down[0]?.admin_state_up, false);
      assert.equal(down[0]?.description, 'maintenance');
      assert.equal(down[0]?.availability_zone, 'az1');

      const up = await listAgents(
        db,
        { admin_state_up: [true], host: ['list-a', 'list-b', 'list-c'] },
        at(0),
        DOWN,
      );
      assert.deepEqual(
        up.map((x) => x.id),
        [a.id, c.id],
      );
      const typed = await listAgents(
        db,
        { agent_type: ['L3 agent'], host: ['list-a', 'list-c'] },
        at(0),
        DOWN,
      );
      assert.deepEqual(
        typed.map((x) => x.id),
        [c.id],
        'columns are AND-ed',
      );
      assert.equal(typed[0]?.binary, 'kumo-l3-agent');
    });

    test('updateAgent and deleteAgent report unknown ids', async () => {
      const missing = '00000000-0000-4000-8000-000000000000';
      assert.equal(await updateAgent(db, missing, { admin_state_up: false }), false);
      assert.equal(await updateAgent(db, missing, {}), false);
      assert.equal(await deleteAgent(db, missing), false);

      const { id } = await report(state('del-1'), at(0));
      assert.equal(await updateAgent(db, id, {}), true, 'an empty update of a known id');
      assert.equal(await updateAgent(db, id, { description: null }), true);
      assert.equal(await deleteAgent(db, id), true);
      assert.equal(await getAgent(db, id, at(0), DOWN), undefined);
      assert.equal(await deleteAgent(db, id), false, 'a second delete finds nothing');
    });

    test('a transaction that throws rolls back', async () => {
      await assert.rejects(
        db.transaction(async (tx) => {
          await storeReport(tx, state('rollback-1'), at(0), DOWN);
          const inside = await tx.query('SELECT id FROM agents WHERE host = ?', ['rollback-1']);
          assert.equal(inside.length, 1, 'the transaction sees its own insert');
          throw new Error('abort on purpose');
        }),
        /abort on purpose/,
      );
      assert.deepEqual(await listAgents(db, { host: ['rollback-1'] }, at(0), DOWN), []);
      const ok = await report(state('rollback-1'), at(1));
      assert.equal(ok.previous, 'new', 'the database is usable after a rollback');
    });
  });
}
