#!/usr/bin/env node
/**
 * bench/scale: simulated hosts (an OVS, a DHCP-or-L3 and a compute agent's RPC behaviour
 * each, bench/scale-sim-agents.ts) in a few processes against kumo-api replicas on
 * PostgreSQL and a RabbitMQ cluster, in steps of growing host counts.
 *
 *   node bench/scale.ts [--steps 250,500,1000,1500,2000] [--window 30] [--warmup 15]
 *     [--sims 3] [--hosts-per-conn 250] [--interval 10] [--resync-interval 60]
 *     [--churn 4] [--port-life 20] [--stack cluster|single] [--no-tunnels]
 *
 * Standalone: the stack (bench/scale-stack.ts), its vhost, database, processes and temp dir
 * are made here and removed at the end, also on error or Ctrl-C (bench/lib.ts runBench).
 *
 * Per step: the new hosts' queues are declared and their agents start (first report with
 * start_flag, a start resync); once every agent has a row in the agents table, networks for
 * the new hosts are created (one per 25 hosts, scheduled to DHCP agents) and, after
 * `--warmup` s, a `--window` s steady window measures the heartbeat lag (publish → row in
 * PostgreSQL, bench/scale-stats.ts), each RPC call's latency in the simulators, the API
 * latency of the port churn (bench/scale-churn.ts, running throughout), and CPU and RSS per
 * component. A step holds when p99 lag < 1 s, no report is lost and the simulators
 * published at least 95% of the target report rate (else the simulator, not Kumo, is the
 * limit, and the step does not count). The ramp stops at the first step that does not hold.
 *
 * Last line: `ratio highest-hosts-holding-p99-lag<1s/1000-target: X (N hosts, 3N agents)`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { runBench } from './lib.ts';
import { type Api, createNetwork, startChurn } from './scale-churn.ts';
import { hostName, startFleet } from './scale-fleet.ts';
import { printStep, printSummary, type StepResult, verdict } from './scale-report.ts';
import { type Stack, singleStack } from './scale-stack.ts';
import { clusterStack } from './scale-stack-cluster.ts';
import { cpuSample, heartbeatTracker } from './scale-stats.ts';

const { values: opts } = parseArgs({
  options: {
    steps: { type: 'string', default: '250,500,1000,1500,2000' },
    window: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '15' },
    sims: { type: 'string', default: '3' },
    'hosts-per-conn': { type: 'string', default: '250' },
    interval: { type: 'string', default: '10' },
    'resync-interval': { type: 'string', default: '60' },
    churn: { type: 'string', default: '4' },
    'port-life': { type: 'string', default: '20' },
    stack: { type: 'string', default: 'cluster' },
    'no-tunnels': { type: 'boolean', default: false },
  },
  strict: true,
});
const positive = (name: keyof typeof opts) => {
  const n = Number(opts[name]);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
};
const STEPS = String(opts.steps)
  .split(',')
  .map((s) => Math.round(Number(s)));
if (
  STEPS.some((n) => !Number.isFinite(n) || n <= 0) ||
  STEPS.some((n, i) => i > 0 && n <= (STEPS[i - 1] ?? 0))
)
  throw new Error('--steps must be increasing positive host counts, e.g. 250,500,1000');
if (opts.stack !== 'cluster' && opts.stack !== 'single')
  throw new Error('--stack is cluster or single');
const O = {
  window: positive('window'),
  warmup: positive('warmup'),
  sims: Math.round(positive('sims')),
  hostsPerConn: Math.round(positive('hosts-per-conn')),
  interval: positive('interval'),
  resyncInterval: positive('resync-interval'),
  churn: positive('churn'),
  portLife: positive('port-life'),
};
const TARGET = 1000;
const HOSTS_PER_NETWORK = 25;

let stack: Stack | undefined;
let fleet: ReturnType<typeof startFleet> | undefined;
let churn: ReturnType<typeof startChurn> | undefined;
let tracker: ReturnType<typeof heartbeatTracker> | undefined;
/** Hosts registered so far: the churn binds ports to them. */
let live = 0;
const logDir = mkdtempSync(join(tmpdir(), 'kumo-scale-logs-'));

