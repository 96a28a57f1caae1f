/**
 * The LBaaS API suites' app: testApi() on one engine with real signed tokens for two
 * member projects (A, B) and an admin, helpers that make networks with a subnet, pools,
 * members, VIPs and health monitors through the API, and `refused`.
 *
 * Invariant: `refused` checks Neutron's error type and that every LBaaS table, ports,
 * their addresses and security group bindings are, row for row, exactly as before.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import type { Network, Subnet } from '../../contracts/network.ts';
import { type Body, creator, type Res, refusals } from './neutron-refusals.ts';
import { injectAs, testApi } from './test-api.ts';
import { hexId, testTokens } from './tokens.ts';

export { type Body, err, type Res } from './neutron-refusals.ts';

export type Obj = Record<string, unknown>;

const TABLES = [
  'lb_pools',
  'lb_vips',
  'lb_members',
  'lb_health_monitors',
  'lb_pool_monitors',
  'lb_pool_stats',
  'pool_loadbalancer_agent_bindings',
  'ports',
  'ipallocations',
  'securitygroupportbindings',
];

/** The resource key of an lb collection: pools → pool, health_monitors → health_monitor. */
const keyOf = (collection: string) => collection.replace(/s$/, '');

export function lbaasApp(engine: 'sqlite' | 'postgres', opts: { listen?: boolean } = {}) {
  const t = testTokens();
  const adminToken = hexId();
  const api = testApi(engine, {
    settings: { adminToken },
    tokens: t.authenticator,
    ...(opts.listen ? { listen: true } : {}),
  });
  const [A, B, OPS] = [hexId(), hexId(), hexId()];
  const tokens = {
    A: t.token({ project: A }),
    B: t.token({ project: B }),
    admin: t.token({ project: OPS, roles: ['admin'] }),
  };
  after(() => t.cleanup());

  const call = (token: string, method: string, url: string, payload?: unknown): Promise<Res> =>
    injectAs(api, token, method, url, payload);
  const made = creator(call);
  /** POST /v2.0/lb/<collection> answering 201; the created object. */
  const lb = async (token: string, collection: string, body: Body): Promise<Obj> => {
    const key = keyOf(collection);
    const r = await call(token, 'POST', `/v2.0/lb/${collection}`, { [key]: body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body[key] as Obj;
  };
  /** GET /v2.0/lb/<collection>/<id> as `token` (the admin by default), answering 200. */
  const show = async (collection: string, id: unknown, token = tokens.admin): Promise<Obj> => {
    const r = await call(token, 'GET', `/v2.0/lb/${collection}/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body[keyOf(collection)] as Obj;
  };
  const put = async (token: string, collection: string, id: unknown, body: Body) => {
    const key = keyOf(collection);
    const r = await call(token, 'PUT', `/v2.0/lb/${collection}/${id}`, { [key]: body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body[key] as Obj;
  };
  const rows = async (sql: string, params: unknown[] = []) =>
    (await api.db.query(sql, params as never[])).map((r) => ({ ...r }));
  /** Every row a LBaaS request could touch. */
  const state = async () => {
    const out: Record<string, unknown> = {};
    for (const table of TABLES) out[table] = await rows(`SELECT * FROM ${table} ORDER BY 1, 2`);
    return out;
  };
  const refused = refusals(call, state);

  let cidrs = 0;
  /** A fresh network of `token`'s project with one subnet 10.<n>.0.0/24. */
  const netWithSubnet = async (token: string) => {
    const net = await made<Network>(token, 'network', {});
    cidrs += 1;
    const sub = await made<Subnet>(token, 'subnet', {
      network_id: net.id,
      cidr: `10.${100 + cidrs}.0.0/24`,
      ip_version: 4,
    });
    return { net, sub };
  };
  /** A pool of `token`'s project on a fresh subnet (HTTP, ROUND_ROBIN unless given). */
  const pool = async (token: string, extra: Body = {}) => {
    const { sub } = await netWithSubnet(token);
    const p = await lb(token, 'pools', {
      subnet_id: sub.id,
      protocol: 'HTTP',
      lb_method: 'ROUND_ROBIN',
      ...extra,
    });
    return { pool: p, sub };
  };
  /** Sets every status of the pool's objects to ACTIVE, as an agent's report would. */
  const settle = async (poolId: unknown) => {
    const id = String(poolId);
    for (const table of ['lb_pools', 'lb_vips', 'lb_members', 'lb_pool_monitors']) {
      const col = table === 'lb_pools' ? 'id' : 'pool_id';
      await api.db.query(`UPDATE ${table} SET status = 'ACTIVE' WHERE ${col} = ?`, [id]);
    }
  };

  return {
    api,
    projects: { A, B, OPS },
    tokens,
    adminToken,
    call,
    made,
    lb,
    show,
    put,
    rows,
    state,
    refused,
    netWithSubnet,
    pool,
    settle,
  };
}
