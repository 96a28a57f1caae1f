#!/usr/bin/env node
/**
 * bench/l3-resync: kumo-l3-agent restarted with --routers hosted routers (each two
 * interfaces, a gateway, two floating IPs), every --delete-every'th of whose qrouter
 * namespaces was deleted while it was down; how long until every router forwards again,
 * against a same-run minimal script doing the same host operations directly (no AMQP, no
 * API). Goal: within 1.5× of the script.
 *
 *   node bench/l3-resync.ts [--routers 200] [--delete-every 2] [--sample-every 10]
 *
 * A sample is every router whose index is 0 or 1 modulo --sample-every (40 of 200: 20
 * deleted, 20 intact with the defaults).
 *
 * Standalone: a 1-host lab (test/helpers/lab.ts) with its outside world on br-ex, a
 * Cluster (own vhost, SQLite, the real kumo-api) with the real kumo-ovs-agent
 * (bridge_mappings public:br-ex) and kumo-l3-agent. Not timed: the topology of
 * bench/l3-resync-topology.ts built through the API (routers in parallel), and the wait
 * until every router is healthy. Every qrouter namespace of ours is removed at the end.
 *
 * Healthy (bench/l3-resync-host.ts, from the outside, cheapest first): the namespace is
 * in /run/netns; its three OVS ports carry a real VLAN tag (the OVS agent wired them);
 * qr-A, qr-B and qg- have the API's MAC, MTU, up state and addresses (qg- with both
 * floating IPs as /32); the default route goes via the external gateway on qg-;
 * ip_forward is 1; `iptables-save -t nat` holds each floating IP's DNAT and SNAT and the
 * gateway SNAT. Forwarding (every --sample-every'th router, deleted or not: an endpoint
 * namespace holds the first floating IP's fixed address on interface A): the outside
 * namespace pings the floating IP (DNAT, qg- → qr-A → endpoint) and the endpoint pings
 * the outside (SNAT, default route).
 *
 * Broken before each phase, the same way, with the agent stopped (SIGTERM): the
 * namespaces of routers 0, N, 2N… (N = --delete-every) are deleted (`ip netns del`),
 * which destroys their qr-/qg- devices; OVS keeps the rows. The rest must be verified.
 * The kernel frees a deleted namespace's devices a little later (its cleanup runs
 * asynchronously), so nothing is timed until the deleted samples stop answering from
 * outside, plus one second.
 *
 * Phase 1 (baseline script, same run): bench/l3-resync-host.ts `script`, sequential, one
 * runner (the agent's createCommandRunner): for a missing namespace `ip netns add`, lo
 * up, one ovs-vsctl removing the three stale rows, one adding the three internal ports
 * with iface-id/attached-mac, one `ip -batch` moving them from ovs-vswitchd's namespace,
 * one `ip -n NS -batch` for MACs, MTUs, up, addresses and the default route, `sysctl -w
 * net.ipv4.ip_forward=1`, `iptables-restore` of the nat table saved during setup, and the
 * gratuitous ARPs in the background as the agent sends them; for an intact namespace
 * `ip -j addr`, `ip -j route`, `sysctl -n` and `iptables-save -t nat`, compared with the
 * saved state.
 * The script runs first, as in dhcp-resync; both phases run with the OVS agent up, which
 * tags the re-added ports for either side.
 * Phase 2 (kumo): t0 = the agent is spawned again.
 *
 * Time of a phase = when the last of these happened (each from t0): for every deleted
 * router, its three new OVS rows wired by the OVS agent (one `ovs-vsctl list Port` every
 * 200 ms, for both phases) and, for the deleted sample routers, the first ping reply
 * from outside through its floating IP (`ping -D -i 0.1` started at t0); script: its
 * last command; kumo: every router served by the restarted agent — its own count
 * (report_state configurations.routers, counted once a router's reconcile has observed,
 * planned and applied) reaching N in kumo-api's agent row with a started_at after t0,
 * polled every 200 ms, so up to report_interval (0.2 s here) + 200 ms late: it prints
 * the earliest it can have been too — and every deleted router's last step (its own
 * `"msg":"step"` log lines, the iptables-restore among them). These two come from the
 * agent; what follows checks them. dhcp-resync's atime trick does not work here: the
 * L3 agent's resync lists its routers by reading every ownership marker at once. Then,
 * not timed, the full check of every router and the forwarding pings of every sample
 * must pass; if they do not at once they are repeated each second and the phase's time
 * becomes the time they passed.
 *
 * Output: both times, the script's commands and the agent's steps by kind (count × mean
 * ms), the agent's CPU time, and as the last line `ratio kumo/script: X.XX` (lower is better; the goal is
 * ≤ 1.5). Exit 1 when a phase does not finish within --timeout seconds.
 */
import { statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Agent } from '../contracts/agents.ts';
import { createCommandRunner } from '../core/exec.ts';
import { type Cluster, ovsOf, type Proc } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import type { Endpoint, Lab } from '../test/helpers/lab.ts';
import {
  healthReport,
  namespaces,
  type OvsPort,
  ovsPorts,
  script,
  wired,
} from './l3-resync-host.ts';
import {
  type Env,
  environment,
  forwardingWrong,
  L3_REPORT_INTERVAL,
  ping,
  sampleEndpoints,
} from './l3-resync-lab.ts';
import { type BenchRouter, buildTopology } from './l3-resync-topology.ts';
import {
  agentDone,
  cpuOf,
  lastSteps,
  logSince,
  type Pinger,
  startPinger,
  stepSummary,
  stopPingers,
  timedRunner,
} from './l3-resync-watch.ts';
import { logTail, runBench } from './lib.ts';

const { values: opts } = parseArgs({
  options: {
    routers: { type: 'string', default: '200' },
    'delete-every': { type: 'string', default: '2' },
    'sample-every': { type: 'string', default: '10' },
    timeout: { type: 'string', default: '180' },
  },
  strict: true,
});
const N = Number(opts.routers);
const DELETE_EVERY = Number(opts['delete-every']);
const SAMPLE_EVERY = Number(opts['sample-every']);
const TIMEOUT_MS = Number(opts.timeout) * 1000;
if (!Number.isInteger(N) || N < 2 || N > 250)
  throw new Error(`--routers must be an integer in 2..250 (got ${opts.routers})`);
if (!Number.isInteger(DELETE_EVERY) || DELETE_EVERY < 1)
  throw new Error('--delete-every must be a positive integer');
if (!Number.isInteger(SAMPLE_EVERY) || SAMPLE_EVERY < 1)
  throw new Error('--sample-every must be a positive integer');
if (!(TIMEOUT_MS > 0)) throw new Error('--timeout must be positive');

/** The agent's [l3] send_arp_for_ha (the default), which the script matches. */
const GARP_COUNT = 3;
const POLL_MS = 200;
const now = () => performance.now();
const wall = (t = now()) => performance.timeOrigin + t;
const runner = createCommandRunner();
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const hold: { lab?: Lab; cluster?: Cluster } = {};
let l3Agent: Proc | undefined;
let routers: BenchRouter[] = [];
const pingers = new Set<Pinger>();

async function cleanup() {
  stopPingers(pingers);
  await hold.cluster?.cleanup().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  const present = namespaces();
  for (const r of routers)
    if (present.has(r.netns))
      await runner.run({ argv: ['ip', 'netns', 'del', r.netns] }).catch(() => {});
  await hold.lab?.destroy().catch((e: Error) => console.error(`cleanup: ${e.message}`));
}

const isSample = (r: BenchRouter) => r.index % SAMPLE_EVERY === 0 || r.index % SAMPLE_EVERY === 1;
const isDeleted = (r: BenchRouter) => r.index % DELETE_EVERY === 0;

/** Full check + forwarding until both pass; resolves with the time they passed. */
async function healthyAt(
  e: Env,
  eps: Map<BenchRouter, Endpoint>,
  t0: number,
  nat?: Map<string, string>,
) {
  let tries = 0;
  for (;;) {
    tries++;
    const bad = await healthReport(runner, e.ovs, routers, nat);
    const fwd = bad.size === 0 ? await forwardingWrong(e, eps) : [];
    if (bad.size === 0 && fwd.length === 0) return { at: now() - t0, tries };
    if (now() - t0 > TIMEOUT_MS)
      throw new Error(
        `after ${s(now() - t0)}: ${bad.size} routers unhealthy (${[...bad]
          .slice(0, 5)
          .map(([r, why]) => `${r.index}: ${why}`)
          .join('; ')}); forwarding: ${fwd.slice(0, 5).join('; ')}`,
      );
    await sleep(1000);
  }
}

// ---------------------------------------------------------------- phases

