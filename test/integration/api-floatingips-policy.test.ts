/**
 * Floating IP lists, project scoping and the floatingip quota through buildApp() + inject
 * on both engines (world: see api-floatingips-harness.ts): every filter Neutron offers
 * (floating_network_id, router_id, port_id, fixed_ip_address, floating_ip_address, status,
 * project_id/tenant_id), fields, sorting and paging; a project sees and touches only its
 * own floating IPs (another's is a 404 exactly like a missing one), an admin all; a reader
 * reads only; the floatingip quota refuses the one too many and counts in quota details.
 *
 * Invariant under test: every refused request leaves the floating IPs, ports, routers and
 * address allocations exactly as they were.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setFloatingIpStatuses } from '../../api/db/floatingips.ts';
import type { FloatingIp } from '../../contracts/floatingip.ts';
import type { Port } from '../../contracts/network.ts';
import { err, FIP_KEYS, floatingIpWorld } from './api-floatingips-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`floating IP lists, scoping and quota on ${engine}`, () => {
    const h = floatingIpWorld(engine);
    const { tokens, w, call, refused } = h;
    const f = {} as Record<'f1' | 'f2' | 'f3' | 'fb', FloatingIp> & { p1: Port };
    const ids = async (token: string, query: string) => {
      const r = await call(token, 'GET', `/v2.0/floatingips${query}`);
      assert.equal(r.status, 200, `${query}: ${JSON.stringify(r.body)}`);
      return (r.body.floatingips as FloatingIp[]).map((x) => x.id).sort();
    };
    const set = (...items: FloatingIp[]) => items.map((x) => x.id).sort();

    before(async () => {
      f.p1 = await h.portA();
      f.f1 = await h.fip(tokens.a, { floating_network_id: w.ext.id, port_id: f.p1.id });
      await setFloatingIpStatuses(h.api.db, w.r1, [{ id: f.f1.id, status: 'ACTIVE' }]);
      f.f1 = await h.getFip(f.f1.id);
      f.f2 = await h.fip(tokens.a, { floating_network_id: w.ext.id });
      f.f3 = await h.fip(tokens.a, { floating_network_id: w.ext2.id, port_id: f.p1.id });
      f.fb = await h.fip(tokens.b, { floating_network_id: w.ext.id });
    });

    test('every filter, ANDed across keys and ORed within one', async () => {
      const { f1, f2, f3, fb, p1 } = f;
      const admin = (q: string) => ids(tokens.admin, q);
      assert.deepEqual(await admin(''), set(f1, f2, f3, fb));
      assert.deepEqual(await admin(`?floating_network_id=${w.ext.id}`), set(f1, f2, fb));
      assert.deepEqual(await admin(`?router_id=${w.r1}`), set(f1));
      assert.deepEqual(await admin(`?router_id=${w.r1}&router_id=${w.r2}`), set(f1, f3));
      assert.deepEqual(await admin(`?port_id=${p1.id}`), set(f1, f3));
      assert.deepEqual(await admin(`?fixed_ip_address=${f1.fixed_ip_address}`), set(f1, f3));
      assert.deepEqual(await admin(`?floating_ip_address=${f2.floating_ip_address}`), set(f2));
      assert.deepEqual(await admin('?status=ACTIVE'), set(f1));
      assert.deepEqual(await admin(`?status=DOWN&floating_network_id=${w.ext.id}`), set(f2, fb));
      assert.deepEqual(await admin(`?project_id=${h.projects.B}`), set(fb));
      assert.deepEqual(await admin(`?tenant_id=${h.projects.A}`), set(f1, f2, f3));
      assert.deepEqual(await admin(`?description=nothing`), []);
      for (const bad of [
        '?fixed_ip_address=10.0.0.x',
        '?floating_ip_address=1.2.3.04',
        '?name=x',
      ]) {
        const r = await call(tokens.admin, 'GET', `/v2.0/floatingips${bad}`);
        assert.equal(r.status, 400, bad);
        assert.match(err(r).message, /fixed_ip_address|floating_ip_address|'name'/);
      }
    });

    test('fields, sorting and paging', async () => {
      const r = await call(tokens.a, 'GET', '/v2.0/floatingips?fields=id&fields=status');
      const rows = r.body.floatingips as Record<string, unknown>[];
      assert.deepEqual(
        rows.map((x) => Object.keys(x).sort()),
        rows.map(() => ['id', 'status']),
      );
      const all = (await call(tokens.a, 'GET', '/v2.0/floatingips')).body
        .floatingips as FloatingIp[];
      for (const x of all) assert.deepEqual(Object.keys(x).sort(), FIP_KEYS);
      const sorted = await call(
        tokens.a,
        'GET',
        '/v2.0/floatingips?sort_key=floating_ip_address&sort_dir=desc',
      );
      const addresses = (sorted.body.floatingips as FloatingIp[]).map((x) => x.floating_ip_address);
      assert.deepEqual(addresses, [...addresses].sort().reverse());
      const first = await call(tokens.a, 'GET', '/v2.0/floatingips?limit=1');
      assert.equal((first.body.floatingips as unknown[]).length, 1);
      assert.ok(Array.isArray(first.body.floatingips_links));
      const one = await call(tokens.a, 'GET', `/v2.0/floatingips/${f.f1.id}?fields=router_id`);
      assert.deepEqual(one.body, { floatingip: { router_id: w.r1 } });
    });

    test("another project's floating IP is a 404, as a missing one; admin sees all", async () => {
      const { f1, fb } = f;
      assert.deepEqual(await ids(tokens.b, ''), set(fb));
      assert.deepEqual(await ids(tokens.b, `?project_id=${h.projects.A}`), []);
      assert.deepEqual(await ids(tokens.readerA, ''), set(f.f1, f.f2, f.f3));
      const hidden = await call(tokens.b, 'GET', `/v2.0/floatingips/${f1.id}`);
      const missing = await call(tokens.b, 'GET', `/v2.0/floatingips/${crypto.randomUUID()}`);
      assert.equal(hidden.status, 404);
      assert.equal(err(hidden).message, `Floating IP ${f1.id} could not be found`);
      assert.equal(err(missing).type, err(hidden).type);
      const url = `/v2.0/floatingips/${f1.id}`;
      await refused(404, 'FloatingIPNotFound', tokens.b, 'PUT', url, {
        floatingip: { port_id: null },
      });
      await refused(404, 'FloatingIPNotFound', tokens.b, 'DELETE', url);
      await refused(404, 'FloatingIPNotFound', tokens.a, 'GET', '/v2.0/floatingips/not-a-uuid');
      await refused(403, 'PolicyNotAuthorized', tokens.readerA, 'PUT', url, {
        floatingip: { port_id: null },
      });
      await refused(403, 'PolicyNotAuthorized', tokens.readerA, 'DELETE', url);
      await refused(404, 'PortNotFound', tokens.b, 'PUT', `/v2.0/floatingips/${fb.id}`, {
        floatingip: { port_id: f.p1.id },
      });
    });

    test('an admin associates any floating IP with any port; a member only its own ports', async () => {
      const p = await h.portA();
      const r = await call(tokens.admin, 'PUT', `/v2.0/floatingips/${f.fb.id}`, {
        floatingip: { port_id: p.id },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const moved = r.body.floatingip as FloatingIp;
      assert.deepEqual(
        [moved.project_id, moved.port_id, moved.router_id],
        [h.projects.B, p.id, w.r1],
      );
      const ops = await h.port(tokens.admin, w.netA.id, { project_id: h.projects.OPS });
      const msg = await refused(400, 'BadRequest', tokens.a, 'POST', '/v2.0/floatingips', {
        floatingip: { floating_network_id: w.ext.id, port_id: ops.id },
      });
      assert.equal(
        msg,
        `Bad floatingip request: Cannot process floating IP association with Port ${ops.id}, since that port is owned by a different tenant.`,
      );
    });

    test('the floatingip quota: the one too many is refused and nothing changes', async () => {
      const B = h.projects.B;
      const q = await call(tokens.admin, 'PUT', `/v2.0/quotas/${B}`, {
        quota: { floatingip: 2 },
      });
      assert.equal(q.status, 200, JSON.stringify(q.body));
      const second = await h.fip(tokens.b, { floating_network_id: w.ext.id });
      const msg = await refused(409, 'OverQuota', tokens.b, 'POST', '/v2.0/floatingips', {
        floatingip: { floating_network_id: w.ext.id },
      });
      assert.equal(msg, "Quota exceeded for resources: ['floatingip'].");
      const details = await call(tokens.b, 'GET', `/v2.0/quotas/${B}/details`);
      const fips = (details.body.quota as Record<string, { used: number; limit: number }>)
        .floatingip;
      assert.deepEqual([fips?.used, fips?.limit], [2, 2]);
      assert.equal((await call(tokens.b, 'DELETE', `/v2.0/floatingips/${second.id}`)).status, 204);
      await h.fip(tokens.b, { floating_network_id: w.ext.id });
    });
  });
}
