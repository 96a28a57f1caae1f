/**
 * core/metrics.ts: the per-daemon registry and metric sets, the /metrics listener, the
 * port offsets, and the two [DEFAULT] keys that place the listeners.
 *
 * Invariants under test: each factory registers its names in the registry it is given
 * (never the global one); serveMetrics answers `GET /metrics` in Prometheus's text format,
 * 404 elsewhere and 405 for other methods; a port it cannot bind rejects with an error
 * naming `[DEFAULT] metrics_port` and the address; every daemon has its own offset, and the
 * largest offset bounds metrics_port; bad values of either key name the key.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { register as globalRegister, Registry } from 'prom-client';
import { AGENT_TYPES } from '../../contracts/agents.ts';
import { ConfigError, compileConfig, REQUIRED_KEYS } from '../../core/config.ts';
import { silentLogger } from '../../core/log.ts';
import {
  createAgentMetrics,
  METRICS_PORT_OFFSETS,
  type MetricsBinary,
  metricsAddress,
  serveMetrics,
  startMetrics,
} from '../../core/metrics.ts';

const AGENT_NAMES = [
  'kumo_rpc_call_duration_seconds',
  'kumo_amqp_reconnects_total',
  'kumo_amqp_publish_failures_total',
  'kumo_reconcile_duration_seconds',
  'kumo_reconcile_queue_depth',
  'kumo_reconcile_retries_total',
  'kumo_state_report_retries_total',
  'kumo_steps_applied_total',
  'kumo_dnsmasq_reloads_total',
  'kumo_haproxy_reloads_total',
  'kumo_iptables_restore_runs_total',
  'kumo_ovsdb_reconnects_total',
  'kumo_libvirt_reconnects_total',
];

/** prom-client keeps counters' names without `_total`. */
const registered = (r: Registry) =>
  new Set(r.getMetricsAsArray().map((m) => m.name.replace(/(_total)?$/, '')));

const log = silentLogger();

describe('metric sets', () => {
  test('createAgentMetrics registers every agent metric and the process metrics in its own registry', async () => {
    const m = createAgentMetrics();
    const names = registered(m.registry);
    for (const name of AGENT_NAMES) assert.ok(names.has(name.replace(/_total$/, '')), name);
    assert.ok(names.has('process_cpu_user_seconds'), 'default process metrics');
    assert.equal(globalRegister.getMetricsAsArray().length, 0, 'the global registry stays empty');
    const text = await m.registry.metrics();
    assert.match(text, /^kumo_reconcile_queue_depth\{state="queued"\} 0$/m);
  });

  test('two daemons in one process do not collide: each has its own registry', () => {
    const a = createAgentMetrics(new Registry());
    const b = createAgentMetrics(new Registry());
    a.steps.applied.inc({ tool: 'ip' });
    assert.notEqual(a.registry, b.registry);
  });

  test('the queue depth gauge sums the watched queues, and forgets an unwatched one', async () => {
    const m = createAgentMetrics(new Registry());
    const unwatch = m.reconcile.watchQueue(() => ({ queued: 2, running: 1, retrying: 3 }));
    m.reconcile.watchQueue(() => ({ queued: 1, running: 0, retrying: 0 }));
    let text = await m.registry.metrics();
    assert.match(text, /^kumo_reconcile_queue_depth\{state="queued"\} 3$/m);
    assert.match(text, /^kumo_reconcile_queue_depth\{state="retrying"\} 3$/m);
    unwatch();
    text = await m.registry.metrics();
    assert.match(text, /^kumo_reconcile_queue_depth\{state="retrying"\} 0$/m);
  });
});

