/**
 * Automatic L3 failover with fencing on the multi-host lab (test/helpers/l3-lab.ts: two
 * network hosts, one compute-side host with an endpoint behind the router, a floating IP),
 * real kumo-api and agents, report_interval 1 and agent_down_time 3. One lab, two
 * scenarios in a row: the hosting L3 agent alone dies (kill -9, data plane up) and the
 * sweep moves the router to the other host; then that host dies whole (agents SIGKILLed,
 * ovs-vswitchd stopped, links down) and the router moves back. Each time traffic is
 * restored (outside → floating IP, endpoint → outside as the floating IP), and the old
 * agent or host, when it comes back, removes its copy before serving anything.
 *
 * Throughout, a fence monitor (test/helpers/fence-monitor.ts) samples both network hosts
 * every ~100 ms: the router's qg- port is live on at most one host, except between the
 * API's binding change (kumo-api's "router moved by the L3 sweep") and the end of the old
 * host's OVS agent's first sync after it ("l2 sync", which fences with the dead VLAN) —
 * and that window closes: the old copy is dead from then on.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/env.ts';
import {
  type FenceMonitor,
  type FenceSample,
  fenceViolations,
  liveHosts,
  startFenceMonitor,
  timeline,
} from '../helpers/fence-monitor.ts';
import { buildL3Lab, type L3Lab, OUTSIDE_IP, SERVER_PORT } from '../helpers/l3-lab.ts';
import type { LabHost } from '../helpers/lab.ts';
import { sourceSeen } from '../helpers/tcp-peer.ts';

interface LogLine {
  time: number;
  pid: number;
  msg: string;
  routerId?: string;
  startedAt?: number;
  steps?: string[];
}

/** A revived agent's teardown of its copy: the metadata proxy first, then the ports and namespace. */
const TEARDOWN = [
  'daemon: stop the metadata proxy',
  'ovsdb: unplug',
  'command: remove namespace',
  'remove: remove state',
];

