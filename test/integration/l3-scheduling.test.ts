/**
 * L3 scheduling in kumo-api, built by buildApp() and driven with `inject` on both database
 * engines, with a real broker: consumers on the `l3_agent.<host>` queues and on the OVS
 * fanout catch the router and port hints; q-plugin is served by the real RPC handler.
 * Routers are seeded in SQL (test/helpers/l3-seed.ts) with real ports. Covers scheduling
 * on router change, the ports following their router (the fence), the failover sweep
 * with an injected clock, two replicas racing, the L3 RPC calls against contracts/l3.ts
 * and the agent-scheduler endpoints with Neutron's codes and bodies.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type ApiSettings, buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { OVS_FANOUT } from '../../api/hints.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import {
  type L3Deps,
  newL3SweepMemory,
  routerChanged,
  runL3Sweep,
} from '../../api/scheduler/l3.ts';
import type { Agent, AgentState } from '../../contracts/agents.ts';
import {
  GetActiveRoutersResult,
  GetRouterInfoResult,
  parseRouterInfo,
  UpdateFloatingIpStatusesResult,
} from '../../contracts/l3.ts';
import { EXCHANGE, hostQueue, type Message, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from '../helpers/env.ts';
import {
  bindingSnapshot,
  seedFloatingIp,
  seedGateway,
  seedInterface,
  seedRoute,
  seedRouter,
} from '../helpers/l3-seed.ts';

const ADMIN = 'admin-token-l3';
const MEMBER = 'member-token-l3';
const DOWN = 30;
const HOSTS = ['h1', 'h2', 'h3'] as const;
const GHOST = '00000000-0000-4000-8000-000000000000';

const state = (host: string, kind: 'l3' | 'dhcp' = 'l3'): AgentState => ({
  agent_type: kind === 'l3' ? 'L3 agent' : 'DHCP agent',
  binary: kind === 'l3' ? 'kumo-l3-agent' : 'kumo-dhcp-agent',
  topic: kind === 'l3' ? 'l3_agent' : 'dhcp_agent',
  host,
  start_flag: true,
  configurations: {},
});

type Body = Record<string, unknown>;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`L3 scheduling on ${engine}`, () => {
    const dir = tempDir();
    const database = testDatabase(engine, dir.path);
    let vhost: Vhost;
    let db: Db;
    let broker: Broker;
    let app: FastifyInstance;
    let now = new Date('2026-11-22T10:00:00.000Z');
    const clock = { now: () => now };
    const advance = (seconds: number) => {
      now = new Date(now.getTime() + seconds * 1000);
    };
    const settings: ApiSettings = {
      adminToken: ADMIN,
      memberTokens: [MEMBER],
      agentDownTime: DOWN,
      bodyLimit: 1 << 20,
    };
    const received: { queue: string; message: Message }[] = [];
    let reports: ReturnType<typeof createReportConsumer>;
    let deps: L3Deps;
    let ext: { net: Network; subnet: Subnet };
    let inner: { net: Network; subnet: Subnet };

    before(async () => {
      vhost = rabbitVhost();
      db = openDb(database.url);
      await migrate(db);
      broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 5000 });
      const record = async (message: Message, info: { queue: string }) => {
        received.push({ queue: info.queue, message });
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
        createRpcHandler({ db, broker, log: silentLogger() }),
      );
      await broker.start();
      reports = createReportConsumer({
        db,
        broker,
        log: silentLogger(),
        clock,
        agentDownTime: DOWN,
      });
      app = buildApp({ db, broker, clock, log: silentLogger(), settings });
      deps = { db, broker, clock, log: silentLogger(), settings };
      ext = await network('ext', '203.0.113.0/24', true);
      inner = await network('inner', '10.1.0.0/24', false);
    });
    after(async () => {
      await app?.close();
      await reports?.close();
      await broker?.close();
      await db?.close();
      vhost?.cleanup();
      database.cleanup();
      dir.cleanup();
    });

    const call = async (method: string, url: string, payload?: unknown, token = ADMIN) => {
      const res = await app.inject({
        method: method as 'GET',
        url,
        payload: payload as string,
        headers: { 'x-auth-token': token },
      });
      return {
        status: res.statusCode,
        raw: res.body,
        body: res.body ? (res.json() as Body) : null,
      };
    };
    async function network(name: string, cidr: string, external: boolean) {
      const n = await call('POST', '/v2.0/networks', {
        network: { name, 'router:external': external },
      });
      assert.equal(n.status, 201, n.raw);
      const net = (n.body as { network: Network }).network;
      const s = await call('POST', '/v2.0/subnets', {
        subnet: { network_id: net.id, cidr, ip_version: 4, enable_dhcp: false },
      });
      assert.equal(s.status, 201, s.raw);
      return { net, subnet: (s.body as { subnet: Subnet }).subnet };
    }
    const report = async (...hosts: string[]) => {
      for (const host of hosts)
        await reports.handle({ agent_state: state(host), time: now.toISOString() });
    };
    const agentOn = async (host: string, type = 'L3 agent') => {
      const list = ((await call('GET', '/v2.0/agents')).body as { agents: Agent[] }).agents;
      const a = list.find((x) => x.host === host && x.agent_type === type);
      assert.ok(a, `an agent of type ${type} on ${host}`);
      return a;
    };
    const hostsOf = async (routerId: string) => {
      const r = await call('GET', `/v2.0/routers/${routerId}/l3-agents`);
      assert.equal(r.status, 200, r.raw);
      return (r.body as { agents: Agent[] }).agents.map((a) => a.host);
    };
    const portHosts = async (ids: string[]) => {
      const rows = await db.query<{ id: string; host_id: string }>(
        `SELECT id, host_id FROM ports WHERE id IN (${ids.map(() => '?').join(', ')})`,
        ids,
      );
      return [...new Set(rows.map((r) => r.host_id))];
    };
    const routerHinted = (host: string, id: string) =>
      received.some(
        (r) =>
          r.queue === `l3_agent.${host}` &&
          r.message.method === 'hint' &&
          r.message.args.resource === 'router' &&
          r.message.args.id === id,
      );
    const portHinted = (id: string) =>
      received.some(
        (r) =>
          r.queue === 'l2-watch' &&
          r.message.method === 'hint' &&
          r.message.args.resource === 'port' &&
          r.message.args.id === id,
      );
    const waitRouterHint = (host: string, id: string) =>
      waitFor(`a router hint for ${id} on l3_agent.${host}`, () => routerHinted(host, id));
    const waitPortHints = (ids: string[]) =>
      waitFor(`port hints for ${ids.join(', ')}`, () => ids.every(portHinted));
    const rpc = (method: string, args: Body) =>
      broker.call(PLUGIN_TOPIC, method as 'get_router_info', args as never, { timeoutMs: 5000 });
    const routerInfo = async (host: string, router_id: string) =>
      GetRouterInfoResult.parse(await rpc('get_router_info', { host, router_id })).router;
    const activeRouters = async (host: string) =>
      GetActiveRoutersResult.parse(await rpc('get_active_routers', { host })).routers;
    /** A router with a gateway and one interface; its port ids. */
    const fullRouter = async (name: string) => {
      const id = await seedRouter(db, { name });
      const gw = await seedGateway(db, id, ext.net.id);
      const iface = await seedInterface(db, id, inner.subnet);
      return { id, gw, iface, ports: [gw.id, iface.id] };
    };

    beforeEach(async () => {
      await db.query('DELETE FROM floatingips');
      await db.query('UPDATE routers SET gw_port_id = NULL');
      await db.query('DELETE FROM routers');
      for (const p of ((await call('GET', '/v2.0/ports')).body as { ports: Port[] }).ports)
        assert.equal((await call('DELETE', `/v2.0/ports/${p.id}`)).status, 204);
      for (const a of ((await call('GET', '/v2.0/agents')).body as { agents: Agent[] }).agents)
        assert.equal((await call('DELETE', `/v2.0/agents/${a.id}`)).status, 204);
      delete settings.allowAutomaticFailover;
      advance(3600);
      received.length = 0;
    });

    test('a router with a gateway or an interface goes to the agent with fewest routers; its ports follow', async () => {
      await report('h1', 'h2');
      const a = await fullRouter('a');
      await routerChanged(deps, a.id);
      assert.deepEqual(await hostsOf(a.id), ['h1'], 'equal loads: the first host name');
      assert.deepEqual(await portHosts(a.ports), ['h1']);
      await waitPortHints(a.ports);
      await waitRouterHint('h1', a.id);

      const b = await seedRouter(db, { name: 'b' });
      const bIface = await seedInterface(db, b, (await network('b', '10.2.0.0/24', false)).subnet);
      await routerChanged(deps, b);
      assert.deepEqual(await hostsOf(b), ['h2'], 'fewest routers');
      assert.deepEqual(await portHosts([bIface.id]), ['h2']);

      const bare = await seedRouter(db, { name: 'bare' });
      await routerChanged(deps, bare);
      assert.deepEqual(await hostsOf(bare), [], 'no gateway, no interface: no host');
      const down = await seedRouter(db, { name: 'down', adminStateUp: false });
      await seedGateway(db, down, ext.net.id);
      await routerChanged(deps, down);
      assert.deepEqual(await hostsOf(down), [], 'admin-down: no host');

      // A new interface on a hosted router is bound to its host and hinted, nothing moves.
      received.length = 0;
      const a2 = await seedInterface(db, a.id, (await network('a2', '10.3.0.0/24', false)).subnet);
      await routerChanged(deps, a.id, ['h3']);
      assert.deepEqual(await portHosts([a2.id]), ['h1']);
      await waitPortHints([a2.id]);
      await waitRouterHint('h1', a.id);
      await waitRouterHint('h3', a.id);
      assert.ok(!a.ports.some(portHinted), 'ports already on h1 are not hinted again');
    });

    test('dead and admin-down agents are never scheduled to; routerChanged never rejects', async () => {
      await report('h1', 'h2', 'h3');
      advance(DOWN + 1);
      await report('h2', 'h3');
      const h2 = await agentOn('h2');
      const put = await call('PUT', `/v2.0/agents/${h2.id}`, { agent: { admin_state_up: false } });
      assert.equal(put.status, 200);
      const a = await fullRouter('a');
      await routerChanged(deps, a.id);
      assert.deepEqual(await hostsOf(a.id), ['h3']);
      await routerChanged(deps, GHOST);
      assert.deepEqual(await hostsOf(a.id), ['h3']);
    });

    test('the sweep moves a router off a dead agent, ports first, and both agents hear', async () => {
      await report('h1', 'h2');
      const a = await fullRouter('a');
      await routerChanged(deps, a.id);
      assert.deepEqual(await hostsOf(a.id), ['h1']);
      assert.ok(await routerInfo('h1', a.id));
      const memory = newL3SweepMemory();

      advance(DOWN / 2);
      await report('h2');
      assert.deepEqual(await runL3Sweep(deps, memory), [], 'h1 is not dead yet');
      advance(DOWN / 2 + 1);
      await report('h2');
      received.length = 0;
      // The real broker, with the order of what is sent recorded: the fence comes first.
      const sent: string[] = [];
      const recording: L3Deps = {
        ...deps,
        broker: {
          cast: (queue, method, args, opts) => {
            sent.push(`${queue} ${(args as { id: string }).id}`);
            return broker.cast(queue, method, args, opts);
          },
          fanout: (exchange, method, args, opts) => {
            sent.push(`${exchange} ${(args as { id: string }).id}`);
            return broker.fanout(exchange, method, args, opts);
          },
        },
      };
      const moved = await runL3Sweep(recording, memory);
      assert.deepEqual(sent.slice(0, 2).sort(), a.ports.map((p) => `${OVS_FANOUT} ${p}`).sort());
      assert.deepEqual(sent.slice(2).sort(), [`l3_agent.h1 ${a.id}`, `l3_agent.h2 ${a.id}`]);
      assert.deepEqual(moved, [
        { routerId: a.id, from: 'h1', to: 'h2', moved: true, ports: [...a.ports].sort() },
      ]);
      assert.deepEqual(await hostsOf(a.id), ['h2']);
      assert.deepEqual(await portHosts(a.ports), ['h2'], 'the fence: ports bound to the new host');
      await waitPortHints(a.ports);
      await waitRouterHint('h2', a.id);
      await waitRouterHint('h1', a.id);
      assert.equal(await routerInfo('h1', a.id), null);
      assert.deepEqual(await activeRouters('h1'), []);
      assert.equal((await routerInfo('h2', a.id))?.gw_port?.id, a.gw.id);

      // Nobody alive to take it: the binding stays.
      advance(DOWN + 1);
      assert.deepEqual(await runL3Sweep(deps, memory), []);
      assert.deepEqual(await hostsOf(a.id), ['h2']);

      // Both back, h2 admin-down: the router moves to h1.
      await report('h1', 'h2');
      const h2 = await agentOn('h2');
      await call('PUT', `/v2.0/agents/${h2.id}`, { agent: { admin_state_up: false } });
      const back = await runL3Sweep(deps, memory);
      assert.deepEqual(
        back.map((m) => [m.from, m.to]),
        [['h2', 'h1']],
      );
      assert.deepEqual(await portHosts(a.ports), ['h1']);

      // allow_automatic_failover = false: a dead agent keeps its routers.
      settings.allowAutomaticFailover = false;
      await call('PUT', `/v2.0/agents/${h2.id}`, { agent: { admin_state_up: true } });
      advance(DOWN + 1);
      await report('h2');
      const before = await bindingSnapshot(db);
      assert.deepEqual(await runL3Sweep(deps, memory), []);
      assert.deepEqual(await bindingSnapshot(db), before);
    });

    test('the sweep binds an unhosted router on its second sighting and rebinds stray ports', async () => {
      const a = await fullRouter('a');
      await routerChanged(deps, a.id);
      assert.deepEqual(await hostsOf(a.id), [], 'no L3 agent yet');
      await report('h1');
      const memory = newL3SweepMemory();
      assert.deepEqual(await runL3Sweep(deps, memory), [], 'first sighting: left for an operator');
      const [placed] = await runL3Sweep(deps, memory);
      assert.equal(placed?.to, 'h1');
      assert.deepEqual(await portHosts(a.ports), ['h1']);
      await db.query("UPDATE ports SET host_id = 'elsewhere' WHERE id = ?", [a.iface.id]);
      received.length = 0;
      assert.deepEqual(await runL3Sweep(deps, memory), [
        { routerId: a.id, from: null, to: 'h1', moved: false, ports: [a.iface.id] },
      ]);
      await waitPortHints([a.iface.id]);
      await waitRouterHint('h1', a.id);
    });

    test('two replicas scheduling at once never double-bind', async () => {
      const routers: string[] = [];
      for (let i = 0; i < 16; i++) {
        const id = await seedRouter(db, { name: `r${i}` });
        await seedGateway(db, id, ext.net.id);
        routers.push(id);
      }
      await report('h1', 'h2');
      const db2 = engine === 'postgres' ? openDb(database.url) : db;
      try {
        const deps2: L3Deps = { ...deps, db: db2 };
        const memory = newL3SweepMemory();
        memory.unhosted = new Set(routers);
        await Promise.all([
          runL3Sweep(deps, memory),
          ...routers.map((id) => routerChanged(deps2, id)),
        ]);
      } finally {
        if (db2 !== db) await db2.close();
      }
      const counts: Record<string, number> = {};
      for (const id of routers) {
        const hosts = await hostsOf(id);
        assert.equal(hosts.length, 1);
        const host = hosts[0] as string;
        counts[host] = (counts[host] ?? 0) + 1;
        const gw = await db.query<{ host_id: string }>(
          'SELECT p.host_id FROM ports p JOIN routers r ON r.gw_port_id = p.id WHERE r.id = ?',
          [id],
        );
        assert.deepEqual(
          gw.map((g) => g.host_id),
          hosts,
        );
      }
      assert.deepEqual(counts, { h1: 8, h2: 8 }, 'spread evenly');
    });

    test('get_router_info: the router as the hosting host serves it, null elsewhere', async () => {
      await report('h1', 'h2');
      const a = await fullRouter('a');
      await seedRoute(db, a.id, '192.168.5.0/24', '10.1.0.7');
      const vm = (
        (await call('POST', '/v2.0/ports', { port: { network_id: inner.net.id } })).body as {
          port: Port;
        }
      ).port;
      const fip = await seedFloatingIp(db, ext.net.id, a.id, vm);
      await seedFloatingIp(db, ext.net.id, null);
      await routerChanged(deps, a.id);
      const info = await routerInfo('h1', a.id);
      assert.ok(info);
      assert.deepEqual(info, {
        id: a.id,
        revision_number: 1,
        gw_port: {
          id: a.gw.id,
          network_id: ext.net.id,
          mac_address: a.gw.mac_address,
          mtu: ext.net.mtu,
          fixed_ips: a.gw.fixed_ips.map((ip) => ({
            ...ip,
            cidr: '203.0.113.0/24',
            gateway_ip: '203.0.113.1',
          })),
        },
        enable_snat: true,
        interfaces: [
          {
            id: a.iface.id,
            network_id: inner.net.id,
            mac_address: a.iface.mac_address,
            mtu: inner.net.mtu,
            fixed_ips: [
              {
                subnet_id: inner.subnet.id,
                ip_address: '10.1.0.1',
                cidr: '10.1.0.0/24',
                gateway_ip: '10.1.0.1',
              },
            ],
          },
        ],
        routes: [{ destination: '192.168.5.0/24', nexthop: '10.1.0.7' }],
        floating_ips: [
          {
            id: fip.id,
            floating_ip_address: fip.floating_ip_address,
            fixed_ip_address: vm.fixed_ips[0]?.ip_address,
            port_id: vm.id,
            status: 'DOWN',
          },
        ],
      });
      const parsed = parseRouterInfo(await rpc('get_router_info', { host: 'h1', router_id: a.id }));
      assert.deepEqual(parsed, { router: info, rejected: [] });
      assert.deepEqual(await activeRouters('h1'), [a.id]);
      assert.deepEqual(await activeRouters('h2'), []);
      assert.equal(await routerInfo('h2', a.id), null, 'another host');
      assert.equal(await routerInfo('h1', GHOST), null, 'unknown router');

      // update_floatingip_statuses: only from the hosting host, only the router's own.
      const statuses = (host: string) =>
        rpc('update_floatingip_statuses', {
          host,
          router_id: a.id,
          statuses: [{ id: fip.id, status: 'ACTIVE' }],
        }).then((r) => UpdateFloatingIpStatusesResult.parse(r).updated);
      assert.equal(await statuses('h2'), 0);
      assert.equal((await routerInfo('h1', a.id))?.floating_ips[0]?.status, 'DOWN');
      assert.equal(await statuses('h1'), 1);
      assert.equal((await routerInfo('h1', a.id))?.floating_ips[0]?.status, 'ACTIVE');
      assert.equal(await statuses('h1'), 0, 'unchanged: nothing updated');

      await db.query('UPDATE routers SET admin_state_up = ? WHERE id = ?', [false, a.id]);
      assert.equal(await routerInfo('h1', a.id), null, 'admin-down');
      await db.query('UPDATE routers SET admin_state_up = ? WHERE id = ?', [true, a.id]);
      await db.query('DELETE FROM floatingips');
      await db.query('UPDATE routers SET gw_port_id = NULL WHERE id = ?', [a.id]);
      await db.query('DELETE FROM routers WHERE id = ?', [a.id]);
      assert.equal(await routerInfo('h1', a.id), null, 'deleted');
      assert.deepEqual(await activeRouters('h1'), []);
    });
  });
}