async function get(port: number, path: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

describe('serveMetrics', () => {
  test('GET /metrics answers the text format; other paths 404, other methods 405', async () => {
    const m = createAgentMetrics(new Registry());
    m.amqp.reconnects.inc();
    const server = await serveMetrics(m.registry, { host: '127.0.0.1', port: 0, log });
    try {
      const ok = await get(server.port, '/metrics');
      assert.equal(ok.status, 200);
      assert.equal(ok.type, m.registry.contentType);
      assert.match(ok.type ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(ok.body, /^kumo_amqp_reconnects_total 1$/m);
      assert.match(ok.body, /^# TYPE kumo_reconcile_duration_seconds histogram$/m);
      assert.equal((await get(server.port, '/metrics?x=1')).status, 200);
      assert.equal((await get(server.port, '/')).status, 404);
      assert.equal((await get(server.port, '/metricsx')).status, 404);
      assert.equal((await get(server.port, '/metrics', 'POST')).status, 405);
      assert.equal((await get(server.port, '/metrics', 'DELETE')).status, 405);
    } finally {
      await server.close();
    }
  });

  test('a taken port rejects with an error naming [DEFAULT] metrics_port and the address', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      await assert.rejects(
        serveMetrics(new Registry(), { host: '127.0.0.1', port, log }),
        (e: Error) => {
          assert.ok(e instanceof ConfigError);
          assert.ok(e.message.startsWith('[DEFAULT] metrics_port'), e.message);
          assert.ok(e.message.includes(`127.0.0.1:${port}`), e.message);
          assert.match(e.message, /EADDRINUSE/);
          return true;
        },
      );
      // Through the config: the message also says which offset was added, for which daemon.
      const config = compileConfig(`[DEFAULT]\nmetrics_port = ${port - 3}\n`);
      await assert.rejects(startMetrics(config, 'kumo-l3-agent', new Registry(), log), (e: Error) =>
        e.message.startsWith(`[DEFAULT] metrics_port (${port - 3} + 3 for kumo-l3-agent)`),
      );
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  test('startMetrics does nothing when metrics_port is 0 (the default)', async () => {
    const config = compileConfig('');
    assert.equal(await startMetrics(config, 'kumo-api', new Registry(), log), undefined);
  });
});

describe('port offsets and config', () => {
  test('every daemon has its own offset; kumo-api 0, the agents 1…6 in the documented order', () => {
    const daemons = Object.keys(REQUIRED_KEYS).sort();
    assert.deepEqual(Object.keys(METRICS_PORT_OFFSETS).sort(), daemons);
    assert.deepEqual(METRICS_PORT_OFFSETS, {
      'kumo-api': 0,
      'kumo-ovs-agent': 1,
      'kumo-dhcp-agent': 2,
      'kumo-l3-agent': 3,
      'kumo-lbaas-agent': 4,
      'kumo-volume-agent': 5,
      'kumo-compute-agent': 6,
    });
    for (const t of AGENT_TYPES) assert.ok(t.binary in METRICS_PORT_OFFSETS, t.binary);
  });

  test('metrics_port is bounded so that the largest offset stays a valid port', () => {
    const largest = Math.max(...Object.values(METRICS_PORT_OFFSETS));
    const top = 65535 - largest;
    const config = compileConfig(`[DEFAULT]\nmetrics_port = ${top}\n`);
    assert.equal(metricsAddress(config, 'kumo-compute-agent')?.port, 65535);
    assert.throws(() => compileConfig(`[DEFAULT]\nmetrics_port = ${top + 1}\n`), ConfigError);
  });

  test('defaults: metrics off, bound to 127.0.0.1; set, each daemon adds its offset', () => {
    const off = compileConfig('');
    assert.equal(off.DEFAULT.metrics_port, 0);
    assert.equal(off.DEFAULT.metrics_bind_host, '127.0.0.1');
    assert.equal(metricsAddress(off, 'kumo-api'), undefined);
    const on = compileConfig('[DEFAULT]\nmetrics_port = 9180\nmetrics_bind_host = 0.0.0.0\n');
    for (const [binary, offset] of Object.entries(METRICS_PORT_OFFSETS))
      assert.deepEqual(metricsAddress(on, binary as MetricsBinary), {
        host: '0.0.0.0',
        port: 9180 + offset,
      });
  });

  test('bad values name the key', () => {
    const refuses = (text: string, key: string) =>
      assert.throws(
        () => compileConfig(text),
        (e: Error) => e instanceof ConfigError && e.message.startsWith(`[DEFAULT] ${key}:`),
      );
    for (const bad of ['-1', '65530', 'abc', '91.5', ''])
      refuses(`[DEFAULT]\nmetrics_port = ${bad}\n`, 'metrics_port');
    for (const bad of ['localhost', '256.1.1.1', '::1', '10.0.0'])
      refuses(`[DEFAULT]\nmetrics_bind_host = ${bad}\n`, 'metrics_bind_host');
  });
});
