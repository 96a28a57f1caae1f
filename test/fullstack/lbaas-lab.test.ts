/**
 * LBaaS v1 on the lab (test/helpers/lbaas-lab.ts: two LBaaS hosts, backends vm1, vm2
 * answering their names on port 80, requests from the qdhcp namespace), real kumo-api,
 * agents and haproxy. One lab, the seed's walkthrough and what follows it, in order: the
 * pool, members, monitor and VIP made with the real `neutron lb-*` commands go
 * PENDING_CREATE → ACTIVE and the VIP alternates vm1, vm2; the running haproxy checks each
 * member as the monitor says (`inter 3s fall 3`, `timeout check 3s`), so a stopped backend
 * turns INACTIVE by haproxy's own rule (the time is logged), gets no request, and is ACTIVE
 * again when back; SOURCE_IP persistence, weights, LEAST_CONNECTIONS and lb_method SOURCE_IP;
 * the default security group's tcp 80 rule gates the VIP. Reloads: lbaas-lab-reload.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { showFields, tableRows } from '../helpers/cliff-table.ts';
import { waitFor } from '../helpers/env.ts';
import { hostedCfg, pidsWith } from '../helpers/lbaas-changes.ts';
import type { Backend, LbaasLab } from '../helpers/lbaas-lab.ts';
import { allowIngress, buildLbaasLab } from '../helpers/lbaas-lab.ts';
import { putOk, waitMember, waitSettled } from '../helpers/lbaas-status.ts';
import { tally } from '../helpers/lbaas-traffic.ts';

/** The seed's monitor: --delay 3 --max-retries 3; the lab's stats_interval is 1 s. */
const HEALTH_BOUND_MS = (3 * 3 + 1) * 1000;
/** A generous deadline for the wait (the bound itself is haproxy's rule, asserted in its config). */
const WAIT_MS = HEALTH_BOUND_MS + 30_000;

describe('LBaaS v1 on the lab: the seed walkthrough and beyond', { timeout: 600_000 }, () => {
  let l: LbaasLab;
  let vm1: Backend;
  let vm2: Backend;
  let poolId: string;
  let vipUrl: string;
  const memberIds = new Map<string, string>();

  const requests = async (n: number, path = '/') => {
    const bodies: string[] = [];
    for (let i = 0; i < n; i++) bodies.push(await l.curl(`${vipUrl}${path}`));
    return bodies;
  };
  const cfgText = async () => readFileSync(await hostedCfg(l, poolId), 'utf8');

  before(async () => {
    l = await buildLbaasLab({ backends: 2, ingress: 'http' });
    [vm1, vm2] = l.backends as [Backend, Backend];
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

  test('health: haproxy runs the monitor as inter 3s fall 3; vm2 stopped turns INACTIVE, gets no request; back, ACTIVE', async () => {
    const cfg = await hostedCfg(l, poolId);
    assert.ok(pidsWith(cfg).length > 0, 'a running haproxy uses this haproxy.cfg');
    const text = readFileSync(cfg, 'utf8');
    assert.match(text, /^\s*timeout check 3s$/m, text);
    for (const b of [vm1, vm2]) {
      const server = new RegExp(`^\\s*server \\S+ ${b.address.replaceAll('.', '\\.')}:80 .*$`, 'm');
      const line = text.match(server)?.[0] ?? '';
      assert.match(line, / check inter 3s fall 3( |$)/, `${b.name}: ${line}`);
    }
    await vm2.stop();
    const down = await waitMember(l.c, poolId, vm2.address, 'INACTIVE', WAIT_MS);
    console.log(`vm2 INACTIVE after ${down} ms (bound ${HEALTH_BOUND_MS} ms)`);
    const shown = tableRows(await l.neutronOk('lb-member-list')).find(
      (r) => r.address === vm2.address,
    );
    assert.equal(shown?.status, 'INACTIVE');
    assert.deepEqual(tally(await requests(10)), { vm1: 10 });
    await vm2.start();
    const up = await waitMember(l.c, poolId, vm2.address, 'ACTIVE', WAIT_MS);
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
    await putOk(l.c, `/v2.0/lb/vips/${v.vip?.id}`, { vip: { session_persistence: null } });
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
    await putOk(l.c, `/v2.0/lb/members/${memberIds.get('vm1')}`, { member: { weight: 1 } });
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
    await putOk(l.c, `/v2.0/lb/pools/${poolId}`, { pool: { lb_method: 'ROUND_ROBIN' } });
    await waitSettled(l.c, poolId);
  });
  test('lb_method SOURCE_IP: haproxy balances by source, one client sticks to one member', async () => {
    await l.neutronOk('lb-pool-update', 'mypool', '--lb-method', 'SOURCE_IP');
    const v = await waitSettled(l.c, poolId);
    assert.equal(v.pool.lb_method, 'SOURCE_IP');
    assert.match(await cfgText(), /^\s*balance source$/m);
    const counts = tally(await requests(12));
    assert.equal(
      Object.keys(counts).length,
      1,
      `one member for one client: ${JSON.stringify(counts)}`,
    );
    await putOk(l.c, `/v2.0/lb/pools/${poolId}`, { pool: { lb_method: 'ROUND_ROBIN' } });
    await waitSettled(l.c, poolId);
    assert.match(await cfgText(), /^\s*balance roundrobin$/m);
  });

  test('security groups filter the VIP: without the tcp 80 rule it does not answer; back, it does', async () => {
    const del = await l.c.http('DELETE', `/v2.0/security-group-rules/${l.ingressRuleId}`);
    assert.equal(del.status, 204, JSON.stringify(del.body));
    const refused = () =>
      l.curl(vipUrl, { connectTimeout: 1, maxTime: 2 }).then(
        () => false,
        () => true,
      );
    await waitFor('the VIP stops answering the client', refused, 30_000, 200);
    assert.ok(await refused(), 'still filtered');
    await allowIngress(l.c, l.defaultGroup, 'http');
    const bodies = await waitFor('the VIP answers again', () => requests(4), 30_000, 200);
    assert.deepEqual(tally(bodies), { vm1: 2, vm2: 2 });
  });
});
