/**
 * The L3 agent's q-plugin calls (api/rpc-l3.ts) on both database engines through the
 * real broker and RPC handler (test/helpers/l3-harness.ts): get_active_routers and
 * get_router_info as the hosting host must serve the router — gateway port with its
 * network's MTU, fixed IPs with subnet CIDR and gateway, interfaces, routes, associated
 * floating IPs only — accepted whole by contracts/l3.ts's parseRouterInfo; null for
 * another host, an admin-down or a deleted router; update_floatingip_statuses only from
 * the hosting host.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Db } from '../../api/db/index.ts';
import { getRouterInfo } from '../../api/rpc-l3.ts';
import { routerChanged } from '../../api/scheduler/l3.ts';
import { parseRouterInfo, UpdateFloatingIpStatusesResult } from '../../contracts/l3.ts';
import type { Port } from '../../contracts/network.ts';
import { l3Harness } from '../helpers/l3-harness.ts';
import { seedFloatingIp, seedRoute } from '../helpers/l3-seed.ts';

const GHOST = '00000000-0000-4000-8000-000000000000';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`L3 RPC on ${engine}`, () => {
    const h = l3Harness(engine);

    test('get_router_info: the router as the hosting host serves it, null elsewhere', async () => {
      await h.report('h1', 'h2');
      const a = await h.fullRouter('a');
      await seedRoute(h.db, a.id, '192.168.5.0/24', '10.1.0.7');
      const vm = (
        (await h.call('POST', '/v2.0/ports', { port: { network_id: h.inner.net.id } })).body as {
          port: Port;
        }
      ).port;
      const fip = await seedFloatingIp(h.db, h.ext.net.id, a.id, vm);
      await seedFloatingIp(h.db, h.ext.net.id, null);
      await routerChanged(h.deps, a.id);
      const info = await h.routerInfo('h1', a.id);
      assert.ok(info);
      assert.deepEqual(info, {
        id: a.id,
        revision_number: 1,
        gw_port: {
          id: a.gw.id,
          network_id: h.ext.net.id,
          mac_address: a.gw.mac_address,
          mtu: h.ext.net.mtu,
          fixed_ips: a.gw.fixed_ips.map((ip) => ({
            ...ip,
            cidr: '203.0.113.0/24',
            gateway_ip: '203.0.113.1',
          })),
        },
        enable_snat: true,
        interfaces: [
          {
            id: a.iface.id,
            network_id: h.inner.net.id,
            mac_address: a.iface.mac_address,
            mtu: h.inner.net.mtu,
            fixed_ips: [
              {
                subnet_id: h.inner.subnet.id,
                ip_address: '10.1.0.1',
                cidr: '10.1.0.0/24',
                gateway_ip: '10.1.0.1',
              },
            ],
          },
        ],
        routes: [{ destination: '192.168.5.0/24', nexthop: '10.1.0.7' }],
        floating_ips: [
          {
            id: fip.id,
            floating_ip_address: fip.floating_ip_address,
            fixed_ip_address: vm.fixed_ips[0]?.ip_address,
            port_id: vm.id,
            status: 'DOWN',
          },
        ],
      });
      const parsed = parseRouterInfo(
        await h.rpc('get_router_info', { host: 'h1', router_id: a.id }),
      );
      assert.deepEqual(parsed, { router: info, rejected: [] });
      assert.deepEqual(await h.activeRouters('h1'), [a.id]);
      assert.deepEqual(await h.activeRouters('h2'), []);
      assert.equal(await h.routerInfo('h2', a.id), null, 'another host');
      assert.equal(await h.routerInfo('h1', GHOST), null, 'unknown router');

      // update_floatingip_statuses: only from the hosting host, only the router's own.
      const statuses = (host: string) =>
        h
          .rpc('update_floatingip_statuses', {
            host,
            router_id: a.id,
            statuses: [{ id: fip.id, status: 'ACTIVE' }],
          })
          .then((r) => UpdateFloatingIpStatusesResult.parse(r).updated);
      assert.equal(await statuses('h2'), 0);
      assert.equal((await h.routerInfo('h1', a.id))?.floating_ips[0]?.status, 'DOWN');
      assert.equal(await statuses('h1'), 1);
      assert.equal((await h.routerInfo('h1', a.id))?.floating_ips[0]?.status, 'ACTIVE');
      assert.equal(await statuses('h1'), 0, 'unchanged: nothing updated');

      await h.db.query('UPDATE routers SET admin_state_up = ? WHERE id = ?', [false, a.id]);
      assert.equal(await h.routerInfo('h1', a.id), null, 'admin-down');
      await h.db.query('UPDATE routers SET admin_state_up = ? WHERE id = ?', [true, a.id]);
      await h.db.query('DELETE FROM floatingips');
      await h.db.query('UPDATE routers SET gw_port_id = NULL WHERE id = ?', [a.id]);
      await h.db.query('DELETE FROM routers WHERE id = ?', [a.id]);
      assert.equal(await h.routerInfo('h1', a.id), null, 'deleted');
      assert.deepEqual(await h.activeRouters('h1'), []);
    });

    // Only PostgreSQL has a second connection to commit from mid-read (SQLite has one).
    if (engine === 'postgres')
      test('get_router_info reads one snapshot: a change committed while it reads is not half-seen', async () => {
        await h.report('h1');
        const a = await h.fullRouter('a');
        await routerChanged(h.deps, a.id);
        // Another replica's commit lands right after the router row is read, before its routes.
        let landed = false;
        const interleave = async (sql: string) => {
          if (landed || !sql.includes('FROM routers WHERE id')) return;
          landed = true;
          await h.db.transaction(async (tx) => {
            await seedRoute(tx, a.id, '192.168.7.0/24', '10.1.0.7');
            await tx.query('UPDATE routers SET revision_number = 2 WHERE id = ?', [a.id]);
          });
        };
        const racing: Db = Object.create(h.db);
        racing.transaction = (fn) =>
          h.db.transaction((tx) =>
            fn({
              query: async (sql, params) => {
                const rows = await tx.query(sql, params);
                await interleave(sql);
                return rows as never;
              },
            }),
          );
        const { router } = await getRouterInfo(racing, { host: 'h1', router_id: a.id });
        assert.ok(landed, 'the concurrent commit happened mid-read');
        assert.equal(router?.revision_number, 1);
        assert.deepEqual(router?.routes, [], 'the route committed after the snapshot is not seen');
        assert.equal((await h.routerInfo('h1', a.id))?.routes.length, 1, 'the next read sees it');
      });

    test("a router the L3 agent cannot serve shows in its row's failed_routers", async () => {
      await h.report('h1');
      const a = await h.fullRouter('a');
      await routerChanged(h.deps, a.id);
      const status = (s: Record<string, unknown>) =>
        h.rpc('report_status', { host: 'h1', agent_type: 'L3 agent', statuses: [s] });
      await status({
        resource: 'router',
        id: a.id,
        status: 'ERROR',
        reason: 'qg- port: no address',
      });
      const agent = await h.agentOn('h1');
      assert.deepEqual(agent.configurations.failed_routers, { [a.id]: 'qg- port: no address' });
      await status({ resource: 'router', id: a.id, status: 'ACTIVE' });
      assert.equal((await h.agentOn('h1')).configurations.failed_routers, undefined);
    });
  });
}
