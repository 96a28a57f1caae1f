/**
 * The real `neutron` CLI (python3-neutronclient 8.1: `--os-token --os-url` with
 * OS_AUTH_TYPE=admin_token, no Keystone) against one kumo-api (SQLite, listening on
 * loopback; both engines are the api-lbaas suites' concern): the seed's walkthrough
 * (lb-pool-create --lb-method ROUND_ROBIN --protocol HTTP, two lb-member-create,
 * lb-healthmonitor-create --delay 3 --type HTTP --max-retries 3 --timeout 3,
 * lb-healthmonitor-associate, lb-vip-create), then every lb-*-list, -show and -update,
 * lb-pool-stats, lb-healthmonitor-disassociate and every lb-*-delete.
 *
 * Invariant under test: each command's effect is read back through the API (the client's
 * exit status alone proves nothing), and a refused command changes nothing.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Network, Subnet } from '../../contracts/network.ts';
import { type RunResult, runCommand } from '../helpers/cluster.ts';
import { lbaasApp, type Obj } from '../helpers/lbaas-api.ts';
import { ok } from '../helpers/os-clients.ts';

describe('LBaaS v1 through the neutron CLI', { timeout: 180_000 }, () => {
  const h = lbaasApp('sqlite', { listen: true });
  const w = {} as { sub: Subnet; pool: Obj; m1: Obj; m2: Obj; hm: Obj; vip: Obj };

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
  /** A command's `-f json` output. */
  const json = async <T = Obj>(...args: string[]): Promise<T> =>
    JSON.parse(ok(await neutron(...args, '-f', 'json'), `neutron ${args.join(' ')}`)) as T;
  const admin = () => h.tokens.admin;
  const show = (collection: string, id: unknown) => h.show(collection, id, admin());
  const ids = (list: Obj[]) => list.map((x) => String(x.id)).sort();

  before(async () => {
    const net = await h.made<Network>(admin(), 'network', { name: 'lbnet' });
    w.sub = await h.made<Subnet>(admin(), 'subnet', {
      network_id: net.id,
      name: 'lbsub',
      cidr: '10.77.0.0/24',
      ip_version: 4,
    });
  });

  test('the seed’s walkthrough: pool, two members, an HTTP monitor, its association, a VIP', async () => {
    const created = await json(
      'lb-pool-create',
      '--name',
      'web',
      '--lb-method',
      'ROUND_ROBIN',
      '--protocol',
      'HTTP',
      '--subnet-id',
      'lbsub',
    );
    w.pool = await show('pools', created.id);
    assert.deepEqual(created, w.pool, 'neutron -f json shows what the API holds');
    assert.deepEqual(
      [w.pool.status, w.pool.lb_method, w.pool.subnet_id],
      ['PENDING_CREATE', 'ROUND_ROBIN', w.sub.id],
    );
    const m1 = await json(
      'lb-member-create',
      '--address',
      '10.77.0.11',
      '--protocol-port',
      '80',
      'web',
    );
    const m2 = await json(
      'lb-member-create',
      '--address',
      '10.77.0.12',
      '--protocol-port',
      '80',
      '--weight',
      '2',
      'web',
    );
    w.m1 = await show('members', m1.id);
    w.m2 = await show('members', m2.id);
    assert.deepEqual([w.m1.protocol_port, w.m2.weight, w.m2.pool_id], [80, 2, w.pool.id]);
    const hm = await json(
      'lb-healthmonitor-create',
      '--delay',
      '3',
      '--type',
      'HTTP',
      '--max-retries',
      '3',
      '--timeout',
      '3',
    );
    w.hm = await show('health_monitors', hm.id);
    assert.deepEqual([w.hm.delay, w.hm.timeout, w.hm.max_retries, w.hm.url_path], [3, 3, 3, '/']);
    ok(await neutron('lb-healthmonitor-associate', String(hm.id), 'web'), 'associate');
    assert.deepEqual((await show('pools', w.pool.id)).health_monitors, [hm.id]);
    const vip = await json(
      'lb-vip-create',
      '--name',
      'vip',
      '--protocol-port',
      '80',
      '--protocol',
      'HTTP',
      '--subnet-id',
      'lbsub',
      'web',
    );
    w.vip = await show('vips', vip.id);
    const port = (await h.call(admin(), 'GET', `/v2.0/ports/${w.vip.port_id}`)).body.port as Obj;
    assert.deepEqual([port.device_owner, port.device_id], ['neutron:LOADBALANCER', w.pool.id]);
    assert.equal((await show('pools', w.pool.id)).vip_id, vip.id);
  });

  test('every list, show, update and lb-pool-stats', async () => {
    assert.deepEqual(ids(await json<Obj[]>('lb-pool-list')), [String(w.pool.id)]);
    assert.deepEqual(ids(await json<Obj[]>('lb-member-list')), ids([w.m1, w.m2]));
    assert.deepEqual(ids(await json<Obj[]>('lb-vip-list')), [String(w.vip.id)]);
    assert.deepEqual(ids(await json<Obj[]>('lb-healthmonitor-list')), [String(w.hm.id)]);
    assert.deepEqual(await json('lb-pool-show', 'web'), await show('pools', w.pool.id));
    assert.deepEqual(await json('lb-member-show', String(w.m1.id)), await show('members', w.m1.id));
    assert.deepEqual(await json('lb-vip-show', 'vip'), await show('vips', w.vip.id));
    assert.deepEqual(
      await json('lb-healthmonitor-show', String(w.hm.id)),
      await show('health_monitors', w.hm.id),
    );
    ok(await neutron('lb-pool-update', 'web', '--lb-method', 'LEAST_CONNECTIONS'), 'pool-update');
    assert.equal((await show('pools', w.pool.id)).lb_method, 'LEAST_CONNECTIONS');
    ok(await neutron('lb-member-update', String(w.m1.id), '--weight', '5'), 'member-update');
    assert.equal((await show('members', w.m1.id)).weight, 5);
    ok(await neutron('lb-vip-update', 'vip', '--connection-limit', '10'), 'vip-update');
    assert.equal((await show('vips', w.vip.id)).connection_limit, 10);
    ok(await neutron('lb-healthmonitor-update', String(w.hm.id), '--delay', '5'), 'hm-update');
    assert.equal((await show('health_monitors', w.hm.id)).delay, 5);
    assert.deepEqual(await json('lb-pool-stats', 'web'), {
      active_connections: 0,
      bytes_in: 0,
      bytes_out: 0,
      total_connections: 0,
    });
  });

  test('a refused command changes nothing; disassociate and every delete', async () => {
    const before = await h.state();
    const bad = await neutron(
      'lb-healthmonitor-create',
      '--delay',
      '3',
      '--type',
      'HTTP',
      '--max-retries',
      '3',
      '--timeout',
      '3',
      '--expected-codes',
      '200 ,202',
    );
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr + bad.stdout, /expected_codes/);
    const inUse = await neutron('lb-pool-delete', 'web');
    assert.notEqual(inUse.code, 0);
    assert.match(inUse.stderr + inUse.stdout, /is still in use/);
    assert.deepEqual(await h.state(), before);
    ok(await neutron('lb-healthmonitor-disassociate', String(w.hm.id), 'web'), 'disassociate');
    assert.deepEqual((await show('pools', w.pool.id)).health_monitors, []);
    ok(await neutron('lb-vip-delete', 'vip'), 'vip-delete');
    assert.equal((await h.call(admin(), 'GET', `/v2.0/ports/${w.vip.port_id}`)).status, 404);
    ok(await neutron('lb-member-delete', String(w.m1.id)), 'member-delete');
    ok(await neutron('lb-healthmonitor-delete', String(w.hm.id)), 'hm-delete');
    ok(await neutron('lb-pool-delete', 'web'), 'pool-delete');
    for (const table of [
      'lb_pools',
      'lb_members',
      'lb_vips',
      'lb_health_monitors',
      'lb_pool_monitors',
    ])
      assert.deepEqual(await h.rows(`SELECT * FROM ${table}`), [], `${table} is empty`);
  });
});
