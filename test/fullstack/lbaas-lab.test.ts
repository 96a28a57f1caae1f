/**
 * LBaaS v1 on the lab (test/helpers/lbaas-lab.ts: two LBaaS hosts, backends vm1..vm3
 * answering their names on port 80, requests from the qdhcp namespace), real kumo-api,
 * agents and haproxy. One lab, the seed's walkthrough and what follows it, in order: the
 * pool, members, monitor and VIP made with the real `neutron lb-*` commands go
 * PENDING_CREATE → ACTIVE and the VIP alternates vm1, vm2; a stopped backend turns INACTIVE
 * within delay × max_retries (+ one stats period) and gets no request, and ACTIVE again when
 * back; SOURCE_IP persistence, weights and LEAST_CONNECTIONS; twenty member changes and a
 * kill -9 of the agent under a request loop lose no request; injected config is refused
 * with haproxy.cfg byte-identical.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { showFields, tableRows } from '../helpers/cliff-table.ts';
import { runCommand } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import type { Backend, LbaasLab } from '../helpers/lbaas-lab.ts';
import { buildLbaasLab } from '../helpers/lbaas-lab.ts';
import { injectionCases } from '../helpers/lbaas-refusals.ts';
import { type Obj, poolView, waitMember, waitSettled } from '../helpers/lbaas-status.ts';
import { type RequestLoop, tally } from '../helpers/lbaas-traffic.ts';

/** The seed's monitor: --delay 3 --max-retries 3; the lab's stats_interval is 1 s. */
const HEALTH_BOUND_MS = (3 * 3 + 1) * 1000;
/** Generous slack on top of the bound (a loaded 2-core machine). */
const SLACK_MS = 20_000;

