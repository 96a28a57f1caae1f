/**
 * Nova's lock/unlock, rebuild, add/removeSecurityGroup, restore/forceDelete and soft
 * delete in kumo-api on both database engines with a real broker
 * (api-servers-harness.ts), the agent's reports played by the test.
 *
 * Shown: a lock refuses a non-admin's actions and delete with Nova's 409 (admins pass),
 * a member cannot lift an admin's lock (403); a rebuild answers 202 with Nova's rebuild
 * view and adminPass, hands the agent the new image (kernel, ramdisk, cmdline) under a
 * new task and refuses the states Nova refuses; security groups other than `default`
 * are Nova's 404s and the column follows; with reclaim_instance_interval 0 restore is
 * Nova's 409; with it set, DELETE soft-deletes (SOFT_DELETED), restore brings it back
 * (without asking whether the agent is alive; at once when the server has no host),
 * forceDelete (whatever task is pending) and the reclaim pass delete it; the rebuild
 * view has `locked` from 2.9 on (and no host_status at 2.16). The races are in
 * api-servers-races.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getInstanceRow } from '../../api/db/servers.ts';
import { reclaimSoftDeleted } from '../../api/instance-delete.ts';
import { silentLogger } from '../../core/log.ts';
import {
  ADMIN,
  activeServer,
  DOWN,
  finishTask,
  MEMBER,
  serversHarness,
} from './api-servers-harness.ts';

const REBUILD_KEYS = [
  'accessIPv4',
  'accessIPv6',
  'addresses',
  'adminPass',
  'created',
  'flavor',
  'hostId',
  'id',
  'image',
  'links',
  'metadata',
  'name',
  'OS-DCF:diskConfig',
  'progress',
  'status',
  'tenant_id',
  'updated',
  'user_id',
];

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`server lock, rebuild, security groups on ${engine}`, () => {
    const h = serversHarness(engine);
    const { call, show, act, novaErr, waitHint, rpc } = h;

    test('lock: a non-admin is refused actions, rebuild and delete; admins pass; unlock rules', async () => {
      const id = await activeServer(h);
      const locked = `Instance ${id} is locked`;
      assert.equal((await act(id, { lock: null }, MEMBER)).status, 202);
      assert.equal((await getInstanceRow(h.db, id))?.lockedBy, 'owner');
      assert.equal(
        novaErr(await act(id, { pause: null }, MEMBER), 'conflictingRequest', 409),
        locked,
      );
      assert.equal(
        novaErr(
          await call('DELETE', `/servers/${id}`, undefined, MEMBER),
          'conflictingRequest',
          409,
        ),
        locked,
      );
      const rebuild = { rebuild: { imageRef: h.images.plain } };
      assert.equal(novaErr(await act(id, rebuild, MEMBER), 'conflictingRequest', 409), locked);
      assert.equal(
        novaErr(await act(id, { forceDelete: null }, MEMBER), 'conflictingRequest', 409),
        locked,
      );
      const console = await act(id, { 'os-getConsoleOutput': { length: 1 } }, MEMBER);
      assert.equal(console.status, 200, 'console output is not a locked call');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], null, 'nothing started');
      assert.equal((await act(id, { pause: null })).status, 202, 'an admin passes the lock');
      await finishTask(h, id, 'active');

      assert.equal((await act(id, { lock: {} })).status, 202, 'an admin locks over it');
      assert.equal((await getInstanceRow(h.db, id))?.lockedBy, 'admin');
      assert.equal((await act(id, { lock: null }, MEMBER)).status, 202, 'a member: no change');
      assert.equal((await getInstanceRow(h.db, id))?.lockedBy, 'admin');
      assert.equal(
        novaErr(await act(id, { unlock: null }, MEMBER), 'forbidden', 403),
        "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed.",
      );
      assert.equal((await act(id, { unlock: null })).status, 202);
      assert.equal((await getInstanceRow(h.db, id))?.lockedBy, null);
      assert.equal((await act(id, { lock: null }, MEMBER)).status, 202);
      assert.equal((await act(id, { unlock: null }, MEMBER)).status, 202, "the owner's own lock");
      assert.equal((await act(id, { pause: null }, MEMBER)).status, 202, 'unlocked: members act');
    });

    test("rebuild: 202 with Nova's view and adminPass; the agent gets the new image under a new task", async () => {
      const id = await activeServer(h);
      const r = await act(id, {
        rebuild: {
          imageRef: h.images.direct,
          name: 'rebuilt',
          metadata: { role: 'db' },
          accessIPv4: '192.0.2.7',
          preserve_ephemeral: 'false',
        },
      });
      assert.equal(r.status, 202, r.raw);
      const server = (r.body as { server: Record<string, unknown> }).server;
      assert.deepEqual(Object.keys(server).sort(), [...REBUILD_KEYS].sort());
      assert.equal(server.status, 'REBUILD');
      assert.equal(server.name, 'rebuilt');
      assert.equal(server.accessIPv4, '192.0.2.7');
      assert.deepEqual(server.metadata, { role: 'db' });
      assert.equal((server.image as { id: string }).id, h.images.direct);
      assert.match(String(server.adminPass), /^[A-Za-z2-9]{12}$/);
      const row = await getInstanceRow(h.db, id);
      assert.equal(row?.adminPass, server.adminPass, 'the generated password is stored');
      assert.equal(row?.imageId, h.images.direct);
      assert.equal(row?.accessIPv4, '192.0.2.7');
      const spec = await rpc.instance('h1', id);
      assert.equal(spec?.task_state, 'rebuilding');
      assert.equal(spec?.image.id, h.images.direct);
      assert.equal(spec?.kernel?.id, h.images.kernel);
      assert.equal(spec?.ramdisk?.id, h.images.ramdisk);
      assert.equal(spec?.cmdline, 'console=ttyS0 quiet');
      await waitHint('h1', id, 2);
      await finishTask(h, id, 'active');
      assert.equal((await show(id)).status, 'ACTIVE');

      const given = await act(id, { rebuild: { imageRef: h.images.plain, adminPass: 'Secr3t!' } });
      assert.equal((given.body as { server: { adminPass: string } }).server.adminPass, 'Secr3t!');
      assert.equal((await rpc.instance('h1', id))?.kernel, null, 'back to the plain image');
      assert.equal(
        novaErr(
          await act(id, { rebuild: { imageRef: h.images.plain } }),
          'conflictingRequest',
          409,
        ),
        `Cannot 'rebuild' instance ${id} while it is in task_state rebuilding`,
      );
    });

    test('rebuild view at 2.9 and 2.16: `locked` added (tempest v2_9/v2_16), no host_status', async () => {
      const id = await activeServer(h);
      assert.equal((await act(id, { lock: null })).status, 202);
      for (const [version, task] of [
        ['2.9', 2],
        ['2.16', 3],
      ] as const) {
        const res = await h.app.inject({
          method: 'POST',
          url: `/v2.1/servers/${id}/action`,
          payload: { rebuild: { imageRef: h.images.plain } },
          headers: { 'x-auth-token': ADMIN, 'openstack-api-version': `compute ${version}` },
        });
        assert.equal(res.statusCode, 202, res.body);
        const server = (res.json() as { server: Record<string, unknown> }).server;
        assert.deepEqual(Object.keys(server).sort(), [...REBUILD_KEYS, 'locked'].sort(), version);
        assert.equal(server.locked, true);
        await waitHint('h1', id, task);
        await finishTask(h, id, 'active');
      }
    });

    test('rebuild: states and bodies Nova refuses', async () => {
      const id = await activeServer(h);
      assert.equal((await act(id, { pause: null })).status, 202);
      await h.update({
        host: 'h1',
        instance_id: id,
        power_state: 3,
        task_done: 2,
        vm_state: 'paused',
      });
      assert.equal(
        novaErr(
          await act(id, { rebuild: { imageRef: h.images.plain } }),
          'conflictingRequest',
          409,
        ),
        `Cannot 'rebuild' instance ${id} while it is in vm_state paused`,
      );
      for (const [body, field] of [
        [{}, /imageRef/],
        [{ imageRef: h.images.plain, accessIPv4: '2001:db8::1' }, /accessIPv4/],
        [{ imageRef: h.images.plain, accessIPv6: '10.0.0.1' }, /accessIPv6/],
        [{ imageRef: h.images.plain, key_name: 'k' }, /key_name/],
        [{ imageRef: h.images.plain, preserve_ephemeral: 'maybe' }, /preserve_ephemeral/],
      ] as const)
        assert.match(novaErr(await act(id, { rebuild: body }), 'badRequest', 400), field);
      assert.equal((await act(id, { unpause: null })).status, 202);
      await finishTask(h, id, 'active');
      assert.match(
        novaErr(await act(id, { rebuild: { imageRef: h.images.ramdisk } }), 'badRequest', 400),
        /ramdisk/,
      );
      assert.match(
        novaErr(
          await act(id, { rebuild: { imageRef: '00000000-0000-4000-8000-000000000000' } }),
          'badRequest',
          400,
        ),
        /could not be found/,
      );
    });

    test("security groups: only default exists; Nova's 404s; the column follows", async () => {
      const id = await activeServer(h, { networks: [{ uuid: h.net.n.id }] });
      const groups = async () => (await getInstanceRow(h.db, id))?.securityGroups;
      assert.deepEqual(await groups(), ['default']);
      assert.equal(
        novaErr(await act(id, { addSecurityGroup: { name: 'web' } }), 'itemNotFound', 404),
        'Security group web is not found for project 2a6a3b7c9d1e4f5081a2b3c4d5e6f708',
      );
      assert.equal((await act(id, { addSecurityGroup: { name: 'default' } })).status, 202);
      assert.deepEqual(await groups(), ['default'], 'adding one it has changes nothing');
      assert.equal(
        (await act(id, { removeSecurityGroup: { name: 'default' } }, MEMBER)).status,
        202,
      );
      assert.deepEqual(await groups(), []);
      assert.equal(
        novaErr(await act(id, { removeSecurityGroup: { name: 'default' } }), 'itemNotFound', 404),
        `Security group default not associated with the instance ${id}`,
      );
      assert.equal((await act(id, { addSecurityGroup: { name: 'default' } })).status, 202);
      assert.deepEqual(await groups(), ['default']);
      for (const [value, message] of [
        [{}, 'Security group not specified'],
        [{ name: '  ' }, 'Security group name cannot be empty'],
        ['default', 'Missing parameter dict'],
      ] as const)
        assert.equal(
          novaErr(await act(id, { addSecurityGroup: value }), 'badRequest', 400),
          message,
        );
      const bare = await h.boot();
      assert.equal(
        novaErr(await act(bare, { addSecurityGroup: { name: 'default' } }), 'itemNotFound', 404),
        `instance_id ${bare} could not be found as device id on any ports`,
      );
    });

    test("reclaim_instance_interval 0: restore is Nova's 409, DELETE and forceDelete delete at once", async () => {
      const id = await activeServer(h);
      assert.equal(
        novaErr(await act(id, { restore: null }), 'conflictingRequest', 409),
        `Cannot 'restore' instance ${id} while it is in vm_state active`,
      );
      assert.equal((await act(id, { forceDelete: null })).status, 202);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      await waitHint('h1', id, 2);
      const other = await activeServer(h);
      assert.equal((await call('DELETE', `/servers/${other}`)).status, 204);
      assert.equal((await show(other))['OS-EXT-STS:task_state'], 'deleting', 'no soft delete');
    });

    test('forceDelete ignores a pending task (Nova: any vm_state/task_state)', async () => {
      const id = await activeServer(h);
      assert.equal((await act(id, { pause: null })).status, 202);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'pausing');
      assert.equal((await act(id, { forceDelete: null }, MEMBER)).status, 202);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      await waitHint('h1', id, 3);
    });
  });

  describe(`soft delete with reclaim_instance_interval on ${engine}`, () => {
    const h = serversHarness(engine, { reclaimInstanceInterval: 600 });
    const { call, show, act, novaErr, waitHint } = h;
    const deps = () => ({ db: h.db, broker: h.api, log: silentLogger(), clock: h.clock });

    test('DELETE soft-deletes a launched server; restore brings it back; forceDelete deletes', async () => {
      const id = await activeServer(h);
      assert.equal((await call('DELETE', `/servers/${id}`, undefined, MEMBER)).status, 204);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'soft-deleting');
      await waitHint('h1', id, 2);
      await finishTask(h, id, 'soft-delete');
      const soft = await show(id);
      assert.equal(soft.status, 'SOFT_DELETED');
      assert.equal(soft['OS-EXT-STS:vm_state'], 'soft-delete');
      assert.ok((await getInstanceRow(h.db, id))?.softDeletedAt, 'when it began is kept');
      assert.equal(
        novaErr(await act(id, { pause: null }), 'conflictingRequest', 409),
        `Cannot 'pause' instance ${id} while it is in vm_state soft-delete`,
      );
      assert.equal((await act(id, { restore: null }, MEMBER)).status, 202);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'restoring');
      await finishTask(h, id, 'active');
      assert.equal((await show(id)).status, 'ACTIVE');
      assert.equal((await getInstanceRow(h.db, id))?.softDeletedAt, null);

      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      await finishTask(h, id, 'soft-delete');
      assert.equal((await act(id, { forceDelete: {} })).status, 202);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      await h.update({ host: 'h1', instance_id: id, power_state: 0, deleted: true });
      assert.equal((await call('GET', `/servers/${id}`)).status, 404);
    });

    test('restore does not wait for the agent (Nova casts); a hostless server is restored at once', async () => {
      const id = await activeServer(h);
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      await finishTask(h, id, 'soft-delete');
      h.advance(DOWN + 1);
      assert.equal((await act(id, { restore: null })).status, 202, 'the agent is down');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'restoring');
      await waitHint('h1', id, 3);
      await h.report('h1');
      await finishTask(h, id, 'active');

      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      await finishTask(h, id, 'soft-delete');
      await h.db.query("UPDATE instances SET host = '' WHERE id = ?", [id]);
      assert.equal((await act(id, { restore: null })).status, 202);
      const restored = await show(id);
      assert.equal(restored.status, 'ACTIVE');
      assert.equal(restored['OS-EXT-STS:task_state'], null);
      assert.equal((await getInstanceRow(h.db, id))?.softDeletedAt, null);
    });

    test('a server never launched is deleted at once; the reclaim pass deletes after the interval', async () => {
      await h.report('h1');
      const building = await h.boot();
      assert.equal((await call('DELETE', `/servers/${building}`)).status, 204);
      assert.equal((await show(building))['OS-EXT-STS:task_state'], 'deleting');

      const id = await activeServer(h);
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      await finishTask(h, id, 'soft-delete');
      assert.deepEqual(await reclaimSoftDeleted(deps(), 600, DOWN), [], 'not yet');
      h.advance(601);
      await h.report('h1');
      assert.deepEqual(await reclaimSoftDeleted(deps(), 600, DOWN), [id]);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      await waitHint('h1', id, 3);
    });
  });
}
