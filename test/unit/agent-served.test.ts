/**
 * agents/lib/served.ts, the status and resync the DHCP and L3 agents share: a resync
 * enqueues the union of the API's list and the agent's own state once each, drops the
 * statuses of resources outside it (only of its own kind) and forgets applied revisions;
 * a status lists the rejected parts, logs when they change, and is ERROR with the reason
 * after a failure.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resyncServed, servedStatus } from '../../agents/lib/served.ts';
import type { RejectedPart, ResourceStatus } from '../../contracts/status.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import { createStatusReporter } from '../../core/status.ts';

const reporterWithSent = async (keys: string[]) => {
  const reporter = createStatusReporter<ResourceStatus>({ send: async () => {} });
  for (const key of keys) {
    const [resource, id] = key.split(':') as ['router', string];
    reporter.set(key, { resource, id, status: 'ACTIVE' });
  }
  await reporter.flush();
  return reporter;
};

test('resync: API list ∪ owned enqueued once each; unclaimed statuses of the kind dropped', async () => {
  const reporter = await reporterWithSent(['router:a', 'router:gone', 'network:n1']);
  const enqueued: string[] = [];
  let forgotten = 0;
  resyncServed({
    resource: 'router',
    active: ['a', 'b'],
    owned: new Set(['b', 'c']),
    reporter,
    reconciler: { forget: () => void forgotten++ },
    enqueue: (resource, id) => void enqueued.push(`${resource}:${id}`),
  });
  assert.deepEqual(enqueued, ['router:a', 'router:b', 'router:c']);
  assert.deepEqual(reporter.sentKeys().sort(), ['network:n1', 'router:a']);
  assert.equal(forgotten, 1);
});

test('status: ACTIVE with the rejected parts, logged when they change; ERROR with the reason', async () => {
  const reporter = await reporterWithSent([]);
  const logged: string[] = [];
  const log = {
    ...silentLogger(),
    warn: (_o: unknown, m: string) => void logged.push(m),
  } as Logger;
  const served: string[] = [];
  const status = servedStatus<string, { rejected: RejectedPart[] } | null>(
    reporter,
    log,
    'router',
    (id, fetched, d) => void served.push(`${id}:${fetched}:${d ? 'served' : 'none'}`),
  );
  const rejected: RejectedPart[] = [{ resource: 'route', id: 'route-x', reason: 'bad' }];
  assert.deepEqual(status.ok('f', { rejected }, 'r1'), {
    resource: 'router',
    id: 'r1',
    status: 'ACTIVE',
    rejected,
  });
  assert.deepEqual(status.ok('f', null, 'r2'), { resource: 'router', id: 'r2', status: 'ACTIVE' });
  assert.deepEqual(served, ['r1:f:served', 'r2:f:none']);
  assert.deepEqual(logged, ['served without these parts']);
  assert.deepEqual(status.failed(new Error('boom\nsecond line'), 'r1'), {
    resource: 'router',
    id: 'r1',
    status: 'ERROR',
    reason: 'boom second line',
  });
});
