/**
 * core/agent.ts's report_state path with a fake Broker passed in (pure logic: the real
 * broker paths are covered in test/integration/amqp-cluster.test.ts and the fullstack
 * broker-failover test). Invariant: a report the broker refuses with a TransientError is
 * sent again within its interval, and only an interval of refusals is logged as failed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { createAgent } from '../../core/agent.ts';
import type { Broker } from '../../core/amqp.ts';
import { compileConfig } from '../../core/config.ts';
import { fakeBroker } from '../helpers/fake-broker.ts';

function recordingLog() {
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => warnings.push(s) });
  return { log, warnings };
}

function agentWith(broker: Broker, reportInterval: number) {
  const config = compileConfig(
    `[DEFAULT]\nhost = h1\n[agent]\nreport_interval = ${reportInterval}\n`,
  );
  const { log, warnings } = recordingLog();
  const agent = createAgent({
    kind: 'ovs',
    config,
    broker,
    log,
    hooks: { configurations: async () => ({}), resync: async () => {} },
  });
  return { agent, warnings };
}

test('a refused report is sent again within its interval: it arrives, with start_flag, and nothing is logged', async () => {
  const fake = fakeBroker(3);
  const { agent, warnings } = agentWith(fake.broker, 5);
  await agent.report();
  assert.equal(fake.reports.length, 1);
  const sent = fake.reports[0] as { agent_state: { start_flag?: boolean } };
  assert.equal(sent.agent_state.start_flag, true);
  assert.equal(fake.tries.length, 4);
  assert.ok(
    fake.tries.every((ms, i) => ms <= 5000 && (i === 0 || ms < (fake.tries[i - 1] as number))),
    `each try waits only for what is left of the interval: ${fake.tries.join(', ')}`,
  );
  assert.deepEqual(warnings, []);
});

test('a broker refusing for a whole interval: the report is logged as failed and start_flag kept for the next', async () => {
  const fake = fakeBroker(1_000_000);
  const { agent, warnings } = agentWith(fake.broker, 1);
  await agent.report();
  assert.equal(fake.reports.length, 0);
  assert.ok(fake.tries.length >= 2, `retried within the interval: ${fake.tries.length} tries`);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] as string, /state report failed/);
  fake.accept();
  await agent.report();
  const sent = fake.reports[0] as { agent_state: { start_flag?: boolean } };
  assert.equal(sent.agent_state.start_flag, true);
});
