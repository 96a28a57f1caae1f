/**
 * LBaaS failover with fencing on the lab (test/helpers/lbaas-lab.ts), real kumo-api, agents
 * and haproxy, report_interval 1 and agent_down_time 3. The pool is placed on the LBaaS
 * host without the DHCP agent (the client namespace lives on the other one: the first host's
 * LBaaS agent is admin-down while the pool is made, then up again). That host dies whole
 * (agents SIGKILLed, ovs-vswitchd gone, its underlay link down): the sweep moves the pool to
 * the other agent (`neutron lb-agent-hosting-pool`) and the VIP answers again — the outage
 * is logged. The host comes back: its LBaaS agent tears its old copy down — the qlbaas
 * namespace, the pool's state directory, the VIP port's OVS row on that host's own ovsdb and
 * every haproxy running the pool's old config all gone — and a
 * fence monitor (test/helpers/fence-monitor.ts, sampling the VIP device on both hosts every
 * ~100 ms) shows the old copy never live while the host was down, and dead for good once the
 * old host's OVS agent synced; the old haproxy's frontend session count, sampled on its
 * stats socket every 50 ms until the teardown removes it, never moves past its value at the
 * kill (it answers nothing); requests made meanwhile all succeed.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import { showStat } from '../../host/haproxy/stats.ts';
import { tableRows } from '../helpers/cliff-table.ts';
import { waitFor } from '../helpers/env.ts';
import {
  type FenceMonitor,
  fenceViolations,
  liveHosts,
  startFenceMonitor,
  timeline,
} from '../helpers/fence-monitor.ts';
import type { LabHost } from '../helpers/lab.ts';
import { pidsWith } from '../helpers/lbaas-changes.ts';
import { buildLbaasLab, type LbaasLab } from '../helpers/lbaas-lab.ts';
import { makePool } from '../helpers/lbaas-lab-pool.ts';
import { getOk, type Obj, waitSettled } from '../helpers/lbaas-status.ts';
import { tally } from '../helpers/lbaas-traffic.ts';

interface LogLine {
  time: number;
  msg: string;
  startedAt?: number;
}

describe('LBaaS failover with fencing', { timeout: 300_000 }, () => {
  let l: LbaasLab;
  let client: LabHost;
  let hosting: LabHost;
  let poolId: string;
  let vip: Obj;
  let monitor: FenceMonitor;
  let origin = 0;
  let killedAt = 0;
  let oldSocket = '';
  let oldCfg = '';
  let sessionsAtKill: number | null = null;

  const setAdmin = async (h: LabHost, up: boolean) => {
    const q = `/v2.0/agents?binary=kumo-lbaas-agent&host=${l.hostName(h)}`;
    const [agent] = await getOk<Agent[]>(l.c, q, 'agents');
    assert.ok(agent, `an LBaaS agent on ${h.name}`);
    const res = await l.c.http('PUT', `/v2.0/agents/${agent.id}`, {
      agent: { admin_state_up: up },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  const vipUrl = () => `http://${vip.address}/`;
  const ovsSyncAfter = (h: LabHost, since: number) =>
    l.c
      .log(`kumo-ovs-agent-${l.hostName(h)}`)
      .split('\n')
      .filter((s) => s.startsWith('{'))
      .map((s) => JSON.parse(s) as LogLine)
      .find((x) => x.msg === 'l2 sync' && (x.startedAt ?? 0) >= since)?.time;
  const rel = (t: number) => ((t - origin) / 1000).toFixed(2);

  /** The old copy's frontend session count, sampled every 50 ms until its socket is gone. */
  const sessionsUntilGone = async (socket: string) => {
    const seen: number[] = [];
    for (;;) {
      const n = await sessions(socket);
      if (n === null) return seen;
      seen.push(n);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  /** The frontend session total on an haproxy's stats socket (null: nobody answers). */
  const sessions = async (socket: string) => {
    const rows = await showStat(socket).catch(() => null);
    if (!rows) return null;
    return rows.filter((r) => r.type === 'frontend').reduce((n, r) => n + r.stot, 0);
  };

  /** What is left of the pool's old copy on `h`: namespace, state dir, OVS row, haproxy. */
  const leftovers = async (h: LabHost) => [
    ...(existsSync(`/run/netns/${l.poolNetns(h, poolId)}`) ? ['the qlbaas namespace'] : []),
    ...(existsSync(l.poolStateDir(h, poolId)) ? [`state dir ${l.poolStateDir(h, poolId)}`] : []),
    ...((await vipDevice(h)) ? [`OVS Interface iface-id=${vip.port_id}`] : []),
    ...pidsWith(oldCfg).map((pid) => `haproxy pid ${pid} with ${oldCfg}`),
  ];

  /** The VIP port's device on `h` (its OVS Interface by iface-id). */
  const vipDevice = async (h: LabHost) => {
    const find = ['--bare', '--columns=name', 'find', 'Interface'];
    const out = await h.vsctl([...find, `external_ids:iface-id=${vip.port_id}`]);
    return out.trim();
  };

  before(async () => {
    l = await buildLbaasLab();
    [client, hosting] = l.lbHosts;
    await setAdmin(client, false);
    ({ poolId, vip } = await makePool(l, 'fopool', l.backends));
    await waitSettled(l.c, poolId, 60_000);
    assert.equal(
      await l.hostingHost(poolId),
      hosting,
      'the pool is on the host without the client',
    );
    await setAdmin(client, true);
    await waitFor('the VIP answers', () => l.curl(vipUrl()), 30_000, 200);
    const device = await waitFor('the VIP device on its host', () => vipDevice(hosting));
    monitor = startFenceMonitor({
      hosts: l.lbHosts.map((h) => ({
        name: h.name,
        vsctl: h.vsctl,
        exec: l.lab.exec,
        routerNetns: l.poolNetns(h, poolId),
        vswitchdPidfile: join(h.dir, 'ovs-vswitchd.pid'),
      })),
      device,
      address: vip.address as string,
      binding: async () => {
        const port = await getOk<Obj>(l.c, `/v2.0/ports/${vip.port_id}`, 'port');
        return l.lbHosts.find((h) => l.hostName(h) === port['binding:host_id'])?.name ?? null;
      },
    });
    origin = Date.now();
    await waitFor('the monitor sees the VIP live on its host', async () => {
      const last = monitor.samples.at(-1);
      return last !== undefined && liveHosts(last).join() === hosting.name;
    });
  });
  after(async () => {
    const samples = (await monitor?.stop()) ?? [];
    if (l)
      writeFileSync(join(l.c.dir.path, 'fence-timeline.txt'), timeline(samples, origin).join('\n'));
    await l?.destroy();
  });

  test('the hosting host dies: the pool moves to the other agent and the VIP answers again', async () => {
    const cfg = l.haproxyCfg(hosting, poolId);
    assert.ok(cfg, 'the hosting agent wrote haproxy.cfg');
    oldCfg = cfg;
    assert.equal((await leftovers(hosting)).length, 4, 'the copy is whole before the kill');
    oldSocket = join(dirname(cfg), 'haproxy.sock');
    await l.killHost(hosting);
    killedAt = Date.now();
    sessionsAtKill = await sessions(oldSocket);
    assert.ok(sessionsAtKill !== null, 'the old haproxy still runs on the dead host');
    await waitFor(
      'the pool moved',
      async () => (await l.hostingHost(poolId)) === client,
      30_000,
      200,
    );
    const rows = tableRows(await l.neutronOk('lb-agent-hosting-pool', poolId));
    assert.deepEqual(
      rows.map((r) => r.host),
      [l.hostName(client)],
    );
    await waitFor('the VIP answers again', () => l.curl(vipUrl(), { maxTime: 1 }), 60_000, 100);
    console.log(`VIP outage after the host died: ${Date.now() - killedAt} ms`);
    await waitSettled(l.c, poolId, 30_000);
    assert.deepEqual(
      Object.keys(tally(await Promise.all([1, 2, 3, 4].map(() => l.curl(vipUrl()))))).sort(),
      ['vm1', 'vm2'],
    );
  });

  test('the host comes back: its old copy is torn down and never answers; the fence held', async () => {
    const revivedAt = Date.now();
    const loop = l.loop(vipUrl());
    const sampled = sessionsUntilGone(oldSocket);
    await l.reviveHost(hosting);
    await waitFor(
      'the old copy removed',
      async () => (await leftovers(hosting)).length === 0,
      60_000,
      200,
    ).catch(() => undefined);
    assert.deepEqual(await leftovers(hosting), [], 'nothing of the old copy left');
    const closed = await waitFor(
      'the old host OVS agent synced',
      () => ovsSyncAfter(hosting, revivedAt),
      30_000,
    );
    const mark = loop.answered();
    await waitFor('requests answered after the sync', () => loop.answered() >= mark + 10);
    const r = await loop.stop();
    console.log(
      `during the revival: ${r.bodies.length} requests, ${JSON.stringify(tally(r.bodies))}`,
    );
    assert.deepEqual(r.failures, []);
    const sessions = await sampled;
    console.log(`the old copy's sessions while the host came back: ${sessions.join(' ')}`);
    assert.ok(sessions.length > 0, 'the old copy was sampled before its teardown');
    assert.ok(
      sessions.every((n) => n === sessionsAtKill),
      `the old copy took no connection (${sessionsAtKill} at the kill)`,
    );
    const samples = monitor.samples.filter((s) => s.t0 >= killedAt);
    const tl = `revived +${rel(revivedAt)}s, OVS sync +${rel(closed)}s:\n${timeline(samples, origin).join('\n')}`;
    const down = samples.filter((s) => s.t1 < revivedAt);
    assert.ok(down.length > 0, 'samples while the host was down');
    assert.ok(
      down.every((s) => s.state[hosting.name] === 'dead'),
      `not live while down; ${tl}`,
    );
    assert.deepEqual(fenceViolations(samples, { from: revivedAt, to: closed }), [], tl);
    const later = samples.filter((s) => s.t0 > closed);
    assert.ok(later.length > 0 && later.every((s) => s.state[hosting.name] === 'dead'), tl);
    assert.deepEqual(liveHosts(samples.at(-1) as (typeof samples)[number]), [client.name], tl);
  });
});