describe('automatic L3 failover with fencing', { timeout: 240_000 }, () => {
  let l: L3Lab;
  let monitor: FenceMonitor;
  let origin: number;
  let hostA: LabHost;
  let hostB: LabHost;
  /** Start of each scenario (monitor time). */
  const started: number[] = [];
  /** When the host of scenario 2 was down (vswitchd exited). */
  let killedAt = 0;

  const logOf = (name: string): LogLine[] =>
    l.c
      .log(name)
      .split('\n')
      .filter((s) => s.startsWith('{'))
      .map((s) => JSON.parse(s) as LogLine);
  /** When kumo-api's sweep moved the router after `since`. */
  const movedAt = (since: number) =>
    logOf('kumo-api').find(
      (x) =>
        x.msg === 'router moved by the L3 sweep' && x.routerId === l.routerId && x.time > since,
    )?.time;
  /** The end of `h`'s OVS agent's first sync that started after `since`. */
  const ovsSyncAfter = (h: LabHost, since: number) =>
    logOf(`kumo-ovs-agent-${l.hostName(h)}`).find(
      (x) => x.msg === 'l2 sync' && (x.startedAt ?? 0) >= since,
    )?.time;

  const trafficRestored = async () => {
    await waitFor(
      'outside pings the floating IP',
      () => l.ping(l.outside, l.fip.address, 1),
      30_000,
      200,
    );
    const ep = l.endpoints[0]?.netns as string;
    assert.ok(await l.ping(ep, OUTSIDE_IP), 'the endpoint reaches the outside');
    assert.equal(await sourceSeen(ep, OUTSIDE_IP, SERVER_PORT), l.fip.address);
    assert.equal(await sourceSeen(l.outside, l.fip.address, SERVER_PORT), OUTSIDE_IP);
  };

  /** The router moved from `from` to `to` by the sweep; the binding says so too. */
  const moved = async (from: LabHost, to: LabHost) => {
    await waitFor(
      'the sweep moves the router',
      async () => (await l.hostingHost()) === to,
      30_000,
      200,
    );
    assert.equal(await l.bindingHost(), to, 'the gateway port is bound to the new host');
    assert.notEqual(from, to);
  };

  /** arping from outside: no more replies than requests for the floating IP. */
  const arpingOnce = async () => {
    const out = await l.lab
      .exec(l.outside, ['arping', '-c', '3', '-w', '5', '-I', 'br-out', l.fip.address])
      .catch((e: Error) => e.message);
    const sent = Number(/Sent (\d+) probe/.exec(out)?.[1]);
    const got = Number(/Received (\d+) response/.exec(out)?.[1]);
    assert.ok(got >= 1 && got <= sent, out);
  };

  /** The fence for one scenario: samples in [since, until). */
  const checkFence = (since: number, until: number, from: LabHost, to: LabHost) => {
    const samples = monitor.samples.filter((s) => s.t0 >= since && s.t0 < until);
    const move = movedAt(since);
    assert.ok(move, 'kumo-api logged the move');
    const closed = ovsSyncAfter(from, move);
    assert.ok(closed, `the old host's OVS agent synced after the move`);
    const tl = `timeline (move +${rel(move)}s, old host's OVS sync +${rel(closed)}s):\n${timeline(samples, origin).join('\n')}`;
    const bad = fenceViolations(samples, { from: move, to: closed });
    assert.deepEqual(bad.map(show), [], `live on two hosts outside the window; ${tl}`);
    const after = samples.filter((s) => s.t0 > closed);
    assert.ok(after.length > 0, 'samples after the window');
    assert.ok(
      after.every((s) => s.state[from.name] === 'dead'),
      `the old copy is dead once the window closed; ${tl}`,
    );
    assert.deepEqual(
      liveHosts(samples.at(-1) as FenceSample),
      [to.name],
      `the new copy is live; ${tl}`,
    );
    return { move, closed, samples };
  };
  const rel = (t: number) => ((t - origin) / 1000).toFixed(2);
  const show = (s: FenceSample) => `+${rel(s.t0)}s ${JSON.stringify(s.state)}`;

  before(async () => {
    l = await buildL3Lab({ computeHosts: 1 });
    const hosting = await l.hostingHost();
    assert.ok(hosting, 'the router is hosted');
    hostA = hosting;
    hostB = l.network.find((h) => h !== hostA) as LabHost;
    monitor = startFenceMonitor({
      hosts: l.network.map((h) => ({
        name: h.name,
        vsctl: h.vsctl,
        exec: l.lab.exec,
        routerNetns: l.routerNetns(h),
        vswitchdPidfile: join(h.dir, 'ovs-vswitchd.pid'),
      })),
      device: l.gateway.device,
      address: l.gateway.ip,
      binding: async () => (await l.bindingHost())?.name ?? null,
    });
    origin = Date.now();
    await waitFor('the monitor sees the router live on its host', async () => {
      const last = monitor.samples.at(-1);
      return last !== undefined && liveHosts(last).join() === hostA.name;
    });
  });
  after(async () => {
    const samples = (await monitor?.stop()) ?? [];
    if (l)
      writeFileSync(join(l.c.dir.path, 'fence-timeline.txt'), timeline(samples, origin).join('\n'));
    await l?.destroy();
  });

  /**
   * The router's applies by the agent `pid` on `h`, once its copy is gone and its first
   * apply is logged (the log line follows the apply's last step, after the namespace goes).
   */
  const teardownApplies = async (h: LabHost, pid: number | undefined) => {
    const applies = () =>
      logOf(`kumo-l3-agent-${l.hostName(h)}`).filter(
        (x) => x.pid === pid && x.msg === 'l3 apply' && x.routerId === l.routerId,
      );
    await waitFor(
      'the old copy removed',
      async () => !existsSync(`/run/netns/${l.routerNetns(h)}`) && applies().length > 0,
      30_000,
      200,
    );
    return applies();
  };

  test('the hosting L3 agent alone dies: the sweep moves the router, traffic is restored on the other host', async () => {
    started[0] = Date.now();
    await l.killL3(hostA);
    await moved(hostA, hostB);
    await trafficRestored();
  });

  test('the old L3 agent comes back and removes its copy before serving anything; the fence held', async () => {
    const proc = l.startL3(hostA);
    const applies = await teardownApplies(hostA, proc.child.pid);
    assert.deepEqual(applies[0]?.steps, TEARDOWN, 'its first apply tears the copy down');
    assert.equal(applies.length, 1, 'and nothing else');
    await new Promise((r) => setTimeout(r, 500));
    checkFence(started[0] as number, Date.now(), hostA, hostB);
    await trafficRestored();
    await arpingOnce();
  });

  test('the whole network host dies: traffic is restored on the other host', async () => {
    started[1] = Date.now();
    await l.killHost(hostB);
    killedAt = Date.now();
    await moved(hostB, hostA);
    await trafficRestored();
  });

  test('the host comes back and removes its copy; the fence held, the dead host never live while down', async () => {
    const revivedAt = Date.now();
    await l.reviveHost(hostB);
    const applies = await teardownApplies(hostB, l.procs(hostB).get('l3')?.child.pid);
    assert.deepEqual(
      applies.map((x) => x.steps),
      [TEARDOWN],
      'one apply: the teardown',
    );
    await waitFor('the old host OVS agent synced', async () => {
      const move = movedAt(started[1] as number);
      return move !== undefined && ovsSyncAfter(hostB, move) !== undefined;
    });
    await new Promise((r) => setTimeout(r, 500));
    const since = started[1] as number;
    checkFence(since, Date.now(), hostB, hostA);
    const down = monitor.samples.filter((s) => s.t0 > killedAt && s.t1 < revivedAt);
    assert.ok(down.length > 0, 'samples while the host was down');
    assert.ok(
      down.every((s) => s.state[hostB.name] === 'dead'),
      'the host is not live while down',
    );
    await trafficRestored();
    await arpingOnce();
  });
});
