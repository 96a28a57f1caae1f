/**
 * A VIP's port as any port of its network through buildApp() + inject on both engines: a
 * floating IP associated with the VIP's port (as neutron-lbaas users do to publish a VIP)
 * is disassociated when the VIP is deleted, in the VIP's transaction, as Neutron's
 * delete_port does; the port and its addresses go with the VIP.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FloatingIp } from '../../contracts/floatingip.ts';
import type { Network } from '../../contracts/network.ts';
import { lbaasApp } from '../helpers/lbaas-api.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS v1 VIP port on ${engine}`, () => {
    const h = lbaasApp(engine);
    const { A: memberA, admin } = h.tokens;

    test('deleting a VIP with a floating IP disassociates it and removes the port', async () => {
      const ext = await h.made<Network>(admin, 'network', { 'router:external': true });
      await h.made(admin, 'subnet', { network_id: ext.id, cidr: '203.0.113.0/24' });
      const { pool, sub } = await h.pool(memberA);
      const vip = await h.lb(memberA, 'vips', {
        subnet_id: sub.id,
        protocol: 'HTTP',
        protocol_port: 80,
        pool_id: pool.id,
      });
      const router = await h.made<{ id: string }>(memberA, 'router', {
        external_gateway_info: { network_id: ext.id },
      });
      const added = await h.call(
        memberA,
        'PUT',
        `/v2.0/routers/${router.id}/add_router_interface`,
        {
          subnet_id: sub.id,
        },
      );
      assert.equal(added.status, 200, JSON.stringify(added.body));
      const fip = await h.made<FloatingIp>(memberA, 'floatingip', {
        floating_network_id: ext.id,
        port_id: vip.port_id,
      });
      assert.equal(fip.fixed_ip_address, vip.address);

      const gone = await h.call(memberA, 'DELETE', `/v2.0/lb/vips/${vip.id}`);
      assert.equal(gone.status, 204, JSON.stringify(gone.body));
      const shown = await h.call(memberA, 'GET', `/v2.0/floatingips/${fip.id}`);
      const after = shown.body.floatingip as FloatingIp;
      assert.deepEqual(
        [after.port_id, after.fixed_ip_address, after.router_id, after.status],
        [null, null, null, 'DOWN'],
      );
      assert.deepEqual(await h.rows('SELECT id FROM ports WHERE id = ?', [vip.port_id]), []);
      assert.deepEqual(
        await h.rows('SELECT ip_address FROM ipallocations WHERE port_id = ?', [vip.port_id]),
        [],
      );
      assert.equal((await h.show('pools', pool.id)).vip_id, null);
    });
  });
}
