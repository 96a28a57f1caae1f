/**
 * DHCP scheduling in kumo-api, built by buildApp() and driven with `inject` on both
 * database engines, with a real broker (consumers on the `dhcp_agent.<host>` queues catch
 * the hints; q-plugin is served by the real RPC handler): scheduling on subnet create,
 * DHCP ports, dhcp_agents_per_network, the failover sweep with an injected clock, two
 * sweeps racing, the agent-scheduler endpoints, and the DHCP RPC calls against the
 * contract schemas.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type ApiSettings, buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import { type DhcpDeps, runDhcpSweep, scheduleNetwork } from '../../api/scheduler/dhcp.ts';
import { dhcpDeviceId, planBindings, uuid5 } from '../../api/scheduler/dhcp-plan.ts';
import type { Agent, AgentState } from '../../contracts/agents.ts';
import { GetActiveNetworksResult, GetNetworkInfoResult } from '../../contracts/dhcp.ts';
import { EXCHANGE, hostQueue, type Message, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from '../helpers/env.ts';

const ADMIN = 'admin-token-xyz';
const MEMBER = 'member-token-xyz';
const DOWN = 30;
const HOSTS = ['h1', 'h2', 'h3'] as const;

const dhcpState = (host: string): AgentState => ({
  agent_type: 'DHCP agent',
  binary: 'kumo-dhcp-agent',
  topic: 'dhcp_agent',
  host,
  start_flag: true,
  configurations: { networks: 0 },
});

type Body = Record<string, unknown>;

describe('uuid5 and the pure planner', () => {
  test('uuid5 matches Python uuid.uuid5(NAMESPACE_DNS, ...)', () => {
    assert.equal(
      uuid5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org'),
      '886313e1-3b8a-5372-9b90-0c9aee199e5d',
    );
  });
  test('least loaded first, ties by host; failover keeps a binding nobody can take', () => {
    const agents = () => [
      { id: 'a', host: 'h2', eligible: true, load: 0 },
      { id: 'b', host: 'h1', eligible: true, load: 0 },
      { id: 'c', host: 'h0', eligible: false, load: 0 },
    ];
    assert.deepEqual(planBindings(['n1', 'n2'], new Map(), agents(), 1, true).add, [
      { networkId: 'n1', agentId: 'b' },
      { networkId: 'n2', agentId: 'a' },
    ]);
    const onlyDead = [{ id: 'c', host: 'h0', eligible: false, load: 1 }];
    assert.deepEqual(planBindings(['n1'], new Map([['n1', ['c']]]), onlyDead, 1, true), {
      add: [],
      remove: [],
    });
    assert.deepEqual(planBindings(['n1'], new Map([['n1', ['c']]]), agents(), 1, false), {
      add: [],
      remove: [],
    });
    assert.deepEqual(planBindings(['n1'], new Map([['n1', ['c', 'a']]]), agents(), 1, true), {
      add: [],
      remove: [{ networkId: 'n1', agentId: 'c' }],
    });
  });
});

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`DHCP scheduling on ${engine}`, () => {
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
    let deps: DhcpDeps;

    before(async () => {
      vhost = rabbitVhost();
      db = openDb(database.url);
      await migrate(db);
      broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 5000 });
      for (const host of HOSTS) {
        const name = hostQueue('dhcp_agent', host);
        broker.consume(
          { name, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: name }] },
          async (message, info) => {
            received.push({ queue: info.queue, message });
          },
        );
      }
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

    const call = async (
      method: 'GET' | 'POST' | 'PUT' | 'DELETE',
      url: string,
      payload?: unknown,
      token = ADMIN,
    ) => {
      const res = await app.inject({
        method,
        url,
        payload: payload as string,
        headers: { 'x-auth-token': token },
      });
      return {
        status: res.statusCode,
        raw: res.body,
        body: res.body ? (res.json() as Body | null) : null,
      };
    };
    const ok = async <T>(
      method: 'POST' | 'PUT' | 'GET',
      url: string,
      key: string,
      payload?: unknown,
    ) => {
      const r = await call(method, url, payload);
      assert.equal(r.status, method === 'POST' ? 201 : 200, r.raw);
      return (r.body as Record<string, T>)[key] as T;
    };
    const net = (name: string) =>
      ok<Network>('POST', '/v2.0/networks', 'network', { network: { name } });
    const subnet = (network_id: string, cidr: string, extra: Body = {}) =>
      ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id, cidr, ip_version: 4, ...extra },
      });
    const netWithSubnet = async (name: string, cidr: string) => {
      const n = await net(name);
      const s = await subnet(n.id, cidr);
      return { n, s };
    };
    const agents = async () =>
      ((await call('GET', '/v2.0/agents')).body as { agents: Agent[] }).agents;
    const agentOn = async (host: string, type = 'DHCP agent') => {
      const a = (await agents()).find((x) => x.host === host && x.agent_type === type);
      assert.ok(a, `an agent of type ${type} on ${host}`);
      return a;
    };
    const report = async (...hosts: string[]) => {
      for (const host of hosts)
        await reports.handle({ agent_state: dhcpState(host), time: now.toISOString() });
    };
    const hostsOf = async (networkId: string) =>
      (
        (await call('GET', `/v2.0/networks/${networkId}/dhcp-agents`)).body as { agents: Agent[] }
      ).agents
        .map((a) => a.host)
        .sort();
    const dhcpPorts = async (networkId: string) =>
      (
        (await call('GET', `/v2.0/ports?network_id=${networkId}&device_owner=network:dhcp`))
          .body as { ports: Port[] }
      ).ports;
    const hinted = (host: string, networkId: string) =>
      received.some(
        (r) =>
          r.queue === `dhcp_agent.${host}` &&
          r.message.method === 'hint' &&
          r.message.args.resource === 'network' &&
          r.message.args.id === networkId,
      );
    const waitHint = (host: string, networkId: string) =>
      waitFor(`a network hint for ${networkId} on dhcp_agent.${host}`, () =>
        hinted(host, networkId),
      );
    const rpc = (method: 'get_active_networks' | 'get_network_info', args: Body) =>
      broker.call(PLUGIN_TOPIC, method, args as never, { timeoutMs: 5000 });
    const networkInfo = async (host: string, network_id: string) =>
      GetNetworkInfoResult.parse(await rpc('get_network_info', { host, network_id })).network;
    const activeNetworks = async (host: string) =>
      GetActiveNetworksResult.parse(await rpc('get_active_networks', { host })).networks;

    beforeEach(async () => {
      // A clean slate: no networks, no agents, default settings, a fresh clock.
      for (const p of ((await call('GET', '/v2.0/ports')).body as { ports: Port[] }).ports)
        if (p.device_owner !== 'network:dhcp') await call('DELETE', `/v2.0/ports/${p.id}`);
      for (const n of ((await call('GET', '/v2.0/networks')).body as { networks: Network[] })
        .networks)
        assert.equal((await call('DELETE', `/v2.0/networks/${n.id}`)).status, 204);
      for (const a of await agents())
        assert.equal((await call('DELETE', `/v2.0/agents/${a.id}`)).status, 204);
      delete settings.dhcpAgentsPerNetwork;
      delete settings.allowAutomaticFailover;
      advance(3600);
      received.length = 0;
    });

    test('a DHCP subnet schedules its network to the least-loaded agent, with a DHCP port', async () => {
      await report('h1', 'h2', 'h3');
      const a = await netWithSubnet('a', '10.1.0.0/24');
      assert.deepEqual(await hostsOf(a.n.id), ['h1']);
      const [pa, ...more] = await dhcpPorts(a.n.id);
      assert.equal(more.length, 0);
      assert.ok(pa);
      assert.equal(pa.device_owner, 'network:dhcp');
      assert.equal(pa['binding:host_id'], 'h1');
      assert.equal(pa.device_id, dhcpDeviceId('h1', a.n.id));
      assert.match(pa.device_id, /^dhcp[0-9a-f-]{36}-/);
      assert.deepEqual(pa.fixed_ips, [{ subnet_id: a.s.id, ip_address: '10.1.0.2' }]);
      await waitHint('h1', a.n.id);

      const b = await netWithSubnet('b', '10.2.0.0/24');
      assert.deepEqual(await hostsOf(b.n.id), ['h2']);
      const c = await net('c');
      const cs = await subnet(c.id, '10.3.0.0/24', { enable_dhcp: false });
      assert.deepEqual(await hostsOf(c.id), [], 'no DHCP subnet, no DHCP agent');
      await ok('PUT', `/v2.0/subnets/${cs.id}`, 'subnet', { subnet: { enable_dhcp: true } });
      assert.deepEqual(await hostsOf(c.id), ['h3']);
      const d = await netWithSubnet('d', '10.4.0.0/24');
      assert.deepEqual(await hostsOf(d.n.id), ['h1'], 'equal loads: the first host name');

      // A second DHCP subnet: the DHCP port gets an address on it too, and h1 hears of it.
      received.length = 0;
      const a2 = await subnet(a.n.id, '10.11.0.0/24');
      const [pa2] = await dhcpPorts(a.n.id);
      assert.equal(pa2?.id, pa.id);
      assert.deepEqual(pa2?.fixed_ips.map((ip) => ip.subnet_id).sort(), [a.s.id, a2.id].sort());
      await waitHint('h1', a.n.id);
      // Port changes on the network are hinted to its agent, and only to it.
      received.length = 0;
      const vm = await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: a.n.id } });
      await waitHint('h1', a.n.id);
      assert.equal((await call('DELETE', `/v2.0/ports/${vm.id}`)).status, 204);
      await waitFor('two hints', () => received.length >= 2);
      assert.ok(!hinted('h2', a.n.id) && !hinted('h3', a.n.id));
    });

    test('dhcp_agents_per_network = 2 binds two agents, each with its own DHCP port', async () => {
      settings.dhcpAgentsPerNetwork = 2;
      await report('h1', 'h2', 'h3');
      const a = await netWithSubnet('a', '10.1.0.0/24');
      assert.deepEqual(await hostsOf(a.n.id), ['h1', 'h2']);
      const b = await netWithSubnet('b', '10.2.0.0/24');
      assert.deepEqual(await hostsOf(b.n.id), ['h1', 'h3'], 'h3 (0 networks), then h1 (tie)');
      const ports = await dhcpPorts(a.n.id);
      assert.deepEqual(ports.map((p) => p['binding:host_id']).sort(), ['h1', 'h2']);
      assert.deepEqual(
        ports.map((p) => p.fixed_ips.length),
        [1, 1],
      );
      assert.notEqual(ports[0]?.fixed_ips[0]?.ip_address, ports[1]?.fixed_ips[0]?.ip_address);
      await waitHint('h1', a.n.id);
      await waitHint('h2', a.n.id);
      const sweep = await runDhcpSweep(deps);
      assert.deepEqual(sweep.changes, [], 'a settled state is left alone');
    });

    test('dead and admin-down agents are never scheduled to', async () => {
      settings.dhcpAgentsPerNetwork = 2;
      await report('h1', 'h2', 'h3');
      advance(DOWN + 1);
      await report('h2', 'h3'); // h1 is now dead
      const h2 = await agentOn('h2');
      await ok('PUT', `/v2.0/agents/${h2.id}`, 'agent', { agent: { admin_state_up: false } });
      const a = await netWithSubnet('a', '10.1.0.0/24');
      assert.deepEqual(await hostsOf(a.n.id), ['h3']);
      assert.deepEqual((await runDhcpSweep(deps)).changes, []);
      assert.deepEqual(await hostsOf(a.n.id), ['h3']);
      const refused = await call('POST', `/v2.0/agents/${h2.id}/dhcp-networks`, {
        network_id: a.n.id,
      });
      assert.equal(refused.status, 409);
      assert.match(refused.raw, /is not a valid DHCP Agent or has been disabled/);
    });

    test('the sweep moves a network off a dead agent; the old agent is hinted and fenced', async () => {
      await report('h1', 'h2');
      const a = await netWithSubnet('a', '10.1.0.0/24');
      assert.deepEqual(await hostsOf(a.n.id), ['h1']);
      assert.deepEqual(await activeNetworks('h1'), [a.n.id]);
      const before = await networkInfo('h1', a.n.id);
      assert.ok(before);
      assert.equal(before.dhcp_port?.fixed_ips[0]?.ip_address, '10.1.0.2');

      advance(DOWN / 2);
      await report('h2');
      assert.deepEqual((await runDhcpSweep(deps)).changes, [], 'h1 is not dead yet');
      advance(DOWN / 2 + 1);
      await report('h2');
      received.length = 0;
      const sweep = await runDhcpSweep(deps);
      assert.deepEqual(sweep.changes, [{ networkId: a.n.id, added: ['h2'], lostHosts: ['h1'] }]);
      assert.deepEqual(await hostsOf(a.n.id), ['h2']);
      const ports = await dhcpPorts(a.n.id);
      assert.deepEqual(
        ports.map((p) => p['binding:host_id']),
        ['h2'],
        "the dead agent's DHCP port is gone",
      );
      await waitHint('h1', a.n.id);
      await waitHint('h2', a.n.id);
      assert.equal(await networkInfo('h1', a.n.id), null);
      assert.deepEqual(await activeNetworks('h1'), []);
      const moved = await networkInfo('h2', a.n.id);
      assert.equal(moved?.dhcp_port?.id, ports[0]?.id);

      // Nobody alive to take it: the binding stays.
      advance(DOWN + 1);
      assert.deepEqual((await runDhcpSweep(deps)).changes, []);
      assert.deepEqual(await hostsOf(a.n.id), ['h2']);

      // Both back; h2 set admin-down: the network moves to h1.
      await report('h1', 'h2');
      const h2 = await agentOn('h2');
      await ok('PUT', `/v2.0/agents/${h2.id}`, 'agent', { agent: { admin_state_up: false } });
      assert.deepEqual(
        (await runDhcpSweep(deps)).changes.map((c) => c.lostHosts),
        [['h2']],
      );
      assert.deepEqual(await hostsOf(a.n.id), ['h1']);

      // allow_automatic_failover = false: a dead agent keeps its networks.
      settings.allowAutomaticFailover = false;
      await ok('PUT', `/v2.0/agents/${h2.id}`, 'agent', { agent: { admin_state_up: true } });
      advance(DOWN + 1);
      await report('h2');
      assert.deepEqual((await runDhcpSweep(deps)).changes, []);
      assert.deepEqual(await hostsOf(a.n.id), ['h1']);
    });

    test('a deleted agent: its bindings go, the sweep reschedules and removes its port', async () => {
      await report('h1', 'h2');
      const a = await netWithSubnet('a', '10.1.0.0/24');
      const h1 = await agentOn('h1');
      assert.equal((await call('DELETE', `/v2.0/agents/${h1.id}`)).status, 204);
      assert.deepEqual(await hostsOf(a.n.id), []);
      await runDhcpSweep(deps);
      assert.deepEqual(await hostsOf(a.n.id), ['h2']);
      assert.deepEqual(
        (await dhcpPorts(a.n.id)).map((p) => p['binding:host_id']),
        ['h2'],
      );
    });

    test('two replicas sweeping at once never double-schedule', async () => {
      // Networks created while no DHCP agent exists: nothing scheduled yet.
      const nets = [];
      for (let i = 0; i < 24; i++) nets.push((await netWithSubnet(`r${i}`, `10.${i}.0.0/24`)).n);
      for (const n of nets) assert.deepEqual(await hostsOf(n.id), []);
      await report('h1', 'h2');
      // PostgreSQL: a second pool, as a second replica has. SQLite: replicas are separate
      // processes (BEGIN IMMEDIATE serialises them); a second handle in this process would
      // block the event loop in busy_timeout, so both sweeps share the handle here.
      const db2 = engine === 'postgres' ? openDb(database.url) : db;
      try {
        const deps2: DhcpDeps = { ...deps, db: db2 };
        // A sweep over all networks races per-network scheduling (a subnet create on the
        // other replica): their plans differ, so only the lock keeps one agent per network.
        await Promise.all([
          runDhcpSweep(deps),
          ...nets.map((n) => scheduleNetwork(deps2, n.id)),
          runDhcpSweep(deps2),
        ]);
      } finally {
        if (db2 !== db) await db2.close();
      }
      const counts = { h1: 0, h2: 0 } as Record<string, number>;
      for (const n of nets) {
        const hosts = await hostsOf(n.id);
        assert.equal(hosts.length, 1, `network ${n.name} has one DHCP agent`);
        counts[hosts[0] as string] = (counts[hosts[0] as string] ?? 0) + 1;
        const ports = await dhcpPorts(n.id);
        assert.deepEqual(
          ports.map((p) => p['binding:host_id']),
          hosts,
          'and one DHCP port',
        );
      }
      assert.deepEqual(counts, { h1: 12, h2: 12 }, 'spread evenly');
    });

    test('agent-scheduler endpoints: add, list, remove, with 404 and 409', async () => {
      await report('h1', 'h2');
      await reports.handle({
        agent_state: {
          agent_type: 'L3 agent',
          binary: 'kumo-l3-agent',
          topic: 'l3_agent',
          host: 'h1',
          start_flag: true,
          configurations: {},
        },
        time: now.toISOString(),
      });
      const h1 = await agentOn('h1');
      const h2 = await agentOn('h2');
      const l3 = await agentOn('h1', 'L3 agent');
      const a = await netWithSubnet('a', '10.1.0.0/24');
      assert.deepEqual(await hostsOf(a.n.id), ['h1']);
      received.length = 0;

      const added = await call('POST', `/v2.0/agents/${h2.id}/dhcp-networks`, {
        network_id: a.n.id,
      });
      assert.equal(added.status, 201, added.raw);
      assert.equal(added.raw, 'null');
      await waitHint('h2', a.n.id);
      assert.deepEqual(await hostsOf(a.n.id), ['h1', 'h2']);
      assert.deepEqual((await dhcpPorts(a.n.id)).map((p) => p['binding:host_id']).sort(), [
        'h1',
        'h2',
      ]);
      const listed = await ok<Network[]>('GET', `/v2.0/agents/${h2.id}/dhcp-networks`, 'networks');
      assert.deepEqual(listed, [await ok<Network>('GET', `/v2.0/networks/${a.n.id}`, 'network')]);
      const hosting = await ok<Agent[]>('GET', `/v2.0/networks/${a.n.id}/dhcp-agents`, 'agents');
      assert.deepEqual(hosting.map((x) => x.id).sort(), [h1.id, h2.id].sort());
      assert.deepEqual(
        hosting.find((x) => x.id === h1.id),
        h1,
        'full agent objects',
      );

      const err = (r: { body: Body | null }) =>
        (r.body as { NeutronError: { type: string; message: string } }).NeutronError;
      const again = await call('POST', `/v2.0/agents/${h2.id}/dhcp-networks`, {
        network_id: a.n.id,
      });
      assert.equal(again.status, 409);
      assert.match(err(again).message, /has been already hosted by the DHCP Agent/);
      const notDhcp = await call('POST', `/v2.0/agents/${l3.id}/dhcp-networks`, {
        network_id: a.n.id,
      });
      assert.equal(notDhcp.status, 409);
      assert.equal(
        err(notDhcp).message,
        `Agent ${l3.id} is not a valid DHCP Agent or has been disabled.`,
      );
      const ghost = '00000000-0000-4000-8000-000000000000';
      for (const [method, url, payload] of [
        ['POST', `/v2.0/agents/${ghost}/dhcp-networks`, { network_id: a.n.id }],
        ['POST', `/v2.0/agents/${h1.id}/dhcp-networks`, { network_id: ghost }],
        ['POST', '/v2.0/agents/not-an-id/dhcp-networks', { network_id: a.n.id }],
        ['GET', `/v2.0/agents/${ghost}/dhcp-networks`, undefined],
        ['GET', `/v2.0/networks/${ghost}/dhcp-agents`, undefined],
        ['DELETE', `/v2.0/agents/${ghost}/dhcp-networks/${a.n.id}`, undefined],
        ['DELETE', `/v2.0/agents/${h1.id}/dhcp-networks/${ghost}`, undefined],
      ] as const) {
        const r = await call(method, url, payload);
        assert.equal(r.status, 404, `${method} ${url}: ${r.raw}`);
      }
      assert.equal(
        (await call('POST', `/v2.0/agents/${h1.id}/dhcp-networks`, { net: 1 })).status,
        400,
      );
      assert.equal(
        (await call('GET', `/v2.0/networks/${a.n.id}/dhcp-agents`, undefined, MEMBER)).status,
        403,
      );
      assert.equal(
        (await call('POST', `/v2.0/agents/${h1.id}/dhcp-networks`, { network_id: a.n.id }, MEMBER))
          .status,
        403,
      );

      received.length = 0;
      assert.equal(
        (await call('DELETE', `/v2.0/agents/${h1.id}/dhcp-networks/${a.n.id}`)).status,
        204,
      );
      await waitHint('h1', a.n.id);
      await waitHint('h2', a.n.id);
      assert.deepEqual(await hostsOf(a.n.id), ['h2']);
      assert.deepEqual(
        (await dhcpPorts(a.n.id)).map((p) => p['binding:host_id']),
        ['h2'],
      );
      assert.equal(await networkInfo('h1', a.n.id), null);
      assert.equal(
        (await call('DELETE', `/v2.0/agents/${h1.id}/dhcp-networks/${a.n.id}`)).status,
        404,
      );
      assert.deepEqual(
        await ok<Network[]>('GET', `/v2.0/agents/${h1.id}/dhcp-networks`, 'networks'),
        [],
      );

      // Deleting the network tells the agent that served it.
      received.length = 0;
      assert.equal((await call('DELETE', `/v2.0/networks/${a.n.id}`)).status, 204);
      await waitHint('h2', a.n.id);
      assert.deepEqual(await activeNetworks('h2'), []);
      assert.equal(await networkInfo('h2', a.n.id), null);
    });

    test('get_active_networks and get_network_info follow contracts/dhcp.ts', async () => {
      await report('h1');
      const a = await net('a');
      const s4 = await subnet(a.id, '10.1.0.0/24', {
        dns_nameservers: ['10.1.0.53'],
        host_routes: [{ destination: '192.168.0.0/16', nexthop: '10.1.0.254' }],
      });
      const s6 = await ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: a.id, cidr: 'fd00:1::/64', ip_version: 6 },
      });
      const off = await subnet(a.id, '10.9.0.0/24', { enable_dhcp: false, gateway_ip: null });
      const vm = await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: a.id } });
      const b = await netWithSubnet('b', '10.2.0.0/24');

      assert.deepEqual(await activeNetworks('h1'), [a.id, b.n.id].sort());
      assert.deepEqual(await activeNetworks('nobody'), []);
      const info = await networkInfo('h1', a.id);
      assert.ok(info);
      const network = await ok<Network>('GET', `/v2.0/networks/${a.id}`, 'network');
      assert.equal(info.id, a.id);
      assert.equal(info.mtu, network.mtu);
      assert.equal(info.revision_number, network.revision_number);
      assert.deepEqual(
        info.subnets.map((s) => [s.id, s.ip_version, s.enable_dhcp]).sort(),
        [
          [s4.id, '4', true],
          [s6.id, '6', true],
          [off.id, '4', false],
        ].sort(),
      );
      const at = (id: string) => info.subnets.find((s) => s.id === id);
      assert.deepEqual(at(s4.id), {
        id: s4.id,
        cidr: '10.1.0.0/24',
        ip_version: '4',
        gateway_ip: '10.1.0.1',
        enable_dhcp: true,
        dns_nameservers: ['10.1.0.53'],
        host_routes: [{ destination: '192.168.0.0/16', nexthop: '10.1.0.254' }],
        routed: false,
      });
      assert.equal(at(off.id)?.gateway_ip, null);
      const dhcp = info.dhcp_port;
      assert.ok(dhcp);
      assert.equal(dhcp.device_owner, 'network:dhcp');
      assert.deepEqual(
        dhcp.fixed_ips.map((ip) => ip.subnet_id).sort(),
        [s4.id, s6.id].sort(),
        'one address per DHCP-enabled subnet',
      );
      assert.deepEqual(info.ports.map((p) => p.id).sort(), [dhcp.id, vm.id].sort());
      const vmInfo = info.ports.find((p) => p.id === vm.id);
      assert.deepEqual(vmInfo, {
        id: vm.id,
        mac_address: vm.mac_address,
        device_owner: '',
        fixed_ips: vm.fixed_ips,
      });
      assert.equal(await networkInfo('h2', a.id), null, 'not served by h2');
      assert.equal(
        await networkInfo('h1', '00000000-0000-4000-8000-000000000000'),
        null,
        'unknown network',
      );
    });
  });
}
