/**
 * Neutron routers through buildApp() + inject on both engines, with real signed tokens:
 * CRUD with Neutron's exact keys, malformed bodies, the external gateway (its port,
 * enable_snat, moving and clearing it, Neutron's refusals, its port refused by the port
 * API) and the extension list. Interfaces and routes: api-routers-interfaces.test.ts;
 * projects, quota and races: api-routers-scoping.test.ts.
 *
 * Invariant under test: every refused request leaves routers, ports and subnets, field
 * for field, exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import type { Router } from '../../contracts/router.ts';
import { err, routerApp } from './api-routers-harness.ts';

const ROUTER_KEYS = [
  'admin_state_up',
  'created_at',
  'description',
  'external_gateway_info',
  'id',
  'name',
  'project_id',
  'revision_number',
  'routes',
  'status',
  'tags',
  'tenant_id',
  'updated_at',
];

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`routers on ${engine}`, () => {
    const h = routerApp(engine);
    const { call, made, put, refused, w } = h;
    const { A: memberA, admin } = h.tokens;
    const A = h.projects.A;
    const port = (id: string) => h.get<Port>('port', id);

    test('create, show, list, update, delete with Neutron keys', async () => {
      const r = await made<Router>(memberA, 'router', { name: 'r1', description: 'd' });
      assert.deepEqual(Object.keys(r).sort(), ROUTER_KEYS);
      assert.equal(r.status, 'ACTIVE');
      assert.equal(r.admin_state_up, true);
      assert.equal(r.external_gateway_info, null);
      assert.deepEqual(r.routes, []);
      assert.equal(r.project_id, A);
      assert.equal(r.tenant_id, A);
      assert.equal(r.revision_number, 1);
      const shown = (await call(memberA, 'GET', `/v2.0/routers/${r.id}`)).body.router;
      assert.deepEqual(shown, r);
      const picked = await call(memberA, 'GET', `/v2.0/routers/${r.id}?fields=id&fields=name`);
      assert.deepEqual(picked.body.router, { id: r.id, name: 'r1' });
      const listed = await call(memberA, 'GET', '/v2.0/routers?name=r1');
      assert.deepEqual(listed.body.routers, [r]);
      const updated = (
        await put(memberA, `/v2.0/routers/${r.id}`, {
          router: { name: 'r2', admin_state_up: false },
        })
      ).router as Router;
      assert.equal(updated.name, 'r2');
      assert.equal(updated.admin_state_up, false);
      assert.equal(updated.revision_number, 2);
      const del = await call(memberA, 'DELETE', `/v2.0/routers/${r.id}`);
      assert.equal(del.status, 204);
      const gone = await call(memberA, 'GET', `/v2.0/routers/${r.id}`);
      assert.equal(gone.status, 404);
      const { type, message, detail } = err(gone);
      assert.deepEqual(
        { type, message, detail },
        { type: 'RouterNotFound', message: `Router ${r.id} could not be found`, detail: '' },
      );
    });

    test('bad router bodies are 400 naming the field and change nothing', async () => {
      const r = await made<Router>(memberA, 'router', { name: 'ok' });
      const url = `/v2.0/routers/${r.id}`;
      for (const name of ['a\nb', 'tab\there', 'nul\u0000'])
        assert.match(
          await refused(400, 'BadRequest', memberA, 'PUT', url, { router: { name } }),
          /router\.name/,
        );
      assert.match(
        await refused(400, 'BadRequest', memberA, 'POST', '/v2.0/routers', {
          router: { name: 'x', routes: [] },
        }),
        /router\.routes/,
      );
      await refused(400, 'BadRequest', memberA, 'POST', '/v2.0/routers', {
        router: { name: 'x\r' },
      });
      await refused(400, 'BadRequest', memberA, 'PUT', url, { router: { status: 'DOWN' } });
    });

    test('gateway: port on the external network, enable_snat, clear; not external is 400', async () => {
      const r = await made<Router>(memberA, 'router', {
        name: 'gw',
        external_gateway_info: { network_id: w.ext.id },
      });
      const gw = r.external_gateway_info;
      assert.ok(gw);
      assert.equal(gw.network_id, w.ext.id);
      assert.equal(gw.enable_snat, true);
      assert.equal(gw.external_fixed_ips.length, 1);
      assert.equal(gw.external_fixed_ips[0]?.subnet_id, w.extSub.id);
      const ports = (await call(admin, 'GET', `/v2.0/ports?device_id=${r.id}`)).body
        .ports as Port[];
      assert.equal(ports.length, 1);
      const [p] = ports;
      assert.equal(p?.device_owner, 'network:router_gateway');
      assert.equal(p?.project_id, '');
      assert.equal(p?.network_id, w.ext.id);
      assert.deepEqual(p?.fixed_ips, gw.external_fixed_ips);
      const url = `/v2.0/routers/${r.id}`;
      const own = await h.netWithSubnet(memberA);
      const msg = await refused(400, 'BadRequest', memberA, 'PUT', url, {
        router: { external_gateway_info: { network_id: own.net.id } },
      });
      assert.equal(msg, `Bad router request: Network ${own.net.id} is not an external network.`);
      const snat = await refused(403, 'PolicyNotAuthorized', memberA, 'PUT', url, {
        router: { external_gateway_info: { network_id: w.ext.id, enable_snat: false } },
      });
      assert.equal(
        snat,
        '(rule:update_router and (rule:update_router:external_gateway_info and (rule:update_router:external_gateway_info:network_id and rule:update_router:external_gateway_info:enable_snat))) is disallowed by policy',
      );
      const sameAsGateway = await refused(400, 'BadRequest', admin, 'PUT', url, {
        router: {
          external_gateway_info: {
            network_id: w.ext.id,
            external_fixed_ips: [{ ip_address: '203.0.113.1' }],
          },
        },
      });
      assert.equal(
        sameAsGateway,
        'Bad router request: External IP 203.0.113.1 is the same as the gateway IP.',
      );
      const moved = (
        await put(admin, url, {
          router: {
            external_gateway_info: {
              network_id: w.ext.id,
              enable_snat: false,
              external_fixed_ips: [{ subnet_id: w.extSub.id, ip_address: '203.0.113.77' }],
            },
          },
        })
      ).router as Router;
      assert.deepEqual(moved.external_gateway_info, {
        network_id: w.ext.id,
        enable_snat: false,
        external_fixed_ips: [{ subnet_id: w.extSub.id, ip_address: '203.0.113.77' }],
      });
      assert.equal((await port(p?.id ?? '')).fixed_ips[0]?.ip_address, '203.0.113.77');
      const l3 = await refused(409, 'L3PortInUse', admin, 'DELETE', `/v2.0/ports/${p?.id}`);
      assert.equal(
        l3,
        `Port ${p?.id} has owner network:router_gateway and therefore cannot be deleted directly via the port API.`,
      );
      const dropFip = await h.floatingIp(r.id, '10.250.0.5');
      const inUse = await refused(
        409,
        'RouterExternalGatewayInUseByFloatingIp',
        memberA,
        'PUT',
        url,
        {
          router: { external_gateway_info: null },
        },
      );
      assert.equal(
        inUse,
        `Gateway cannot be updated for router ${r.id}, since a gateway to external network ${w.ext.id} is required by one or more floating IPs.`,
      );
      await dropFip();
      const cleared = (await put(memberA, url, { router: { external_gateway_info: {} } }))
        .router as Router;
      assert.equal(cleared.external_gateway_info, null);
      assert.equal((await call(admin, 'GET', `/v2.0/ports/${p?.id}`)).status, 404);
      assert.equal((await call(memberA, 'DELETE', url)).status, 204);
    });

    test('gateway: another external network gets a new port; bad gateway bodies are 400', async () => {
      const ext2 = await made<Network>(admin, 'network', { 'router:external': true });
      const ext2Sub = await made<Subnet>(admin, 'subnet', {
        network_id: ext2.id,
        cidr: '198.51.100.0/24',
        ip_version: 4,
      });
      const r = await h.router(memberA, { external_gateway_info: { network_id: w.ext.id } });
      const url = `/v2.0/routers/${r.id}`;
      const portsOf = async () =>
        ((await call(admin, 'GET', `/v2.0/ports?device_id=${r.id}`)).body.ports as Port[]).map(
          (p) => [p.id, p.network_id],
        );
      const [[oldPort]] = (await portsOf()) as [[string, string]];
      const moved = (
        await put(memberA, url, { router: { external_gateway_info: { network_id: ext2.id } } })
      ).router as Router;
      assert.equal(moved.external_gateway_info?.network_id, ext2.id);
      assert.equal(moved.external_gateway_info?.external_fixed_ips[0]?.subnet_id, ext2Sub.id);
      const now = await portsOf();
      assert.equal(now.length, 1);
      assert.notEqual(now[0]?.[0], oldPort);
      assert.equal(now[0]?.[1], ext2.id);
      const bad: unknown[] = [
        { network_id: ext2.id, external_fixed_ips: [{ ip_address: '198.51.100.9\n' }] },
        { network_id: ext2.id, external_fixed_ips: [{ ip_address: "198.51.100.9'" }] },
        { network_id: ext2.id, external_fixed_ips: [{ ip_address: '198.51.100.9 x' }] },
        { network_id: ext2.id, extra: 1 },
        { enable_snat: true },
        { network_id: 'not-a-uuid' },
        'public',
      ];
      for (const gw of bad)
        assert.match(
          await refused(400, 'BadRequest', admin, 'PUT', url, {
            router: { external_gateway_info: gw },
          }),
          /external_gateway_info/,
        );
      await refused(404, 'NetworkNotFound', admin, 'PUT', url, {
        router: { external_gateway_info: { network_id: crypto.randomUUID() } },
      });
      await put(memberA, url, { router: { external_gateway_info: null } });
      assert.deepEqual(await portsOf(), []);
      assert.equal((await call(memberA, 'DELETE', url)).status, 204);
    });

    test('the extension list names the router extensions', async () => {
      const r = await call(memberA, 'GET', '/v2.0/extensions');
      const aliases = (r.body.extensions as { alias: string }[]).map((e) => e.alias);
      for (const alias of [
        'router',
        'ext-gw-mode',
        'extraroute',
        'extraroute-atomic',
        'external-net',
        'l3_agent_scheduler',
      ])
        assert.ok(aliases.includes(alias), alias);
      const one = await call(memberA, 'GET', '/v2.0/extensions/extraroute-atomic');
      assert.equal(
        (one.body.extension as { name: string }).name,
        'Atomically add/remove extra routes',
      );
    });
  });
}