/** Stops the agent and deletes the chosen namespaces; the OVS rows as they were. */
async function breakThem(e: Env): Promise<Map<string, OvsPort>> {
  await e.c.stop(l3Agent, 'SIGTERM');
  const before = await ovsPorts(runner, e.ovs);
  for (const r of routers.filter(isDeleted))
    await runner.run({ argv: ['ip', 'netns', 'del', r.netns] });
  // A deleted namespace's devices go when the kernel's cleanup runs, a little later:
  // until the deleted samples stop answering, and a second more, nothing is timed.
  for (const r of routers.filter((x) => isDeleted(x) && isSample(x)))
    await waitFor(
      `router ${r.index}'s floating IP silent`,
      async () => !(await ping(e, e.outside, r.fips[0]?.floatingIp as string)),
      10_000,
      100,
    );
  await sleep(1000);
  return before;
}

interface Evidence {
  /** The last deleted router's three new OVS rows wired. */
  wired: number;
  /** The last deleted sample router's first reply from outside. */
  replied: number;
  /** The phase's own signal (script end; kumo: looked at and last step). */
  own: number;
}

const maxOf = (xs: Iterable<number>) => Math.max(0, ...xs);

/** Polls until the deleted routers are wired and answering and `own` says done. */
async function watch(
  e: Env,
  before: Map<string, OvsPort>,
  t0: number,
  own: () => Promise<number | null>,
): Promise<Evidence> {
  const deleted = routers.filter(isDeleted);
  const tagged = new Map<BenchRouter, number>();
  const ps = deleted
    .filter(isSample)
    .map((r) => startPinger(e.outside, r.fips[0]?.floatingIp as string));
  for (const p of ps) pingers.add(p);
  const fresh = (r: BenchRouter, ports: Map<string, OvsPort>) =>
    r.ports.every((p) => {
      const o = ports.get(p.device);
      return wired(o) && o?.uuid !== before.get(p.device)?.uuid;
    });
  try {
    for (;;) {
      const ports = await ovsPorts(runner, e.ovs);
      for (const r of deleted) if (!tagged.has(r) && fresh(r, ports)) tagged.set(r, now() - t0);
      const done = await own();
      if (tagged.size === deleted.length && done !== null && ps.every((p) => p.first !== null))
        return {
          wired: maxOf(tagged.values()),
          replied: maxOf(ps.map((p) => (p.first as number) - wall(t0))),
          own: done,
        };
      if (now() - t0 > TIMEOUT_MS)
        throw new Error(
          `after ${s(now() - t0)}: ${deleted.length - tagged.size} deleted routers not wired, ` +
            `${ps.filter((p) => p.first === null).length} sample routers not answering, own signal ${done}`,
        );
      await sleep(POLL_MS);
    }
  } finally {
    stopPingers(ps);
    for (const p of ps) pingers.delete(p);
  }
}

/** The final check's verdict folded into a phase's time. */
async function phaseTime(e: Env, eps: Map<BenchRouter, Endpoint>, t0: number, ev: Evidence) {
  const checked = await healthyAt(e, eps, t0);
  const evidence = Math.max(ev.wired, ev.replied, ev.own);
  const time = checked.tries === 1 ? evidence : Math.max(evidence, checked.at);
  const how =
    checked.tries === 1
      ? 'the full check and forwarding passed at once'
      : `the full check and forwarding passed only at try ${checked.tries}, ${s(checked.at)}`;
  return { time, how };
}

async function scriptPhase(e: Env, eps: Map<BenchRouter, Endpoint>, nat: Map<string, string>) {
  const before = await breakThem(e);
  const cpu0 = cpuOf(process.pid)[1];
  const t0 = now();
  let end: number | null = null;
  let failed: Error | undefined;
  let counts = { rebuilt: 0, verified: 0 };
  const timed = timedRunner(runner);
  void script(timed.runner, e.ovs, routers, nat, GARP_COUNT).then(
    (c) => {
      counts = c;
      end = now() - t0;
    },
    (err: Error) => {
      failed = err;
    },
  );
  const ev = await watch(e, before, t0, async () => {
    if (failed) throw failed;
    return end;
  });
  const cpu = cpuOf(process.pid)[1] - cpu0;
  const { time, how } = await phaseTime(e, eps, t0, ev);
  console.log(
    `script (sequential, one runner): ${s(time)} — its last command at ${s(ev.own)} ` +
      `(${counts.rebuilt} rebuilt, ${counts.verified} verified), last rebuilt router's ports ` +
      `wired by the OVS agent at ${s(ev.wired)}, every deleted sample answering from outside ` +
      `at ${s(ev.replied)}; ${how}\n  CPU of the bench's children (script, OVS poll, pings) until done: ` +
      `${cpu.toFixed(2)} s\n  its commands (count × mean = total, one at a time):\n${timed.summary()}`,
  );
  return time;
}

