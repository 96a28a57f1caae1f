/**
 * Cinder requests racing each other on kumo-api, on both database engines: a delete
 * against what depends on its volume or snapshot (a new snapshot, a copy being made),
 * racing creates against a quota, and the refusals that hold whatever status an admin
 * reset a volume to (an attached volume is never deleted; a volume no host holds is).
 *
 * Each race is run several times with both requests sent at once; the assertion is on
 * the rows left, whichever request the database let through first.
 *
 * Invariant under test: of two requests that exclude each other exactly one passes, and
 * the other writes nothing; no snapshot or copy is ever left whose source is deleting.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { type Obj, volumesHarness } from './api-volumes-harness.ts';

const ROUNDS = 4;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Cinder races on ${engine}`, () => {
    const h = volumesHarness(engine);
    const served = async (volume: Obj, host = 'storage1') => {
      const v = await h.create('A', volume);
      await h.serve(String(v.id), host);
      return String(v.id);
    };
    const status = async (table: string, id: string) =>
      (await h.rows(`SELECT status FROM ${table} WHERE id = ?`, [id]))[0]?.status;
    const codes = (rs: { status: number }[]) => rs.map((r) => r.status).sort();
    before(async () => {
      const roomy = { quota_set: { volumes: 100, snapshots: 100 } };
      const r = await h.call('admin', 'PUT', `/os-quota-sets/${h.projects.A}`, roomy);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    });

    test('a snapshot create and its volume delete: one passes; a snapshot blocks even a forced delete', async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const vid = await served({ size: 1, name: `snap-race-${i}` });
        const [snap, del] = await Promise.all([
          h.call('A', 'POST', '/snapshots', { snapshot: { volume_id: vid } }),
          h.call('A', 'DELETE', `/volumes/${vid}`),
        ]);
        assert.deepEqual(codes([snap, del]), [202, 400], JSON.stringify([snap.body, del.body]));
        const snaps = await h.rows('SELECT id FROM volume_snapshots WHERE volume_id = ?', [vid]);
        assert.equal(await status('volumes', vid), snap.status === 202 ? 'available' : 'deleting');
        assert.equal(snaps.length, snap.status === 202 ? 1 : 0);
      }
      const vid = await served({ size: 1, name: 'snapped' });
      assert.equal(
        (await h.call('A', 'POST', '/snapshots', { snapshot: { volume_id: vid } })).status,
        202,
      );
      const del = await h.call('A', 'DELETE', `/volumes/${vid}`);
      assert.equal(del.status, 400);
      assert.match(JSON.stringify(del.body), /1 dependent snapshots \(VolumeIsBusy\)/);
      const forced = await h.call('admin', 'POST', `/volumes/${vid}/action`, {
        'os-force_delete': {},
      });
      assert.equal(forced.status, 400, 'a forced delete keeps the snapshot rule');
      assert.equal(await status('volumes', vid), 'available');
    });

    test('a copy of a snapshot and the snapshot delete: exactly one passes', async () => {
      const vid = await served({ size: 1, name: 'snap-source' });
      for (let i = 0; i < ROUNDS; i++) {
        const sid = String(
          (
            (await h.call('A', 'POST', '/snapshots', { snapshot: { volume_id: vid } })).body
              .snapshot as Obj
          ).id,
        );
        await h.api.db.query("UPDATE volume_snapshots SET status = 'available' WHERE id = ?", [
          sid,
        ]);
        const [copy, del] = await Promise.all([
          h.call('A', 'POST', '/volumes', { volume: { snapshot_id: sid } }),
          h.call('A', 'DELETE', `/snapshots/${sid}`),
        ]);
        assert.deepEqual(codes([copy, del]), [202, 400], JSON.stringify([copy.body, del.body]));
        const copies = await h.rows('SELECT status FROM volumes WHERE snapshot_id = ?', [sid]);
        assert.deepEqual(copies, copy.status === 202 ? [{ status: 'creating' }] : []);
        assert.equal(
          await status('volume_snapshots', sid),
          copy.status === 202 ? 'available' : 'deleting',
        );
      }
    });

    test('a copy of a volume and the source delete: exactly one passes', async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const vid = await served({ size: 1, name: `clone-source-${i}` });
        const [copy, del] = await Promise.all([
          h.call('A', 'POST', '/volumes', { volume: { source_volid: vid } }),
          h.call('A', 'DELETE', `/volumes/${vid}`),
        ]);
        assert.deepEqual(codes([copy, del]), [202, 400], JSON.stringify([copy.body, del.body]));
        const copies = await h.rows('SELECT status FROM volumes WHERE source_volid = ?', [vid]);
        assert.deepEqual(copies, copy.status === 202 ? [{ status: 'creating' }] : []);
        assert.equal(await status('volumes', vid), copy.status === 202 ? 'available' : 'deleting');
      }
      const vid = await served({ size: 1, name: 'copied' });
      const copy = await h.create('A', { source_volid: vid });
      const busy = await h.call('A', 'DELETE', `/volumes/${vid}`);
      assert.equal(busy.status, 400);
      assert.match(JSON.stringify(busy.body), /is busy: volume .* is being created from it/);
      await h.serve(String(copy.id));
      assert.equal((await h.call('A', 'DELETE', `/volumes/${vid}`)).status, 202);
    });

    test('racing creates admit exactly the volumes quota', async () => {
      const P = h.projects.B;
      const set = await h.call('admin', 'PUT', `/os-quota-sets/${P}`, {
        quota_set: { volumes: 3 },
      });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          h.call('B', 'POST', '/volumes', { volume: { size: 1, name: `q${i}` } }),
        ),
      );
      assert.deepEqual(
        codes(answers),
        [202, 202, 202, 413, 413, 413, 413, 413],
        JSON.stringify(answers.map((a) => a.body)),
      );
      const rows = await h.rows('SELECT id FROM volumes WHERE project_id = ?', [P]);
      assert.equal(rows.length, 3);
    });

    test('an attached volume reset to available is not deleted; an unplaced one is', async () => {
      const vid = await served({ size: 1, name: 'held' });
      await h.api.db.query(
        `INSERT INTO volume_attachments (id, volume_id, instance_uuid, attached_host, initiator,
           device, attach_status, export_revision, exported, attach_revision, attached_at,
           created_at, updated_at)
         VALUES ('a0000000-0000-4000-8000-000000000001', ?, 'i0000000-0000-4000-8000-000000000001',
           'compute1', 'iqn.1994-05.com.redhat:c1', 'vdb', 'attached', 2, TRUE, 1, NULL,
           '2026-12-05T00:00:00.000000', NULL)`,
        [vid],
      );
      const reset = await h.call('admin', 'POST', `/volumes/${vid}/action`, {
        'os-reset_status': { status: 'available' },
      });
      assert.equal(reset.status, 202, JSON.stringify(reset.body));
      const before = await h.rows('SELECT status, revision_number FROM volumes WHERE id = ?', [
        vid,
      ]);
      for (const r of [
        await h.call('A', 'DELETE', `/volumes/${vid}`),
        await h.call('admin', 'POST', `/volumes/${vid}/action`, { 'os-force_delete': {} }),
      ]) {
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.match(JSON.stringify(r.body), /still attached, detach volume first/);
      }
      assert.deepEqual(
        await h.rows('SELECT status, revision_number FROM volumes WHERE id = ?', [vid]),
        before,
      );
      const lost = await h.create('A', { size: 1, name: 'never-placed' });
      await h.api.db.query("UPDATE volumes SET status = 'available' WHERE id = ?", [
        String(lost.id),
      ]);
      assert.equal((await h.call('A', 'DELETE', `/volumes/${String(lost.id)}`)).status, 202);
      assert.deepEqual(await h.rows('SELECT id FROM volumes WHERE id = ?', [String(lost.id)]), []);
    });
  });
}
