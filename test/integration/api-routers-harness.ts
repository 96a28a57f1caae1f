/**
 * The router suites' app: testApi() on one engine with real signed tokens for two member
 * projects (A, B) and an admin, an external network 203.0.113.0/24, and helpers that
 * create resources, snapshot the state and check refusals.
 *
 * Invariant: `refused` checks Neutron's error type and that routers, networks, ports,
 * subnets and floating IP rows are, field for field, exactly as before the request.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import type { Router } from '../../contracts/router.ts';
import { type Body, creator, refusals } from '../helpers/neutron-refusals.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

export { type Body, err, type Res } from '../helpers/neutron-refusals.ts';

export function routerApp(engine: 'sqlite' | 'postgres') {
  const t = testTokens();
  const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
  const [A, B, OPS] = [hexId(), hexId(), hexId()];
  const tokens = {
    A: t.token({ project: A }),
    B: t.token({ project: B }),
    admin: t.token({ project: OPS, roles: ['admin'] }),
  };
  after(() => t.cleanup());
  const admin = tokens.admin;

  const call = (token: string, method: string, url: string, payload?: unknown) =>
    injectAs(api, token, method, url, payload);
  const made = creator(call);
  const put = async (token: string, url: string, payload: unknown) => {
    const r = await call(token, 'PUT', url, payload);
    assert.equal(r.status, 200, `${url}: ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const get = async <T>(kind: string, id: string) =>
    (await call(admin, 'GET', `/v2.0/${kind}s/${id}`)).body[kind] as T;
  /** Everything a router request could touch, as the admin sees it. */
  const state = async () => ({
    routers: (await call(admin, 'GET', '/v2.0/routers')).body,
    networks: (await call(admin, 'GET', '/v2.0/networks')).body,
    ports: (await call(admin, 'GET', '/v2.0/ports')).body,
    subnets: (await call(admin, 'GET', '/v2.0/subnets')).body,
    floatingips: await api.db.query('SELECT * FROM floatingips ORDER BY id'),
  });
  /** A request refused with `status`/`type` that changes nothing; its message. */
  const refused = refusals(call, state);
  const w = {} as { ext: Network; extSub: Subnet };
  let cidrs = 0;
  /** A fresh network of `token`'s project with one subnet (10.<n>.0.0/24 unless given). */
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
  /** A floating IP row naming `routerId` (floatingips.ts owns that API; only the row here). */
  const floatingIp = async (routerId: string, fixedIp: string) => {
    const fport = await made<Port>(admin, 'port', { network_id: w.ext.id });
    await api.db.query(
      `INSERT INTO floatingips (id, project_id, description, floating_network_id,
         floating_port_id, floating_ip_address, fixed_port_id, fixed_ip_address, router_id,
         status, revision_number, created_at, updated_at)
       VALUES (?, ?, '', ?, ?, ?, NULL, ?, ?, 'DOWN', 1, 'x', 'x')`,
      [
        randomUUID(),
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
      assert.equal((await call(admin, 'DELETE', `/v2.0/ports/${fport.id}`)).status, 204);
    };
  };
  const router = (token: string, body: Body = {}) => made<Router>(token, 'router', body);

  before(async () => {
    w.ext = await made(admin, 'network', { name: 'public', 'router:external': true });
    w.extSub = await made(admin, 'subnet', {
      network_id: w.ext.id,
      cidr: '203.0.113.0/24',
      ip_version: 4,
    });
  });

  return {
    api,
    projects: { A, B, OPS },
    tokens,
    /** A member token of project `project`. */
    memberOf: (project: string) => t.token({ project }),
    call,
    made,
    put,
    get,
    state,
    refused,
    w,
    netWithSubnet,
    floatingIp,
    router,
  };
}
