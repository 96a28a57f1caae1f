/**
 * Router interfaces and extra routes through buildApp() + inject on both engines:
 * add/remove by subnet and by port with Neutron's exact bodies, every Neutron refusal
 * (subnet already on the router, overlapping cidr, no gateway IP, port in use, interface
 * missing, interface a floating IP or a route needs, router still in use, router port
 * deleted through the port API), and routes (PUT, add_extraroutes, remove_extraroutes)
 * with their validation: off-subnet or router-owned nexthop, newline, space or quote in
 * a destination or nexthop, host bits, too many routes.
 *
 * Invariant under test: every refused request leaves routers, ports and subnets, field
 * for field, exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Port } from '../../contracts/network.ts';
import type { Router } from '../../contracts/router.ts';
import { type Body, routerApp } from './api-routers-harness.ts';

const INFO_KEYS = [
  'id',
  'network_id',
  'port_id',
  'project_id',
  'subnet_id',
  'subnet_ids',
  'tenant_id',
];

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`router interfaces and routes on ${engine}`, () => {
    const h = routerApp(engine);
    const { call, made, put, refused } = h;
    const { A: memberA, admin } = h.tokens;
    const A = h.projects.A;
    const add = (id: string, body: Body, token = memberA) =>
      put(token, `/v2.0/routers/${id}/add_router_interface`, body);
    const remove = (id: string, body: Body, token = memberA) =>
      put(token, `/v2.0/routers/${id}/remove_router_interface`, body);

    test('add and remove by subnet: Neutron’s body, a port holding the gateway IP', async () => {
      const r = await h.router(memberA);
      const { net, sub } = await h.netWithSubnet(memberA);
      const info = await add(r.id, { subnet_id: sub.id });
      assert.deepEqual(Object.keys(info).sort(), INFO_KEYS);
      const portId = info.port_id as string;
      assert.deepEqual(info, {
        id: r.id,
        tenant_id: A,
        project_id: A,
        port_id: portId,
        subnet_id: sub.id,
        subnet_ids: [sub.id],
        network_id: net.id,
      });
      const p = await h.get<Port>('port', portId);
      assert.equal(p.device_owner, 'network:router_interface');
      assert.equal(p.device_id, r.id);
      assert.equal(p.project_id, A);
      assert.deepEqual(p.fixed_ips, [{ subnet_id: sub.id, ip_address: sub.gateway_ip }]);
      const url = `/v2.0/routers/${r.id}`;
      assert.equal(
        await refused(400, 'BadRequest', memberA, 'PUT', `${url}/add_router_interface`, {
          subnet_id: sub.id,
        }),
        `Bad router request: Router already has a port on subnet ${sub.id}.`,
      );
      assert.equal(
        await refused(409, 'RouterInUse', memberA, 'DELETE', url),
        `Router ${r.id} still has ports`,
      );
      assert.equal(
        await refused(409, 'L3PortInUse', memberA, 'DELETE', `/v2.0/ports/${portId}`),
        `Port ${portId} has owner network:router_interface and therefore cannot be deleted directly via the port API.`,
      );
      assert.deepEqual(await remove(r.id, { subnet_id: sub.id }), info);
      assert.equal((await call(admin, 'GET', `/v2.0/ports/${portId}`)).status, 404);
      assert.equal(
        await refused(
          404,
          'RouterInterfaceNotFoundForSubnet',
          memberA,
          'PUT',
          `${url}/remove_router_interface`,
          {
            subnet_id: sub.id,
          },
        ),
        `Router ${r.id} has no interface on subnet ${sub.id}`,
      );
      assert.equal((await call(memberA, 'DELETE', url)).status, 204);
    });

    test('add and remove by port; a port in use is refused', async () => {
      const r = await h.router(memberA);
      const { net, sub } = await h.netWithSubnet(memberA);
      const p = await made<Port>(memberA, 'port', { network_id: net.id });
      const info = await add(r.id, { port_id: p.id });
      assert.deepEqual(info, {
        id: r.id,
        tenant_id: A,
        project_id: A,
        port_id: p.id,
        subnet_id: sub.id,
        subnet_ids: [sub.id],
        network_id: net.id,
      });
      const taken = await h.get<Port>('port', p.id);
      assert.equal(taken.device_owner, 'network:router_interface');
      assert.equal(taken.device_id, r.id);
      const url = `/v2.0/routers/${r.id}`;
      const r2 = await h.router(memberA);
      assert.equal(
        await refused(
          409,
          'PortInUse',
          memberA,
          'PUT',
          `/v2.0/routers/${r2.id}/add_router_interface`,
          {
            port_id: p.id,
          },
        ),
        `Unable to complete operation on port ${p.id} for network ${net.id}. Port already has an attached device ${r.id}.`,
      );
      assert.equal(
        await refused(400, 'BadRequest', memberA, 'PUT', `${url}/add_router_interface`, {}),
        'Bad router request: Either subnet_id or port_id must be specified.',
      );
      assert.equal(
        await refused(400, 'BadRequest', memberA, 'PUT', `${url}/add_router_interface`, {
          port_id: p.id,
          subnet_id: sub.id,
        }),
        'Bad router request: Cannot specify both subnet-id and port-id.',
      );
      assert.deepEqual(await remove(r.id, { port_id: p.id }), info);
      assert.equal((await call(admin, 'GET', `/v2.0/ports/${p.id}`)).status, 404);
      assert.equal(
        await refused(
          404,
          'RouterInterfaceNotFound',
          memberA,
          'PUT',
          `${url}/remove_router_interface`,
          {
            port_id: p.id,
          },
        ),
        `Router ${r.id} does not have an interface with id ${p.id}`,
      );
      for (const x of [r, r2])
        assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${x.id}`)).status, 204);
    });

    test('overlapping cidrs, subnets without a gateway, the gateway’s own subnet', async () => {
      const r = await h.router(memberA, { external_gateway_info: { network_id: h.w.ext.id } });
      const wide = await h.netWithSubnet(memberA, { cidr: '172.16.0.0/16' });
      const narrow = await h.netWithSubnet(memberA, { cidr: '172.16.5.0/24' });
      const bare = await h.netWithSubnet(memberA, { cidr: '172.17.0.0/24', gateway_ip: null });
      await add(r.id, { subnet_id: wide.sub.id });
      const url = `/v2.0/routers/${r.id}/add_router_interface`;
      assert.equal(
        await refused(400, 'BadRequest', memberA, 'PUT', url, { subnet_id: narrow.sub.id }),
        `Bad router request: Cidr 172.16.5.0/24 of subnet ${narrow.sub.id} overlaps with cidr 172.16.0.0/16 of subnet ${wide.sub.id}.`,
      );
      assert.equal(
        await refused(400, 'BadRequest', memberA, 'PUT', url, { subnet_id: bare.sub.id }),
        'Bad router request: Subnet for router interface must have a gateway IP.',
      );
      assert.equal(
        await refused(400, 'BadRequest', admin, 'PUT', url, { subnet_id: h.w.extSub.id }),
        `Bad router request: Router already has a port on subnet ${h.w.extSub.id}.`,
      );
      // A member may not take the gateway address of a subnet it does not own (an
      // external or shared network's, visible to everyone): Neutron's LP-1757482.
      const bareRouter = await h.router(memberA);
      assert.equal(
        await refused(
          400,
          'BadRequest',
          memberA,
          'PUT',
          `/v2.0/routers/${bareRouter.id}/add_router_interface`,
          { subnet_id: h.w.extSub.id },
        ),
        `Bad router request: Cannot add interface to router because subnet ${h.w.extSub.id} is not owned by project making the request.`,
      );
      assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${bareRouter.id}`)).status, 204);
      await remove(r.id, { subnet_id: wide.sub.id });
      assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${r.id}`)).status, 204);
    });

    test('an interface a floating IP or a route needs is not removed', async () => {
      const r = await h.router(memberA, { external_gateway_info: { network_id: h.w.ext.id } });
      const { sub } = await h.netWithSubnet(memberA);
      await add(r.id, { subnet_id: sub.id });
      const prefix = sub.cidr.replace('.0/24', '');
      const url = `/v2.0/routers/${r.id}/remove_router_interface`;
      const drop = await h.floatingIp(r.id, `${prefix}.9`);
      assert.equal(
        await refused(409, 'RouterInterfaceInUseByFloatingIP', memberA, 'PUT', url, {
          subnet_id: sub.id,
        }),
        `Router interface for subnet ${sub.id} on router ${r.id} cannot be deleted, as it is required by one or more floating IPs.`,
      );
      await drop();
      await put(memberA, `/v2.0/routers/${r.id}`, {
        router: { routes: [{ destination: '192.0.2.0/24', nexthop: `${prefix}.20` }] },
      });
      assert.equal(
        await refused(409, 'RouterInterfaceInUseByRoute', memberA, 'PUT', url, {
          subnet_id: sub.id,
        }),
        `Router interface for subnet ${sub.id} on router ${r.id} cannot be deleted, as it is required by one or more routes.`,
      );
      await put(memberA, `/v2.0/routers/${r.id}`, { router: { routes: null } });
      await remove(r.id, { subnet_id: sub.id });
      assert.equal((await call(memberA, 'DELETE', `/v2.0/routers/${r.id}`)).status, 204);
    });

    test('routes: set, add, remove; nexthop off-subnet or the router’s own is 400', async () => {
      const r = await h.router(memberA, { external_gateway_info: { network_id: h.w.ext.id } });
      const { sub } = await h.netWithSubnet(memberA);
      await add(r.id, { subnet_id: sub.id });
      const p = sub.cidr.replace('.0/24', '');
      const url = `/v2.0/routers/${r.id}`;
      const one = { destination: '192.0.2.0/24', nexthop: `${p}.20` };
      const set = (await put(memberA, url, { router: { routes: [one] } })).router as Router;
      assert.deepEqual(set.routes, [one]);
      const viaGateway = { destination: '198.51.100.0/24', nexthop: '203.0.113.200' };
      const added = (
        await put(memberA, `${url}/add_extraroutes`, { router: { routes: [viaGateway, one] } })
      ).router as Router;
      assert.deepEqual(added.routes, [one, viaGateway]);
      const off = { destination: '10.99.0.0/16', nexthop: '10.250.250.1' };
      assert.equal(
        await refused(400, 'InvalidRoutes', memberA, 'PUT', url, { router: { routes: [off] } }),
        `Invalid format for routes: [{'destination': '10.99.0.0/16', 'nexthop': '10.250.250.1'}], the nexthop is not connected with router`,
      );
      const own = { destination: '10.99.0.0/16', nexthop: sub.gateway_ip };
      assert.match(
        await refused(400, 'InvalidRoutes', memberA, 'PUT', `${url}/add_extraroutes`, {
          router: { routes: [own] },
        }),
        /the nexthop is used by router$/,
      );
      const removed = (
        await put(memberA, `${url}/remove_extraroutes`, { router: { routes: [one] } })
      ).router as Router;
      assert.deepEqual(removed.routes, [viaGateway]);
      await put(memberA, url, { router: { routes: [] } });
      await remove(r.id, { subnet_id: sub.id });
      assert.equal((await call(memberA, 'DELETE', url)).status, 204);
    });

    test('routes with a newline, space or quote, host bits or too many are 400', async () => {
      const r = await h.router(memberA);
      const { sub } = await h.netWithSubnet(memberA);
      await add(r.id, { subnet_id: sub.id });
      const p = sub.cidr.replace('.0/24', '');
      const url = `/v2.0/routers/${r.id}`;
      await put(memberA, url, {
        router: { routes: [{ destination: '192.0.2.0/24', nexthop: `${p}.5` }] },
      });
      const bad = [
        { destination: '192.0.2.0/24\n', nexthop: `${p}.5` },
        { destination: '192.0.2.0/24 ', nexthop: `${p}.5` },
        { destination: "192.0.2.0/24'", nexthop: `${p}.5` },
        { destination: '198.51.100.0/24', nexthop: `${p}.5\nup` },
        { destination: '198.51.100.0/24', nexthop: `${p}.5 dev x` },
        { destination: '198.51.100.0/24', nexthop: `"${p}.5"` },
        { destination: '198.51.100.1/24', nexthop: `${p}.5` },
        { destination: '198.51.100.0/24', nexthop: '10.1.2' },
        { destination: '198.51.100.0/24' },
      ];
      for (const route of bad) {
        const msg = await refused(400, 'BadRequest', memberA, 'PUT', url, {
          router: { routes: [route] },
        });
        assert.match(msg, /routes/, msg);
        await refused(400, 'BadRequest', memberA, 'PUT', `${url}/add_extraroutes`, {
          router: { routes: [route] },
        });
      }
      const many = Array.from({ length: 31 }, (_, i) => ({
        destination: `198.51.${i}.0/24`,
        nexthop: `${p}.5`,
      }));
      assert.equal(
        await refused(400, 'RoutesExhausted', memberA, 'PUT', url, { router: { routes: many } }),
        `Unable to complete operation for ${r.id}. The number of routes exceeds the maximum 30.`,
      );
      const twice = { destination: '198.51.100.0/24', nexthop: `${p}.5` };
      await refused(400, 'BadRequest', memberA, 'PUT', url, { router: { routes: [twice, twice] } });
      await put(memberA, url, { router: { routes: [] } });
      await remove(r.id, { subnet_id: sub.id });
      assert.equal((await call(memberA, 'DELETE', url)).status, 204);
    });
  });
}
