/**
 * The LBaaS agent's `pool` kind through the kit's reconciler, with a FakeRunner and a
 * FakeOvsdb passed in (no module patching): what a new pool runs, exactly and in order, up
 * to a config `haproxy -c` refuses, which is reported ERROR with haproxy's stderr; and the
 * pool status rule: ACTIVE with the served revision only when the API asked (ack_wanted) or
 * members were left out, nothing otherwise, the key dropped for a pool answered null; a
 * pool without a VIP runs nothing on the host but is still acknowledged.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { poolKind, poolStatus } from '../../agents/lbaas/agent.ts';
import { type DesiredPool, desiredPool } from '../../agents/lbaas/desired.ts';
import { type LbPool, parseLbPoolInfo } from '../../contracts/lbaas.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler } from '../../core/reconciler.ts';
import { createStatusReporter } from '../../core/status.ts';
import { tempDir } from '../helpers/env.ts';
import { FakeOvsdb } from '../helpers/fake-ovsdb.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';
import { member, POOL, poolOf, settingsOf } from '../helpers/lbaas-fixtures.ts';

const tmp = tempDir('kumo-lbaas-agent-');
after(() => tmp.cleanup());
const S = settingsOf(join(tmp.path, 'lbaas'));
const NS = `klt-qlbaas-${POOL}`;
const DIR = join(S.stateRoot, POOL);

function harness() {
  const sent: ResourceStatus[][] = [];
  const reporter = createStatusReporter<ResourceStatus>({
    send: async (changes) => void sent.push(changes.map((c) => c.value)),
  });
  const runner = new FakeRunner();
  const ovsdb = new FakeOvsdb();
  let pool: LbPool | null = poolOf();
  let members: unknown[] | undefined;
  const kind = poolKind({
    settings: S,
    runner,
    log: silentLogger(),
    ovsdb: async () => ovsdb,
    getPool: async () =>
      parseLbPoolInfo({
        pool: pool && { ...structuredClone(pool), ...(members ? { members } : {}) },
      }),
    netnsExists: async () => false,
    status: poolStatus(reporter),
  });
  const reconciler = createReconciler({ log: silentLogger(), kinds: { pool: kind } });
  return {
    sent,
    runner,
    ovsdb,
    reporter,
    set(p: LbPool | null, raw?: unknown[]) {
      pool = p;
      members = raw;
    },
    reconcile: () => reconciler.reconcile('pool', POOL),
  };
}

describe('kumo-lbaas-agent pool kind (FakeRunner, FakeOvsdb)', () => {
  test('a new pool runs exactly: namespace, move, one batch, haproxy -c; its refusal is ERROR', async () => {
    const h = harness();
    const d = desiredPool(poolOf(), S) as DesiredPool;
    h.runner.expect(
      { argv: ['ip', 'netns', 'add', NS] },
      { argv: ['ip', 'link', 'set', 'dev', d.port.device, 'netns', NS] },
      {
        argv: ['ip', '-n', NS, '-batch', '-'],
        stdin: [
          'link set dev lo up',
          `link set dev ${d.port.device} address fa:16:3e:80:00:64`,
          `link set dev ${d.port.device} mtu 1450`,
          `link set dev ${d.port.device} up`,
          `addr replace 10.80.0.100/24 dev ${d.port.device}`,
          'route replace 0.0.0.0/0 via 10.80.0.1 proto static',
          '',
        ].join('\n'),
      },
      {
        argv: ['haproxy', '-c', '-f', `${DIR}/haproxy.cfg`],
        fail: { exitCode: 1, stderr: '[ALERT] parsing: unknown keyword' },
      },
    );
    await assert.rejects(h.reconcile());
    h.runner.verify();
    const plugs = h.ovsdb.transactions.filter((t) => t.some((op) => op.op === 'insert'));
    assert.equal(plugs.length, 1, 'one plug transaction');
    assert.match(JSON.stringify(plugs[0]), new RegExp(`"iface-id","${d.port.portId}"`));
    assert.equal(readFileSync(join(DIR, 'host'), 'utf8'), 'lbaas-test-host\n');
    assert.equal(readFileSync(join(DIR, 'haproxy.cfg'), 'utf8'), d.haproxy.config);
    assert.ok(!existsSync(join(DIR, 'haproxy.loaded')), 'nothing loaded');
    assert.equal(h.sent.length, 1);
    const [status] = h.sent[0] as ResourceStatus[];
    assert.equal(status?.status, 'ERROR');
    assert.match(status?.reason ?? '', /^haproxy exited 1: \[ALERT\] parsing: unknown keyword$/);
  });

  test('a pool without a VIP: nothing on the host, its revision acknowledged ACTIVE', async () => {
    const h = harness();
    h.set(poolOf({ id: POOL, vip: null, revision_number: 7 }));
    await h.reconcile();
    h.runner.verify();
    assert.deepEqual(h.sent, [[{ resource: 'pool', id: POOL, status: 'ACTIVE', revision: 7 }]]);
    await h.reconcile();
    assert.equal(h.sent.length, 1, 'the same revision is no change');
  });

  test('members left out go with the status even when nothing was pending', async () => {
    const h = harness();
    const bad = { ...member('9c4d5e6f-7081-4c2d-9e3f-4a5b6c7d8e9f', '10.80.0.13'), weight: 999 };
    h.set(poolOf({ vip: null, ack_wanted: false }), [member(POOL, '10.80.0.11'), bad]);
    await h.reconcile();
    const [status] = h.sent[0] as ResourceStatus[];
    assert.equal(status?.status, 'ACTIVE');
    assert.equal(status?.revision, 3);
    assert.deepEqual(
      status?.rejected?.map((r) => r.id),
      ['9c4d5e6f-7081-4c2d-9e3f-4a5b6c7d8e9f'],
    );
  });

  test('nothing pending: nothing sent; a pool answered null drops its status key', async () => {
    const h = harness();
    h.set(poolOf({ vip: null, ack_wanted: false }));
    await h.reconcile();
    assert.deepEqual(h.sent, []);
    h.set(poolOf({ vip: null }));
    await h.reconcile();
    assert.deepEqual(h.reporter.sentKeys(), [`pool:${POOL}`]);
    h.set(poolOf({ vip: null, ack_wanted: false, revision_number: 4 }));
    await h.reconcile();
    assert.equal(h.sent.length, 1, 'an acknowledged pool with nothing new sends nothing');
    h.set(null);
    await h.reconcile();
    h.runner.verify();
    assert.deepEqual(h.reporter.sentKeys(), []);
    assert.equal(h.sent.length, 1);
  });
});
