/**
 * Routers and projects through buildApp() + inject on both engines: another project's
 * router answers 404 as a missing one for every verb, a member names only subnets it may
 * see, an admin sees and changes all; the router quota admits exactly its limit and usage
 * counts routers; concurrent creates, overlapping interface adds and add_extraroutes
 * calls serialise per router and lose nothing.
 *
 * Invariant under test: every refused request leaves routers, ports and subnets, field
 * for field, exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Port } from '../../contracts/network.ts';
import type { Router } from '../../contracts/router.ts';
import { hexId } from '../helpers/tokens.ts';
import { routerApp } from './api-routers-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`routers and projects on ${engine}`, () => {
    const h = routerApp(engine);
    const { call, put, refused } = h;
    const { A: memberA, B: memberB, admin } = h.tokens;
    const A = h.projects.A;

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
      const portB = await h.made<Port>(memberB, 'port', { network_id: sub.network_id });
      assert.equal(
        await refused(404, 'PortNotFound', memberA, 'PUT', `${url}/add_router_interface`, {
          port_id: portB.id,
        }),
        `Port ${portB.id} could not be found.`,
      );
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
