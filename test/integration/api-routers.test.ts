/**
 * Neutron routers through buildApp() + inject on both engines, with real signed tokens:
 * CRUD with Neutron's exact keys, the external gateway (its port, enable_snat, clearing
 * it), router interfaces by subnet and by port with Neutron's exact bodies and errors,
 * extra routes (PUT, add_extraroutes, remove_extraroutes) and their validation, router
 * ports refused by the port API, project scoping and the router quota.
 *
 * Invariant under test: every refused request leaves routers, ports and subnets, field
 * for field, exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import type { Router } from '../../contracts/router.ts';
import { hexId } from '../helpers/tokens.ts';
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
    const { A: memberA, B: memberB, admin } = h.tokens;
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

    test('another project’s router is a 404; an admin sees and changes all', async () => {
      const r = await h.router(memberA, { name: 'mine' });
      const url = `/v2.0/routers/${r.id}`;
      const notFound = `Router ${r.id} could not be found`;
      assert.equal(await refused(404, 'RouterNotFound', memberB, 'GET', url), notFound);
      assert.equal(
        await refused(404, 'RouterNotFound', memberB, 'PUT', url, { router: { name: 'x' } }),
        notFound,
      );
      await refused(404, 'RouterNotFound', memberB, 'DELETE', url);
      const sub = (await h.netWithSubnet(memberB)).sub;
      await refused(404, 'RouterNotFound', memberB, 'PUT', `${url}/add_router_interface`, {
        subnet_id: sub.id,
      });
      await refused(404, 'SubnetNotFound', memberA, 'PUT', `${url}/add_router_interface`, {
        subnet_id: sub.id,
      });
      const ofB = (await call(memberB, 'GET', '/v2.0/routers')).body.routers as Router[];
      assert.ok(!ofB.some((x) => x.id === r.id));
      const ofA = (await call(memberA, 'GET', '/v2.0/routers')).body.routers as Router[];
      assert.ok(ofA.every((x) => x.project_id === A));
      const all = (await call(admin, 'GET', `/v2.0/routers?project_id=${A}`)).body
        .routers as Router[];
      assert.ok(all.some((x) => x.id === r.id));
      const renamed = (await put(admin, url, { router: { name: 'by-admin' } })).router as Router;
      assert.equal(renamed.name, 'by-admin');
      const other = await refused(400, 'BadRequest', memberA, 'POST', '/v2.0/routers', {
        router: { project_id: h.projects.B },
      });
      assert.match(other, /requires admin privileges/);
      assert.equal((await call(memberA, 'DELETE', url)).status, 204);
    });

    test('the router quota admits exactly the limit; usage counts routers', async () => {
      const quota = `/v2.0/quotas/${h.projects.B}`;
      await put(admin, quota, { quota: { router: 2 } });
      const mine = (await call(memberB, 'GET', '/v2.0/routers')).body.routers as Router[];
      const room = 2 - mine.length;
      const created: Router[] = [];
      for (let i = 0; i < room; i++) created.push(await h.router(memberB, { name: `q${i}` }));
      const over = await refused(409, 'OverQuota', memberB, 'POST', '/v2.0/routers', {
        router: { name: 'one too many' },
      });
      assert.equal(over, "Quota exceeded for resources: ['router'].");
      const details = (await call(admin, 'GET', `${quota}/details`)).body.quota as Record<
        string,
        { used: number; limit: number }
      >;
      assert.deepEqual(details.router, { limit: 2, used: 2, reserved: 0 });
      for (const r of created)
        assert.equal((await call(memberB, 'DELETE', `/v2.0/routers/${r.id}`)).status, 204);
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
      ])
        assert.ok(aliases.includes(alias), alias);
      const one = await call(memberA, 'GET', '/v2.0/extensions/extraroute-atomic');
      assert.equal(
        (one.body.extension as { name: string }).name,
        'Atomically add/remove extra routes',
      );
    });

    test('races: quota, overlapping interfaces and route edits serialise per router', async () => {
      const C = hexId();
      const memberC = h.memberOf(C);
      await put(admin, `/v2.0/quotas/${C}`, { quota: { router: 3 } });
      const creates = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          call(memberC, 'POST', '/v2.0/routers', { router: { name: `race${i}` } }),
        ),
      );
      assert.deepEqual(creates.map((r) => r.status).sort(), [201, 201, 201, 409, 409, 409]);
      const r = creates.find((x) => x.status === 201)?.body.router as Router;
      const wide = await h.netWithSubnet(memberC, { cidr: '172.20.0.0/16' });
      const narrow = await h.netWithSubnet(memberC, { cidr: '172.20.9.0/24' });
      const url = `/v2.0/routers/${r.id}`;
      const adds = await Promise.all(
        [wide, narrow].map((x) =>
          call(memberC, 'PUT', `${url}/add_router_interface`, { subnet_id: x.sub.id }),
        ),
      );
      assert.deepEqual(adds.map((x) => x.status).sort(), [200, 400]);
      const attached = adds.find((x) => x.status === 200)?.body.subnet_id;
      const base = attached === wide.sub.id ? '172.20.0' : '172.20.9';
      const routes = Array.from({ length: 6 }, (_, i) => ({
        destination: `198.18.${i}.0/24`,
        nexthop: `${base}.${i + 10}`,
      }));
      const edits = await Promise.all(
        routes.map((route) =>
          call(memberC, 'PUT', `${url}/add_extraroutes`, { router: { routes: [route] } }),
        ),
      );
      assert.deepEqual(
        edits.map((x) => x.status),
        routes.map(() => 200),
      );
      const after = (await call(memberC, 'GET', url)).body.router as Router;
      assert.deepEqual(after.routes, routes, 'no concurrent add lost another');
    });
  });
}
