/**
 * LBaaS v1 reloads on the lab (test/helpers/lbaas-lab.ts), real kumo-api, agents and haproxy,
 * one pool made through the API (vm1, vm2, the seed's monitor, a VIP). A request held open
 * through a reload is answered by the old haproxy, which exits after it, while a burst of new
 * connections during the reload all succeed; twenty member changes under concurrent load are
 * twenty reloads (a new haproxy pid each) with no failed request; a kill -9 of the agent
 * under a request loop loses no request and the restarted agent adopts haproxy; injected
 * config is refused with haproxy.cfg byte-identical. Waits are on state (pids, the pool's
 * status, the agent's report and logged resyncs), never on a fixed sleep.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import { showStat } from '../../host/haproxy/stats.ts';
import { waitFor } from '../helpers/env.ts';
import type { LabHost } from '../helpers/lab.ts';
import {
  haproxyPids,
  hostedCfg,
  newHaproxyPid,
  twentyMemberChanges,
  waitResyncedSince,
  whileLooping,
} from '../helpers/lbaas-changes.ts';
import type { Backend, LbaasLab } from '../helpers/lbaas-lab.ts';
import { buildLbaasLab } from '../helpers/lbaas-lab.ts';
import { makePool } from '../helpers/lbaas-lab-pool.ts';
import { injectionCases } from '../helpers/lbaas-refusals.ts';
import { getOk, poolView, putOk, waitSettled } from '../helpers/lbaas-status.ts';
import { tally } from '../helpers/lbaas-traffic.ts';

describe('LBaaS v1 reloads on the lab', { timeout: 300_000 }, () => {
  let l: LbaasLab;
  let vm3: Backend;
  let hosting: LabHost;
  let poolId: string;
  let vipUrl: string;
  let memberIds: Map<string, string>;
  const netns = () => l.poolNetns(hosting, poolId);
  const pidfile = () => join(l.poolStateDir(hosting, poolId), 'haproxy.pid');
  const member = (name: string) => `/v2.0/lb/members/${memberIds.get(name)}`;

  before(async () => {
    l = await buildLbaasLab({ backends: 3 });
    vm3 = l.backends[2] as Backend;
    const p = await makePool(l, 'rlpool', l.backends.slice(0, 2), { monitor: true });
    ({ poolId, memberIds } = p);
    vipUrl = `http://${p.vip.address}/`;
    await waitSettled(l.c, poolId, 60_000);
    hosting = (await l.hostingHost(poolId)) as LabHost;
    assert.ok(hosting, 'the pool is hosted');
    await waitFor('the VIP answers', () => l.curl(vipUrl), 30_000, 200);
  });
  after(async () => {
    await l?.destroy();
  });

  test('a request held through a reload is answered; the old haproxy exits after it; a burst meanwhile all succeeds', async () => {
    const [old] = await haproxyPids(netns());
    assert.ok(old, 'haproxy runs in the pool namespace');
    const socket = join(l.poolStateDir(hosting, poolId), 'haproxy.sock');
    const held = l.curl(`${vipUrl}hold?ms=5000`, { maxTime: 30 });
    await waitFor('the held request is in haproxy', async () =>
      (await showStat(socket)).some((r) => r.type === 'frontend' && r.scur >= 1),
    );
    await putOk(l.c, member('vm1'), { member: { weight: 4 } });
    const burst = Promise.allSettled(
      Array.from({ length: 20 }, () => l.curl(vipUrl, { maxTime: 10 })),
    );
    const fresh = await newHaproxyPid(pidfile(), new Set([old]));
    assert.ok(
      (await haproxyPids(netns())).includes(old),
      'the old haproxy drains the held request',
    );
    assert.deepEqual(
      (await burst).filter((r) => r.status === 'rejected'),
      [],
      'every new connection during the reload answered',
    );
    assert.match(await held, /^vm[12]$/, 'the held request answered 200 with its member');
    await waitFor('the old haproxy exits', async () => !(await haproxyPids(netns())).includes(old));
    assert.deepEqual(await haproxyPids(netns()), [fresh]);
    await putOk(l.c, member('vm1'), { member: { weight: 1 } });
    await waitSettled(l.c, poolId);
  });

  test('hitless: twenty member changes under concurrent load are twenty reloads, zero failed requests', async () => {
    const seen = new Set(await haproxyPids(netns()));
    const reloads: string[] = [];
    const load = l.loops(vipUrl, 4);
    const n = await whileLooping(load, () =>
      twentyMemberChanges(
        l,
        poolId,
        [memberIds.get('vm1') as string, memberIds.get('vm2') as string],
        vm3,
        async () => void reloads.push(await newHaproxyPid(pidfile(), seen)),
      ),
    );
    const mark = load.answered();
    await waitFor('the load runs on after the last change', () => load.answered() >= mark + 8);
    const r = await load.stop();
    console.log(
      `hitless: ${n} changes, ${reloads.length} reloads, ${r.bodies.length} requests in ${r.elapsed} ms, ${JSON.stringify(tally(r.bodies))}`,
    );
    assert.equal(n, 20);
    assert.equal(new Set(reloads).size, 20, `a new haproxy pid per change: ${reloads.join(' ')}`);
    assert.deepEqual(r.failures, []);
    assert.ok((tally(r.bodies).vm3 ?? 0) > 0, 'the third member served while it was there');
  });

  test('kill -9 of the LBaaS agent under a request loop loses no request; the restarted agent adopts haproxy', async () => {
    const before = await haproxyPids(netns());
    assert.equal(before.length, 1, 'one haproxy in the pool namespace');
    const agentRow = async () => {
      const q = `/v2.0/agents?binary=kumo-lbaas-agent&host=${l.hostName(hosting)}`;
      return (await getOk<Agent[]>(l.c, q, 'agents'))[0];
    };
    const startedAt = (await agentRow())?.started_at;
    const loop = l.loop(vipUrl);
    await whileLooping(loop, async () => {
      await l.killLbaas(hosting);
      const mark = loop.answered();
      await waitFor('requests answered with the agent dead', () => loop.answered() >= mark + 5);
      const restarted = Date.now();
      l.startLbaas(hosting);
      await waitFor('the restarted agent reported', async () => {
        const a = await agentRow();
        return a?.alive && a.started_at !== startedAt;
      });
      await waitResyncedSince(l, hosting, restarted);
      assert.deepEqual(
        await haproxyPids(netns()),
        before,
        'the restarted agent left haproxy running',
      );
      await putOk(l.c, member('vm1'), { member: { weight: 3 } });
      await waitSettled(l.c, poolId);
    });
    const r = await loop.stop();
    console.log(`kill -9: ${r.bodies.length} requests in ${r.elapsed} ms`);
    assert.deepEqual(r.failures, []);
    const vm1 = (l.backends[0] as Backend).address.replaceAll('.', '\\.');
    assert.match(
      readFileSync(await hostedCfg(l, poolId), 'utf8'),
      new RegExp(`${vm1}:80 weight 3`),
    );
  });

  test('config injection is refused: 400 naming the field, nothing changed, haproxy.cfg byte-identical', async () => {
    const path = await hostedCfg(l, poolId);
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
    await waitResyncedSince(l, hosting, Date.now());
    assert.deepEqual(await poolView(l.c, poolId), view, 'the pool, VIP and members unchanged');
    assert.deepEqual(
      await l.c.http('GET', `/v2.0/lb/health_monitors/${hmId}`),
      monitor,
      'the monitor unchanged',
    );
    assert.ok(readFileSync(path).equals(cfg), 'haproxy.cfg byte-identical after a full resync');
    await putOk(l.c, `/v2.0/lb/health_monitors/${hmId}`, {
      health_monitor: { expected_codes: '200-204' },
    });
    await waitSettled(l.c, poolId);
    await waitFor('a valid change does reach haproxy.cfg', () => !readFileSync(path).equals(cfg));
  });
});
