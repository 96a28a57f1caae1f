/**
 * Neutron LBaaS v1 through buildApp() + inject on both engines: pools, members, VIPs and
 * health monitors key for key as neutron-lbaas shows them; statuses and revisions (a
 * create is PENDING_CREATE at the pool's new revision, an update PENDING_UPDATE, every
 * change bumps the pool); a member's shown status; the VIP's port (owner, device, name,
 * address, default security group) made and removed with it; associations, stats, lists
 * with filters and fields, and a pool's delete taking its members and associations along.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Port } from '../../contracts/network.ts';
import { lbaasApp, type Obj } from '../helpers/lbaas-api.ts';

const POOL_KEYS = `id tenant_id project_id name description subnet_id protocol vip_id lb_method
  admin_state_up status status_description provider members health_monitors
  health_monitors_status`.split(/\s+/);
const PING_KEYS =
  'id tenant_id project_id type delay timeout max_retries admin_state_up pools'.split(' ');

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS v1 API on ${engine}`, () => {
    const h = lbaasApp(engine);
    const { call, lb, show, put } = h;
    const { A: memberA, admin } = h.tokens;
    const A = h.projects.A;
    const revision = async (poolId: unknown) =>
      Number(
        (await h.rows('SELECT revision_number FROM lb_pools WHERE id = ?', [poolId]))[0]
          ?.revision_number,
      );
    const statusRev = async (table: string, id: unknown) =>
      Number(
        (await h.rows(`SELECT status_revision FROM ${table} WHERE id = ?`, [id]))[0]
          ?.status_revision,
      );

    test('a pool, member, monitor and VIP show Neutron’s keys and values', async () => {
      const { pool, sub } = await h.pool(memberA, { name: 'web', description: 'd' });
      assert.deepEqual(Object.keys(pool), POOL_KEYS);
      assert.deepEqual(
        { ...pool, id: '' },
        {
          id: '',
          tenant_id: A,
          project_id: A,
          name: 'web',
          description: 'd',
          subnet_id: sub.id,
          protocol: 'HTTP',
          vip_id: null,
          lb_method: 'ROUND_ROBIN',
          admin_state_up: true,
          status: 'PENDING_CREATE',
          status_description: null,
          provider: 'haproxy',
          members: [],
          health_monitors: [],
          health_monitors_status: [],
        },
      );
      const member = await lb(memberA, 'members', {
        pool_id: pool.id,
        address: '10.0.0.10',
        protocol_port: '80',
        weight: 5,
      });
      assert.deepEqual(member, {
        id: member.id,
        tenant_id: A,
        project_id: A,
        pool_id: pool.id,
        address: '10.0.0.10',
        protocol_port: 80,
        weight: 5,
        admin_state_up: true,
        status: 'PENDING_CREATE',
        status_description: null,
      });
      const http = await lb(memberA, 'health_monitors', {
        type: 'HTTP',
        delay: '3',
        timeout: 3,
        max_retries: '3',
        url_path: '/health',
        expected_codes: '200-204',
      });
      assert.deepEqual(http, {
        id: http.id,
        tenant_id: A,
        project_id: A,
        type: 'HTTP',
        delay: 3,
        timeout: 3,
        max_retries: 3,
        admin_state_up: true,
        url_path: '/health',
        http_method: 'GET',
        expected_codes: '200-204',
        pools: [],
      });
      const ping = await lb(memberA, 'health_monitors', {
        type: 'PING',
        delay: 5,
        timeout: 2,
        max_retries: 1,
      });
      assert.deepEqual(Object.keys(ping), PING_KEYS, 'no HTTP fields on a PING monitor');
      const vip = await lb(memberA, 'vips', {
        name: 'v',
        subnet_id: sub.id,
        protocol: 'HTTP',
        protocol_port: 80,
        pool_id: pool.id,
        session_persistence: { type: 'APP_COOKIE', cookie_name: 'JSESSIONID' },
      });
      assert.deepEqual(vip, {
        id: vip.id,
        tenant_id: A,
        project_id: A,
        name: 'v',
        description: '',
        subnet_id: sub.id,
        address: vip.address,
        port_id: vip.port_id,
        protocol_port: 80,
        protocol: 'HTTP',
        pool_id: pool.id,
        session_persistence: { type: 'APP_COOKIE', cookie_name: 'JSESSIONID' },
        connection_limit: -1,
        admin_state_up: true,
        status: 'PENDING_CREATE',
        status_description: null,
      });
      assert.match(String(vip.address), /^10\.\d+\.0\.\d+$/);
      const shown = await show('pools', pool.id, memberA);
      assert.equal(shown.vip_id, vip.id);
      assert.deepEqual(shown.members, [member.id]);
    });

    test('statuses and revisions follow every change of a pool and what is in it', async () => {
      const { pool, sub } = await h.pool(memberA);
      assert.equal(await revision(pool.id), 1);
      assert.equal(await statusRev('lb_pools', pool.id), 1);
      const m = await lb(memberA, 'members', {
        pool_id: pool.id,
        address: '10.9.0.1',
        protocol_port: 80,
      });
      assert.equal(await revision(pool.id), 2);
      assert.equal(await statusRev('lb_members', m.id), 2);
      const renamed = await put(memberA, 'pools', pool.id, { name: 'again' });
      assert.equal(renamed.status, 'PENDING_CREATE', 'a PENDING_CREATE stays so');
      assert.equal(await revision(pool.id), 3);
      await h.settle(pool.id);
      const updated = await put(memberA, 'pools', pool.id, { lb_method: 'LEAST_CONNECTIONS' });
      assert.equal(updated.status, 'PENDING_UPDATE');
      assert.equal(await statusRev('lb_pools', pool.id), 4);
      assert.equal((await show('members', m.id)).status, 'ACTIVE', 'the member is untouched');
      const weighed = await put(memberA, 'members', m.id, { weight: '7', admin_state_up: false });
      assert.deepEqual(
        [weighed.status, weighed.weight, await revision(pool.id)],
        ['PENDING_UPDATE', 7, 5],
      );
      const hm = await lb(memberA, 'health_monitors', {
        type: 'TCP',
        delay: 4,
        timeout: 4,
        max_retries: 2,
      });
      assert.equal(await revision(pool.id), 5, 'a monitor alone touches no pool');
      const assoc = await call(memberA, 'POST', `/v2.0/lb/pools/${pool.id}/health_monitors`, {
        health_monitor: { id: hm.id },
      });
      assert.deepEqual([assoc.status, assoc.body], [201, { health_monitor: {} }]);
      assert.equal(await revision(pool.id), 6);
      assert.deepEqual((await show('pools', pool.id)).health_monitors_status, [
        { monitor_id: hm.id, status: 'PENDING_CREATE', status_description: null },
      ]);
      await h.settle(pool.id);
      await put(memberA, 'health_monitors', hm.id, { delay: 9 });
      assert.equal(await revision(pool.id), 7, 'an associated monitor’s change bumps its pools');
      assert.deepEqual((await show('health_monitors', hm.id)).pools, [
        { pool_id: pool.id, status: 'PENDING_UPDATE', status_description: null },
      ]);
      await h.settle(pool.id);
      assert.deepEqual(
        [(await show('members', m.id)).status, (await show('members', m.id)).status_description],
        ['INACTIVE', null],
        'an admin-down member shows INACTIVE',
      );
      await put(memberA, 'members', m.id, { admin_state_up: true });
      await h.settle(pool.id);
      await h.api.db.query(
        "UPDATE lb_members SET health = 'INACTIVE', health_description = 'L4CON' WHERE id = ?",
        [String(m.id)],
      );
      const sick = await show('members', m.id);
      assert.deepEqual([sick.status, sick.status_description], ['INACTIVE', 'L4CON']);
      const inactive = (
        await call(admin, 'GET', `/v2.0/lb/members?status=INACTIVE&pool_id=${pool.id}`)
      ).body.members as Obj[];
      assert.deepEqual(
        inactive.map((x) => x.id),
        [m.id],
      );
      const other = await h.pool(memberA);
      const moved = await put(memberA, 'members', m.id, { pool_id: other.pool.id });
      assert.deepEqual([moved.pool_id, moved.status], [other.pool.id, 'PENDING_UPDATE']);
      assert.deepEqual([await revision(pool.id), await revision(other.pool.id)], [9, 2]);
      assert.equal(await statusRev('lb_members', m.id), 2);
      assert.ok(sub.id);
    });

    test('the VIP’s port is made with it, on its address, and removed with it', async () => {
      const { pool, sub } = await h.pool(memberA);
      const vip = await lb(memberA, 'vips', {
        subnet_id: sub.id,
        address: sub.cidr.replace('0/24', '77'),
        protocol: 'HTTP',
        protocol_port: '8080',
        pool_id: pool.id,
        connection_limit: '100',
        session_persistence: { type: 'SOURCE_IP' },
      });
      assert.equal(vip.address, sub.cidr.replace('0/24', '77'));
      assert.deepEqual(vip.session_persistence, { type: 'SOURCE_IP' });
      const port = (await call(memberA, 'GET', `/v2.0/ports/${vip.port_id}`)).body.port as Port;
      const groups = (await call(memberA, 'GET', '/v2.0/security-groups?name=default')).body
        .security_groups as Obj[];
      assert.deepEqual(
        {
          owner: port.device_owner,
          device: port.device_id,
          name: port.name,
          ips: port.fixed_ips,
          project: port.project_id,
          groups: port.security_groups,
        },
        {
          owner: 'neutron:LOADBALANCER',
          device: pool.id,
          name: `vip-${vip.id}`,
          ips: [{ subnet_id: sub.id, ip_address: vip.address }],
          project: A,
          groups: groups.map((g) => g.id),
        },
      );
      assert.equal(await revision(pool.id), 2);
      const changed = await put(memberA, 'vips', vip.id, {
        session_persistence: null,
        connection_limit: -1,
      });
      assert.deepEqual([changed.session_persistence, changed.connection_limit], [null, -1]);
      assert.equal(await revision(pool.id), 3);
      assert.equal((await call(memberA, 'DELETE', `/v2.0/lb/vips/${vip.id}`)).status, 204);
      assert.equal((await call(memberA, 'GET', `/v2.0/ports/${vip.port_id}`)).status, 404);
      assert.deepEqual(
        await h.rows('SELECT * FROM ipallocations WHERE port_id = ?', [vip.port_id]),
        [],
      );
      assert.equal((await show('pools', pool.id)).vip_id, null);
      assert.equal(await revision(pool.id), 4);
    });

    test('stats, lists with filters, fields and pages; a pool’s delete takes its parts', async () => {
      const { pool } = await h.pool(memberA, { name: 'listed', lb_method: 'SOURCE_IP' });
      const zero = await call(memberA, 'GET', `/v2.0/lb/pools/${pool.id}/stats`);
      assert.deepEqual(zero.body, {
        stats: { bytes_in: 0, bytes_out: 0, active_connections: 0, total_connections: 0 },
      });
      await h.api.db.query(
        'INSERT INTO lb_pool_stats (pool_id, bytes_in, bytes_out, active_connections, total_connections) VALUES (?, 10, 20, 1, 3)',
        [String(pool.id)],
      );
      const some = await call(memberA, 'GET', `/v2.0/lb/pools/${pool.id}/stats`);
      assert.deepEqual(some.body.stats, {
        bytes_in: 10,
        bytes_out: 20,
        active_connections: 1,
        total_connections: 3,
      });
      const m1 = await lb(memberA, 'members', {
        pool_id: pool.id,
        address: '10.1.1.1',
        protocol_port: 80,
      });
      await lb(memberA, 'members', { pool_id: pool.id, address: '10.1.1.2', protocol_port: 80 });
      const byAddress = await call(memberA, 'GET', '/v2.0/lb/members?address=10.1.1.1');
      assert.deepEqual(
        (byAddress.body.members as Obj[]).map((x) => x.id),
        [m1.id],
      );
      const fields = await call(
        memberA,
        'GET',
        '/v2.0/lb/pools?lb_method=SOURCE_IP&fields=id&fields=name',
      );
      assert.deepEqual(fields.body.pools, [{ id: pool.id, name: 'listed' }]);
      const paged = await call(memberA, 'GET', `/v2.0/lb/members?pool_id=${pool.id}&limit=1`);
      assert.equal((paged.body.members as Obj[]).length, 1);
      const links = paged.body.members_links as { href: string }[];
      assert.match(String(links[0]?.href), /\/v2\.0\/lb\/members\?/);
      const hm = await lb(memberA, 'health_monitors', {
        type: 'PING',
        delay: 2,
        timeout: 1,
        max_retries: 1,
      });
      await call(memberA, 'POST', `/v2.0/lb/pools/${pool.id}/health_monitors`, {
        health_monitor: { id: hm.id },
      });
      assert.equal((await call(memberA, 'DELETE', `/v2.0/lb/pools/${pool.id}`)).status, 204);
      assert.equal((await call(memberA, 'GET', `/v2.0/lb/pools/${pool.id}`)).status, 404);
      assert.deepEqual(await h.rows('SELECT id FROM lb_members WHERE pool_id = ?', [pool.id]), []);
      assert.deepEqual((await show('health_monitors', hm.id)).pools, []);
      assert.deepEqual(
        await h.rows('SELECT * FROM lb_pool_stats WHERE pool_id = ?', [pool.id]),
        [],
      );
      assert.equal(
        (await call(memberA, 'DELETE', `/v2.0/lb/health_monitors/${hm.id}`)).status,
        204,
      );
    });
  });
}
