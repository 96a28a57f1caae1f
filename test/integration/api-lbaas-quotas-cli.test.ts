/**
 * LBaaS v1 quotas through the real `neutron` CLI (python3-neutronclient 8.1, admin token,
 * no Keystone) against one kumo-api (SQLite, listening on loopback; both engines are
 * api-lbaas-quotas.test.ts's concern): quota-default-show, quota-update --pool --vip
 * --member, quota-show, an lb-pool-create over the limit, and quota-delete.
 *
 * neutronclient's `--health-monitor` sends `healthmonitor`, a key Neutron does not know
 * (its resource is `health_monitor`): Neutron refuses it and so do we, changing nothing;
 * `--health_monitor=N` (an extra value spec) sets it.
 *
 * Invariant under test: each command's effect is read back through the API, and a refused
 * command changes nothing.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Subnet } from '../../contracts/network.ts';
import { type RunResult, runCommand } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { lbaasApp, type Obj } from '../helpers/lbaas-api.ts';
import { ok } from '../helpers/os-clients.ts';

describe('LBaaS v1 quotas through the neutron CLI', { timeout: 120_000 }, () => {
  const h = lbaasApp('sqlite', { listen: true });
  const B = h.projects.B;
  const w = {} as { sub: Subnet };

  const neutron = (...args: string[]): Promise<RunResult> =>
    runCommand(
      [
        'neutron',
        '--os-token',
        h.adminToken,
        '--os-url',
        `http://127.0.0.1:${h.api.port}`,
        ...args,
      ],
      { OS_AUTH_TYPE: 'admin_token' },
    );
  const json = async (...args: string[]): Promise<Obj> =>
    JSON.parse(ok(await neutron(...args, '-f', 'json'), `neutron ${args.join(' ')}`)) as Obj;
  const quota = async () => {
    const r = await h.call(h.tokens.admin, 'GET', `/v2.0/quotas/${B}`);
    assert.equal(r.status, 200);
    return r.body.quota as Obj;
  };
  const lbKeys = (q: Obj) => [q.pool, q.vip, q.member, q.health_monitor];

  before(async () => {
    w.sub = (await h.netWithSubnet(h.tokens.B)).sub;
  });

  test('quota-default-show, quota-update, quota-show carry the LBaaS keys', async () => {
    assert.deepEqual(lbKeys(await json('quota-default-show', '--tenant-id', B)), [10, 10, -1, -1]);
    const updated = await json(
      'quota-update',
      '--tenant-id',
      B,
      '--pool',
      '1',
      '--vip',
      '2',
      '--member',
      '5',
    );
    assert.deepEqual(lbKeys(updated), [1, 2, 5, -1]);
    assert.deepEqual(lbKeys(await json('quota-show', '--tenant-id', B)), [1, 2, 5, -1]);
    assert.deepEqual(lbKeys(await quota()), [1, 2, 5, -1]);
    const hm = ['quota-update', '--tenant-id', B, '--member', '6', '--health_monitor=4'];
    ok(await neutron(...hm), `neutron ${hm.join(' ')}`);
    assert.deepEqual(lbKeys(await json('quota-show', '--tenant-id', B)), [1, 2, 6, 4]);
    assert.deepEqual(lbKeys(await quota()), [1, 2, 6, 4]);
  });

  test('--health-monitor (healthmonitor) is refused as Neutron refuses it; pools stop at the limit', async () => {
    const before = await quota();
    const bad = await neutron('quota-update', '--tenant-id', B, '--health-monitor', '9');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Unrecognized attribute\(s\) 'healthmonitor'/);
    assert.deepEqual(await quota(), before, 'the refused update changed nothing');

    const create = ['lb-pool-create', '--lb-method', 'ROUND_ROBIN', '--protocol', 'HTTP'];
    const args = [...create, '--subnet-id', w.sub.id, '--tenant-id', B];
    const pool = await json(...args, '--name', 'first');
    assert.equal(pool.tenant_id, B);
    await waitFor('the scheduler to mark the pool unhosted', async () => {
      const [row] = await h.rows('SELECT status_description FROM lb_pools WHERE id = ?', [pool.id]);
      return row?.status_description !== null;
    });
    const state = await h.state();
    const over = await neutron(...args, '--name', 'second');
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /Quota exceeded for resources: \['pool'\]/);
    assert.deepEqual(await h.state(), state, 'the refused create changed nothing');

    ok(await neutron('quota-delete', '--tenant-id', B), 'neutron quota-delete');
    assert.deepEqual(lbKeys(await quota()), [10, 10, -1, -1]);
  });
});