async function kumoPhase(e: Env, eps: Map<BenchRouter, Endpoint>) {
  const before = await breakThem(e);
  const logPath = (l3Agent as Proc).logPath;
  const logFrom = statSync(logPath).size;
  const t0 = now();
  l3Agent = e.c.startAgentOn('l3', e.host, ovsOf(e.h), e.l3Config);
  const agent = l3Agent;
  const signal = agentDone({
    exited: () => agent.child.exitCode !== null,
    agentRow: async () => {
      const res = await e.c.http('GET', `/v2.0/agents?agent_type=L3%20agent&host=${e.host}`);
      return (res.body as { agents: Agent[] }).agents[0];
    },
    routers: routers.length,
    deletedIds: routers.filter(isDeleted).map((r) => r.id),
    t0Wall: wall(t0),
    log: { path: logPath, from: logFrom },
  });
  const ev = await watch(e, before, t0, signal.own);
  const servedAt = signal.servedAt as number;
  const [own, children] = cpuOf(l3Agent.child.pid);
  const { time, how } = await phaseTime(e, eps, t0, ev);
  const lines = logSince(logPath, logFrom, wall(t0));
  const at = (msg: string) => {
    const l = lines.find((x) => x.msg === msg);
    return l ? s(l.time - wall(t0)) : 'never';
  };
  const last = lastSteps(lines);
  const lastStep = maxOf(routers.filter(isDeleted).map((r) => (last.get(r.id) ?? 0) - wall(t0)));
  const applied = new Set(lines.filter((l) => l.msg === 'l3 apply').map((l) => l.routerId));
  const intactTouched = routers.filter((r) => !isDeleted(r) && applied.has(r.id)).length;
  const failures = lines.filter((l) => l.msg === 'reconcile failed').length;
  console.log(
    `kumo-l3-agent: ${s(time)} — every router reported served at ${s(servedAt)} (seen ` +
      `through kumo-api: up to report_interval + ${POLL_MS} ms late, so no earlier than ` +
      `${s(Math.max(0, servedAt - L3_REPORT_INTERVAL * 1000 - POLL_MS))}), ` +
      `every deleted router's last step logged ` +
      `by ${s(lastStep)}, last rebuilt router's ports wired by the OVS agent at ${s(ev.wired)}, ` +
      `every deleted sample answering from outside at ${s(ev.replied)}; ${how}\n` +
      `  agent: resync began at ${at('full resync')}, first "l3 apply" at ${at('l3 apply')}, ` +
      `"l3 apply" for ${applied.size} routers (${intactTouched} of them intact), ` +
      `${failures} failed reconciles; CPU until done: ` +
      `${own.toFixed(2)} s its own, ${children.toFixed(2)} s its commands\n` +
      `  its steps (count × mean = total; 4 reconciles run at once):\n${stepSummary(lines)}`,
  );
  return time;
}

// ---------------------------------------------------------------- main

async function main() {
  const started = now();
  const e = await environment(hold);
  l3Agent = e.l3;
  const prefix = `${e.host.slice(-8)}-`;
  routers = await buildTopology(e.c.http.bind(e.c), N, prefix);
  const built = now() - started;
  const eps = await sampleEndpoints(e, routers.filter(isSample));
  const nat = new Map<string, string>();
  await healthyAt(e, eps, now(), nat);
  const deleted = routers.filter(isDeleted).length;
  console.log(
    `l3-resync bench: ${N} routers (2 interfaces, a gateway, 2 floating IPs each) on one ` +
      `kumo-l3-agent; ${deleted} namespaces deleted before each phase, ${N - deleted} intact; ` +
      `forwarding checked through ${eps.size} sample routers ` +
      `(${[...eps.keys()].filter(isDeleted).length} of them deleted ones); ` +
      `setup ${s(now() - started)} (API topology ${s(built)})`,
  );
  const scriptTime = await scriptPhase(e, eps, nat);
  const kumoTime = await kumoPhase(e, eps);
  const ratio = kumoTime / scriptTime;
  console.log(
    `target (kumo within 1.5x of the script): ${ratio <= 1.5 ? 'met' : 'MISSED'}; ` +
      `bench took ${s(now() - started)}`,
  );
  console.log(`ratio kumo/script: ${ratio.toFixed(2)}`);
}

await runBench({
  main,
  cleanup,
  lastly: () => {
    stopPingers(pingers);
    for (const p of [hold.cluster?.api, ...(hold.cluster?.hostAgents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
  },
  onFailure: () => {
    if (l3Agent)
      console.error(
        `kumo-l3-agent log (last lines):\n${logTail(l3Agent.logPath, 15, (l) => !l.includes('"msg":"hint"'))}`,
      );
  },
});
