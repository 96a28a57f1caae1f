/**
 * core/agent.ts's reconcile metrics, with a fake Broker passed in (our own lifecycle logic;
 * the real broker is covered by the integration suites).
 *
 * Invariants under test: every reconcile run is observed once by its kind (the resource
 * part of the key; `resync` for the resync) and outcome (success, error); a failure the
 * queue will retry counts one retry of its kind; the queue depth gauge shows the waiting
 * retry and forgets the queue once the agent stopped; a refused report sent again counts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { Message } from '../../contracts/messages.ts';
import { createAgent, kindOfKey } from '../../core/agent.ts';
import { compileConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/log.ts';
import { reconcileMetrics } from '../../core/metrics.ts';
import { fakeBroker } from '../helpers/fake-broker.ts';
import { sampleOf } from '../helpers/metric-samples.ts';

async function until(check: () => Promise<boolean>, what: string) {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('kindOfKey: the resource part of a key; resync for the resync key', () => {
  assert.equal(kindOfKey('network:5f1c'), 'network');
  assert.equal(kindOfKey('l2:sync'), 'l2');
  assert.equal(kindOfKey('resync'), 'resync');
});

test('reconciles are observed by kind and outcome; a failure to retry counts a retry; report retries count', async () => {
  const registry = new Registry();
  const metrics = reconcileMetrics(registry);
  const fake = fakeBroker(1);
  const agent = createAgent({
    kind: 'dhcp',
    config: compileConfig('[DEFAULT]\nhost = h1\n[agent]\nreport_interval = 5\n'),
    broker: fake.broker,
    log: silentLogger(),
    metrics,
    hooks: {
      configurations: async () => ({}),
      resync: async () => {},
      reconcile: async (_resource, id) => {
        if (id === 'bad') throw new Error('dnsmasq refused the config');
      },
    },
  });
  await agent.start();
  try {
    await fake.deliver({ method: 'hint', args: { resource: 'network', id: 'good' } } as Message);
    await fake.deliver({ method: 'hint', args: { resource: 'network', id: 'bad' } } as Message);
    const duration = (kind: string, outcome: string) =>
      sampleOf(metrics.duration, { kind, outcome });
    await until(
      async () =>
        (await duration('resync', 'success')) === 1 &&
        (await duration('network', 'success')) === 1 &&
        (await duration('network', 'error')) >= 1,
      'three reconciles observed',
    );
    // The bad network keeps failing: every failure so far was scheduled for a retry.
    const errors = await duration('network', 'error');
    assert.equal(await sampleOf(metrics.retries, { kind: 'network' }), errors);
    assert.equal(await sampleOf(metrics.retries, { kind: 'resync' }), 0);
    assert.equal(await sampleOf(metrics.stateReportRetries), 1);
    // One scrape: the bad network waits out its backoff, or is being retried right now.
    const text = await registry.metrics();
    const depth = (state: string) =>
      Number(
        new RegExp(`^kumo_reconcile_queue_depth\\{state="${state}"\\} (\\d+)$`, 'm').exec(
          text,
        )?.[1],
      );
    assert.equal(depth('retrying') + depth('running'), 1, text);
    assert.equal(depth('queued'), 0);
  } finally {
    await agent.stop();
  }
  // The stopped agent's queue is no longer watched: the gauge reads 0 again.
  const stopped = await registry.metrics();
  assert.match(stopped, /^kumo_reconcile_queue_depth\{state="retrying"\} 0$/m);
  assert.match(stopped, /^kumo_reconcile_queue_depth\{state="running"\} 0$/m);
});
