/**
 * Key pair inserts racing on the real database, both engines; on PostgreSQL each create
 * runs on its own connection, as kumo-api replicas would (SQLite serves one replica): one user creating the same name from several
 * projects at once (each create locks its own project's quota row) gets one key pair and
 * `exists` refusals, never a failed insert (a 500), and distinct seqs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Db, openDb } from '../../api/db/index.ts';
import { insertKeypair } from '../../api/db/keypairs.ts';
import { migrate } from '../../api/db/migrations.ts';
import { tempDir, testDatabase } from '../helpers/env.ts';

const PUB = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl t';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`key pair insert races (${engine})`, () => {
    const dir = tempDir();
    const database = testDatabase(engine, dir.path);
    let db: Db;
    /** PostgreSQL: one handle per project, the creates on separate connections. */
    const replicas: Db[] = [];
    before(async () => {
      db = openDb(database.url);
      await migrate(db);
      if (engine === 'postgres') for (let i = 0; i < 4; i++) replicas.push(openDb(database.url));
    });
    after(async () => {
      for (const r of replicas) await r.close();
      await db.close();
      database.cleanup();
      dir.cleanup();
    });

    const create = (projectId: string, name: string) => {
      const on = replicas[Number(projectId.slice(1)) - 1] ?? db;
      return on.transaction((tx) =>
        insertKeypair(tx, on.engine, {
          user_id: 'u1',
          name,
          type: 'ssh',
          public_key: PUB,
          fingerprint: 'fp',
          created_at: '2026-12-05T08:00:00Z',
          projectId,
          limit: -1,
        }),
      );
    };

    test('one name from four projects at once: one key pair, three refusals', async () => {
      const outcomes = await Promise.all(['p1', 'p2', 'p3', 'p4'].map((p) => create(p, 'same')));
      const made = outcomes.filter((o) => 'row' in o);
      assert.equal(made.length, 1, JSON.stringify(outcomes));
      assert.deepEqual(
        outcomes.filter((o) => 'refused' in o),
        [{ refused: 'exists' }, { refused: 'exists' }, { refused: 'exists' }],
      );
      const rows = await db.query<{ name: string }>('SELECT name FROM keypairs WHERE user_id = ?', [
        'u1',
      ]);
      assert.deepEqual(
        rows.map((r) => r.name),
        ['same'],
      );
    });

    test('distinct names from several projects at once: distinct seqs', async () => {
      const outcomes = await Promise.all(['p1', 'p2', 'p3'].map((p, i) => create(p, `k${i}`)));
      const seqs = outcomes.map((o) => ('row' in o ? o.row.seq : -1));
      assert.equal(new Set(seqs).size, 3, JSON.stringify(seqs));
      assert.ok(seqs.every((s) => s > 0));
    });
  });
}
