/**
 * Cinder v3 snapshots, volumes made from a snapshot or another volume, types, quotas,
 * limits and user messages on kumo-api, on both database engines.
 *
 * - a snapshot is made only of an available volume (in-use with force), lives on the
 *   volume's host (hinted there at revision 1), and goes `deleting` (revision 2, hinted);
 * - a volume from a snapshot or a source volume goes to that source's host without
 *   scheduling, at least the source's size, of its backend;
 * - quotas: Cinder's keys, usage counted from the rows, admin-only changes, and the 413s
 *   of volumes, gigabytes (volumes and snapshots together), snapshots and
 *   per_volume_gigabytes, each writing nothing;
 * - types lvm and file with volume_backend_name (admins only), no writes (405).
 *
 * Invariant under test: every refused request leaves the tables as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Obj, volumesHarness } from './api-volumes-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Cinder snapshots, sources, types and quotas on ${engine}`, () => {
    const h = volumesHarness(engine);
    const tables = async () => ({
      volumes: await h.rows('SELECT id, status, size, host FROM volumes ORDER BY id'),
      snapshots: await h.rows('SELECT id, status, size FROM volume_snapshots ORDER BY id'),
    });
    const message = (r: { body: Obj }) =>
      String((Object.values(r.body)[0] as { message?: string } | undefined)?.message);
    const served = async (who: 'A' | 'B', volume: Obj, host = 'storage1') => {
      const v = await h.create(who, volume);
      await h.serve(String(v.id), host);
      return String(v.id);
    };
    const snapshot = (who: 'A' | 'B', body: Obj) =>
      h.call(who, 'POST', '/snapshots', { snapshot: body });

    test('snapshots: made of an available volume on its host, listed, updated, deleted', async () => {
      const vid = await served('A', { size: 2, name: 'origin' }, 'storage2');
      const made = await snapshot('A', { volume_id: vid, name: 's1', metadata: { k: 'v' } });
      assert.equal(made.status, 202);
      const s = made.body.snapshot as Obj;
      const sid = String(s.id);
      assert.deepEqual(
        [s.status, s.size, s.volume_id, s.metadata],
        ['creating', 2, vid, { k: 'v' }],
      );
      await h.hinted('storage2', { resource: 'snapshot', id: sid, revision: 1 });
      const shown = (await h.call('A', 'GET', `/snapshots/${sid}`)).body.snapshot as Obj;
      assert.equal(shown['os-extended-snapshot-attributes:project_id'], h.projects.A);
      const list = await h.call('A', 'GET', `/snapshots?volume_id=${vid}`);
      assert.deepEqual(
        (list.body.snapshots as Obj[]).map((x) => x.id),
        [sid],
      );
      assert.equal((await h.call('B', 'GET', `/snapshots/${sid}`)).status, 404);
      assert.equal(((await h.call('B', 'GET', '/snapshots')).body.snapshots as Obj[]).length, 0);
      const upd = await h.call('A', 'PUT', `/snapshots/${sid}`, { snapshot: { name: 's1b' } });
      assert.equal((upd.body.snapshot as Obj).name, 's1b');
      const busy = await h.call('A', 'DELETE', `/snapshots/${sid}`);
      assert.equal(busy.status, 400, 'a creating snapshot is not deleted');
      await h.api.db.query("UPDATE volume_snapshots SET status = 'available' WHERE id = ?", [sid]);
      assert.equal((await h.call('A', 'DELETE', `/snapshots/${sid}`)).status, 202);
      const [row] = await h.rows(
        'SELECT status, revision_number FROM volume_snapshots WHERE id = ?',
        [sid],
      );
      assert.deepEqual(row, { status: 'deleting', revision_number: 2 });
      await h.hinted('storage2', { resource: 'snapshot', id: sid, revision: 2 });
    });

    test('snapshot refusals: unavailable volume, bad ids, another project, write nothing', async () => {
      const vid = await served('A', { size: 1, name: 'busy' });
      const before = await tables();
      await h.api.db.query("UPDATE volumes SET status = 'in-use' WHERE id = ?", [vid]);
      const inUse = await snapshot('A', { volume_id: vid });
      assert.equal(inUse.status, 400);
      assert.match(message(inUse), /must be available, but current status is: in-use/);
      assert.equal((await snapshot('A', { volume_id: 'nope' })).status, 400);
      assert.equal((await snapshot('A', { volume_id: vid, name: 'a\nb' })).status, 400);
      assert.equal((await snapshot('A', { volume_id: vid, force: 'maybe' })).status, 400);
      assert.equal((await snapshot('B', { volume_id: vid })).status, 404);
      const unplaced = await h.create('A', { size: 1 });
      assert.equal((await snapshot('A', { volume_id: unplaced.id })).status, 400);
      await h.api.db.query('DELETE FROM volumes WHERE id = ?', [String(unplaced.id)]);
      await h.api.db.query('DELETE FROM volume_messages');
      await h.api.db.query("UPDATE volumes SET status = 'available' WHERE id = ?", [vid]);
      assert.deepEqual(await tables(), before);
      await h.api.db.query("UPDATE volumes SET status = 'in-use' WHERE id = ?", [vid]);
      assert.equal((await snapshot('A', { volume_id: vid, force: true })).status, 202);
    });

    test('volumes from a snapshot or a source volume go to the source host, unscheduled', async () => {
      const vid = await served('B', { size: 3, name: 'src', volume_type: 'file' }, 'storage2');
      const sid = String(((await snapshot('B', { volume_id: vid })).body.snapshot as Obj).id);
      const early = await h.call('B', 'POST', '/volumes', { volume: { snapshot_id: sid } });
      assert.equal(early.status, 400, 'the snapshot is still creating');
      await h.api.db.query("UPDATE volume_snapshots SET status = 'available' WHERE id = ?", [sid]);
      const small = await h.call('B', 'POST', '/volumes', {
        volume: { snapshot_id: sid, size: 2 },
      });
      assert.equal(small.status, 400);
      assert.match(message(small), /cannot be smaller than the snapshot size 3GB/);
      const lvm = await h.call('B', 'POST', '/volumes', {
        volume: { snapshot_id: sid, volume_type: 'lvm' },
      });
      assert.equal(lvm.status, 400, 'a file snapshot makes no lvm volume');
      const both = await h.call('B', 'POST', '/volumes', {
        volume: { snapshot_id: sid, source_volid: vid },
      });
      assert.equal(both.status, 400);
      assert.equal(
        (await h.call('A', 'POST', '/volumes', { volume: { snapshot_id: sid } })).status,
        404,
      );
      const fromSnap = await h.create('B', { snapshot_id: sid, name: 'copy' });
      assert.deepEqual(
        [fromSnap.status, fromSnap.size, fromSnap.snapshot_id, fromSnap.volume_type],
        ['creating', 3, sid, 'file'],
      );
      const [placed] = await h.rows('SELECT host, revision_number FROM volumes WHERE id = ?', [
        String(fromSnap.id),
      ]);
      assert.deepEqual(placed, { host: 'storage2', revision_number: 1 });
      await h.hinted('storage2', { resource: 'volume', id: String(fromSnap.id), revision: 1 });
      const clone = await h.create('B', { source_volid: vid, size: 5 });
      assert.deepEqual([clone.status, clone.size, clone.source_volid], ['creating', 5, vid]);
      await h.hinted('storage2', { resource: 'volume', id: String(clone.id), revision: 1 });
      assert.equal(
        (await h.call('B', 'POST', '/volumes', { volume: { source_volid: String(fromSnap.id) } }))
          .status,
        400,
        'a creating source',
      );
    });

    test('types: lvm and file, backend names for admins only, no writes', async () => {
      const member = await h.call('A', 'GET', '/types');
      const types = member.body.volume_types as Obj[];
      assert.deepEqual(
        types.map((t) => t.name),
        ['file', 'lvm'],
      );
      assert.equal('extra_specs' in (types[0] as Obj), false);
      const admin = await h.call('admin', 'GET', '/types/lvm');
      assert.deepEqual((admin.body.volume_type as Obj).extra_specs, { volume_backend_name: 'lvm' });
      const byId = await h.call('A', 'GET', `/types/${(types[0] as Obj).id}`);
      assert.equal((byId.body.volume_type as Obj).name, 'file');
      assert.equal(
        ((await h.call('A', 'GET', '/types/default')).body.volume_type as Obj).name,
        'lvm',
      );
      assert.equal((await h.call('A', 'GET', '/types/nosuch')).status, 404);
      assert.equal(
        (await h.call('admin', 'POST', '/types', { volume_type: { name: 'x' } })).status,
        405,
      );
      assert.equal((await h.call('admin', 'DELETE', `/types/${(types[0] as Obj).id}`)).status, 405);
      assert.equal((await h.rows('SELECT id FROM volume_types')).length, 2);
    });

    test("quotas: Cinder's keys and usage; admin-only changes; the 413s write nothing", async () => {
      const P = h.projects.B;
      const q = (await h.call('B', 'GET', `/os-quota-sets/${P}?usage=True`)).body.quota_set as Obj;
      assert.deepEqual(q.volumes, { limit: 10, in_use: 3, reserved: 0 });
      assert.deepEqual(
        q.gigabytes,
        { limit: 1000, in_use: 14, reserved: 0 },
        '3+3+5 GiB of volumes, 3 of a snapshot',
      );
      assert.equal((await h.call('B', 'GET', `/os-quota-sets/${h.projects.A}`)).status, 403);
      assert.equal(
        (await h.call('B', 'PUT', `/os-quota-sets/${P}`, { quota_set: { volumes: 50 } })).status,
        403,
      );
      const bad = await h.call('admin', 'PUT', `/os-quota-sets/${P}`, {
        quota_set: { volumez: 5 },
      });
      assert.equal(bad.status, 400);
      assert.match(message(bad), /Bad key\(s\) in quota set: volumez/);
      assert.equal(
        (await h.call('admin', 'PUT', `/os-quota-sets/${P}`, { quota_set: { volumes: -2 } }))
          .status,
        400,
      );
      const below = await h.call('admin', 'PUT', `/os-quota-sets/${P}?skip_validation=False`, {
        quota_set: { volumes: 1 },
      });
      assert.equal(below.status, 400);
      assert.match(message(below), /less than in-use value of 3/);
      const set = await h.call('admin', 'PUT', `/os-quota-sets/${P}`, {
        quota_set: {
          tenant_id: P,
          volumes: 4,
          gigabytes: 16,
          snapshots: 1,
          per_volume_gigabytes: 4,
        },
      });
      assert.equal(set.status, 200);
      assert.equal((set.body.quota_set as Obj).volumes, 4);
      const [src] = await h.rows(
        "SELECT id FROM volumes WHERE project_id = ? AND status = 'available'",
        [P],
      );
      const srcOfB = String(src?.id);
      const before = await tables();
      const refusals: [string, Obj, RegExp][] = [
        ['/volumes', { volume: { size: 5 } }, /VolumeSizeExceedsLimit/],
        [
          '/volumes',
          { volume: { size: 4, volume_type: 'file' } },
          /VolumeSizeExceedsAvailableQuota.*Requested 4G, quota is 16G and 14G has been consumed/,
        ],
        ['/snapshots', { snapshot: { volume_id: srcOfB } }, /VolumeSizeExceedsAvailableQuota/],
      ];
      for (const [path, body, why] of refusals) {
        const r = await h.call('B', 'POST', path, body);
        assert.equal(r.status, 413, path);
        assert.ok(r.body.overLimit, 'Cinder overLimit shape');
        assert.match(message(r), why);
      }
      assert.deepEqual(await tables(), before);
      await h.create('B', { size: 1 });
      const count = await h.call('B', 'POST', '/volumes', { volume: { size: 1 } });
      assert.equal(count.status, 413);
      assert.match(message(count), /VolumeLimitExceeded: Maximum number of volumes allowed \(4\)/);
      const limits = (await h.call('B', 'GET', '/limits')).body.limits as { absolute: Obj };
      assert.deepEqual(
        [
          limits.absolute.maxTotalVolumes,
          limits.absolute.totalVolumesUsed,
          limits.absolute.totalGigabytesUsed,
        ],
        [4, 4, 15],
      );
      assert.equal((await h.call('admin', 'DELETE', `/os-quota-sets/${P}`)).status, 200);
      assert.equal(
        ((await h.call('B', 'GET', `/os-quota-sets/${P}`)).body.quota_set as Obj).volumes,
        10,
      );
      assert.equal(
        ((await h.call('B', 'GET', `/os-quota-sets/${P}/defaults`)).body.quota_set as Obj)
          .gigabytes,
        1000,
      );
    });

    test('user messages: listed at 3.3, shown, deleted', async () => {
      const v = await h.create('A', { size: 1, name: 'unplaceable' });
      const list = await h.call('A', 'GET', '/messages', undefined, '3.3');
      const m = (list.body.messages as Obj[]).find((x) => x.resource_uuid === v.id) as Obj;
      assert.deepEqual(
        [m.resource_type, m.message_level, m.event_id],
        ['VOLUME', 'ERROR', 'VOLUME_VOLUME_001_003'],
      );
      assert.equal((await h.call('A', 'GET', `/messages/${m.id}`, undefined, '3.3')).status, 200);
      assert.equal(
        (await h.call('B', 'DELETE', `/messages/${m.id}`, undefined, '3.3')).status,
        404,
      );
      assert.equal(
        (await h.call('A', 'DELETE', `/messages/${m.id}`, undefined, '3.3')).status,
        204,
      );
      assert.equal((await h.call('A', 'GET', `/messages/${m.id}`, undefined, '3.3')).status, 404);
    });
  });
}
