/**
 * What routers and floating IPs hold on the networks under them, through buildApp() +
 * inject on both engines (Neutron's behaviour): a network with a router gateway, a
 * floating IP or a router interface is NetworkInUse, their subnet SubnetInUse; an
 * external network routers have their gateway on cannot be made non-external
 * (ExternalNetworkInUse); once they are gone, each of these goes through. One port added
 * to two routers at once goes to one of them, the other gets PortInUse; a floating IP
 * association racing the removal of its router's gateway leaves either one or the other,
 * never a floating IP through a router without a gateway. And the hints:
 * a router PUT that changes nothing an L3 agent serves (name, description, an unchanged
 * value) sends the hosting agent no hint, a served change one; a changed network or subnet
 * hints the routers on it; router ports deleted (interface removed, gateway cleared) hint
 * the L2 agents, so a copy whose L3 agent is down still goes dead.
 *
 * Invariant under test: every refused request leaves routers, networks, ports, subnets
 * and floating IPs, field for field, exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { routerChanged } from '../../api/scheduler/l3.ts';
import type { FloatingIp } from '../../contracts/floatingip.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import type { Router } from '../../contracts/router.ts';
import { waitFor } from '../helpers/env.ts';
import { l3Harness } from '../helpers/l3-harness.ts';
import { err, type Res, routerApp } from './api-routers-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`networks under routers on ${engine}`, () => {
    const h = routerApp(engine);
    const { call, made, put, refused, w } = h;
    const { A: memberA, admin } = h.tokens;

    /** Deleting the network, then the subnet, is refused: Neutron's in-use errors, nothing changed. */
    const refusedInUse = async (token: string, netId: string, subId: string) => {
      assert.equal(
        await refused(409, 'NetworkInUse', token, 'DELETE', `/v2.0/networks/${netId}`),
        `Unable to complete operation on network ${netId}. There are one or more ports still in use on the network.`,
      );
      assert.equal(
        await refused(409, 'SubnetInUse', token, 'DELETE', `/v2.0/subnets/${subId}`),
        `Unable to complete operation on subnet ${subId}: One or more ports have an IP allocation from this subnet.`,
      );
    };

    /** A fresh external network with one subnet, the admin's. */
    const external = async (cidr: string) => {
      const net = await made<Network>(admin, 'network', { 'router:external': true });
      const sub = await made<Subnet>(admin, 'subnet', { network_id: net.id, cidr });
      return { net, sub, url: `/v2.0/networks/${net.id}`, subUrl: `/v2.0/subnets/${sub.id}` };
    };

    test('a gateway keeps its network, subnet and router:external', async () => {
      const ext = await external('198.51.100.0/24');
      const r = await h.router(memberA, { external_gateway_info: { network_id: ext.net.id } });
      await refusedInUse(admin, ext.net.id, ext.sub.id);
      const flip = { network: { 'router:external': false } };
      assert.equal(
        await refused(409, 'ExternalNetworkInUse', admin, 'PUT', ext.url, flip),
        `External network ${ext.net.id} cannot be updated to be made non-external, since it has existing gateway ports.`,
      );
      await put(memberA, `/v2.0/routers/${r.id}`, { router: { external_gateway_info: null } });
      const flipped = (await put(admin, ext.url, flip)).network as Network;
      assert.equal(flipped['router:external'], false);
      await refused(404, 'NetworkNotFound', memberA, 'PUT', `/v2.0/routers/${r.id}`, {
        router: { external_gateway_info: { network_id: ext.net.id } },
      });
      await refused(400, 'BadRequest', admin, 'PUT', `/v2.0/routers/${r.id}`, {
        router: { external_gateway_info: { network_id: ext.net.id } },
      });
      assert.equal((await call(admin, 'DELETE', ext.subUrl)).status, 204);
      assert.equal((await call(admin, 'DELETE', ext.url)).status, 204);
      assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${r.id}`)).status, 204);
    });

    test('a floating IP keeps its network and subnet', async () => {
      const ext = await external('192.0.2.0/24');
      const fip = await made<FloatingIp>(memberA, 'floatingip', {
        floating_network_id: ext.net.id,
      });
      await refusedInUse(admin, ext.net.id, ext.sub.id);
      assert.equal((await call(memberA, 'DELETE', `/v2.0/floatingips/${fip.id}`)).status, 204);
      assert.equal((await call(admin, 'DELETE', ext.subUrl)).status, 204);
      assert.equal((await call(admin, 'DELETE', ext.url)).status, 204);
    });

    test('a router interface keeps its subnet and network', async () => {
      const r = await h.router(memberA);
      const { net, sub } = await h.netWithSubnet(memberA);
      const iface = `/v2.0/routers/${r.id}/add_router_interface`;
      await put(memberA, iface, { subnet_id: sub.id });
      await refusedInUse(memberA, net.id, sub.id);
      await put(memberA, `/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id: sub.id });
      assert.equal((await call(memberA, 'DELETE', `/v2.0/subnets/${sub.id}`)).status, 204);
      assert.equal((await call(memberA, 'DELETE', `/v2.0/networks/${net.id}`)).status, 204);
      assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${r.id}`)).status, 204);
    });

    test('one port added to two routers at once: one takes it, the other is PortInUse', async () => {
      const { net, sub } = await h.netWithSubnet(memberA);
      for (let round = 0; round < 3; round += 1) {
        const [r1, r2] = [await h.router(memberA), await h.router(memberA)];
        const port = await made<Port>(memberA, 'port', {
          network_id: net.id,
          fixed_ips: [{ subnet_id: sub.id }],
        });
        const adds = await Promise.all(
          [r1, r2].map((r) =>
            call(memberA, 'PUT', `/v2.0/routers/${r.id}/add_router_interface`, {
              port_id: port.id,
            }),
          ),
        );
        assert.deepEqual(adds.map((x) => x.status).sort(), [200, 409], JSON.stringify(adds));
        assert.equal(err(adds.find((x) => x.status === 409) as Res).type, 'PortInUse');
        const winner = adds[0]?.status === 200 ? r1 : r2;
        assert.equal((await h.get<Port>('port', port.id)).device_id, winner.id);
        const loser = winner === r1 ? r2 : r1;
        assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${loser.id}`)).status, 204);
        const off = `/v2.0/routers/${winner.id}/remove_router_interface`;
        await put(memberA, off, { port_id: port.id });
        assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${winner.id}`)).status, 204);
      }
    });

    test('an association racing the removal of its gateway: one of the two is refused', async () => {
      for (let round = 0; round < 4; round += 1) {
        const r = await h.router(memberA, { external_gateway_info: { network_id: w.ext.id } });
        const { sub } = await h.netWithSubnet(memberA);
        await put(memberA, `/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: sub.id });
        const port = await made<Port>(memberA, 'port', { network_id: sub.network_id });
        const fip = await made<FloatingIp>(memberA, 'floatingip', {
          floating_network_id: w.ext.id,
        });
        const [assoc, clear] = await Promise.all([
          call(memberA, 'PUT', `/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: port.id } }),
          call(memberA, 'PUT', `/v2.0/routers/${r.id}`, {
            router: { external_gateway_info: null },
          }),
        ]);
        const pair = [assoc.status, clear.status];
        const after = await h.get<FloatingIp>('floatingip', fip.id);
        const router = await h.get<Router>('router', r.id);
        if (assoc.status === 200) {
          assert.deepEqual(pair, [200, 409], JSON.stringify([assoc.body, clear.body]));
          assert.equal(err(clear).type, 'RouterExternalGatewayInUseByFloatingIp');
          assert.equal(after.router_id, r.id);
          assert.equal(router.external_gateway_info?.network_id, w.ext.id);
        } else {
          assert.deepEqual(pair, [404, 200], JSON.stringify([assoc.body, clear.body]));
          assert.equal(err(assoc).type, 'ExternalGatewayForFloatingIPNotFound');
          assert.equal(after.router_id, null);
          assert.equal(router.external_gateway_info, null);
        }
        assert.equal((await call(memberA, 'DELETE', `/v2.0/floatingips/${fip.id}`)).status, 204);
      }
    });
  });

  describe(`router update hints on ${engine}`, () => {
    const h = l3Harness(engine);
    /** Router hints for `id` received on any L3 host queue so far. */
    const hintsFor = (id: string) =>
      h.received.filter(
        (r) =>
          r.queue.startsWith('l3_agent.') &&
          r.message.method === 'hint' &&
          r.message.args.id === id,
      ).length;

    test('only a change an L3 agent serves hints the hosting agent', async () => {
      await h.report('h1');
      const created = await h.call('POST', '/v2.0/routers', {
        router: { name: 'r', external_gateway_info: { network_id: h.ext.net.id } },
      });
      assert.equal(created.status, 201, created.raw);
      const r = (created.body as { router: Router }).router;
      await h.waitRouterHint('h1', r.id);
      await waitFor('the create settled', async () => (await h.hostsOf(r.id)).length === 1);
      await sleep(300);
      h.received.length = 0;
      const url = `/v2.0/routers/${r.id}`;
      for (const router of [
        { name: 'renamed', description: 'd' },
        { admin_state_up: true },
        { external_gateway_info: { network_id: h.ext.net.id } },
      ]) {
        const res = await h.call('PUT', url, { router });
        assert.equal(res.status, 200, res.raw);
      }
      const snat = { network_id: h.ext.net.id, enable_snat: false };
      const served = await h.call('PUT', url, { router: { external_gateway_info: snat } });
      assert.equal(served.status, 200, served.raw);
      await h.waitRouterHint('h1', r.id);
      await sleep(300);
      assert.equal(hintsFor(r.id), 1, 'one hint: the enable_snat change, none for the others');
    });

    test('a changed network or subnet hints the L3 agents of the routers on it', async () => {
      await h.report('h1');
      const r = await h.fullRouter('on-inner');
      await routerChanged(h.deps, r.id);
      await h.waitRouterHint('h1', r.id);
      h.received.length = 0;
      const mtu = await h.call('PUT', `/v2.0/networks/${h.inner.net.id}`, {
        network: { mtu: 1400 },
      });
      assert.equal(mtu.status, 200, mtu.raw);
      await h.waitRouterHint('h1', r.id);
      h.received.length = 0;
      const gw = await h.call('PUT', `/v2.0/subnets/${h.ext.subnet.id}`, {
        subnet: { host_routes: [{ destination: '192.0.2.0/24', nexthop: '203.0.113.9' }] },
      });
      assert.equal(gw.status, 200, gw.raw);
      await h.waitRouterHint('h1', r.id);
    });

    test('a removed interface and a cleared gateway hint the L2 agents of their ports', async () => {
      await h.report('h1');
      const created = await h.call('POST', '/v2.0/routers', {
        router: { name: 'r2', external_gateway_info: { network_id: h.ext.net.id } },
      });
      const r = (created.body as { router: Router }).router;
      const tenant = await h.network('ports-gone', '10.77.0.0/24', false);
      const url = `/v2.0/routers/${r.id}`;
      const added = await h.call('PUT', `${url}/add_router_interface`, {
        subnet_id: tenant.subnet.id,
      });
      assert.equal(added.status, 200, added.raw);
      const iface = (added.body as { port_id: string }).port_id;
      const gw = (
        (await h.call('GET', `/v2.0/ports?device_id=${r.id}`)).body as {
          ports: { id: string; device_owner: string }[];
        }
      ).ports.find((p) => p.device_owner === 'network:router_gateway')?.id as string;
      await h.waitRouterHint('h1', r.id);
      h.received.length = 0;
      const removed = await h.call('PUT', `${url}/remove_router_interface`, {
        subnet_id: tenant.subnet.id,
      });
      assert.equal(removed.status, 200, removed.raw);
      const cleared = await h.call('PUT', url, { router: { external_gateway_info: null } });
      assert.equal(cleared.status, 200, cleared.raw);
      await h.waitPortHints([iface, gw]);
      assert.ok(h.portHinted(iface) && h.portHinted(gw));
    });
  });
}
