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
import { after, before, describe, test } from 'node:test';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import type { Router } from '../../contracts/router.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

type Body = Record<string, unknown>;
interface Res {
  status: number;
  body: Body;
}
const err = (r: Res) =>
  (r.body as { NeutronError: { type: string; message: string; detail: string } }).NeutronError;

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
    const t = testTokens();
    const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
    const [A, B, OPS] = [hexId(), hexId(), hexId()];
    const memberA = t.token({ project: A });
    const memberB = t.token({ project: B });
    const admin = t.token({ project: OPS, roles: ['admin'] });
    after(() => t.cleanup());

    const call = (token: string, method: string, url: string, payload?: unknown) =>
      injectAs(api, token, method, url, payload);
    const made = async <T>(token: string, kind: string, body: Body) => {
      const r = await call(token, 'POST', `/v2.0/${kind}s`, { [kind]: body });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body[kind] as T;
    };
    const put = async (token: string, url: string, payload: unknown) => {
      const r = await call(token, 'PUT', url, payload);
      assert.equal(r.status, 200, `${url}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const router = async (id: string) =>
      (await call(admin, 'GET', `/v2.0/routers/${id}`)).body.router as Router;
    const port = async (id: string) =>
      (await call(admin, 'GET', `/v2.0/ports/${id}`)).body.port as Port;
    const state = async () => ({
      routers: (await call(admin, 'GET', '/v2.0/routers')).body,
      ports: (await call(admin, 'GET', '/v2.0/ports')).body,
      subnets: (await call(admin, 'GET', '/v2.0/subnets')).body,
    });
    /** A request refused with `status`/`type` that changes nothing; its message. */
    const refused = async (
      status: number,
      type: string,
      token: string,
      method: string,
      url: string,
      payload?: unknown,
    ) => {
      const before = await state();
      const r = await call(token, method, url, payload);
      assert.equal(r.status, status, `${method} ${url}: ${JSON.stringify(r.body)}`);
      assert.equal(err(r).type, type, JSON.stringify(r.body));
      assert.deepEqual(await state(), before, `${method} ${url} changed nothing`);
      return err(r).message;
    };
    const addIf = (token: string, id: string, body: Body) =>
      put(token, `/v2.0/routers/${id}/add_router_interface`, body);
    const removeIf = (token: string, id: string, body: Body) =>
      put(token, `/v2.0/routers/${id}/remove_router_interface`, body);

    const w = {} as { ext: Network; extSub: Subnet; netA: Network; subA: Subnet };
    let cidrs = 0;
    /** A fresh network of `token`'s project with one subnet 10.<n>.0.0/24. */
    const netWithSubnet = async (token: string, extra: Body = {}) => {
      const net = await made<Network>(token, 'network', {});
      cidrs += 1;
      const sub = await made<Subnet>(token, 'subnet', {
        network_id: net.id,
        cidr: `10.${cidrs}.0.0/24`,
        ip_version: 4,
        ...extra,
      });
      return { net, sub };
    };
    /** A floating IP row naming `routerId` (floatingips.ts owns the API; only the row here). */
    const floatingIp = async (routerId: string, fixedIp: string) => {
      const fport = await made<Port>(admin, 'port', { network_id: w.ext.id });
      await api.db.query(
        `INSERT INTO floatingips (id, project_id, description, floating_network_id,
           floating_port_id, floating_ip_address, fixed_port_id, fixed_ip_address, router_id,
           status, revision_number, created_at, updated_at)
         VALUES (?, ?, '', ?, ?, ?, NULL, ?, ?, 'DOWN', 1, 'x', 'x')`,
        [
          crypto.randomUUID(),
          A,
          w.ext.id,
          fport.id,
          fport.fixed_ips[0]?.ip_address ?? '',
          fixedIp,
          routerId,
        ],
      );
      return async () => {
        await api.db.query('DELETE FROM floatingips WHERE floating_port_id = ?', [fport.id]);
        await call(admin, 'DELETE', `/v2.0/ports/${fport.id}`);
      };
    };

    before(async () => {
      w.ext = await made(admin, 'network', { name: 'public', 'router:external': true });
      w.extSub = await made(admin, 'subnet', {
        network_id: w.ext.id,
        cidr: '203.0.113.0/24',
        ip_version: 4,
      });
      const a = await netWithSubnet(memberA);
      w.netA = a.net;
      w.subA = a.sub;
    });

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
      const msg = await refused(400, 'BadRequest', memberA, 'PUT', url, {
        router: { external_gateway_info: { network_id: w.netA.id } },
      });
      assert.equal(msg, `Bad router request: Network ${w.netA.id} is not an external network.`);
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
      const dropFip = await floatingIp(r.id, '10.250.0.5');
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
  });
}
