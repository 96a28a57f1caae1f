/**
 * Nova's contract: every compute answer kumo-api gives — version documents, flavors,
 * servers in realistic states (api-servers-harness: a real sqlite database and broker,
 * an agent that reports), their addresses, actions and errors, key pairs, volume
 * attachments (os-volume_attachments, volumes_attached) — checked by check.py
 * against tempest's published response schemas (Debian python3-tempest 33) at every
 * microversion Kumo claims: none (2.1), 2.1, 2.3, 2.5 (tempest's v2_3 schemas), 2.9
 * and 2.16, with the request-id and microversion headers tempest reads.
 *
 * Invariant under test: a strict client that validates each answer as tempest does
 * accepts every one of them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seedVolume, volumeHeartbeat, volumeState } from '../helpers/volume-seed.ts';
import {
  ADMIN,
  type Body,
  finishTask,
  serversHarness,
} from '../integration/api-servers-harness.ts';
import { type Answer, assertContract, injectSend, Recorder } from './records.ts';

/** The microversions asked: each of tempest's schema ranges Kumo claims, and none. */
const VERSIONS = [undefined, '2.1', '2.3', '2.5', '2.9', '2.16'] as const;

describe('compute answers against tempest schemas', () => {
  const h = serversHarness('sqlite');
  const rec = new Recorder(
    injectSend(() => h.app),
    ADMIN,
  );
  const nova = (check: string, method: string, url: string, o = {}) =>
    rec.call('compute', check, method, url, o);
  const bodyOf = (a: Answer) => a.body as Body;

  /** A server on net1, booted through the API and reported ACTIVE by its agent. */
  const active = async (extra: Body = {}) => {
    await h.report('h1');
    const made = await nova('servers.create_server_with_admin_pass', 'POST', '/servers', {
      body: {
        server: {
          name: 'contract',
          flavorRef: '1',
          imageRef: h.images.plain,
          networks: [{ uuid: h.net.n.id }],
          accessIPv4: '192.0.2.7',
          adminPass: 'sekrit-Pass1',
          ...extra,
        },
      },
    });
    assert.equal(made.status, 202, JSON.stringify(made.body));
    const id = (bodyOf(made).server as { id: string }).id;
    await finishTask(h, id, 'active');
    return id;
  };

  test('version documents at /compute, /compute/ and /compute/v2.1', async () => {
    for (const url of ['/compute', '/compute/'])
      assert.equal((await nova('versions.list_versions', 'GET', url, { token: null })).status, 200);
    for (const url of ['/compute/v2.1', '/compute/v2.1/', '/v2.1'])
      assert.equal((await nova('versions.get_one_version', 'GET', url)).status, 200);
  });

  test('flavors: list, detail, show, create, delete and their errors at every version', async () => {
    for (const [i, v] of VERSIONS.entries()) {
      const o = { microversion: v };
      await nova('flavors.list_flavors', 'GET', '/compute/v2.1/flavors', o);
      await nova('flavors.list_flavors_details', 'GET', '/compute/v2.1/flavors/detail', o);
      await nova('flavors.show_flavor', 'GET', '/compute/v2.1/flavors/1', o);
      const body = { flavor: { name: `c.contract${i}`, ram: 256, vcpus: 1, disk: 1 } };
      const made = await nova('flavors.create_flavor', 'POST', '/compute/v2.1/flavors', {
        ...o,
        body,
      });
      assert.equal(made.status, 200, JSON.stringify(made.body));
      await nova('compute.error', 'POST', '/compute/v2.1/flavors', { ...o, body });
      const id = (bodyOf(made).flavor as { id: string }).id;
      await nova('flavors.delete_flavor', 'DELETE', `/compute/v2.1/flavors/${id}`, o);
      await nova('compute.error', 'GET', `/compute/v2.1/flavors/${id}`, o);
    }
  });

  test('servers: create, list, detail, show, update and addresses at every version', async () => {
    const id = await active();
    const base = `/compute/v2.1/servers`;
    for (const v of VERSIONS) {
      const o = { microversion: v };
      await nova('servers.list_servers', 'GET', base, o);
      await nova('servers.list_servers_detail', 'GET', `${base}/detail`, o);
      await nova('servers.list_servers_detail', 'GET', `${base}/detail?name=^contr`, o);
      const shown = await nova('servers.show_server', 'GET', `${base}/${id}`, o);
      assert.equal((bodyOf(shown).server as Body).status, 'ACTIVE');
      const body = { server: { name: `renamed-${v ?? 'none'}`, accessIPv6: '2001:db8::7' } };
      await nova('servers.update_server', 'PUT', `${base}/${id}`, { ...o, body });
      await nova('servers.list_addresses', 'GET', `${base}/${id}/ips`, o);
      await nova('servers.list_addresses_by_network', 'GET', `${base}/${id}/ips/net1`, o);
      await nova('compute.error', 'GET', `${base}/${id}/ips/no-such-net`, o);
      await nova('compute.error', 'GET', `${base}/00000000-0000-4000-8000-000000000000`, o);
    }
    // The legacy root serves the same shapes.
    await nova('servers.show_server', 'GET', `/servers/${id}`, { microversion: '2.16' });
    await nova('servers.list_servers_detail', 'GET', '/v2.1/servers/detail');
  });

  test('server actions answer as Nova does', async () => {
    const id = await active();
    const url = `/compute/v2.1/servers/${id}/action`;
    const act = (check: string, body: unknown, microversion?: string) =>
      nova(check, 'POST', url, { body, microversion });
    await act('servers.get_console_output', { 'os-getConsoleOutput': { length: 2 } });
    await act('servers.action', { lock: null }, '2.9');
    const locked = await nova('servers.show_server', 'GET', `/compute/v2.1/servers/${id}`, {
      microversion: '2.9',
    });
    assert.equal((bodyOf(locked).server as Body).locked, true);
    await act('servers.action', { unlock: null }, '2.16');
    await act('servers.action', { 'os-stop': null });
    await act('compute.error', { 'os-stop': null });
    await act('compute.error', { 'no-such-action': null });
    await finishTask(h, id, 'stopped');
    for (const v of ['2.1', '2.9', '2.16']) {
      const rebuild = { rebuild: { imageRef: h.images.plain, adminPass: 'rebuilt-Pass1' } };
      const r = await act('servers.rebuild_server_with_admin_pass', rebuild, v);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal((await h.show(id))['OS-EXT-STS:task_state'], 'rebuilding');
      await finishTask(h, id, 'stopped');
    }
  });

  test('multi-create, reservation ids, security groups and deletes', async () => {
    await h.report('h1');
    const server = { name: 'multi', flavorRef: '1', imageRef: h.images.plain };
    const many = await nova('servers.create_multiple_reservation', 'POST', '/compute/servers', {
      body: { server: { ...server, min_count: 2, max_count: 2, return_reservation_id: true } },
    });
    assert.equal(many.status, 202, JSON.stringify(many.body));
    const detail = await nova('servers.list_servers_detail', 'GET', '/compute/servers/detail');
    const names = (bodyOf(detail).servers as Body[]).map((s) => s.name).sort();
    assert.deepEqual(names, ['multi-1', 'multi-2']);
    const refused = await nova('compute.error', 'POST', '/compute/servers', {
      body: { server: { ...server, security_groups: [{ name: 'no-such-group' }] } },
    });
    assert.equal(refused.status, 400);
    for (const s of bodyOf(detail).servers as Body[])
      await nova('servers.delete_server', 'DELETE', `/compute/v2.1/servers/${String(s.id)}`, {
        headers: { 'content-type': 'application/json' },
      });
    await nova('compute.error', 'GET', '/compute/v2.1/servers', { microversion: '2.99' });
  });

  test('key pairs: create (generated and imported), list, show, delete and errors at every version', async () => {
    const base = '/compute/v2.1/os-keypairs';
    for (const [i, v] of VERSIONS.entries()) {
      const o = { microversion: v };
      const gen = await nova('keypairs.create_keypair', 'POST', base, {
        ...o,
        body: { keypair: { name: `gen${i}` } },
      });
      const pub = String((bodyOf(gen).keypair as Body).public_key);
      const imported = { keypair: { name: `imp${i}`, public_key: pub } };
      await nova('keypairs.create_keypair', 'POST', base, { ...o, body: imported });
      await nova('compute.error', 'POST', base, { ...o, body: imported });
      await nova('keypairs.list_keypairs', 'GET', base, o);
      await nova('keypairs.show_keypair', 'GET', `${base}/gen${i}`, o);
      for (const name of [`gen${i}`, `imp${i}`])
        await nova('keypairs.delete_keypair', 'DELETE', `${base}/${name}`, o);
      await nova('compute.error', 'GET', `${base}/gen${i}`, o);
    }
  });

  test('a server booted with a key pair, user data and a config drive, at every version', async () => {
    const made = await nova('keypairs.create_keypair', 'POST', '/compute/v2.1/os-keypairs', {
      body: { keypair: { name: 'boot' } },
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const id = await active({
      key_name: 'boot',
      user_data: 'IyEvYmluL3NoCg==',
      config_drive: true,
    });
    for (const v of VERSIONS) {
      const shown = await nova('servers.show_server', 'GET', `/compute/v2.1/servers/${id}`, {
        microversion: v,
      });
      assert.equal((bodyOf(shown).server as Body).key_name, 'boot');
      await nova('servers.list_servers_detail', 'GET', '/compute/v2.1/servers/detail', {
        microversion: v,
      });
    }
  });

  test('volume attachments and volumes_attached at every version', async () => {
    const id = await active();
    await h.report('h1', { iscsi_initiator: 'iqn.1993-08.org.debian:01:h1' });
    await volumeHeartbeat(h.db, volumeState('s1'), h.clock.now());
    const base = `/compute/v2.1/servers/${id}`;
    const v = await seedVolume(h.db, { status: 'available' });
    const body = { volumeAttachment: { volumeId: v } };
    const made = await nova('servers.attach_volume', 'POST', `${base}/os-volume_attachments`, {
      body,
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    await h.db.query("UPDATE volume_attachments SET attach_status = 'attached'");
    await h.db.query("UPDATE volumes SET status = 'in-use'");
    for (const o of VERSIONS.map((microversion) => ({ microversion }))) {
      await nova('servers.list_volume_attachments', 'GET', `${base}/os-volume_attachments`, o);
      await nova('servers.show_volume_attachment', 'GET', `${base}/os-volume_attachments/${v}`, o);
      const shown = await nova('servers.show_server', 'GET', base, o);
      const attached = (bodyOf(shown).server as Body)['os-extended-volumes:volumes_attached'];
      const at23 = o.microversion !== undefined && o.microversion !== '2.1';
      assert.deepEqual(attached, [at23 ? { id: v, delete_on_termination: false } : { id: v }]);
      await nova('servers.list_servers_detail', 'GET', '/compute/v2.1/servers/detail', o);
    }
    const gone = await nova(
      'servers.detach_volume',
      'DELETE',
      `${base}/os-volume_attachments/${v}`,
    );
    assert.equal(gone.status, 202);
  });

  test("every answer above matches tempest's schemas and carries its ids", async () => {
    await assertContract(rec.records);
  });
});
