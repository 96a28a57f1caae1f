/**
 * Nova's os-volume_attachments in kumo-api on both database engines with a real broker
 * (api-servers-harness.ts plays the compute and volume agents through report_status and
 * the q-plugin calls): the whole walk creating → available → attaching → (storage host
 * serves the ACL) exported, the compute host hinted and handed the connection → (its
 * attach report) in-use → detaching → (its unplug report) the ACL goes → available; the
 * server view's volumes_attached; Nova's and Cinder's refusals; the error paths of either
 * agent; reports from a host that does not serve the volume or attachment ignored; a
 * deleted server's volumes detached and kept. Volume rows are written with SQL
 * (test/helpers/volume-seed.ts) until the Cinder API (v17-capi) makes them.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { attachVolume } from '../../api/db/volume-attachments.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { GetVolumeInfoResult } from '../../contracts/volume.ts';
import { waitFor } from '../helpers/env.ts';
import {
  clearVolumes,
  messagesOf,
  seedVolume,
  volumeHeartbeat,
  volumeRow,
  volumeState,
} from '../helpers/volume-seed.ts';
import { activeServer, type Body, serversHarness } from './api-servers-harness.ts';

const IQN1 = 'iqn.1993-08.org.debian:01:h1';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`server volume attachments on ${engine}`, () => {
    const h = serversHarness(engine);
    const { call, novaErr } = h;
    const attach = (server: string, volumeId: string, extra: Body = {}) =>
      call('POST', `/servers/${server}/os-volume_attachments`, {
        volumeAttachment: { volumeId, ...extra },
      });
    const detach = (server: string, volumeId: string) =>
      call('DELETE', `/servers/${server}/os-volume_attachments/${volumeId}`);
    const reportAs = async (agentType: string, resource: string, host: string, s: Body) => {
      await h.agents.cast(PLUGIN_TOPIC, 'report_status', {
        host,
        agent_type: agentType,
        statuses: [{ resource, ...s } as never],
      });
      await h.rpc.hostInstances(host);
    };
    const volReport = (host: string, s: Body) => reportAs('Volume agent', 'volume', host, s);
    const attReport = (host: string, s: Body) => reportAs('Compute agent', 'attachment', host, s);
    const status = async (id: string) => (await volumeRow(h.db, id))?.status;
    const volumesOf = async (server: string) => (await h.rpc.instance('h1', server))?.volumes;
    const info = async (id: string) =>
      GetVolumeInfoResult.parse(
        await h.agents.call(PLUGIN_TOPIC, 'get_volume_info', { host: 's1', volume_id: id }),
      ).volume;
    const volumeHint = (id: string, revision: number) =>
      waitFor(`volume hint ${revision} for ${id}`, () =>
        h
          .hints('volume_agent.s1', 'volume', id)
          .some((m) => m.message.method === 'hint' && m.message.args.revision === revision),
      );
    const computeHints = (server: string) => h.hints('compute_agent.h1', 'instance', server).length;
    /** A server on h1 whose agent reports its initiator, and the storage agent s1. */
    const setup = async () => {
      const server = await activeServer(h);
      await h.report('h1', { iscsi_initiator: IQN1 });
      await volumeHeartbeat(h.db, volumeState('s1'), h.clock.now());
      return server;
    };
    /** A volume attached to `server` and in-use, through both agents' reports. */
    const inUse = async (server: string) => {
      const v = await seedVolume(h.db, { status: 'available' });
      assert.equal((await attach(server, v)).status, 200);
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 2 });
      const [a] = (await volumesOf(server)) ?? [];
      assert.ok(a);
      await attReport('h1', { id: a.attachment_id, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'in-use');
      return { v, attachment: a.attachment_id };
    };

    beforeEach(() => clearVolumes(h.db));

    test('creating → available → attaching → in-use → detaching → available', async () => {
      const server = await setup();
      const v = await seedVolume(h.db);
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'available');

      const r = await attach(server, v);
      assert.equal(r.status, 200, r.raw);
      const view = { device: '/dev/vdb', id: v, serverId: server, volumeId: v };
      assert.deepEqual(r.body, { volumeAttachment: view });
      assert.equal(await status(v), 'attaching');
      await volumeHint(v, 2);
      assert.deepEqual((await info(v))?.initiators, [IQN1]);
      assert.deepEqual(await volumesOf(server), [], 'no connection before the ACL is served');

      const before = computeHints(server);
      await volReport('s2', { id: v, status: 'ACTIVE', revision: 2 });
      assert.deepEqual(await volumesOf(server), [], "another storage host's report is ignored");
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 2 });
      await waitFor('the compute host hinted', () => computeHints(server) > before);
      const [a] = (await volumesOf(server)) ?? [];
      assert.deepEqual(a, {
        attachment_id: a?.attachment_id,
        volume_id: v,
        device: 'vdb',
        action: 'attach',
        connection: {
          driver_volume_type: 'iscsi',
          target_iqn: `iqn.2010-10.org.openstack:volume-${v}`,
          target_portal: '127.0.0.1:3260',
          target_lun: 1,
          auth_method: 'CHAP',
          auth_username: (await info(v))?.auth.username,
          auth_password: (await info(v))?.auth.secret,
        },
        revision: 1,
      });
      assert.equal(await h.rpc.instance('h2', server), null, 'no other host is handed it');
      assert.equal(await status(v), 'attaching');
      const id = a?.attachment_id as string;
      await attReport('h2', { id, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'attaching', "another compute host's report is ignored");
      await attReport('h1', { id, status: 'ACTIVE', revision: 1 });
      assert.equal(await status(v), 'in-use');

      assert.deepEqual((await h.show(server))['os-extended-volumes:volumes_attached'], [{ id: v }]);
      const list = await call('GET', `/v2.1/servers/${server}/os-volume_attachments`);
      assert.deepEqual(list.body, { volumeAttachments: [view] });
      const one = await call('GET', `/servers/${server}/os-volume_attachments/${v}`);
      assert.deepEqual(one.body, { volumeAttachment: view });
      const missing = crypto.randomUUID();
      const m = await call('GET', `/servers/${server}/os-volume_attachments/${missing}`);
      assert.equal(
        novaErr(m, 'itemNotFound', 404),
        `No volume Block Device Mapping with id ${missing}.`,
      );

      const hinted = computeHints(server);
      const d = await detach(server, v);
      assert.equal(d.status, 202, d.raw);
      assert.equal(await status(v), 'detaching');
      await waitFor('the compute host hinted', () => computeHints(server) > hinted);
      assert.deepEqual(await volumesOf(server), [
        {
          attachment_id: id,
          volume_id: v,
          device: 'vdb',
          action: 'detach',
          connection: null,
          revision: 2,
        },
      ]);
      assert.deepEqual((await info(v))?.initiators, [IQN1], 'the ACL stays until the unplug');
      await attReport('h1', { id, status: 'ACTIVE', revision: 1 });
      assert.equal((await volumesOf(server))?.length, 1, 'a late attach report is not the unplug');
      await attReport('h1', { id, status: 'ACTIVE', revision: 2 });
      assert.deepEqual(await volumesOf(server), []);
      await volumeHint(v, 3);
      assert.deepEqual(await info(v), { ...(await info(v)), initiators: [], revision: 3 });
      assert.equal(await status(v), 'detaching');
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 3 });
      assert.equal(await status(v), 'available');
      assert.deepEqual((await h.show(server))['os-extended-volumes:volumes_attached'], []);
    });

    test("Nova's and Cinder's refusals", async () => {
      const bare = await activeServer(h);
      await volumeHeartbeat(h.db, volumeState('s1'), h.clock.now());
      const v = await seedVolume(h.db, { status: 'available' });
      const noIqn = novaErr(await attach(bare, v), 'conflictingRequest', 409);
      assert.match(noIqn, /compute agent on h1 reports no iSCSI initiator name/);
      await h.report('h1', { iscsi_initiator: IQN1 });

      const theirs = await seedVolume(h.db, { status: 'available', projectId: 'other-project' });
      assert.equal(
        novaErr(await attach(bare, theirs), 'itemNotFound', 404),
        `Volume ${theirs} could not be found.`,
      );
      const unknown = crypto.randomUUID();
      novaErr(await attach(bare, unknown), 'itemNotFound', 404);
      assert.match(
        novaErr(await attach(bare, 'x'), 'badRequest', 400),
        /volumeAttachment\.volumeId/,
      );
      assert.match(
        novaErr(await attach(bare, v, { device: '/dev/sda' }), 'badRequest', 400),
        /volumeAttachment\.device/,
      );
      assert.match(novaErr(await attach(bare, v, { tag: 'x' }), 'badRequest', 400), /tag/);
      const creating = await seedVolume(h.db);
      assert.equal(
        novaErr(await attach(bare, creating), 'badRequest', 400),
        'Invalid volume: Volume status must be available to reserve, but the current status is creating.',
      );

      const r = await attach(bare, v, { device: '/dev/vdc' });
      assert.equal((r.body as { volumeAttachment: Body }).volumeAttachment.device, '/dev/vdc');
      const v2 = await seedVolume(h.db, { status: 'available' });
      assert.equal(
        novaErr(await attach(bare, v2, { device: '/dev/vdc' }), 'badRequest', 400),
        'The supplied device path (/dev/vdc) is in use.',
      );
      assert.equal(await status(v2), 'available', 'a refused attach changes nothing');
      novaErr(await attach(bare, v), 'badRequest', 400);
      const next = await attach(bare, v2);
      assert.equal((next.body as { volumeAttachment: Body }).volumeAttachment.device, '/dev/vdb');

      assert.match(
        novaErr(await detach(bare, v), 'badRequest', 400),
        /attach_status must be 'attached' to detach/,
      );
      const loose = await seedVolume(h.db, { status: 'available' });
      assert.equal(
        novaErr(await detach(bare, loose), 'itemNotFound', 404),
        `No volume Block Device Mapping with id ${loose}.`,
      );
      const stuck = await h.placeOnly();
      assert.match(
        novaErr(await attach(stuck.id, loose), 'conflictingRequest', 409),
        /Cannot 'attach_volume' instance .* while it is in vm_state building/,
      );
      novaErr(await attach(crypto.randomUUID(), loose), 'itemNotFound', 404);
    });

    test('either agent failing: the attachment goes, the volume is available again', async () => {
      const server = await setup();
      const v = await seedVolume(h.db, { status: 'available' });
      assert.equal((await attach(server, v)).status, 200);
      await volReport('s1', { id: v, status: 'ERROR', revision: 2, reason: 'tgtadm: target busy' });
      assert.deepEqual(await volumeRow(h.db, v), {
        status: 'detaching',
        status_reason: 'tgtadm: target busy',
        revision_number: 3,
        status_revision: 3,
      });
      assert.deepEqual(await volumesOf(server), []);
      assert.equal((await messagesOf(h.db, v))[0]?.event_id, 'VOLUME_VOLUME_002_021');
      await volumeHint(v, 3);
      assert.deepEqual((await info(v))?.initiators, []);
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 3 });
      assert.equal(await status(v), 'available');

      assert.equal((await attach(server, v)).status, 200);
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 4 });
      const [a] = (await volumesOf(server)) ?? [];
      await attReport('h1', {
        id: a?.attachment_id,
        status: 'ERROR',
        revision: 1,
        reason: 'no disk',
      });
      assert.equal(await status(v), 'detaching');
      await volumeHint(v, 5);
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 5 });
      assert.equal(await status(v), 'available');

      const used = await inUse(server);
      assert.equal((await detach(server, used.v)).status, 202);
      await attReport('h1', { id: used.attachment, status: 'ERROR', revision: 2, reason: 'busy' });
      assert.deepEqual(
        { ...(await volumeRow(h.db, used.v)), revision_number: 0, status_revision: 0 },
        { status: 'in-use', status_reason: 'busy', revision_number: 0, status_revision: 0 },
      );
      assert.deepEqual((await h.show(server))['os-extended-volumes:volumes_attached'], [
        { id: used.v },
      ]);
    });

    test('a deleted server detaches its volumes, which stay', async () => {
      const server = await setup();
      const { v } = await inUse(server);
      assert.equal((await call('DELETE', `/servers/${server}`)).status, 204);
      assert.equal(await status(v), 'in-use', 'attached while the domain lives');
      await h.update({ host: 'h1', instance_id: server, power_state: 0, deleted: true });
      assert.equal(await status(v), 'detaching');
      await volumeHint(v, 3);
      assert.deepEqual((await info(v))?.initiators, []);
      await volReport('s1', { id: v, status: 'ACTIVE', revision: 3 });
      assert.equal(await status(v), 'available');
    });

    test('an attach racing the server delete: refused, or detached when the delete ends', async () => {
      for (let round = 0; round < 3; round++) {
        const server = await setup();
        const v = await seedVolume(h.db, { status: 'available' });
        const [att, del] = await Promise.all([
          attach(server, v),
          call('DELETE', `/servers/${server}`),
        ]);
        assert.equal(del.status, 204);
        assert.ok([200, 409].includes(att.status), JSON.stringify(att.body));
        await h.update({ host: 'h1', instance_id: server, power_state: 0, deleted: true });
        const rows = await h.db.query('SELECT id FROM volume_attachments WHERE volume_id = ?', [v]);
        assert.deepEqual(rows, [], 'no attachment outlives its server');
        assert.equal(await status(v), att.status === 200 ? 'detaching' : 'available');
      }
      const server = await setup();
      const v = await seedVolume(h.db, { status: 'available' });
      await h.db.query("UPDATE instances SET task_state = 'deleting' WHERE id = ?", [server]);
      const req = { volumeId: v, instanceId: server, host: 'h1', initiator: IQN1 };
      assert.deepEqual(await attachVolume(h.db, req, h.clock.now()), { error: 'server_state' });
      await h.db.query('UPDATE instances SET task_state = NULL WHERE id = ?', [server]);
      const moved = { ...req, host: 'h2' };
      assert.deepEqual(await attachVolume(h.db, moved, h.clock.now()), { error: 'server_state' });
      assert.equal(await status(v), 'available', 'a refused attach writes nothing');
      assert.deepEqual(await h.db.query('SELECT id FROM volume_attachments'), []);
    });
  });
}