async function waitRegistered(agents: number, hosts: number) {
  const t = tracker as NonNullable<typeof tracker>;
  const deadline = Date.now() + 180_000;
  for (;;) {
    fleet?.check();
    const n = await t.registered();
    if (n >= agents) return;
    if (Date.now() > deadline)
      throw new Error(`only ${n} of ${agents} agents registered within 180 s at ${hosts} hosts`);
    await sleep(500);
  }
}

async function runStep(hosts: number, api: Api, networks: string[]): Promise<StepResult> {
  const f = fleet as NonNullable<typeof fleet>;
  const t = tracker as NonNullable<typeof tracker>;
  const t0 = Date.now();
  console.log(`step ${hosts} hosts: adding hosts ${live + 1}-${hosts}`);
  const { declareMs, refused } = await f.add(live, hosts);
  await waitRegistered(3 * hosts, hosts);
  live = hosts;
  const registerS = (Date.now() - t0) / 1000;
  const want = Math.ceil(hosts / HOSTS_PER_NETWORK);
  while (networks.length < want) networks.push(await createNetwork(api, networks.length));
  await sleep(O.warmup * 1000);
  const components = [
    ...(stack as Stack).components,
    { name: `simulators (${O.sims} processes)`, pids: () => f.pids() },
    { name: 'bench (churn, lag poller)', pids: () => [process.pid] },
  ];
  churn?.window();
  f.reset();
  const cpu = cpuSample(components);
  t.open(O.window);
  await sleep(O.window * 1000);
  const usage = cpu.end();
  const api0 = churn?.window() ?? { create: [], delete: [], errors: [] };
  const rpc = await f.stats();
  const lag = await t.close(15_000);
  return {
    hosts,
    declareMs,
    refused,
    registerS,
    lag,
    rpc,
    api: api0,
    usage,
    targetRate: (3 * hosts) / O.interval,
    window: O.window,
  };
}

async function main() {
  const started = Date.now();
  stack = opts.stack === 'cluster' ? await clusterStack(O) : await singleStack(O);
  const st = stack;
  console.log(`kumo scale bench: ${st.describe}`);
  console.log(
    `steps ${STEPS.join(', ')} hosts (3 agents each), report every ${O.interval} s, resync every ${O.resyncInterval} s, ` +
      `${O.sims} simulator processes, ${O.hostsPerConn} hosts per AMQP connection, churn ${O.churn} port ops/s ` +
      `(life ${O.portLife} s), warm-up ${O.warmup} s, window ${O.window} s; ${cpus().length} CPUs`,
  );
  const t = heartbeatTracker(st.pgUrl);
  tracker = t;
  await t.start();
  fleet = startFleet({
    processes: O.sims,
    urls: st.amqpUrls,
    hostsPerConn: O.hostsPerConn,
    interval: O.interval,
    resyncInterval: O.resyncInterval,
    tunnels: !opts['no-tunnels'],
    logDir,
    onPublished: (type, host, at) => t.published(type, host, at),
  });
  const api: Api = { url: st.apiUrl, token: st.adminToken };
  const networks: string[] = [];
  const f = fleet;
  churn = startChurn(
    api,
    {
      hosts: () => Array.from({ length: live }, (_, i) => hostName(i)),
      networks: () => networks,
      plug: (h, p) => f.plug(h, p),
      unplug: (h, p) => f.unplug(h, p),
    },
    O.churn,
    O.portLife,
  );
  const results: StepResult[] = [];
  for (const hosts of STEPS) {
    let r: StepResult;
    try {
      r = await runStep(hosts, api, networks);
    } catch (e) {
      console.log(`step ${hosts} hosts: could not run: ${(e as Error).message}`);
      results.push({ hosts, failed: (e as Error).message } as StepResult);
      break;
    }
    results.push(r);
    printStep(r);
    if (!verdict(r).holds) break;
  }
  printSummary(results, TARGET, (Date.now() - started) / 1000);
}

async function cleanup() {
  await churn?.stop().catch(() => {});
  await fleet?.stop().catch(() => {});
  await tracker?.stop().catch(() => {});
  await stack?.cleanup().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  if (process.exitCode !== 1) rmSync(logDir, { recursive: true, force: true });
  else console.error(`simulator logs kept in ${logDir}`);
}

await runBench({
  main,
  cleanup,
  lastly: () => {
    fleet?.lastly();
    stack?.lastly();
  },
  onFailure: () => {
    if (stack) console.error(stack.logs());
  },
});
