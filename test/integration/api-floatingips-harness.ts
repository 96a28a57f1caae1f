/**
 * The world of the floating IP suites, on a real database of either engine with real
 * signed tokens: an admin (project OPS), members of projects A and B and a reader of A;
 * external networks `ext` (203.0.113.0/24) and `ext2` (198.51.100.0/24); A's network with
 * subnets subA (10.0.0.0/24) and subA2 (10.0.1.0/24), B's netB (10.9.0.0/24). Router r1
 * (A's) has its gateway on ext and an interface on subA's gateway address; router r2 its
 * gateway on ext2 and an interface at 10.0.0.254 on subA; nothing routes subA2.
 *
 * Call `floatingIpWorld(engine)` inside a describe: it registers the hooks and returns
 * the helpers; `w` is filled in before().
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import type { FloatingIp } from '../../contracts/floatingip.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { addGateway, addInterface, insertRouter } from '../helpers/l3-fixtures.ts';
import { type Body, creator, refusals } from '../helpers/neutron-refusals.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

export { type Body, err } from '../helpers/neutron-refusals.ts';

/** The keys of a floating IP: Neutron's core attributes and the standard attributes. */
export const FIP_KEYS = [
  'created_at',
  'description',
  'fixed_ip_address',
  'floating_ip_address',
  'floating_network_id',
  'id',
  'port_id',
  'project_id',
  'revision_number',
  'router_id',
  'status',
  'tags',
  'tenant_id',
  'updated_at',
];

export interface World {
  ext: Network;
  extSub: Subnet;
  ext2: Network;
  ext2Sub: Subnet;
  netA: Network;
  subA: Subnet;
  subA2: Subnet;
  netB: Network;
  subB: Subnet;
  r1: string;
  r2: string;
  r1Interface: Port;
}

export function floatingIpWorld(engine: 'sqlite' | 'postgres') {
  const t = testTokens();
  const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
  const projects = { A: hexId(), B: hexId(), OPS: hexId() };
  const tokens = {
    admin: t.token({ project: projects.OPS, roles: ['admin'] }),
    a: t.token({ project: projects.A }),
    b: t.token({ project: projects.B }),
    readerA: t.token({ project: projects.A, roles: ['reader'] }),
  };
  after(() => t.cleanup());
  const w = {} as World;

  const call = (token: string, method: string, url: string, payload?: unknown) =>
    injectAs(api, token, method, url, payload);
  const made = creator(call);
  const port = (token: string, networkId: string, extra: Body = {}) =>
    made<Port>(token, 'port', { network_id: networkId, ...extra });
  const fip = (token: string, body: Body) => made<FloatingIp>(token, 'floatingip', body);
  const getFip = async (id: string) => {
    const r = await call(tokens.admin, 'GET', `/v2.0/floatingips/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.floatingip as FloatingIp;
  };
  /** Everything a floating IP request could touch, as the admin sees it. */
  const state = async () => ({
    floatingips: (await call(tokens.admin, 'GET', '/v2.0/floatingips')).body,
    ports: (await call(tokens.admin, 'GET', '/v2.0/ports')).body,
    routers: await api.db.query('SELECT * FROM routers ORDER BY id'),
    allocations: await api.db.query('SELECT * FROM ipallocations ORDER BY subnet_id, ip_address'),
  });
  /** A request that must be refused with `status`/`type` and change nothing; its message. */
  const refused = refusals(call, state);

  before(async () => {
    const { admin, a, b } = tokens;
    w.ext = await made(admin, 'network', { name: 'public', 'router:external': true });
    w.extSub = await made(admin, 'subnet', { network_id: w.ext.id, cidr: '203.0.113.0/24' });
    w.ext2 = await made(admin, 'network', { name: 'public2', 'router:external': true });
    w.ext2Sub = await made(admin, 'subnet', { network_id: w.ext2.id, cidr: '198.51.100.0/24' });
    w.netA = await made(a, 'network', { name: 'a' });
    w.subA = await made(a, 'subnet', { network_id: w.netA.id, cidr: '10.0.0.0/24' });
    w.subA2 = await made(a, 'subnet', { network_id: w.netA.id, cidr: '10.0.1.0/24' });
    w.netB = await made(b, 'network', { name: 'b' });
    w.subB = await made(b, 'subnet', { network_id: w.netB.id, cidr: '10.9.0.0/24' });
    w.r1 = await insertRouter(api.db, projects.A, 'r1');
    await addGateway(api.db, w.r1, w.ext.id);
    w.r1Interface = await addInterface(api.db, w.r1, w.subA);
    w.r2 = await insertRouter(api.db, projects.A, 'r2');
    await addGateway(api.db, w.r2, w.ext2.id);
    await addInterface(api.db, w.r2, w.subA, '10.0.0.254');
  });

  /** A port of A's on subA (10.0.0.0/24) with one address. */
  const portA = () => port(tokens.a, w.netA.id, { fixed_ips: [{ subnet_id: w.subA.id }] });

  return { api, projects, tokens, w, call, made, port, portA, fip, getFip, state, refused };
}
