/**
 * The LBaaS agent's q-plugin calls on both database engines, over the real broker:
 * get_active_pools and get_pool_info answered key for key from the lb rows (only to the
 * hosting host), report_status of a pool applied by revision (PENDING → ACTIVE, rejected
 * members, ERROR, a fenced host's report ignored, a late report at an older revision
 * undoing nothing newer), and update_pool_stats stored only from
 * the hosting host, each of its parts (stats, member health) only when present.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { poolChanged } from '../../api/scheduler/lbaas.ts';
import { parseLbPoolInfo } from '../../contracts/lbaas.ts';
import type { Network } from '../../contracts/network.ts';
import { lbHarness } from '../helpers/lbaas-harness.ts';
import {
  poolStatuses,
  seedMember,
  seedMonitor,
  seedPool,
  seedVip,
  touchMember,
} from '../helpers/lbaas-seed.ts';

const LB_AGENT = 'Loadbalancer agent';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS agent RPC on ${engine}`, () => {
    const h = lbHarness(engine);

    /** A pool hosted by h1: VIP (APP_COOKIE), members m1, m2 and admin-down m3, monitors. */
    async function fullPool() {
      await h.report('h1', 'h2');
      const id = await seedPool(h.db, h.net.subnet.id, { method: 'LEAST_CONNECTIONS' });
      const port = await h.vipPort();
      const vip = await seedVip(h.db, id, port, { persistence: 'APP_COOKIE', cookie: 'sid' });
      const m1 = await seedMember(h.db, id, '10.9.0.11', { weight: 3 });
      const m2 = await seedMember(h.db, id, '10.9.0.12');
      const m3 = await seedMember(h.db, id, '10.9.0.13', { adminStateUp: false });
      const hmDown = await seedMonitor(h.db, id, { seq: 1, adminStateUp: false });
      const hm = await seedMonitor(h.db, id, { seq: 2, delay: 5 });
      const hmLater = await seedMonitor(h.db, id, { seq: 3 });
      await poolChanged(h.deps, id);
      return { id, vip, port, m1, m2, m3, hmDown, hm, hmLater };
    }

    const info = (host: string, pool_id: string) => h.rpc('get_pool_info', { host, pool_id });
    const report = (host: string, s: Record<string, unknown>) =>
      h.rpc('report_status', {
        host,
        agent_type: LB_AGENT,
        statuses: [{ resource: 'pool', ...s }],
      });

    test('get_active_pools and get_pool_info answer the hosting host only, key for key', async () => {
      const p = await fullPool();
      assert.deepEqual(await h.rpc('get_active_pools', { host: 'h1' }), { pools: [p.id] });
      assert.deepEqual(await h.rpc('get_active_pools', { host: 'h2' }), { pools: [] });
      const net = (await h.call('GET', `/v2.0/networks/${h.net.net.id}`)).body as {
        network: Network;
      };
      const ip = p.port.fixed_ips[0];
      const members = [
        { id: p.m1, address: '10.9.0.11', protocol_port: 80, weight: 3, admin_state_up: true },
        { id: p.m2, address: '10.9.0.12', protocol_port: 80, weight: 1, admin_state_up: true },
      ].sort((x, y) => (x.id < y.id ? -1 : 1));
      const expected = {
        pool: {
          id: p.id,
          revision_number: 8,
          admin_state_up: true,
          protocol: 'HTTP',
          lb_method: 'LEAST_CONNECTIONS',
          vip: {
            id: p.vip,
            address: ip?.ip_address,
            protocol_port: 80,
            protocol: 'HTTP',
            connection_limit: -1,
            session_persistence: { type: 'APP_COOKIE', cookie_name: 'sid' },
            admin_state_up: true,
            port: {
              id: p.port.id,
              network_id: h.net.net.id,
              mac_address: p.port.mac_address,
              mtu: net.network.mtu,
              ip_address: ip?.ip_address,
              subnet_id: h.net.subnet.id,
              cidr: '10.9.0.0/24',
              gateway_ip: '10.9.0.1',
            },
          },
          members,
          health_monitor: {
            id: p.hm,
            type: 'HTTP',
            delay: 5,
            timeout: 3,
            max_retries: 3,
            http_method: 'GET',
            url_path: '/healthz',
            expected_codes: '200',
          },
          ack_wanted: true,
        },
      };
      const reply = await info('h1', p.id);
      assert.deepEqual(reply, expected);
      assert.deepEqual(parseLbPoolInfo(reply), { pool: expected.pool, rejected: [] });
      assert.deepEqual(await info('h2', p.id), { pool: null }, 'not hosted there');
      const bare = await seedPool(h.db, h.net.subnet.id);
      assert.deepEqual(await info('h1', bare), { pool: null }, 'not scheduled yet');
      await poolChanged(h.deps, bare);
      const bareInfo = (await info('h2', bare)) as { pool: Record<string, unknown> };
      assert.deepEqual(
        [bareInfo.pool.vip, bareInfo.pool.members, bareInfo.pool.health_monitor],
        [null, [], null],
        'a pool without a VIP still travels',
      );
    });

    test('report_status: pending objects turn ACTIVE up to the served revision, rejects, errors', async () => {
      const p = await fullPool();
      const [rev] = (await h.db.query<{ r: unknown }>(
        'SELECT revision_number AS r FROM lb_pools WHERE id = ?',
        [p.id],
      )) as { r: unknown }[];
      const served = Number(rev?.r);
      const later = await touchMember(h.db, p.id, p.m1);
      await report('h1', {
        id: p.id,
        status: 'ACTIVE',
        revision: served,
        rejected: [{ resource: 'member', id: p.m2, reason: 'address outside the subnet' }],
      });
      const after = await poolStatuses(h.db, p.id);
      const active = { status: 'ACTIVE', description: null };
      assert.deepEqual(after.pool, active);
      assert.deepEqual(after.vip, active);
      assert.deepEqual(after[p.m3], active, 'admin-down members are acknowledged too');
      assert.deepEqual(after[`hm:${p.hm}`], active);
      assert.deepEqual(after[`hm:${p.hmDown}`], active);
      assert.deepEqual(
        after[p.m1],
        { status: 'PENDING_CREATE', description: null },
        'changed later',
      );
      assert.deepEqual(after[p.m2], { status: 'ERROR', description: 'address outside the subnet' });

      await report('h1', { id: p.id, status: 'ACTIVE', revision: later });
      const cleared = await poolStatuses(h.db, p.id);
      assert.deepEqual(cleared[p.m1], active);
      assert.deepEqual(cleared[p.m2], active, 'no longer rejected');
      assert.equal(
        ((await info('h1', p.id)) as { pool: { ack_wanted: boolean } }).pool.ack_wanted,
        false,
      );

      await report('h1', {
        id: p.id,
        status: 'ERROR',
        reason: 'haproxy -c failed',
        revision: later,
      });
      const failed = await poolStatuses(h.db, p.id);
      assert.deepEqual(failed.pool, { status: 'ERROR', description: 'haproxy -c failed' });
      assert.deepEqual({ ...failed, pool: active }, cleared, 'only the pool changed');
      assert.equal(
        ((await info('h1', p.id)) as { pool: { ack_wanted: boolean } }).pool.ack_wanted,
        true,
      );

      // A fenced host's report changes nothing.
      const before = await poolStatuses(h.db, p.id);
      await report('h2', { id: p.id, status: 'ACTIVE', revision: later });
      await report('h2', { id: p.id, status: 'ERROR', reason: 'stale copy', revision: later });
      assert.deepEqual(await poolStatuses(h.db, p.id), before);
      await report('h1', { id: p.id, status: 'ACTIVE', revision: later });
      assert.deepEqual((await poolStatuses(h.db, p.id)).pool, active);
    });

    test('report_status: a late report at an older revision undoes nothing newer', async () => {
      const p = await fullPool();
      const first = await touchMember(h.db, p.id, p.m1);
      await report('h1', { id: p.id, status: 'ACTIVE', revision: first });
      const acked = await poolStatuses(h.db, p.id);
      assert.equal(acked.pool?.status, 'ACTIVE');
      await report('h1', { id: p.id, status: 'ERROR', reason: 'stale', revision: first - 1 });
      assert.deepEqual(await poolStatuses(h.db, p.id), acked, 'a stale ERROR is ignored');

      const second = await touchMember(h.db, p.id, p.m2);
      const pending = await poolStatuses(h.db, p.id);
      assert.deepEqual(pending[p.m2], { status: 'PENDING_UPDATE', description: null });
      const bad = [{ resource: 'member', id: p.m2, reason: 'bad' }];
      await report('h1', { id: p.id, status: 'ACTIVE', revision: first, rejected: bad });
      assert.deepEqual(await poolStatuses(h.db, p.id), pending, 'm2 changed since: not ERROR');

      await report('h1', { id: p.id, status: 'ERROR', reason: 'haproxy down', revision: second });
      const failed = await poolStatuses(h.db, p.id);
      assert.deepEqual(failed.pool, { status: 'ERROR', description: 'haproxy down' });
      await report('h1', { id: p.id, status: 'ACTIVE', revision: first });
      assert.deepEqual(await poolStatuses(h.db, p.id), failed, 'an older ACTIVE leaves ERROR');
      await report('h1', { id: p.id, status: 'ACTIVE', revision: second });
      const healed = await poolStatuses(h.db, p.id);
      assert.deepEqual(healed.pool, { status: 'ACTIVE', description: null });
      assert.deepEqual(healed[p.m2], { status: 'ACTIVE', description: null });
    });

    test('update_pool_stats is stored from the hosting host only; unknown members are ignored', async () => {
      const p = await fullPool();
      const other = await seedPool(h.db, h.net.subnet.id);
      const stranger = await seedMember(h.db, other, '10.9.0.99');
      const stats = { bytes_in: 10, bytes_out: 20, active_connections: 1, total_connections: 5 };
      const snapshot = async () => ({
        stats: await h.db.query('SELECT * FROM lb_pool_stats ORDER BY pool_id'),
        members: await h.db.query(
          'SELECT id, health, health_description FROM lb_members ORDER BY id',
        ),
      });
      const empty = await snapshot();
      const fenced = await h.rpc('update_pool_stats', {
        host: 'h2',
        pool_id: p.id,
        stats,
        members: [{ id: p.m1, status: 'INACTIVE' }],
      });
      assert.deepEqual(fenced, { updated: 0 });
      assert.deepEqual(await snapshot(), empty, 'a fenced copy changes nothing');

      const stored = await h.rpc('update_pool_stats', {
        host: 'h1',
        pool_id: p.id,
        stats,
        members: [
          { id: p.m1, status: 'ACTIVE' },
          { id: p.m2, status: 'INACTIVE' },
          { id: stranger, status: 'INACTIVE' },
          { id: '00000000-0000-4000-8000-000000000000', status: 'INACTIVE' },
        ],
        reasons: [{ id: p.m2, reason: 'L7STS/503' }],
      });
      assert.deepEqual(stored, { updated: 3 });
      const [row] = await h.db.query('SELECT * FROM lb_pool_stats WHERE pool_id = ?', [p.id]);
      assert.deepEqual(
        Object.fromEntries(
          Object.entries(row ?? {}).map(([k, v]) => [k, k === 'pool_id' ? v : Number(v)]),
        ),
        { pool_id: p.id, ...stats },
      );
      const health = async (id: string) => ({
        ...(
          await h.db.query('SELECT health, health_description FROM lb_members WHERE id = ?', [id])
        )[0],
      });
      assert.deepEqual(await health(p.m1), { health: 'ACTIVE', health_description: null });
      assert.deepEqual(await health(p.m2), { health: 'INACTIVE', health_description: 'L7STS/503' });
      assert.deepEqual(await health(stranger), { health: null, health_description: null });
    });

    test('update_pool_stats applies only the part it carries, leaving the other as stored', async () => {
      const p = await fullPool();
      const stats = { bytes_in: 7, bytes_out: 8, active_connections: 0, total_connections: 3 };
      const snapshot = async () => ({
        stats: await h.db.query(
          'SELECT bytes_in, bytes_out, active_connections, total_connections FROM lb_pool_stats WHERE pool_id = ?',
          [p.id],
        ),
        members: await h.db.query(
          'SELECT id, health, health_description FROM lb_members WHERE pool_id = ? ORDER BY id',
          [p.id],
        ),
      });
      const numbers = (rows: Record<string, unknown>[]) =>
        rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])));
      const first = {
        host: 'h1',
        pool_id: p.id,
        stats,
        members: [{ id: p.m2, status: 'INACTIVE' }],
      };
      assert.deepEqual(
        await h.rpc('update_pool_stats', { ...first, reasons: [{ id: p.m2, reason: 'L4TOUT' }] }),
        { updated: 2 },
      );
      const both = await snapshot();

      const health = [{ id: p.m2, status: 'ACTIVE' }];
      const onlyHealth = { host: 'h1', pool_id: p.id, members: health };
      assert.deepEqual(await h.rpc('update_pool_stats', onlyHealth), { updated: 1 });
      const afterHealth = await snapshot();
      assert.deepEqual(afterHealth.stats, both.stats, 'no stats: the stored ones stay');
      assert.notDeepEqual(afterHealth.members, both.members);
      const m2 = afterHealth.members.find((m) => m.id === p.m2);
      assert.deepEqual({ ...m2 }, { id: p.m2, health: 'ACTIVE', health_description: null });

      const later = { ...stats, total_connections: 9 };
      const onlyStats = { host: 'h1', pool_id: p.id, stats: later };
      assert.deepEqual(await h.rpc('update_pool_stats', onlyStats), { updated: 1 });
      const afterStats = await snapshot();
      assert.deepEqual(afterStats.members, afterHealth.members, 'no members: health stays');
      assert.deepEqual(numbers(afterStats.stats), [later]);
    });
  });
}
