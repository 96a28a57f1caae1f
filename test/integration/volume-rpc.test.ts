/**
 * The volume agent's q-plugin calls on both database engines over the real broker
 * (api-servers-harness.ts plays the agents): get_host_volumes, get_volume_info and
 * get_snapshot_info answer key for key from the volume rows and only to the volume's
 * storage host; report_status of volumes and snapshots moves their statuses by revision
 * (creating → available, extending → available, deleting → gone, and each one's error
 * with its reason and a Cinder user message), ignoring reports from another host and
 * late ones. Volume rows are written with SQL (test/helpers/volume-seed.ts) until the
 * Cinder API (v17-capi) makes them.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import {
  GetHostVolumesResult,
  GetSnapshotInfoResult,
  GetVolumeInfoResult,
} from '../../contracts/volume.ts';
import {
  CHAP_SECRET,
  CHAP_USER,
  clearVolumes,
  messagesOf,
  seedSnapshot,
  seedVolume,
  setVolume,
  volumeRow,
} from '../helpers/volume-seed.ts';
import { serversHarness } from './api-servers-harness.ts';

const VOLUME_AGENT = 'Volume agent';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`volume agent RPC on ${engine}`, () => {
    const h = serversHarness(engine);
    const call = (
      method: 'get_host_volumes' | 'get_volume_info' | 'get_snapshot_info',
      args: Record<string, unknown>,
    ) => h.agents.call(PLUGIN_TOPIC, method, args as never);
    const hostVolumes = async (host: string) =>
      GetHostVolumesResult.parse(await call('get_host_volumes', { host }));
    const info = async (host: string, volume_id: string) =>
      GetVolumeInfoResult.parse(await call('get_volume_info', { host, volume_id })).volume;
    const snapInfo = async (host: string, snapshot_id: string) =>
      GetSnapshotInfoResult.parse(await call('get_snapshot_info', { host, snapshot_id })).snapshot;
    /** Casts a report, then a call behind it: q-plugin serves one message at a time. */
    const report = async (host: string, s: Record<string, unknown>) => {
      await h.agents.cast(PLUGIN_TOPIC, 'report_status', {
        host,
        agent_type: VOLUME_AGENT,
        statuses: [{ resource: 'volume', ...s } as never],
      });
      await hostVolumes(host);
    };
    const status = async (id: string) => (await volumeRow(h.db, id))?.status;
    const snapStatus = async (id: string) =>
      (
        await h.db.query<{ status: string }>('SELECT status FROM volume_snapshots WHERE id = ?', [
          id,
        ])
      )[0]?.status;

    beforeEach(() => clearVolumes(h.db));

    test('get_host_volumes, get_volume_info, get_snapshot_info: the storage host only, key for key', async () => {
      const v0 = await seedVolume(h.db, { status: 'available', size: 2 });
      const sn = await seedSnapshot(h.db, v0, 'available');
      const v1 = await seedVolume(h.db, { snapshotId: sn, size: 3 });
      const v2 = await seedVolume(h.db, { host: 's2', backend: 'lvm' });
      await seedVolume(h.db, { host: null, status: 'error' });
      assert.deepEqual(await hostVolumes('s1'), { volumes: [v0, v1].sort(), snapshots: [sn] });
      assert.deepEqual(await hostVolumes('s2'), { volumes: [v2], snapshots: [] });
      assert.deepEqual(await hostVolumes('s9'), { volumes: [], snapshots: [] });
      const spec = {
        id: v1,
        size_gb: 3,
        backend: 'file',
        source: { kind: 'snapshot', id: sn },
        auth: { username: CHAP_USER, secret: CHAP_SECRET },
        initiators: [],
        create: true,
        deleting: false,
        revision: 1,
      };
      assert.deepEqual(await info('s1', v1), spec);
      assert.equal(await info('s2', v1), null, "another host's volume is null to it");
      assert.equal(await info('s1', crypto.randomUUID()), null);
      assert.equal((await info('s2', v2))?.backend, 'lvm');
      const clone = await seedVolume(h.db, { sourceVolid: v0 });
      assert.deepEqual((await info('s1', clone))?.source, { kind: 'volume', id: v0 });
      await setVolume(h.db, v1, 'available');
      assert.equal((await info('s1', v1))?.source, null, 'the source only while creating');
      await setVolume(h.db, v1, 'deleting', { bump: true });
      assert.deepEqual(await info('s1', v1), {
        ...spec,
        source: null,
        create: false,
        deleting: true,
        revision: 2,
      });
      await setVolume(h.db, v1, 'error_deleting');
      assert.equal((await info('s1', v1))?.deleting, true, 'an error_deleting volume is retried');

      assert.deepEqual(await snapInfo('s1', sn), {
        id: sn,
        volume_id: v0,
        size_gb: 2,
        backend: 'file',
        create: false,
        deleting: false,
        revision: 1,
      });
      assert.equal(await snapInfo('s2', sn), null);
      await setVolume(h.db, sn, 'deleting', { table: 'volume_snapshots' });
      assert.equal((await snapInfo('s1', sn))?.deleting, true);
    });

    test('volume reports: by revision, from the storage host only; errors leave reason and message', async () => {
      const v = await seedVolume(h.db);
      await report('s2', { id: v, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'creating', "another host's report is ignored");
      await report('s1', { id: v, status: 'ACTIVE', revision: 0 });
      assert.equal(await status(v), 'creating', 'an older revision moves nothing');
      await report('s1', { id: v, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'available');

      await setVolume(h.db, v, 'extending', { bump: true });
      await report('s1', { id: v, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'extending');
      await report('s1', { id: v, status: 'ACTIVE', revision: 2 });
      assert.equal(await status(v), 'available');
      await setVolume(h.db, v, 'extending', { bump: true });
      await report('s1', { id: v, status: 'ERROR', revision: 3, reason: 'no room to grow' });
      assert.deepEqual(
        { ...(await volumeRow(h.db, v)) },
        {
          status: 'error_extending',
          status_reason: 'no room to grow',
          revision_number: 3,
          status_revision: 3,
        },
      );

      const bad = await seedVolume(h.db);
      await report('s1', {
        id: bad,
        status: 'ERROR',
        revision: 1,
        reason: 'Insufficient free space: 3 GiB < 5',
      });
      assert.equal(await status(bad), 'error');
      assert.equal(
        (await volumeRow(h.db, bad))?.status_reason,
        'Insufficient free space: 3 GiB < 5',
      );
      assert.deepEqual(await messagesOf(h.db, bad), [
        {
          event_id: 'VOLUME_VOLUME_008_012',
          message: 'create volume from backend storage: Insufficient free space: 3 GiB < 5',
          resource_type: 'VOLUME',
        },
      ]);
      await report('s1', { id: bad, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(bad), 'error', 'a late ACTIVE does not undo the error');

      await setVolume(h.db, v, 'deleting', { bump: true });
      await report('s1', { id: v, status: 'ERROR', revision: 4, reason: 'wipe failed' });
      assert.equal(await status(v), 'error_deleting');
      assert.deepEqual(
        (await messagesOf(h.db, v)).map((m) => m.event_id).sort(),
        ['VOLUME_VOLUME_007_010', 'VOLUME_VOLUME_099_001'],
        'extend, then delete',
      );
      await report('s1', { id: v, status: 'ACTIVE', revision: 4 });
      assert.equal(await volumeRow(h.db, v), undefined, 'the retried delete removes the row');
      assert.equal(await info('s1', v), null);
    });

    test('a volume with snapshots stays until they go; snapshot reports by revision', async () => {
      const v = await seedVolume(h.db, { status: 'available' });
      const sn = await seedSnapshot(h.db, v);
      const other = await seedSnapshot(h.db, v);
      const snap = (host: string, s: Record<string, unknown>) =>
        report(host, { ...s, resource: 'snapshot' });
      await snap('s2', { id: sn, status: 'ACTIVE', revision: 1 });
      assert.equal(await snapStatus(sn), 'creating', "another host's report is ignored");
      await snap('s1', { id: sn, status: 'ACTIVE', revision: 1 });
      assert.equal(await snapStatus(sn), 'available');
      await snap('s1', { id: other, status: 'ERROR', revision: 1, reason: 'no room' });
      assert.equal(await snapStatus(other), 'error');
      assert.deepEqual(await messagesOf(h.db, other), [
        {
          event_id: 'VOLUME_VOLUME_SNAPSHOT_009_013',
          message: 'create snapshot: no room',
          resource_type: 'VOLUME_SNAPSHOT',
        },
      ]);
      await setVolume(h.db, v, 'deleting', { bump: true });
      await report('s1', { id: v, status: 'ACTIVE', revision: 2 });
      assert.equal(await status(v), 'deleting', 'not removed while snapshots name it');
      await setVolume(h.db, sn, 'deleting', { bump: true, table: 'volume_snapshots' });
      await snap('s1', { id: sn, status: 'ERROR', revision: 2, reason: 'busy' });
      assert.equal(await snapStatus(sn), 'error_deleting');
      await snap('s1', { id: sn, status: 'ACTIVE', revision: 2 });
      assert.equal(await snapStatus(sn), undefined);
      await setVolume(h.db, other, 'deleting', { bump: true, table: 'volume_snapshots' });
      await snap('s1', { id: other, status: 'ACTIVE', revision: 2 });
      await report('s1', { id: v, status: 'ACTIVE', revision: 2 });
      assert.equal(await volumeRow(h.db, v), undefined);
      assert.deepEqual(await hostVolumes('s1'), { volumes: [], snapshots: [] });
    });
  });
}