describe('LBaaS v1 on the lab: the seed walkthrough and beyond', { timeout: 600_000 }, () => {
  let l: LbaasLab;
  let vm1: Backend;
  let vm2: Backend;
  let vm3: Backend;
  let poolId: string;
  let vipUrl: string;
  const memberIds = new Map<string, string>();

  const requests = async (n: number, path = '/') => {
    const bodies: string[] = [];
    for (let i = 0; i < n; i++) bodies.push(await l.curl(`${vipUrl}${path}`));
    return bodies;
  };
  const put = async (path: string, body: unknown) => {
    const res = await l.c.http('PUT', path, body);
    assert.equal(res.status, 200, `PUT ${path}: ${JSON.stringify(res.body)}`);
  };
  const cfgPath = async () => {
    const h = await l.hostingHost(poolId);
    assert.ok(h, 'the pool is hosted');
    const path = l.haproxyCfg(h, poolId);
    assert.ok(path, 'the hosting agent wrote haproxy.cfg');
    return path;
  };

  before(async () => {
    l = await buildLbaasLab({ backends: 3 });
    [vm1, vm2, vm3] = l.backends as [Backend, Backend, Backend];
  });
  after(async () => {
    await l?.destroy();
  });

  test('the seed walkthrough with neutron lb-*: PENDING_CREATE → ACTIVE, round robin vm1/vm2, stats, hosting agent', async () => {
    const sub = l.subnet.id;
    const pool = showFields(
      await l.neutronOk(
        ...['lb-pool-create', '--lb-method', 'ROUND_ROBIN', '--name', 'mypool'],
        ...['--protocol', 'HTTP', '--subnet-id', sub],
      ),
    );
    assert.equal(pool.status, 'PENDING_CREATE');
    assert.equal(pool.lb_method, 'ROUND_ROBIN');
    poolId = pool.id as string;
    for (const b of [vm1, vm2]) {
      const m = showFields(
        await l.neutronOk(
          'lb-member-create',
          '--address',
          b.address,
          '--protocol-port',
          '80',
          'mypool',
        ),
      );
      assert.equal(m.status, 'PENDING_CREATE');
      memberIds.set(b.name, m.id as string);
    }
    const hm = showFields(
      await l.neutronOk(
        ...['lb-healthmonitor-create', '--delay', '3', '--type', 'HTTP'],
        ...['--max-retries', '3', '--timeout', '3'],
      ),
    );
    assert.match(
      await l.neutronOk('lb-healthmonitor-associate', hm.id as string, 'mypool'),
      /Associated health monitor/,
    );
    const vip = showFields(
      await l.neutronOk(
        ...['lb-vip-create', '--name', 'myvip', '--protocol-port', '80'],
        ...['--protocol', 'HTTP', '--subnet-id', sub, 'mypool'],
      ),
    );
    assert.equal(vip.status, 'PENDING_CREATE');
    vipUrl = `http://${vip.address}`;

    const row = async (cmd: string, key: string, value: string) =>
      tableRows(await l.neutronOk(cmd)).find((r) => r[key] === value);
    await waitFor(
      'pool, members and VIP ACTIVE in the neutron tables',
      async () =>
        (await row('lb-pool-list', 'name', 'mypool'))?.status === 'ACTIVE' &&
        (await row('lb-member-list', 'address', vm1.address))?.status === 'ACTIVE' &&
        (await row('lb-member-list', 'address', vm2.address))?.status === 'ACTIVE' &&
        (await row('lb-vip-list', 'name', 'myvip'))?.status === 'ACTIVE',
      60_000,
      500,
    );
    const vipRow = await row('lb-vip-list', 'name', 'myvip');
    assert.equal(vipRow?.address, vip.address);

    const bodies = await waitFor('the VIP answers', () => requests(10), 30_000, 500);
    assert.deepEqual(tally(bodies), { vm1: 5, vm2: 5 }, bodies.join(' '));
    for (let i = 1; i < bodies.length; i++)
      assert.notEqual(bodies[i], bodies[i - 1], `alternate: ${bodies.join(' ')}`);

    await waitFor(
      'lb-pool-stats counts the requests',
      async () => {
        const s = showFields(await l.neutronOk('lb-pool-stats', 'mypool'));
        return (
          Number(s.total_connections) >= 10 && Number(s.bytes_out) > 0 && Number(s.bytes_in) > 0
        );
      },
      30_000,
      500,
    );
    const hosting = await l.hostingHost(poolId);
    assert.ok(hosting);
    const agents = tableRows(await l.neutronOk('lb-agent-hosting-pool', 'mypool'));
    assert.deepEqual(
      agents.map((a) => [a.host, a.alive]),
      [[l.hostName(hosting), ':-)']],
    );
  });

  test('health: vm2 stopped turns INACTIVE within delay × max_retries + one stats period, every request goes to vm1; back, ACTIVE', async () => {
    await vm2.stop();
    const down = await waitMember(l.c, poolId, vm2.address, 'INACTIVE', HEALTH_BOUND_MS + SLACK_MS);
    console.log(`vm2 INACTIVE after ${down} ms (bound ${HEALTH_BOUND_MS} ms)`);
    const shown = tableRows(await l.neutronOk('lb-member-list')).find(
      (r) => r.address === vm2.address,
    );
    assert.equal(shown?.status, 'INACTIVE');
    assert.deepEqual(tally(await requests(10)), { vm1: 10 });
    await vm2.start();
    const up = await waitMember(l.c, poolId, vm2.address, 'ACTIVE', HEALTH_BOUND_MS + SLACK_MS);
    console.log(`vm2 ACTIVE again after ${up} ms`);
    assert.deepEqual(tally(await requests(10)), { vm1: 5, vm2: 5 });
  });

  test('SOURCE_IP persistence sticks the client to one member; cleared, round robin again', async () => {
    await l.neutronOk(
      'lb-vip-update',
      'myvip',
      '--session-persistence',
      'type=dict',
      'type=SOURCE_IP',
    );
    const v = await waitSettled(l.c, poolId);
    assert.deepEqual(v.vip?.session_persistence, { type: 'SOURCE_IP' });
    const stuck = tally(await requests(10));
    assert.equal(Object.keys(stuck).length, 1, JSON.stringify(stuck));
    await put(`/v2.0/lb/vips/${v.vip?.id}`, { vip: { session_persistence: null } });
    await waitSettled(l.c, poolId);
    assert.deepEqual(tally(await requests(10)), { vm1: 5, vm2: 5 });
  });

  test('weights: 3 to 1 under ROUND_ROBIN gives vm1 three requests in four', async () => {
    await l.neutronOk('lb-member-update', memberIds.get('vm1') as string, '--weight', '3');
    await waitSettled(l.c, poolId);
    const counts = tally(await requests(40));
    console.log(`weights 3:1 over 40 requests: ${JSON.stringify(counts)}`);
    assert.ok(Math.abs((counts.vm1 ?? 0) - 30) <= 2, JSON.stringify(counts));
    assert.equal((counts.vm1 ?? 0) + (counts.vm2 ?? 0), 40);
    await put(`/v2.0/lb/members/${memberIds.get('vm1')}`, { member: { weight: 1 } });
    await waitSettled(l.c, poolId);
  });

  test('LEAST_CONNECTIONS: while one member holds a connection, new requests go to the other', async () => {
    await l.neutronOk('lb-pool-update', 'mypool', '--lb-method', 'LEAST_CONNECTIONS');
    const v = await waitSettled(l.c, poolId);
    assert.equal(v.pool.lb_method, 'LEAST_CONNECTIONS');
    const held = l.curl(`${vipUrl}/hold?ms=10000`, { maxTime: 20 });
    await waitFor(
      'the held connection is counted',
      async () => {
        const s = showFields(await l.neutronOk('lb-pool-stats', 'mypool'));
        return Number(s.active_connections) >= 1;
      },
      7000,
      200,
    );
    const others = tally(await requests(6));
    const busy = await held;
    assert.deepEqual(others, { [busy === 'vm1' ? 'vm2' : 'vm1']: 6 }, `held by ${busy}`);
    await put(`/v2.0/lb/pools/${poolId}`, { pool: { lb_method: 'ROUND_ROBIN' } });
    await waitSettled(l.c, poolId);
  });
  /** Runs `fn` once the loop has answered; the loop stops whatever happens. */
  const whileLooping = async <T>(loop: RequestLoop, fn: () => Promise<T>): Promise<T> => {
    try {
      await waitFor('the loop runs', () => loop.answered() >= 3);
      return await fn();
    } catch (e) {
      await loop.stop();
      throw e;
    }
  };

  /** Twenty member changes through the API, each served (settled, or gone from haproxy.cfg). */
  const twentyChanges = async () => {
    const m1 = `/v2.0/lb/members/${memberIds.get('vm1')}`;
    const m2 = `/v2.0/lb/members/${memberIds.get('vm2')}`;
    let third = '';
    const add = async () => {
      const res = await l.c.http('POST', '/v2.0/lb/members', {
        member: { pool_id: poolId, address: vm3.address, protocol_port: 80 },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      third = (res.body as { member: Obj }).member.id;
    };
    const remove = async () => {
      const res = await l.c.http('DELETE', `/v2.0/lb/members/${third}`);
      assert.equal(res.status, 204, JSON.stringify(res.body));
      const path = await cfgPath();
      await waitFor(
        'vm3 gone from haproxy.cfg',
        () => !readFileSync(path, 'utf8').includes(`${vm3.address}:80`),
      );
    };
    const changes: (() => Promise<unknown>)[] = [
      () => put(m1, { member: { weight: 2 } }),
      () => put(m2, { member: { admin_state_up: false } }),
      () => put(m2, { member: { admin_state_up: true } }),
      add,
      () => put(`/v2.0/lb/members/${third}`, { member: { weight: 3 } }),
      () => put(m1, { member: { weight: 1 } }),
      () => put(m1, { member: { admin_state_up: false } }),
      () => put(m1, { member: { admin_state_up: true } }),
      () => put(`/v2.0/lb/members/${third}`, { member: { admin_state_up: false } }),
      remove,
    ];
    for (const change of [...changes, ...changes]) {
      await change();
      await waitSettled(l.c, poolId);
    }
    return changes.length * 2;
  };

  test('hitless reload: twenty member changes under a steady request loop, zero failed requests', async () => {
    const loop = l.loop(`${vipUrl}/`);
    const n = await whileLooping(loop, async () => {
      const count = await twentyChanges();
      await sleep(500);
      return count;
    });
    const r = await loop.stop();
    console.log(
      `hitless: ${n} changes, ${r.bodies.length} requests in ${r.elapsed} ms, ${JSON.stringify(tally(r.bodies))}`,
    );
    assert.equal(n, 20);
    assert.deepEqual(r.failures, []);
    assert.ok((tally(r.bodies).vm3 ?? 0) > 0, 'the third member served while it was there');
  });

  test('kill -9 of the LBaaS agent under a request loop loses no request; the restarted agent adopts haproxy', async () => {
    const h = await l.hostingHost(poolId);
    assert.ok(h);
    const netns = l.poolNetns(h, poolId);
    const before = await haproxyPids(netns);
    assert.ok(before.length > 0, 'haproxy runs in the pool namespace');
    const loop = l.loop(`${vipUrl}/`);
    await whileLooping(loop, async () => {
      await l.killLbaas(h);
      await sleep(2000);
      l.startLbaas(h);
      await sleep(7000);
      assert.deepEqual(
        await haproxyPids(netns),
        before,
        'the restarted agent left haproxy running',
      );
      await put(`/v2.0/lb/members/${memberIds.get('vm1')}`, { member: { weight: 2 } });
      await waitSettled(l.c, poolId);
    });
    const r = await loop.stop();
    console.log(`kill -9: ${r.bodies.length} requests in ${r.elapsed} ms`);
    assert.deepEqual(r.failures, []);
    assert.match(
      readFileSync(await cfgPath(), 'utf8'),
      new RegExp(`${vm1.address.replaceAll('.', '\\.')}:80 weight 2`),
    );
  });

  const haproxyPids = async (netns: string) => {
    const out = (await runCommand(['ip', 'netns', 'pids', netns])).stdout;
    return out
      .split('\n')
      .filter(Boolean)
      .filter((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'haproxy')
      .sort();
  };

  test('config injection is refused: 400 naming the field, nothing changed, haproxy.cfg byte-identical', async () => {
    const path = await cfgPath();
    const cfg = readFileSync(path);
    const view = await poolView(l.c, poolId);
    const hmId = view.monitors[0]?.monitor_id as string;
    const monitor = await l.c.http('GET', `/v2.0/lb/health_monitors/${hmId}`);
    for (const k of injectionCases({
      poolId,
      vipId: view.vip?.id as string,
      hmId,
      subnetId: l.subnet.id,
    })) {
      const res = await l.c.http(k.method, k.path, k.body);
      assert.equal(res.status, 400, `${k.why}: ${JSON.stringify(res.body)}`);
      assert.match(JSON.stringify(res.body), new RegExp(k.field), `${k.why}: names ${k.field}`);
    }
    const cli = await l.neutron('lb-healthmonitor-update', hmId, '--url-path', '/a b');
    assert.notEqual(cli.code, 0, 'neutron lb-healthmonitor-update --url-path "/a b" fails');
    await sleep(1500);
    assert.deepEqual(await poolView(l.c, poolId), view, 'the pool, VIP and members unchanged');
    assert.deepEqual(
      await l.c.http('GET', `/v2.0/lb/health_monitors/${hmId}`),
      monitor,
      'the monitor unchanged',
    );
    assert.ok(readFileSync(path).equals(cfg), 'haproxy.cfg byte-identical');
    await put(`/v2.0/lb/health_monitors/${hmId}`, {
      health_monitor: { expected_codes: '200-204' },
    });
    await waitSettled(l.c, poolId);
    await waitFor('a valid change does reach haproxy.cfg', () => !readFileSync(path).equals(cfg));
  });
});
