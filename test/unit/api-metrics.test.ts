/**
 * api/metrics.ts: kumo-api's metrics, against a real (in-memory SQLite) database and a
 * bare fastify app; only the broker of the report consumer is a fake (it is not used).
 *
 * Invariants under test: `kumo_agents` counts the agents table by type and state, alive
 * judged as the API judges it, every known type present with zeros, and a failing read
 * leaves it empty without failing the scrape; heartbeat lag is the API's clock minus the
 * report's time, never negative; HTTP durations carry the route pattern or `unmatched`,
 * never the raw URL; RPC handling is observed by method and outcome.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { type Db, openDb, type Queryable } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { storeReports } from '../../api/db/reports.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import {
  AGENT_COUNT_TTL_MS,
  apiMetrics,
  createApiMetrics,
  installHttpMetrics,
  timedRpcHandler,
} from '../../api/metrics.ts';
import { AGENT_TYPE_NAMES, type AgentState } from '../../contracts/agents.ts';
import type { Message } from '../../contracts/messages.ts';
import { silentLogger } from '../../core/log.ts';
import { sampleOf } from '../helpers/metric-samples.ts';

const T0 = new Date('2026-11-22T10:00:00.000Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);
const log = silentLogger();

const state = (host: string, agent_type = 'DHCP agent'): AgentState => ({
  agent_type,
  binary: 'kumo-dhcp-agent',
  topic: 'dhcp_agent',
  host,
  configurations: {},
});

describe('kumo_agents', () => {
  let db: Db;
  before(async () => {
    db = openDb({ engine: 'sqlite', path: ':memory:' });
    await migrate(db);
    await db.transaction((tx) => storeReports(tx, [state('old')], T0, 30));
    await db.transaction((tx) => storeReports(tx, [state('new')], at(35), 30));
  });
  after(() => db.close());

  test('counts agents by type and state as the API judges alive; zeros for the other types', async () => {
    const m = createApiMetrics({ db, clock: { now: () => at(40) }, agentDownTime: 30, log });
    const text = await m.registry.metrics();
    assert.match(text, /^kumo_agents\{agent_type="DHCP agent",state="alive"\} 1$/m);
    assert.match(text, /^kumo_agents\{agent_type="DHCP agent",state="dead"\} 1$/m);
    assert.match(text, /^kumo_agents\{agent_type="L3 agent",state="alive"\} 0$/m);
    const lines = text.split('\n').filter((l) => l.startsWith('kumo_agents{'));
    assert.equal(lines.length, AGENT_TYPE_NAMES.length * 2);
    assert.match(text, /^process_cpu_user_seconds_total /m);
  });

  test('one count serves the scrapes of AGENT_COUNT_TTL_MS, then the table is counted again', async () => {
    let now = at(60);
    let counts = 0;
    const counting: Queryable = {
      query: (sql, p) => {
        counts++;
        return db.query(sql, p);
      },
    };
    const registry = new Registry();
    apiMetrics(registry, { db: counting, clock: { now: () => now }, agentDownTime: 30, log });
    await registry.metrics();
    now = new Date(at(60).getTime() + AGENT_COUNT_TTL_MS - 1);
    const cached = await registry.metrics();
    assert.equal(counts, 1);
    assert.match(cached, /^kumo_agents\{agent_type="DHCP agent",state="alive"\} 1$/m);
    now = new Date(at(60).getTime() + AGENT_COUNT_TTL_MS);
    const fresh = await registry.metrics();
    assert.equal(counts, 2);
    assert.match(fresh, /^kumo_agents\{agent_type="DHCP agent",state="alive"\} 0$/m);
    assert.match(fresh, /^kumo_agents\{agent_type="DHCP agent",state="dead"\} 2$/m);
  });

  test('a failing read leaves the gauge empty and the scrape whole', async () => {
    const broken = { query: async () => Promise.reject(new Error('database is down')) };
    const registry = new Registry();
    apiMetrics(registry, { db: broken, clock: { now: () => T0 }, agentDownTime: 30, log });
    const text = await registry.metrics();
    assert.match(text, /^# TYPE kumo_agents gauge$/m);
    assert.doesNotMatch(text, /^kumo_agents\{/m);
    assert.match(text, /^# TYPE kumo_heartbeat_lag_seconds histogram$/m);
  });

  test('heartbeat lag: the API clock minus the report time, clamped at 0', async () => {
    const m = apiMetrics(new Registry(), { db, clock: { now: () => T0 }, agentDownTime: 30, log });
    const reports = createReportConsumer({
      db,
      broker: { cast: async () => {} },
      log,
      clock: { now: () => at(100) },
      agentDownTime: 30,
      maxWaitMs: 1,
      heartbeatLag: m.heartbeatLag,
    });
    await reports.handle({ agent_state: state('lag1'), time: at(98).toISOString() });
    await reports.handle({ agent_state: state('lag2'), time: at(105).toISOString() });
    await reports.close();
    const { values } = await m.heartbeatLag.get();
    const of = (name: string) =>
      values.find((v) => v.metricName === name && v.labels.agent_type === 'DHCP agent')?.value;
    assert.equal(of('kumo_heartbeat_lag_seconds_count'), 2);
    assert.equal(of('kumo_heartbeat_lag_seconds_sum'), 2, 'a report from the future counts 0');
  });
});

describe('HTTP and RPC durations', () => {
  test('routes are labelled by their pattern; an unknown path is unmatched', async () => {
    const m = apiMetrics(new Registry(), {
      db: { query: async () => [] },
      clock: { now: () => T0 },
      agentDownTime: 30,
      log,
    });
    const app = Fastify();
    installHttpMetrics(app, m.httpDuration);
    app.get('/v2.0/networks/:id', async () => ({ network: {} }));
    await app.inject({ method: 'GET', url: '/v2.0/networks/8d1e3c' });
    await app.inject({ method: 'GET', url: '/v2.0/networks/77aa01' });
    await app.inject({ method: 'GET', url: '/no/such/thing/42' });
    await app.close();
    const count = (labels: Record<string, string>) => sampleOf(m.httpDuration, labels);
    assert.equal(await count({ method: 'GET', route: '/v2.0/networks/:id', code: '200' }), 2);
    assert.equal(await count({ method: 'GET', route: 'unmatched', code: '404' }), 1);
    const { values } = await m.httpDuration.get();
    assert.ok(values.every((v) => !String(v.labels.route).includes('8d1e3c')));
  });

  test('RPC handling is observed by method and outcome', async () => {
    const m = apiMetrics(new Registry(), {
      db: { query: async () => [] },
      clock: { now: () => T0 },
      agentDownTime: 30,
      log,
    });
    const handler = timedRpcHandler(async (message) => {
      if (message.method === 'get_network_info') throw new Error('no such network');
      return { networks: [] };
    }, m.rpcHandleDuration);
    const msg = (method: string) => ({ method, args: {} }) as unknown as Message;
    assert.deepEqual(await handler(msg('get_active_networks')), { networks: [] });
    await assert.rejects(handler(msg('get_network_info')), /no such network/);
    const count = (method: string, outcome: string) =>
      sampleOf(m.rpcHandleDuration, { method, outcome });
    assert.equal(await count('get_active_networks', 'ok'), 1);
    assert.equal(await count('get_network_info', 'error'), 1);
  });
});
