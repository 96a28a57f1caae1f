/**
 * The volume scheduler against real agent rows on both database engines: agents' reported
 * capacity and backend, liveness (agent_down_time on the API's clock), admin state and
 * availability zone; volumes placed since an agent's last report counted against it; no
 * agent → an error with each agent's reason; and two creates racing on PostgreSQL (each
 * scheduling and inserting in its own transaction) never both take the same free room.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { updateAgent } from '../../api/db/agents.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { scheduleVolume } from '../../api/scheduler/volume.ts';
import { tempDir, testDatabase } from '../helpers/env.ts';
import { clearVolumes, seedVolume, volumeHeartbeat, volumeState } from '../helpers/volume-seed.ts';

const T0 = new Date('2026-11-22T10:00:00.000Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`volume scheduling on ${engine}`, () => {
    const dir = tempDir();
    const database = testDatabase(engine, dir.path);
    let db: Db;
    let now = T0;
    const liveness = () => ({ clock: { now: () => now }, agentDownTime: 30 });
    const place = (sizeGb: number, backend: 'lvm' | 'file' = 'file', availabilityZone?: string) =>
      scheduleVolume(
        db,
        { sizeGb, backend, ...(availabilityZone ? { availabilityZone } : {}) },
        liveness(),
      );
    const agentId = async (host: string) =>
      String(
        (await db.query<{ id: string }>('SELECT id FROM agents WHERE host = ?', [host]))[0]?.id,
      );

    before(async () => {
      db = openDb(database.url);
      await migrate(db);
    });
    after(async () => {
      await db?.close();
      database.cleanup();
      dir.cleanup();
    });
    beforeEach(async () => {
      now = T0;
      await clearVolumes(db);
      await db.query('DELETE FROM agents');
    });

    test('capacity, backend, liveness, admin state and zone decide; none → the reasons', async () => {
      await volumeHeartbeat(db, volumeState('s1', { free_capacity_gb: 100 }), T0);
      await volumeHeartbeat(db, volumeState('s2', { free_capacity_gb: 50 }, 'az2'), T0);
      await volumeHeartbeat(
        db,
        volumeState('s3', { volume_backend_name: 'lvm', free_capacity_gb: 20 }),
        T0,
      );
      await volumeHeartbeat(db, volumeState('s4', { free_capacity_gb: 1000 }), at(-3600));
      await volumeHeartbeat(db, volumeState('s5', { free_capacity_gb: 1000 }), T0);
      assert.ok(await updateAgent(db, await agentId('s5'), { admin_state_up: false }));

      assert.deepEqual(
        await place(10),
        { host: 's1' },
        'most free; dead s4 and admin-down s5 skipped',
      );
      assert.deepEqual(await place(10, 'lvm'), { host: 's3' }, 'the backend decides');
      assert.deepEqual(await place(10, 'file', 'az2'), { host: 's2' }, 'the zone decides');
      const none = await place(200);
      assert.ok('error' in none);
      assert.match(none.error, /^No valid backend was found\./);
      assert.match(none.error, /s1: 100 GiB free < 200/);
      assert.match(none.error, /s3: backend lvm/);
      assert.match(none.error, /s4: volume agent is not alive/);
      assert.match(none.error, /s5: volume agent is administratively down/);
      assert.deepEqual(await place(21, 'lvm'), {
        error: [
          'No valid backend was found. s1: backend file',
          's2: backend file',
          's3: 20 GiB free < 21',
          's4: volume agent is not alive',
          's5: volume agent is administratively down',
        ].join('; '),
      });

      now = at(31);
      assert.ok('error' in (await place(1, 'lvm')), 'agent_down_time passed on the API clock');
      await volumeHeartbeat(
        db,
        volumeState('s3', { volume_backend_name: 'lvm', free_capacity_gb: 20 }),
        now,
      );
      assert.deepEqual(await place(1, 'lvm'), { host: 's3' }, 'alive again');
    });

    test('volumes placed since the last report count against the agent', async () => {
      await volumeHeartbeat(db, volumeState('s1', { free_capacity_gb: 100 }), T0);
      await volumeHeartbeat(db, volumeState('s2', { free_capacity_gb: 50 }), T0);
      // Before the report and served: counted in it. After it, or still creating: not.
      await seedVolume(db, { host: 's1', size: 30, status: 'available', createdAt: at(-60) });
      assert.deepEqual(await place(10), { host: 's1' });
      await seedVolume(db, { host: 's1', size: 30, status: 'creating', createdAt: at(-60) });
      await seedVolume(db, { host: 's1', size: 25, status: 'available', createdAt: at(5) });
      assert.deepEqual(await place(10), { host: 's2' }, '100 - 55 = 45 < 50');
      await volumeHeartbeat(db, volumeState('s1', { free_capacity_gb: 45 }), at(10));
      await db.query("UPDATE volumes SET status = 'available'");
      assert.deepEqual(await place(10), { host: 's2' }, 'a newer report counts them itself');
      await volumeHeartbeat(db, volumeState('s1', { free_capacity_gb: 60 }), at(20));
      assert.deepEqual(await place(10), { host: 's1' });
    });

    test('racing creates never share free room', async () => {
      await volumeHeartbeat(db, volumeState('s1', { free_capacity_gb: 15 }), T0);
      await volumeHeartbeat(db, volumeState('s2', { free_capacity_gb: 12 }), T0);
      const create = () =>
        db.transaction(async (tx) => {
          const p = await scheduleVolume(tx, { sizeGb: 10, backend: 'file' }, liveness());
          assert.ok('host' in p, JSON.stringify(p));
          await new Promise((r) => setTimeout(r, 50));
          await tx.query(
            `INSERT INTO volumes (id, project_id, user_id, size, status, volume_type_id,
               availability_zone, host, bootable, metadata, auth_username, auth_secret,
               status_revision, revision_number, created_at)
             VALUES (?, 'p', 'u', 10, 'creating', '6f1ab9f4-4c3e-5b8e-9a51-1d2c7a0b3e02', 'nova',
               ?, FALSE, '{}', 'u', 's', 1, 1, ?)`,
            [crypto.randomUUID(), p.host, now.toISOString()],
          );
          return p.host;
        });
      const hosts = await Promise.all([create(), create()]);
      assert.deepEqual(hosts.sort(), ['s1', 's2']);
    });
  });
}
