/**
 * The volume flows an audit found unsafe, in kumo-api on both database engines with a
 * real broker (api-servers-harness.ts; the storage and compute agents played through
 * report_status and the q-plugin calls, as api-server-volumes.test.ts does):
 * - only a DELETE or force-delete has the storage host remove data (delete_requested),
 *   never an admin's status reset to deleting or error_deleting;
 * - an attached volume keeps its connection (the portal stored at export) when its
 *   storage agent's portal is unknown; only an attach not yet handed one waits;
 * - every attach hands new CHAP credentials;
 * - a volume or snapshot a `creating` volume copies from cannot be deleted;
 * - an extend shows the old size until served, and the old size again after it failed;
 * - a stuck attach is reset (attach_status detached) or force-deleted;
 * - a storage error while detaching leaves a reason and a user message.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { GetSnapshotInfoResult, GetVolumeInfoResult } from '../../contracts/volume.ts';
import {
  clearVolumes,
  messagesOf,
  seedSnapshot,
  seedVolume,
  volumeHeartbeat,
  volumeRow,
  volumeState,
} from '../helpers/volume-seed.ts';
import { activeServer, type Body, MEMBER, serversHarness } from './api-servers-harness.ts';

const IQN1 = 'iqn.1993-08.org.debian:01:h1';
const PROJECT = DEFAULT_PROJECT_ID;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`volume audit fixes on ${engine}`, () => {
    const h = serversHarness(engine);
    const cinder = (method: 'GET' | 'POST' | 'DELETE' | 'PUT', path: string, body?: Body) =>
      h.call(method, `/volume/v3/${PROJECT}${path}`, body);
    const action = (id: string, body: Body) => cinder('POST', `/volumes/${id}/action`, body);
    const attach = (server: string, volumeId: string) =>
      h.call('POST', `/servers/${server}/os-volume_attachments`, {
        volumeAttachment: { volumeId },
      });
    const reportAs = async (agentType: string, resource: string, s: Body) => {
      const host = agentType === 'Volume agent' ? 's1' : 'h1';
      await h.agents.cast(PLUGIN_TOPIC, 'report_status', {
        host,
        agent_type: agentType,
        statuses: [{ resource, ...s } as never],
      });
      await h.rpc.hostInstances(host);
    };
    const volReport = (s: Body) => reportAs('Volume agent', 'volume', s);
    const snapReport = (s: Body) => reportAs('Volume agent', 'snapshot', s);
    const attReport = (s: Body) => reportAs('Compute agent', 'attachment', s);
    const info = async (id: string) =>
      GetVolumeInfoResult.parse(
        await h.agents.call(PLUGIN_TOPIC, 'get_volume_info', { host: 's1', volume_id: id }),
      ).volume;
    const snapInfo = async (id: string) =>
      GetSnapshotInfoResult.parse(
        await h.agents.call(PLUGIN_TOPIC, 'get_snapshot_info', { host: 's1', snapshot_id: id }),
      ).snapshot;
    const status = async (id: string) => (await volumeRow(h.db, id))?.status;
    const volumesOf = async (server: string) => (await h.rpc.instance('h1', server))?.volumes;
    const setup = async () => {
      const server = await activeServer(h);
      await h.report('h1', { iscsi_initiator: IQN1 });
      await volumeHeartbeat(h.db, volumeState('s1'), h.clock.now());
      return server;
    };
    /** Attach `v` to `server` through both agents' reports (in-use). */
    const inUse = async (server: string, v: string) => {
      assert.equal((await attach(server, v)).status, 200);
      const rev = Number((await info(v))?.revision);
      await volReport({ id: v, status: 'ACTIVE', revision: rev });
      const [a] = (await volumesOf(server)) ?? [];
      assert.ok(a, 'the compute host is handed the attachment');
      await attReport({ id: a.attachment_id, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'in-use');
      return a.attachment_id;
    };

    beforeEach(() => clearVolumes(h.db));

    test('a status reset never removes data; DELETE does', async () => {
      const v = await seedVolume(h.db, { status: 'available' });
      for (const to of ['deleting', 'error_deleting']) {
        const r = await action(v, { 'os-reset_status': { status: to } });
        assert.equal(r.status, 202, r.raw);
        assert.equal((await info(v))?.deleting, false, `a reset to ${to} keeps the data`);
        await volReport({ id: v, status: 'ACTIVE', revision: 1 });
        assert.equal(await status(v), to, 'the row stays: the host removed nothing');
      }
      await action(v, { 'os-reset_status': { status: 'available' } });
      assert.equal((await cinder('DELETE', `/volumes/${v}`)).status, 202);
      assert.equal((await info(v))?.deleting, true);
      await action(v, { 'os-reset_status': { status: 'available' } });
      assert.equal((await info(v))?.deleting, true, 'a reset does not take a delete back');
      await volReport({ id: v, status: 'ACTIVE', revision: 2 });
      assert.equal(await volumeRow(h.db, v), undefined, 'served: the row goes');

      const w = await seedVolume(h.db, { status: 'available' });
      const s = await seedSnapshot(h.db, w, 'available');
      const reset = await cinder('POST', `/snapshots/${s}/action`, {
        'os-reset_status': { status: 'deleting' },
      });
      assert.equal(reset.status, 202, reset.raw);
      assert.equal((await snapInfo(s))?.deleting, false);
      await snapReport({ id: s, status: 'ACTIVE', revision: 1 });
      assert.equal((await h.db.query('SELECT id FROM volume_snapshots')).length, 1);
      await cinder('POST', `/snapshots/${s}/action`, { 'os-reset_status': { status: 'error' } });
      assert.equal((await cinder('DELETE', `/snapshots/${s}`)).status, 202);
      assert.equal((await snapInfo(s))?.deleting, true);
      await snapReport({ id: s, status: 'ACTIVE', revision: 2 });
      assert.equal((await h.db.query('SELECT id FROM volume_snapshots')).length, 0);
    });
    test('an attached disk keeps its exported portal; an unexported attach waits', async () => {
      const server = await setup();
      const v = await seedVolume(h.db, { status: 'available' });
      await inUse(server, v);
      const portalOf = async () => (await volumesOf(server))?.[0]?.connection?.target_portal;
      assert.equal(await portalOf(), '127.0.0.1:3260');
      await volumeHeartbeat(h.db, volumeState('s1', { target_portal: 'bogus' }), h.clock.now());
      assert.equal(await portalOf(), '127.0.0.1:3260', 'kept though the agent reports none');
      const moved = volumeState('s1', { target_portal: '127.0.0.2:3260' });
      await volumeHeartbeat(h.db, moved, h.clock.now());
      assert.equal(await portalOf(), '127.0.0.1:3260', 'the portal it was exported with');

      await volumeHeartbeat(h.db, volumeState('s1', { target_portal: 'bogus' }), h.clock.now());
      const w = await seedVolume(h.db, { status: 'available' });
      assert.equal((await attach(server, w)).status, 200);
      await volReport({ id: w, status: 'ACTIVE', revision: 2 });
      const ids = async () => (await volumesOf(server))?.map((x) => x.volume_id);
      assert.deepEqual(await ids(), [v], 'exported without a portal: the attach waits');
      await volumeHeartbeat(h.db, moved, h.clock.now());
      const handed = (await volumesOf(server))?.find((x) => x.volume_id === w);
      assert.equal(handed?.connection?.target_portal, '127.0.0.2:3260');
      await attReport({ id: handed?.attachment_id, status: 'ACTIVE', revision: 1 });
      await volumeHeartbeat(h.db, volumeState('s1', { target_portal: 'bogus' }), h.clock.now());
      const kept = (await volumesOf(server))?.find((x) => x.volume_id === w);
      assert.equal(kept?.connection?.target_portal, '127.0.0.2:3260', 'stored once attached');
      await h.db.query('UPDATE volume_attachments SET target_portal = NULL');
      const bare = await volumesOf(server);
      assert.deepEqual(
        bare?.map((x) => [x.action, x.connection]),
        [
          ['attach', null],
          ['attach', null],
        ],
        'no portal at all: still listed, so the compute host never unplugs an attached disk',
      );
    });

    test('every attach hands new CHAP credentials', async () => {
      const other = await activeServer(h);
      const server = await setup();
      const v = await seedVolume(h.db, { status: 'available' });
      const before = (await info(v))?.auth;
      await inUse(server, v);
      const first = (await info(v))?.auth;
      assert.notDeepEqual(first, before);
      const [a] = (await volumesOf(server)) ?? [];
      assert.equal(a?.connection?.auth_username, first?.username);
      assert.equal(a?.connection?.auth_password, first?.secret);
      assert.match(first?.username ?? '', /^[A-Za-z0-9]{20}$/);
      assert.match(first?.secret ?? '', /^[A-Za-z0-9]{16}$/);
      const d = await h.call('DELETE', `/servers/${server}/os-volume_attachments/${v}`);
      assert.equal(d.status, 202, d.raw);
      await attReport({ id: a?.attachment_id, status: 'ACTIVE', revision: 2 });
      await volReport({ id: v, status: 'ACTIVE', revision: 3 });
      assert.equal(await status(v), 'available');
      assert.deepEqual((await info(v))?.auth, first, 'a detach keeps them');
      await inUse(other, v);
      const second = (await info(v))?.auth;
      assert.notEqual(second?.username, first?.username);
      assert.notEqual(second?.secret, first?.secret);
      const [b] = (await volumesOf(other)) ?? [];
      assert.equal(b?.connection?.auth_username, second?.username);
    });
    test('a source a creating volume copies from cannot be deleted', async () => {
      await volumeHeartbeat(h.db, volumeState('s1'), h.clock.now());
      const src = await seedVolume(h.db, { status: 'available' });
      const snap = await seedSnapshot(h.db, src, 'available');
      const create = async (from: Body) => {
        const r = await cinder('POST', '/volumes', { volume: { size: 1, ...from } });
        assert.equal(r.status, 202, r.raw);
        return (r.body as { volume: { id: string } }).volume.id;
      };
      const copy = await create({ source_volid: src });
      const fromSnap = await create({ snapshot_id: snap });
      assert.equal(await status(copy), 'creating');
      const refused = async (path: string, busy: RegExp) => {
        const r = await cinder('DELETE', path);
        assert.equal(r.status, 400, r.raw);
        assert.match(
          String((r.body as { badRequest: { message: string } }).badRequest.message),
          busy,
        );
      };
      await refused(
        `/snapshots/${snap}`,
        new RegExp(`Snapshot ${snap} is busy: volume ${fromSnap}`),
      );
      assert.equal((await snapInfo(snap))?.deleting, false);
      await volReport({ id: fromSnap, status: 'ACTIVE', revision: 1 });
      assert.equal((await cinder('DELETE', `/snapshots/${snap}`)).status, 202);
      await refused(`/volumes/${src}`, new RegExp(`Volume ${src} is busy: volume ${copy}`));
      const forced = await action(src, { 'os-force_delete': {} });
      assert.equal(forced.status, 400, 'a forced delete is refused too');
      assert.equal(await status(src), 'available');
      assert.equal((await info(src))?.deleting, false);
      await volReport({ id: copy, status: 'ERROR', revision: 1, reason: 'copy failed' });
      assert.equal(await status(copy), 'error');
      await snapReport({ id: snap, status: 'ACTIVE', revision: 2 });
      assert.equal((await cinder('DELETE', `/volumes/${src}`)).status, 202);
    });
    test('an extend shows the old size until served, and again after it failed', async () => {
      const v = await seedVolume(h.db, { status: 'available', size: 1 });
      const row = async () => {
        const [r] = await h.db.query<{ size: number; status: string }>(
          'SELECT size, status FROM volumes WHERE id = ?',
          [v],
        );
        return [r?.status, Number(r?.size), (await info(v))?.size_gb];
      };
      const inUseGb = async () => {
        const r = await cinder('GET', `/os-quota-sets/${PROJECT}?usage=True`);
        const set = (r.body as { quota_set: Record<string, { in_use: number }> }).quota_set;
        return set.gigabytes?.in_use;
      };
      assert.equal((await action(v, { 'os-extend': { new_size: 3 } })).status, 202);
      assert.deepEqual(
        await row(),
        ['extending', 1, 3],
        'the host is asked for 3, the row keeps 1',
      );
      assert.equal(await inUseGb(), 3, 'the quota counts the size asked for');
      await volReport({ id: v, status: 'ERROR', revision: 2, reason: 'no room to grow' });
      assert.deepEqual(await row(), ['error_extending', 1, 1], 'failed: the old size, not retried');
      assert.equal(await inUseGb(), 1);
      await action(v, { 'os-reset_status': { status: 'available' } });
      assert.equal((await action(v, { 'os-extend': { new_size: 2 } })).status, 202);
      assert.deepEqual(await row(), ['extending', 1, 2]);
      await volReport({ id: v, status: 'ACTIVE', revision: 3 });
      assert.deepEqual(await row(), ['available', 2, 2], 'served: the new size');
      assert.equal(await inUseGb(), 2);
    });
    test('a stuck attach: reset to attach_status detached, or force-deleted', async () => {
      const server = await setup();
      const v = await seedVolume(h.db, { status: 'available' });
      assert.equal((await attach(server, v)).status, 200);
      assert.deepEqual((await info(v))?.initiators, [IQN1]);
      const member = await h.call(
        'POST',
        `/volume/v3/${PROJECT}/volumes/${v}/action`,
        { 'os-reset_status': { attach_status: 'detached' } },
        MEMBER,
      );
      assert.equal(member.status, 403, 'admin only');
      const bad = await action(v, { 'os-reset_status': { attach_status: 'attached' } });
      assert.equal(bad.status, 400, bad.raw);
      const r = await action(v, { 'os-reset_status': { attach_status: 'detached' } });
      assert.equal(r.status, 202, r.raw);
      assert.deepEqual(await volumeRow(h.db, v), {
        status: 'available',
        status_reason: null,
        revision_number: 3,
        status_revision: 3,
      });
      assert.deepEqual((await info(v))?.initiators, [], 'the ACL goes');
      assert.deepEqual(await volumesOf(server), []);
      await volReport({ id: v, status: 'ACTIVE', revision: 2 });
      assert.deepEqual(await volumesOf(server), [], 'a late export hands nothing');

      assert.equal((await attach(server, v)).status, 200);
      await volReport({ id: v, status: 'ACTIVE', revision: 4 });
      assert.equal((await volumesOf(server))?.length, 1, 'handed to the compute host');
      const given = await action(v, {
        'os-reset_status': { status: 'error', attach_status: 'detached' },
      });
      assert.equal(given.status, 202, given.raw);
      assert.equal(await status(v), 'error', 'the status given');
      assert.deepEqual(await volumesOf(server), [], 'the compute host unplugs it');

      await action(v, { 'os-reset_status': { status: 'available' } });
      assert.equal((await attach(server, v)).status, 200);
      assert.equal(await status(v), 'attaching');
      const forced = await action(v, { 'os-force_delete': {} });
      assert.equal(forced.status, 202, forced.raw);
      assert.equal(await status(v), 'deleting');
      assert.equal((await info(v))?.deleting, true);
      assert.deepEqual((await info(v))?.initiators, []);
      await volReport({ id: v, status: 'ACTIVE', revision: Number((await info(v))?.revision) });
      assert.equal(await volumeRow(h.db, v), undefined);

      const w = await seedVolume(h.db, { status: 'available' });
      await inUse(server, w);
      const attached = await action(w, { 'os-force_delete': {} });
      assert.equal(attached.status, 400, 'an attached volume is never force-deleted');
      await action(w, { 'os-reset_status': { status: 'available' } });
      const reset = await cinder('DELETE', `/volumes/${w}`);
      assert.equal(reset.status, 400, 'nor deleted once its status was reset');
      assert.match(reset.raw, /VolumeAttached/);
      assert.equal((await info(w))?.deleting, false);
    });
    test('a storage error while detaching leaves a reason and one user message', async () => {
      const server = await setup();
      const v = await seedVolume(h.db, { status: 'available' });
      const attachment = await inUse(server, v);
      const d = await h.call('DELETE', `/servers/${server}/os-volume_attachments/${v}`);
      assert.equal(d.status, 202, d.raw);
      await attReport({ id: attachment, status: 'ACTIVE', revision: 2 });
      const revision = Number((await info(v))?.revision);
      const why = 'tgtadm: cannot unbind initiator';
      for (let i = 0; i < 2; i++)
        await volReport({ id: v, status: 'ERROR', revision, reason: why });
      assert.deepEqual(await volumeRow(h.db, v), {
        status: 'detaching',
        status_reason: why,
        revision_number: revision,
        status_revision: revision,
      });
      const messages = await messagesOf(h.db, v);
      assert.equal(messages.length, 1, 'a retried failure is one message');
      assert.equal(messages[0]?.message, `update attachment: ${why}`);
      assert.equal(messages[0]?.event_id, 'VOLUME_VOLUME_004_022');
      await volReport({ id: v, status: 'ACTIVE', revision });
      assert.equal(await status(v), 'available');
    });
  });
}
