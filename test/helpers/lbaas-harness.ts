/**
 * One kumo-api for an LBaaS scheduling or RPC suite: buildApp() on its own real database
 * (either engine) with an injected clock, a real broker whose consumers catch the hints
 * sent to `lbaas_agent.<host>` queues and the OVS fanout, the real q-plugin RPC handler, a
 * tenant network with a subnet, and helpers to seed pools (test/helpers/lbaas-seed.ts) and
 * read bindings.
 *
 * Invariant: call it inside a describe; it registers the suite's before/after hooks and a
 * beforeEach that empties the lb rows, ports and agents, restores the default settings,
 * moves the clock an hour on and forgets the hints received.
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
import type { LbaasDeps } from '../../api/scheduler/lbaas.ts';
import type { Agent } from '../../contracts/agents.ts';
import { VIP_PORT_OWNER } from '../../contracts/lbaas.ts';
import { EXCHANGE, hostQueue, type Message, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from './env.ts';
import { agentState } from './l3-seed.ts';
import { seedPool, seedVip } from './lbaas-seed.ts';

export const LB_ADMIN = 'admin-token-lb';
export const LB_MEMBER = 'member-token-lb';
export const LB_DOWN = 30;
const HOSTS = ['h1', 'h2', 'h3'] as const;
const LB_TABLES = [
  'lb_pool_monitors',
  'lb_health_monitors',
  'lb_members',
  'lb_vips',
  'lb_pool_stats',
  'pool_loadbalancer_agent_bindings',
  'lb_pools',
];

type Body = Record<string, unknown>;
type Reply = { status: number; raw: string; body: unknown };

export interface LbHarness {
  db: Db;
  broker: Broker;
  app: FastifyInstance;
  deps: LbaasDeps;
  settings: ApiSettings;
  received: { queue: string; message: Message }[];
  net: { net: Network; subnet: Subnet };
  advance(seconds: number): void;
  call(method: string, url: string, payload?: unknown, token?: string): Promise<Reply>;
  report(...hosts: string[]): Promise<void>;
  agentOn(host: string): Promise<Agent>;
  hostsOf(poolId: string): Promise<string[]>;
  portHost(portId: string): Promise<string>;
  hinted(queue: string, resource: string, id: string): boolean;
  waitPoolHint(host: string, id: string): Promise<unknown>;
  waitPortHint(id: string): Promise<unknown>;
  rpc(method: string, args: Body): Promise<unknown>;
  vipPort(): Promise<Port>;
  /** A pool with a VIP (its port made through the API). */
  poolWithVip(name?: string): Promise<{ id: string; vip: string; port: Port }>;
}

