/**
 * Agent status reports end to end, on both database engines: agents cast `report_status`
 * to q-plugin over a real broker, kumo-api's q-plugin consumer stores them, and the agent
 * body (GET /v2.0/agents, /v2.0/agents/{id}) shows the ERROR rows as
 * configurations.failed_<kind>s. ACTIVE clears a row; a restart keeps them (the agent
 * reports everything again); a report consumed before the agent registered is kept; a
 * deleted agent's or network's rows go with it; an invalid report is dead-lettered
 * without touching anything.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import type { Agent, AgentState } from '../../contracts/agents.ts';
import { DEAD_LETTER_QUEUE, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { ReportStatusArgs, ResourceStatus } from '../../contracts/status.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from '../helpers/env.ts';

const ADMIN = 'admin-token-status';
const DHCP = 'DHCP agent';

const state = (host: string, extra: Partial<AgentState> = {}): AgentState => ({
  agent_type: DHCP,
  binary: 'kumo-dhcp-agent',
  topic: 'dhcp_agent',
  host,
  configurations: { networks: 2 },
  ...extra,
});

/** A pino logger whose lines land in `lines`, to see what the consumer decided. */
function capturingLogger(lines: Record<string, unknown>[]) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return pino({ level: 'info' }, sink);
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`agent status reports on ${engine}`, () => {
    const dir = tempDir();
    const database = testDatabase(engine, dir.path);
    const logLines: Record<string, unknown>[] = [];
    const clock = { now: () => new Date() };
    const net1 = randomUUID();
    const net2 = randomUUID();
    const router1 = randomUUID();
    let vhost: Vhost;
    let db: Db;
    let api: Broker;
    let agent: Broker;
    let app: FastifyInstance;
    let reports: ReturnType<typeof createReportConsumer>;
    let conn: amqp.ChannelModel;
    let ch: amqp.Channel;

    before(async () => {
      vhost = rabbitVhost();
      db = openDb(database.url);
      await migrate(db);
      api = createBroker({ url: vhost.url, log: silentLogger() });
      api.consume(
        { ...apiQueue(PLUGIN_TOPIC), prefetch: 64 },
        createRpcHandler({ db, broker: api, log: capturingLogger(logLines), clock }),
      );
      await api.start();
      agent = createBroker({ url: vhost.url, log: silentLogger() });
      await agent.start();
      reports = createReportConsumer({
        db,
        broker: api,
        log: silentLogger(),
        clock,
        agentDownTime: 30,
      });
      app = buildApp({
        db,
        broker: api,
        clock,
        log: silentLogger(),
        settings: { adminToken: ADMIN, memberTokens: [], agentDownTime: 30, bodyLimit: 4096 },
      });
      conn = await amqp.connect(vhost.url);
      ch = await conn.createChannel();
      for (const host of ['h1', 'h2'])
        await reports.handle({
          agent_state: state(host, { start_flag: true }),
          time: new Date().toISOString(),
        });
    });
    after(async () => {
      await conn.close().catch(() => {});
      await app.close();
      await reports.close();
      await agent.close();
      await api.close();
      await db.close();
      vhost.cleanup();
      database.cleanup();
      dir.cleanup();
    });

    const send = (host: string, statuses: ResourceStatus[]) =>
      agent.cast(PLUGIN_TOPIC, 'report_status', { host, agent_type: DHCP, statuses });
    const get = async (url: string) => {
      const res = await app.inject({ method: 'GET', url, headers: { 'x-auth-token': ADMIN } });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as Record<string, unknown>;
    };
    const agentOn = async (host: string) => {
      const { agents } = (await get(`/v2.0/agents?host=${host}`)) as { agents: Agent[] };
      assert.equal(agents.length, 1);
      return agents[0] as Agent;
    };
    const statusRows = async () =>
      Number(
        (await db.query<{ n: unknown }>('SELECT COUNT(*) AS n FROM agent_resource_status'))[0]?.n,
      );

    test('an ERROR shows in the agent body as configurations.failed_networks', async () => {
      await send('h1', [
        { resource: 'network', id: net1, status: 'ERROR', reason: 'dnsmasq exited with 2' },
        { resource: 'network', id: net2, status: 'ACTIVE' },
      ]);
      const h1 = await waitFor('failed_networks on h1', async () => {
        const a = await agentOn('h1');
        return a.configurations.failed_networks ? a : undefined;
      });
      assert.deepEqual(h1.configurations, {
        networks: 2,
        failed_networks: { [net1]: 'dnsmasq exited with 2' },
      });
      const one = (await get(`/v2.0/agents/${h1.id}`)) as { agent: Agent };
      assert.deepEqual(one.agent.configurations, h1.configurations);
      assert.deepEqual((await agentOn('h2')).configurations, { networks: 2 });
      assert.equal(await statusRows(), 1);
    });

    test('ACTIVE clears it; other kinds show as failed_<kind>s', async () => {
      await send('h1', [
        { resource: 'network', id: net1, status: 'ACTIVE' },
        { resource: 'router', id: router1, status: 'ERROR', reason: 'no external network' },
      ]);
      const h1 = await waitFor('failed_networks cleared on h1', async () => {
        const a = await agentOn('h1');
        return a.configurations.failed_networks === undefined ? a : undefined;
      });
      assert.deepEqual(h1.configurations, {
        networks: 2,
        failed_routers: { [router1]: 'no external network' },
      });
    });

    test('parts a network is served without show as failed_ports/failed_subnets; its next status replaces them', async () => {
      const [port1, port2, subnet1] = [randomUUID(), randomUUID(), randomUUID()];
      const failedParts = async (want: string) =>
        waitFor(want, async () => {
          const c = (await agentOn('h2')).configurations;
          return JSON.stringify([c.failed_ports, c.failed_subnets]) === want ? c : undefined;
        });
      await send('h2', [
        {
          resource: 'network',
          id: net1,
          status: 'ACTIVE',
          rejected: [
            { resource: 'port', id: port1, reason: 'fixed_ips[0].ip_address: bad (left out)' },
            { resource: 'subnet', id: subnet1, reason: 'dns_nameservers[0]: v6 (left out)' },
          ],
        },
      ]);
      await failedParts(
        JSON.stringify([
          { [port1]: 'fixed_ips[0].ip_address: bad (left out)' },
          { [subnet1]: 'dns_nameservers[0]: v6 (left out)' },
        ]),
      );
      await send('h2', [
        {
          resource: 'network',
          id: net1,
          status: 'ACTIVE',
          rejected: [{ resource: 'port', id: port2, reason: 'mac_address: bad (port left out)' }],
        },
      ]);
      await failedParts(JSON.stringify([{ [port2]: 'mac_address: bad (port left out)' }, null]));
      await send('h2', [{ resource: 'network', id: net1, status: 'ACTIVE' }]);
      const c = await failedParts(JSON.stringify([null, null]));
      assert.deepEqual(c, { networks: 2 });
    });

    test('heartbeats and a restart keep the statuses; the ACTIVE sent again clears them', async () => {
      await send('h1', [{ resource: 'network', id: net2, status: 'ERROR', reason: 'boom' }]);
      await waitFor('net2 failing on h1', async () =>
        Boolean((await agentOn('h1')).configurations.failed_networks),
      );
      await reports.handle({ agent_state: state('h1'), time: new Date().toISOString() });
      await reports.handle({
        agent_state: state('h1', { start_flag: true }),
        time: new Date().toISOString(),
      });
      const kept = (await agentOn('h1')).configurations;
      assert.deepEqual(kept.failed_networks, { [net2]: 'boom' });
      assert.deepEqual(kept.failed_routers, { [router1]: 'no external network' });
      await send('h1', [
        { resource: 'network', id: net2, status: 'ACTIVE' },
        { resource: 'router', id: router1, status: 'ACTIVE' },
      ]);
      await waitFor('the statuses sent again after the start', async () =>
        (await statusRows()) === 0 ? true : undefined,
      );
      assert.deepEqual((await agentOn('h1')).configurations, { networks: 2 });
    });

    test('a report consumed before the agent registered shows once it does', async () => {
      await send('h9', [{ resource: 'network', id: net1, status: 'ERROR', reason: 'early' }]);
      await waitFor('the report of the unregistered h9 stored', async () =>
        (await statusRows()) === 1 ? true : undefined,
      );
      await reports.handle({
        agent_state: state('h9', { start_flag: true }),
        time: new Date().toISOString(),
      });
      const h9 = await agentOn('h9');
      assert.deepEqual(h9.configurations.failed_networks, { [net1]: 'early' });
      const res = await app.inject({
        method: 'DELETE',
        url: `/v2.0/agents/${h9.id}`,
        headers: { 'x-auth-token': ADMIN },
      });
      assert.equal(res.statusCode, 204);
      assert.equal(await statusRows(), 0);
    });

    test("a deleted network's statuses go with it", async () => {
      const created = await app.inject({
        method: 'POST',
        url: '/v2.0/networks',
        headers: { 'x-auth-token': ADMIN },
        payload: { network: { name: 'status-net' } },
      });
      assert.equal(created.statusCode, 201, created.body);
      const netId = (created.json() as { network: { id: string } }).network.id;
      await send('h1', [{ resource: 'network', id: netId, status: 'ERROR', reason: 'gone soon' }]);
      await waitFor('the failure of the network stored', async () =>
        (await statusRows()) === 1 ? true : undefined,
      );
      const res = await app.inject({
        method: 'DELETE',
        url: `/v2.0/networks/${netId}`,
        headers: { 'x-auth-token': ADMIN },
      });
      assert.equal(res.statusCode, 204, res.body);
      assert.equal(await statusRows(), 0);
      assert.equal((await agentOn('h1')).configurations.failed_networks, undefined);
    });

    test('an invalid report is dead-lettered and changes nothing', async () => {
      const bad = {
        host: 'h2',
        agent_type: DHCP,
        statuses: [{ resource: 'network', id: net1, status: 'BROKEN', reason: 'x' }],
      } as unknown as ReportStatusArgs;
      await agent.cast(PLUGIN_TOPIC, 'report_status', bad);
      const reason = await waitFor('the dead letter', async () => {
        const m = await ch.get(DEAD_LETTER_QUEUE, { noAck: true });
        return m ? String(m.properties.headers?.['x-kumo-reason']) : undefined;
      });
      assert.match(reason, /args\.statuses\[0\]\.status/);
      await send('h2', [{ resource: 'network', id: net2, status: 'ERROR', reason: 'late' }]);
      const h2 = await waitFor('the valid report after it', async () => {
        const a = await agentOn('h2');
        return a.configurations.failed_networks ? a : undefined;
      });
      assert.deepEqual(h2.configurations.failed_networks, { [net2]: 'late' });
      assert.equal(await statusRows(), 1);
    });

    test("a deleted agent's statuses go with it", async () => {
      const h2 = await agentOn('h2');
      const res = await app.inject({
        method: 'DELETE',
        url: `/v2.0/agents/${h2.id}`,
        headers: { 'x-auth-token': ADMIN },
      });
      assert.equal(res.statusCode, 204);
      assert.equal(await statusRows(), 0);
    });

    test('reports of one agent apply in order: the last word wins', async () => {
      const id = randomUUID();
      for (let i = 0; i < 20; i++)
        await send('h1', [
          {
            resource: 'network',
            id,
            status: i % 2 === 0 ? 'ERROR' : 'ACTIVE',
            reason: `round ${i}`,
          },
        ]);
      await send('h1', [{ resource: 'network', id: net1, status: 'ERROR', reason: 'marker' }]);
      const conf = await waitFor('the marker report', async () => {
        const c = (await agentOn('h1')).configurations;
        return (c.failed_networks as Record<string, string> | undefined)?.[net1] ? c : undefined;
      });
      assert.deepEqual(conf.failed_networks, { [net1]: 'marker' });
    });
  });
}
