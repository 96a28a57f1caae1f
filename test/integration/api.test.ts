/**
 * kumo-api built by buildApp() and driven with `inject` (no socket), on both database
 * engines, with a real broker: the agent routes, the version documents, the body limit,
 * and the state-report consumer's revival detection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import type { Agent, AgentState } from '../../contracts/agents.ts';
import { EXCHANGE, hostQueue, type Message } from '../../contracts/messages.ts';
import { type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from '../helpers/env.ts';

const ADMIN = 'admin-token-xyz';
const MEMBER = 'member-token-xyz';
const DOWN = 30;

const state = (host: string, extra: Partial<AgentState> = {}): AgentState => ({
  agent_type: 'DHCP agent',
  binary: 'kumo-dhcp-agent',
  topic: 'dhcp_agent',
  host,
  configurations: { networks: 0 },
  ...extra,
});

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`kumo-api on ${engine}`, () => {
    const dir = tempDir();
    const database = testDatabase(engine, dir.path);
    let vhost: Vhost;
    let db: Db;
    let broker: Broker;
    let app: FastifyInstance;
    let now = new Date('2026-11-22T10:00:00.000Z');
    const clock = { now: () => now };
    const received: Message[] = [];
    let reports: ReturnType<typeof createReportConsumer>;

    before(async () => {
      vhost = rabbitVhost();
      db = openDb(database.url);
      await migrate(db);
      broker = createBroker({ url: vhost.url, log: silentLogger() });
      for (const host of ['h1', 'h2']) {
        const name = hostQueue('dhcp_agent', host);
        broker.consume(
          { name, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: name }] },
          async (m) => {
            received.push(m);
          },
        );
      }
      await broker.start();
      reports = createReportConsumer({
        db,
        broker,
        log: silentLogger(),
        clock,
        agentDownTime: DOWN,
      });
      app = buildApp({
        db,
        broker,
        clock,
        log: silentLogger(),
        settings: {
          adminToken: ADMIN,
          memberTokens: [MEMBER],
          agentDownTime: DOWN,
          bodyLimit: 4096,
        },
      });
      await reports.handle({
        agent_state: state('h1', { start_flag: true }),
        time: now.toISOString(),
      });
      await reports.handle({
        agent_state: state('h2', { start_flag: true }),
        time: now.toISOString(),
      });
    });
    after(async () => {
      await app.close();
      await reports.close();
      await broker.close();
      await db.close();
      vhost.cleanup();
      database.cleanup();
      dir.cleanup();
    });

    const call = async (
      method: 'GET' | 'PUT' | 'DELETE',
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
        body: res.body ? (res.json() as Record<string, unknown>) : null,
      };
    };
    const agents = async (query = '') =>
      ((await call('GET', `/v2.0/agents${query}`)).body as { agents: Agent[] }).agents;

    test('version documents', async () => {
      const root = await call('GET', '/', undefined, MEMBER);
      assert.equal((root.body as { versions: { id: string }[] }).versions[0]?.id, 'v2.0');
      const v2 = await call('GET', '/v2.0');
      assert.deepEqual(
        (v2.body as { resources: { collection: string }[] }).resources.map((r) => r.collection),
        ['agents', 'networks', 'subnets', 'ports'],
      );
    });

    test('filters OR within a field, AND across fields; fields= selects attributes', async () => {
      assert.equal((await agents()).length, 2);
      assert.equal((await agents('?host=h1&host=h2')).length, 2);
      assert.deepEqual(
        (await agents('?host=h1&agent_type=DHCP%20agent')).map((a) => a.host),
        ['h1'],
      );
      assert.equal((await agents('?host=h1&agent_type=L3%20agent')).length, 0);
      const picked = await agents('?fields=id&fields=host');
      assert.deepEqual(Object.keys(picked[0] ?? {}).sort(), ['host', 'id']);
      assert.equal((await call('GET', '/v2.0/agents?alive=maybe')).status, 400);
    });

    test('alive is computed at read time from agent_down_time', async () => {
      assert.equal((await agents('?alive=true')).length, 2);
      now = new Date(now.getTime() + (DOWN + 1) * 1000);
      assert.equal((await agents('?alive=false')).length, 2);
      assert.equal((await agents('?alive=true')).length, 0);
    });

    test('a report after a silence longer than agent_down_time tells the agent it revived', async () => {
      received.length = 0;
      await reports.handle({ agent_state: state('h1'), time: now.toISOString() });
      const got = await waitFor('the revival hint', () =>
        received.find((m) => m.method === 'resync'),
      );
      assert.deepEqual(got.args, { reason: 'revived' });
      const [h1] = await agents('?host=h1');
      assert.equal(h1?.alive, true);
      assert.equal(h1?.heartbeat_timestamp, now.toISOString().slice(0, 19).replace('T', ' '));
      received.length = 0;
      await reports.handle({
        agent_state: state('h2', { start_flag: true }),
        time: now.toISOString(),
      });
      await reports.handle({ agent_state: state('h1'), time: now.toISOString() });
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(received, [], 'no hint for a fresh start or for a live agent');
    });

    test('PUT changes admin_state_up and description only, and hints the agent', async () => {
      const [h2] = await agents('?host=h2');
      assert.ok(h2);
      received.length = 0;
      const res = await call('PUT', `/v2.0/agents/${h2.id}`, {
        agent: { admin_state_up: false, description: 'x' },
      });
      assert.equal(res.status, 200);
      const got = await waitFor('the admin-state hint', () =>
        received.find((m) => m.method === 'resync'),
      );
      assert.deepEqual(got.args, { reason: 'admin_state_changed', admin_state_up: false });
      assert.deepEqual(
        (await agents('?admin_state_up=false')).map((a) => a.host),
        ['h2'],
      );
      const cleared = await call('PUT', `/v2.0/agents/${h2.id}`, { agent: { description: null } });
      assert.equal((cleared.body as { agent: Agent }).agent.description, null);
      const member = await call(
        'PUT',
        `/v2.0/agents/${h2.id}`,
        { agent: { admin_state_up: true } },
        MEMBER,
      );
      assert.equal(member.status, 404, 'to a member every agent is as a missing one');
      const [still] = await agents('?host=h2');
      assert.equal(still?.admin_state_up, false, 'a refused request changes nothing');
    });

    test('a body over the limit is refused with 413', async () => {
      const [h1] = await agents('?host=h1');
      const res = await call('PUT', `/v2.0/agents/${h1?.id}`, {
        agent: { description: 'x'.repeat(8000) },
      });
      assert.equal(res.status, 413);
      assert.equal(
        (res.body as { NeutronError: { type: string } }).NeutronError.type,
        'RequestEntityTooLarge',
      );
    });

    test('DELETE answers 204, then 404', async () => {
      const [h1] = await agents('?host=h1');
      assert.equal((await call('DELETE', `/v2.0/agents/${h1?.id}`)).status, 204);
      assert.equal((await call('DELETE', `/v2.0/agents/${h1?.id}`)).status, 404);
      assert.equal((await agents()).length, 1);
    });
  });
}