function startBroker(h: LbHarness, vhost: Vhost) {
  const broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 5000 });
  const record = async (message: Message, info: { queue: string }) => {
    h.received.push({ queue: info.queue, message });
  };
  for (const host of HOSTS) {
    const name = hostQueue('lbaas_agent', host);
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

function helpers(h: LbHarness): Partial<LbHarness> {
  return {
    async call(method, url, payload, token = LB_ADMIN) {
      const res = await h.app.inject({
        method: method as 'GET',
        url,
        payload: payload as string,
        headers: { 'x-auth-token': token },
      });
      return { status: res.statusCode, raw: res.body, body: res.body ? res.json() : null };
    },
    async agentOn(host) {
      const list = ((await h.call('GET', '/v2.0/agents')).body as { agents: Agent[] }).agents;
      const a = list.find((x) => x.host === host && x.agent_type === 'Loadbalancer agent');
      assert.ok(a, `an LBaaS agent on ${host}`);
      return a;
    },
    async hostsOf(poolId) {
      const r = await h.call('GET', `/v2.0/lb/pools/${poolId}/loadbalancer-agent`);
      assert.equal(r.status, 200, r.raw);
      return r.body === null ? [] : [(r.body as { agent: Agent }).agent.host];
    },
    async portHost(portId) {
      const [row] = await h.db.query<{ host_id: string }>(
        'SELECT host_id FROM ports WHERE id = ?',
        [portId],
      );
      return row?.host_id ?? '';
    },
    hinted: (queue, resource, id) =>
      h.received.some(
        (r) =>
          r.queue === queue &&
          r.message.method === 'hint' &&
          r.message.args.resource === resource &&
          r.message.args.id === id,
      ),
    waitPoolHint: (host, id) =>
      waitFor(`a pool hint for ${id} on lbaas_agent.${host}`, () =>
        h.hinted(`lbaas_agent.${host}`, 'pool', id),
      ),
    waitPortHint: (id) => waitFor(`a port hint for ${id}`, () => h.hinted('l2-watch', 'port', id)),
    rpc: (method, args) =>
      h.broker.call(PLUGIN_TOPIC, method as 'get_pool_info', args as never, { timeoutMs: 5000 }),
    async vipPort() {
      const r = await h.call('POST', '/v2.0/ports', {
        port: {
          network_id: h.net.net.id,
          device_owner: VIP_PORT_OWNER,
          fixed_ips: [{ subnet_id: h.net.subnet.id }],
        },
      });
      assert.equal(r.status, 201, r.raw);
      return (r.body as { port: Port }).port;
    },
    async poolWithVip(name) {
      const id = await seedPool(h.db, h.net.subnet.id, { name });
      const port = await h.vipPort();
      return { id, vip: await seedVip(h.db, id, port), port };
    },
  };
}

async function network(h: LbHarness) {
  const n = await h.call('POST', '/v2.0/networks', { network: { name: 'lb-net' } });
  assert.equal(n.status, 201, n.raw);
  const net = (n.body as { network: Network }).network;
  const s = await h.call('POST', '/v2.0/subnets', {
    subnet: { network_id: net.id, cidr: '10.9.0.0/24', ip_version: 4, enable_dhcp: false },
  });
  assert.equal(s.status, 201, s.raw);
  return { net, subnet: (s.body as { subnet: Subnet }).subnet };
}

export function lbHarness(engine: 'sqlite' | 'postgres'): LbHarness {
  let now = new Date('2026-11-22T10:00:00.000Z');
  const clock = { now: () => now };
  const settings = {
    adminToken: LB_ADMIN,
    memberTokens: [LB_MEMBER],
    agentDownTime: LB_DOWN,
    bodyLimit: 1 << 20,
  };
  const h = {
    received: [],
    settings,
    advance: (seconds: number) => {
      now = new Date(now.getTime() + seconds * 1000);
    },
  } as unknown as LbHarness;
  let dir: ReturnType<typeof tempDir> | undefined;
  let database: ReturnType<typeof testDatabase> | undefined;
  let vhost: Vhost | undefined;
  let reports: ReturnType<typeof createReportConsumer> | undefined;
  before(async () => {
    dir = tempDir();
    database = testDatabase(engine, dir.path);
    h.db = openDb(database.url);
    await migrate(h.db);
    vhost = rabbitVhost();
    h.broker = startBroker(h, vhost);
    await h.broker.start();
    const log = silentLogger();
    const consumer = createReportConsumer({
      db: h.db,
      broker: h.broker,
      log,
      clock,
      agentDownTime: LB_DOWN,
    });
    reports = consumer;
    Object.assign(h, helpers(h), {
      async report(...hosts: string[]) {
        for (const host of hosts)
          await consumer.handle({
            agent_state: agentState(host, 'lbaas'),
            time: now.toISOString(),
          });
      },
    });
    h.app = buildApp({ db: h.db, broker: h.broker, clock, log, settings: h.settings });
    h.deps = { db: h.db, broker: h.broker, clock, log, settings: h.settings };
    h.net = await network(h);
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
    for (const table of LB_TABLES) await h.db.query(`DELETE FROM ${table}`);
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
