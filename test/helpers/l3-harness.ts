/**
 * One kumo-api for an L3 scheduling suite: buildApp() on its own real database (either
 * engine) with an injected clock, a real broker whose consumers catch the hints sent to
 * `l3_agent.<host>` queues and the OVS fanout, the real q-plugin RPC handler, an external
 * and an internal network, and helpers to seed routers and read bindings.
 *
 * Invariant: call it inside a describe; it registers the suite's before/after hooks and a
 * beforeEach that empties routers, ports and agents, restores the default settings,
 * moves the clock an hour on and forgets the hints received. Fields are set once before()
 * has run.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type ApiSettings, buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { OVS_FANOUT } from '../../api/hints.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import type { L3Deps } from '../../api/scheduler/l3.ts';
import type { Agent } from '../../contracts/agents.ts';
import { GetActiveRoutersResult, GetRouterInfoResult } from '../../contracts/l3.ts';
import { EXCHANGE, hostQueue, type Message, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import type { DatabaseUrl } from '../../core/config.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from './env.ts';
import { agentState, seedGateway, seedInterface, seedRouter } from './l3-seed.ts';

export const L3_ADMIN = 'admin-token-l3';
export const L3_DOWN = 30;
const HOSTS = ['h1', 'h2', 'h3'] as const;

type Body = Record<string, unknown>;
type NetworkPair = { net: Network; subnet: Subnet };

export interface L3Harness {
  db: Db;
  dbUrl: DatabaseUrl;
  broker: Broker;
  app: FastifyInstance;
  deps: L3Deps;
  settings: ApiSettings;
  received: { queue: string; message: Message }[];
  ext: NetworkPair;
  inner: NetworkPair;
  advance(seconds: number): void;
  call(
    method: string,
    url: string,
    payload?: unknown,
  ): Promise<{ status: number; raw: string; body: Body | null }>;
  network(name: string, cidr: string, external: boolean): Promise<NetworkPair>;
  report(...hosts: string[]): Promise<void>;
  agentOn(host: string): Promise<Agent>;
  hostsOf(routerId: string): Promise<string[]>;
  portHosts(ids: string[]): Promise<string[]>;
  portHinted(id: string): boolean;
  waitRouterHint(host: string, id: string): Promise<unknown>;
  waitPortHints(ids: string[]): Promise<unknown>;
  rpc(method: string, args: Body): Promise<unknown>;
  routerInfo(
    host: string,
    routerId: string,
  ): Promise<ReturnType<typeof GetRouterInfoResult.parse>['router']>;
  activeRouters(host: string): Promise<string[]>;
  fullRouter(name: string): Promise<{ id: string; gw: Port; iface: Port; ports: string[] }>;
}

function hintIn(h: L3Harness, queue: string, resource: string, id: string) {
  return h.received.some(
    (r) =>
      r.queue === queue &&
      r.message.method === 'hint' &&
      r.message.args.resource === resource &&
      r.message.args.id === id,
  );
}

/** The broker: one consumer per L3 host queue, one on the OVS fanout, q-plugin served. */
function startBroker(h: L3Harness, vhost: Vhost) {
  const broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 5000 });
  const record = async (message: Message, info: { queue: string }) => {
    h.received.push({ queue: info.queue, message });
  };
  for (const host of HOSTS) {
    const name = hostQueue('l3_agent', host);
    broker.consume(
      { name, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: name }] },
      record,
    );
  }
  broker.declareFanout(OVS_FANOUT);
  broker.consume(
    { name: 'l2-watch', durable: false, bindings: [{ exchange: OVS_FANOUT, routingKey: '' }] },
    record,
  );
  broker.consume(
    { ...apiQueue(PLUGIN_TOPIC), prefetch: 16 },
    createRpcHandler({ db: h.db, broker, log: silentLogger() }),
  );
  return broker;
}

