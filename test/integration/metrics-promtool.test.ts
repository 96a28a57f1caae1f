/**
 * Every Kumo metric, each with at least one sample, served by core/metrics.ts serveMetrics
 * and checked by Prometheus's own linter (`promtool check metrics`, Debian's prometheus
 * package).
 *
 * Invariant under test: what a scrape of a Kumo daemon returns passes promtool with no
 * lint at all (names, units, `_total` counters, help texts, text format); without promtool
 * the test fails and says so, it never skips.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { storeReports } from '../../api/db/reports.ts';
import { apiMetrics } from '../../api/metrics.ts';
import { silentLogger } from '../../core/log.ts';
import {
  createAgentMetrics,
  createRegistry,
  type MetricsServer,
  serveMetrics,
} from '../../core/metrics.ts';

const PROMTOOL = '/usr/bin/promtool';
const db = openDb({ engine: 'sqlite', path: ':memory:' });
let server: MetricsServer | undefined;

/** A registry holding every metric of every daemon kind, each with a sample. */
async function everyMetric(registry: Registry): Promise<string[]> {
  const log = silentLogger();
  const agent = createAgentMetrics(registry);
  const api = apiMetrics(registry, {
    db,
    clock: { now: () => new Date() },
    agentDownTime: 30,
    log,
  });
  agent.amqp.rpcCallDuration.observe({ method: 'get_network_info', outcome: 'ok' }, 0.004);
  agent.amqp.reconnects.inc();
  agent.amqp.publishFailures.inc({ reason: 'nacked' });
  agent.reconcile.duration.observe({ kind: 'network', outcome: 'success' }, 0.2);
  agent.reconcile.retries.inc({ kind: 'network' });
  agent.reconcile.stateReportRetries.inc();
  agent.reconcile.watchQueue(() => ({ queued: 1, running: 2, retrying: 0 }));
  agent.steps.applied.inc({ tool: 'ip' });
  agent.steps.dnsmasqReloads.inc({ how: 'sighup' });
  agent.steps.haproxyReloads.inc();
  agent.steps.iptablesRestores.inc();
  agent.links.ovsdbReconnects.inc();
  agent.links.libvirtReconnects.inc();
  api.heartbeatLag.observe({ agent_type: 'DHCP agent' }, 0.012);
  api.httpDuration.observe({ method: 'GET', route: '/v2.0/networks/:id', code: '200' }, 0.003);
  api.rpcHandleDuration.observe({ method: 'report_status', outcome: 'error' }, 0.001);
  return registry
    .getMetricsAsArray()
    .map((m) => m.name)
    .filter((n) => n.startsWith('kumo_'));
}

/** promtool's verdict on `text`: its exit status and everything it printed. */
function promtool(text: string) {
  const probe = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' });
  assert.ok(
    !probe.error,
    `promtool is needed to lint the metrics (Debian package prometheus): ${PROMTOOL}: ${probe.error?.message}`,
  );
  const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(lint.error, undefined);
  return { status: lint.status, output: `${lint.stdout}${lint.stderr}` };
}

/** What serveMetrics answers for `registry`. */
async function scrape(registry: Registry): Promise<string> {
  server = await serveMetrics(registry, { host: '127.0.0.1', port: 0, log: silentLogger() });
  try {
    return await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  } finally {
    await server.close();
    server = undefined;
  }
}

before(async () => {
  await migrate(db);
  const dhcp = { binary: 'kumo-dhcp-agent', topic: 'dhcp_agent', configurations: {} };
  await db.transaction((tx) =>
    storeReports(tx, [{ ...dhcp, agent_type: 'DHCP agent', host: 'net1' }], new Date(), 30),
  );
});

after(async () => {
  await server?.close();
  await db.close();
});

test('a scrape of every Kumo metric passes promtool check metrics with no lint', async () => {
  const registry = new Registry();
  const names = await everyMetric(registry);
  assert.equal(names.length, 17, `every Kumo metric is registered: ${names.join(', ')}`);
  const text = await scrape(registry);
  for (const name of names) {
    const sample = new RegExp(`^${name}(_total|_count)?(\\{[^}]*\\})? [0-9.e+-]+$`, 'm');
    assert.match(text, sample, `${name} has a sample`);
  }
  assert.match(text, /^kumo_agents\{agent_type="DHCP agent",state="alive"\} 1$/m);
  assert.deepEqual(promtool(text), { status: 0, output: '' });
});

test("a daemon's whole scrape (with the process metrics) passes promtool with no lint", async () => {
  const registry = createRegistry();
  await everyMetric(registry);
  const text = await scrape(registry);
  assert.match(text, /^process_cpu_user_seconds_total /m);
  assert.match(text, /^nodejs_active_handles\{/m);
  assert.doesNotMatch(text, /^nodejs_active_\w+_total/m);
  assert.deepEqual(promtool(text), { status: 0, output: '' });
});
