/**
 * api/db/leases.ts on both engines (a SQLite file and a fresh PostgreSQL database).
 *
 * Invariants under test: at most one holder has an unexpired lease on a name; a renewal
 * by the holder keeps `acquired_at` and pushes `expires_at`; another holder is refused
 * while the lease runs and takes it once it has expired (a new tenure, a new
 * `acquired_at`); a release lets another take it at once; times are the database's
 * clock; on PostgreSQL twenty claims racing from two connection pools leave exactly one
 * holder.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Db, openDb } from '../../api/db/index.ts';
import { claimLease, listLeases, releaseLease } from '../../api/db/leases.ts';
import { migrate } from '../../api/db/migrations.ts';
import { type TestDatabase, tempDir, testDatabase } from '../helpers/env.ts';

const LONG = 60_000;

/** The database's clock, read the way leases.ts reads it. */
async function dbNow(db: Db): Promise<number> {
  const sql =
    db.engine === 'postgres'
      ? 'SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now'
      : "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER) AS now";
  const [row] = await db.query<{ now: number | string }>(sql);
  return Number(row?.now);
}

const leaseOf = async (db: Db, name: string) => (await listLeases(db)).find((l) => l.name === name);

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`leases on ${engine}`, () => {
    const dir = tempDir(`kumo-leases-${engine}-`);
    let database: TestDatabase | undefined;
    let db: Db;
    before(async () => {
      database = testDatabase(engine, dir.path);
      db = openDb(database.url);
      await migrate(db);
    });
    after(async () => {
      await db?.close();
      database?.cleanup();
      dir.cleanup();
    });

    test('claim, then renew: acquired_at kept, expires_at pushed, times from the database', async () => {
      const before = await dbNow(db);
      const first = await claimLease(db, 'renew', 'a', LONG);
      assert.deepEqual({ held: first.held, holder: first.holder }, { held: true, holder: 'a' });
      assert.ok(first.remainingMs > 0 && first.remainingMs <= LONG, `${first.remainingMs}`);
      const taken = await leaseOf(db, 'renew');
      assert.ok(taken, 'the lease row exists');
      const afterClaim = await dbNow(db);
      assert.ok(taken.acquired_at >= before && taken.acquired_at <= afterClaim, 'database clock');
      assert.equal(taken.expires_at - taken.acquired_at, LONG);
      assert.equal(first.acquiredAt, taken.acquired_at, 'the claim tells when the tenure began');
      await sleep(20);
      const renewed = await claimLease(db, 'renew', 'a', LONG);
      assert.equal(renewed.held, true);
      const row = await leaseOf(db, 'renew');
      assert.equal(row?.acquired_at, taken.acquired_at, 'a renewal keeps acquired_at');
      assert.ok((row?.expires_at ?? 0) > taken.expires_at, 'a renewal pushes expires_at');
    });

    test('another holder is refused while the lease runs, and takes it once it expired', async () => {
      assert.equal((await claimLease(db, 'expiry', 'a', 300)).held, true);
      const refused = await claimLease(db, 'expiry', 'b', 300);
      assert.deepEqual(
        { held: refused.held, holder: refused.holder },
        { held: false, holder: 'a' },
      );
      assert.ok(refused.remainingMs > 0, 'b is told how long a still holds it');
      const first = await leaseOf(db, 'expiry');
      await sleep(Math.max(0, refused.remainingMs) + 30);
      const taken = await claimLease(db, 'expiry', 'b', LONG);
      assert.deepEqual({ held: taken.held, holder: taken.holder }, { held: true, holder: 'b' });
      const row = await leaseOf(db, 'expiry');
      assert.ok((row?.acquired_at ?? 0) > (first?.acquired_at ?? 0), 'a new tenure');
      const late = await claimLease(db, 'expiry', 'a', LONG);
      assert.deepEqual({ held: late.held, holder: late.holder }, { held: false, holder: 'b' });
    });

    test('the same holder retaking its expired lease starts a new tenure', async () => {
      await claimLease(db, 'retake', 'a', 100);
      const first = await leaseOf(db, 'retake');
      await sleep(150);
      assert.equal((await claimLease(db, 'retake', 'a', LONG)).held, true);
      const row = await leaseOf(db, 'retake');
      assert.ok((row?.acquired_at ?? 0) > (first?.acquired_at ?? 0), 'acquired_at starts again');
    });

    test('a release lets another holder take the lease at once; a non-holder cannot release', async () => {
      assert.equal((await claimLease(db, 'release', 'a', LONG)).held, true);
      await releaseLease(db, 'release', 'b');
      assert.equal((await claimLease(db, 'release', 'b', LONG)).held, false, 'b released nothing');
      await releaseLease(db, 'release', 'a');
      const taken = await claimLease(db, 'release', 'b', LONG);
      assert.deepEqual({ held: taken.held, holder: taken.holder }, { held: true, holder: 'b' });
      const row = await leaseOf(db, 'release');
      assert.ok((row?.remaining_ms ?? 0) > LONG / 2, 'b holds it for its full duration');
    });

    if (engine === 'postgres')
      test('twenty claims racing from two pools: exactly one holder', async () => {
        const other = openDb((database as TestDatabase).url);
        try {
          for (let round = 0; round < 5; round++) {
            const name = `race-${round}`;
            const claims = Array.from({ length: 20 }, (_, i) =>
              claimLease(i % 2 ? other : db, name, `h${i}`, LONG),
            );
            const results = await Promise.all(claims);
            const winners = results.flatMap((r, i) => (r.held ? [`h${i}`] : []));
            assert.equal(winners.length, 1, `round ${round}: one holder, got ${winners}`);
            assert.ok(
              results.every((r) => r.holder === winners[0]),
              'everyone is told the same holder',
            );
            assert.equal((await leaseOf(db, name))?.holder, winners[0]);
          }
        } finally {
          await other.close();
        }
      });
  });
}