function helpers(h: L3Harness, report: (host: string) => Promise<void>): Partial<L3Harness> {
  return {
    async call(method, url, payload) {
      const res = await h.app.inject({
        method: method as 'GET',
        url,
        payload: payload as string,
        headers: { 'x-auth-token': L3_ADMIN },
      });
      return {
        status: res.statusCode,
        raw: res.body,
        body: res.body ? (res.json() as Body) : null,
      };
    },
    async network(name, cidr, external) {
      const n = await h.call('POST', '/v2.0/networks', {
        network: { name, 'router:external': external },
      });
      assert.equal(n.status, 201, n.raw);
      const net = (n.body as { network: Network }).network;
      const s = await h.call('POST', '/v2.0/subnets', {
        subnet: { network_id: net.id, cidr, ip_version: 4, enable_dhcp: false },
      });
      assert.equal(s.status, 201, s.raw);
      return { net, subnet: (s.body as { subnet: Subnet }).subnet };
    },
    async report(...hosts) {
      for (const host of hosts) await report(host);
    },
    async agentOn(host) {
      const list = ((await h.call('GET', '/v2.0/agents')).body as { agents: Agent[] }).agents;
      const a = list.find((x) => x.host === host && x.agent_type === 'L3 agent');
      assert.ok(a, `an L3 agent on ${host}`);
      return a;
    },
    async hostsOf(routerId) {
      const r = await h.call('GET', `/v2.0/routers/${routerId}/l3-agents`);
      assert.equal(r.status, 200, r.raw);
      return (r.body as { agents: Agent[] }).agents.map((a) => a.host);
    },
    async portHosts(ids) {
      const rows = await h.db.query<{ host_id: string }>(
        `SELECT host_id FROM ports WHERE id IN (${ids.map(() => '?').join(', ')})`,
        ids,
      );
      return [...new Set(rows.map((r) => r.host_id))];
    },
    portHinted: (id) => hintIn(h, 'l2-watch', 'port', id),
    waitRouterHint: (host, id) =>
      waitFor(`a router hint for ${id} on l3_agent.${host}`, () =>
        hintIn(h, `l3_agent.${host}`, 'router', id),
      ),
    waitPortHints: (ids) =>
      waitFor(`port hints for ${ids.join(', ')}`, () => ids.every((id) => h.portHinted(id))),
    rpc: (method, args) =>
      h.broker.call(PLUGIN_TOPIC, method as 'get_router_info', args as never, { timeoutMs: 5000 }),
    async routerInfo(host, router_id) {
      return GetRouterInfoResult.parse(await h.rpc('get_router_info', { host, router_id })).router;
    },
    async activeRouters(host) {
      return GetActiveRoutersResult.parse(await h.rpc('get_active_routers', { host })).routers;
    },
    async fullRouter(name) {
      const id = await seedRouter(h.db, { name });
      const gw = await seedGateway(h.db, id, h.ext.net.id);
      const iface = await seedInterface(h.db, id, h.inner.subnet);
      return { id, gw, iface, ports: [gw.id, iface.id] };
    },
  };
}

export function l3Harness(engine: 'sqlite' | 'postgres'): L3Harness {
  let now = new Date('2026-11-22T10:00:00.000Z');
  const clock = { now: () => now };
  const h = {
    received: [],
    settings: {
      adminToken: L3_ADMIN,
      memberTokens: [],
      agentDownTime: L3_DOWN,
      bodyLimit: 1 << 20,
    },
    advance: (seconds: number) => {
      now = new Date(now.getTime() + seconds * 1000);
    },
  } as unknown as L3Harness;
  let dir: ReturnType<typeof tempDir> | undefined;
  let database: ReturnType<typeof testDatabase> | undefined;
  let vhost: Vhost | undefined;
  let reports: ReturnType<typeof createReportConsumer> | undefined;
  before(async () => {
    dir = tempDir();
    database = testDatabase(engine, dir.path);
    h.dbUrl = database.url;
    h.db = openDb(database.url);
    await migrate(h.db);
    vhost = rabbitVhost();
    h.broker = startBroker(h, vhost);
    await h.broker.start();
    const log = silentLogger();
    reports = createReportConsumer({
      db: h.db,
      broker: h.broker,
      log,
      clock,
      agentDownTime: L3_DOWN,
    });
    const consumer = reports;
    Object.assign(
      h,
      helpers(h, (host) =>
        consumer.handle({ agent_state: agentState(host, 'l3'), time: now.toISOString() }),
      ),
    );
    h.app = buildApp({ db: h.db, broker: h.broker, clock, log, settings: h.settings });
    h.deps = { db: h.db, broker: h.broker, clock, log, settings: h.settings };
    h.ext = await h.network('ext', '203.0.113.0/24', true);
    h.inner = await h.network('inner', '10.1.0.0/24', false);
  });
  after(async () => {
    await h.app?.close();
    await reports?.close();
    await h.broker?.close();
    await h.db?.close();
    vhost?.cleanup();
    database?.cleanup();
    dir?.cleanup();
  });
  beforeEach(async () => {
    await h.db.query('DELETE FROM floatingips');
    await h.db.query('UPDATE routers SET gw_port_id = NULL');
    await h.db.query('DELETE FROM routers');
    for (const p of ((await h.call('GET', '/v2.0/ports')).body as { ports: Port[] }).ports)
      assert.equal((await h.call('DELETE', `/v2.0/ports/${p.id}`)).status, 204);
    for (const a of ((await h.call('GET', '/v2.0/agents')).body as { agents: Agent[] }).agents)
      assert.equal((await h.call('DELETE', `/v2.0/agents/${a.id}`)).status, 204);
    delete h.settings.allowAutomaticFailover;
    h.advance(3600);
    h.received.length = 0;
  });
  return h;
}
