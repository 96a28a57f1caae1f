#!/usr/bin/env node
/**
 * bench/dhcp-churn: --ops port creates/updates/deletes on one network; how long until the
 * network's dnsmasq serves the final state and how many reloads it took, kumo-dhcp-agent
 * (one coalesced reconcile per network) against a same-run baseline that rewrites the
 * files and SIGHUPs dnsmasq once per change (as Neutron's DHCP agent did: 200 reloads for
 * 200 port creates).
 *
 *   node bench/dhcp-churn.ts [--ops 1000] [--concurrency 10]
 *
 * Standalone: a 1-host lab (test/helpers/lab.ts), a Cluster (test/helpers/cluster.ts: own
 * vhost, SQLite, the real kumo-api) with the real kumo-ovs-agent and kumo-dhcp-agent, as
 * in test/fullstack/dhcp-lab.test.ts. Not timed: a vxlan network with a /20 subnet, until
 * its qdhcp namespace and dnsmasq run. Everything is removed at the end (both dnsmasq
 * processes and their namespaces included), also on error or Ctrl-C.
 *
 * The operations: ops/2 creates, ops/4 fixed-IP updates (a new address in the upper half
 * of the /20) of even-numbered ports, ops/4 deletes of odd-numbered ports; an update or
 * delete of port k is queued 20 operations after its create and waits for it. They run
 * through the HTTP API with --concurrency requests in flight.
 *
 * Phase 1 (kumo): t0 = the first API call. After the last response the final port list
 * is read from the API (GET /v2.0/ports?network_id=…): the expected set of MAC,IP pairs.
 * The dnsmasq hosts file (`<state_path>/dhcp/<network>/host`) is polled every 10 ms until
 * its MAC,IP pairs equal that set. Reloads are counted by `strace -ttt -e trace=none
 * -e signal=SIGHUP -p <dnsmasq pid>`, attached before t0: every SIGHUP dnsmasq is
 * delivered, with its time and sender pid. Kumo's time = the last SIGHUP delivered to the
 * dnsmasq (after the run went quiet for 1 s), minus t0; it must come after the final
 * hosts file was written (its mtime), else the bench fails (dnsmasq not told). The agent
 * log's "dhcp apply" lines with a `dnsmasq:` step are counted as a cross-check (a restart
 * there would show up as a different pid, and fails the bench).
 *
 * Phase 2 (baseline, same run, after phase 1): a second dnsmasq for a copy of the
 * network (the agent's own get_network_info snapshot taken before t0, another id, state
 * dir and namespace with a veth carrying the DHCP port's address; started with
 * host/process startDaemon and host/dnsmasq argv/files). A loop replays the same changes
 * (the API's response of each operation) in the order and at the time offsets the
 * responses arrived in phase 1 — a notification stream as fast as the API produced it —
 * and for every change renders the files, rewrites them atomically (host/dnsmasq
 * writeDnsmasqFiles: write, fsync, rename, as the agent) and sends SIGHUP. Its time = the
 * last SIGHUP delivered (strace as above) minus its t0. In phase 2 the API and agents are
 * idle, so the baseline has the CPU to itself while kumo shared it with kumo-api: that
 * difference favours the baseline.
 *
 * Output: per phase the time to final state and the reloads, and as the last line
 * `ratio baseline/kumo (time to final state): X.X` (higher = Kumo faster). Not timed, at
 * the end: one real udhcpc lease (busybox, as in dhcp-lab.test.ts) for a surviving port
 * must hand out its updated address. Exit 1 on failure, with the tail of the agent's log.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { type DhcpNetwork, type DhcpPort, GetNetworkInfoResult } from '../contracts/dhcp.ts';
import { PLUGIN_TOPIC } from '../contracts/messages.ts';
import type { Network, Port } from '../contracts/network.ts';
import { type Broker, createBroker } from '../core/amqp.ts';
import { createCommandRunner } from '../core/exec.ts';
import { silentLogger } from '../core/log.ts';
import { dnsmasqArgv, dnsmasqIdentity, dnsmasqPaths } from '../host/dnsmasq/argv.ts';
import { writeDnsmasqFiles } from '../host/dnsmasq/files.ts';
import { renderFiles } from '../host/dnsmasq/render.ts';
import { ipBatch } from '../host/ip/link.ts';
import { portDevice } from '../host/ip/names.ts';
import { signal, startDaemon } from '../host/process/daemon.ts';
import { Cluster, ovsOf, type Proc } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import {
  createLab,
  dhcpLease,
  type Lab,
  type LabHost,
  writeUdhcpcScript,
} from '../test/helpers/lab.ts';
import { dnsmasqUnder, killDnsmasqUnder, logTail, runBench } from './lib.ts';

const POLL_MS = 10;
const QUIET_MS = 1000;
const PHASE_TIMEOUT_MS = 120_000;
const LAG = 20;

const { values: opts } = parseArgs({
  options: {
    ops: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '10' },
  },
  strict: true,
});
const OPS = Number(opts.ops);
const CONCURRENCY = Number(opts.concurrency);
if (!Number.isInteger(OPS) || OPS < 4 * LAG || OPS % 4 !== 0 || OPS > 4000)
  throw new Error(`--ops must be a multiple of 4 in ${4 * LAG}..4000 (got ${opts.ops})`);
if (!Number.isInteger(CONCURRENCY) || CONCURRENCY < 1 || CONCURRENCY > 100)
  throw new Error(`--concurrency must be an integer in 1..100 (got ${opts.concurrency})`);
const CREATES = OPS / 2;

const now = () => performance.now();
/** Wall clock in ms with sub-ms precision, comparable to strace -ttt and file times. */
const wall = (t = now()) => performance.timeOrigin + t;
const runner = createCommandRunner();

// ---------------------------------------------------------------- environment

let lab: Lab | undefined;
let cluster: Cluster | undefined;
let dhcpAgent: Proc | undefined;
let broker: Broker | undefined;
let baselineNetns: string | undefined;
const tracers: ChildProcess[] = [];
let cleaning: Promise<void> | undefined;
/** Network ids whose qdhcp namespace the agent made for us (the cluster's own host has no
 * netns_prefix, so the namespace is `qdhcp-<id>`). */
const ourNetworks: string[] = [];

function killOurDnsmasq() {
  if (cluster) killDnsmasqUnder(cluster.dir.path);
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const t of tracers) if (t.exitCode === null) t.kill('SIGKILL');
    await broker?.close().catch(() => {});
    await cluster?.cleanup().catch((e: Error) => console.error(`cleanup: ${e.message}`));
    killOurDnsmasq();
    const names = new Set(ourNetworks.map((id) => `qdhcp-${id}`));
    for (const ns of names) await runner.run({ argv: ['ip', 'netns', 'del', ns] }).catch(() => {});
    if (baselineNetns)
      await runner.run({ argv: ['ip', 'netns', 'del', baselineNetns] }).catch(() => {});
    await lab?.destroy().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  })();
  return cleaning;
}

async function call(c: Cluster, method: string, path: string, body: unknown, want: number) {
  const res = await c.http(method, path, body);
  if (res.status !== want)
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function post<T>(c: Cluster, path: string, key: string, body: unknown): Promise<T> {
  return ((await call(c, 'POST', path, { [key]: body }, 201)) as Record<string, T>)[key] as T;
}

// ---------------------------------------------------------------- observing dnsmasq

interface Hup {
  /** Wall clock, ms. */
  at: number;
  from: number;
}

/** strace attached to `pid`, reporting only SIGHUPs delivered to it. */
async function traceHups(pid: number): Promise<{ hups(): Hup[] }> {
  const child = spawn(
    'strace',
    ['-ttt', '-e', 'trace=none', '-e', 'signal=SIGHUP', '-p', `${pid}`],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  tracers.push(child);
  let text = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    text += d;
  });
  await waitFor(`strace attached to dnsmasq ${pid}`, async () => {
    if (child.exitCode !== null) throw new Error(`strace exited: ${text}`);
    return text.includes('attached');
  });
  return {
    hups: () =>
      [...text.matchAll(/^(\d+\.\d+) --- SIGHUP \{[^}]*si_pid=(\d+)/gm)].map((m) => ({
        at: Number(m[1]) * 1000,
        from: Number(m[2]),
      })),
  };
}

/** MAC,IP pairs of a dnsmasq hosts file (`mac,host-…,ip`). */
function hostPairs(path: string): Set<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return new Set();
  }
  return new Set(
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const f = l.split(',');
        return `${f[0]},${f.at(-1)}`;
      }),
  );
}

const sameSet = (a: Set<string>, b: Set<string>) =>
  a.size === b.size && [...a].every((x) => b.has(x));

async function expectedPairs(c: Cluster, networkId: string): Promise<Set<string>> {
  const { ports } = (await call(
    c,
    'GET',
    `/v2.0/ports?network_id=${networkId}`,
    undefined,
    200,
  )) as { ports: Port[] };
  return new Set(
    ports.flatMap((p) => p.fixed_ips.map((f) => `${p.mac_address.toLowerCase()},${f.ip_address}`)),
  );
}

/**
 * Waits until the hosts file holds `want` and no SIGHUP came for QUIET_MS; returns the
 * last SIGHUP (which must follow the final write).
 */
async function settle(
  what: string,
  hostsPath: string,
  want: Set<string>,
  trace: { hups(): Hup[] },
  t0Wall: number,
  abort: () => Error | undefined,
): Promise<{ last: Hup; hups: Hup[]; fileSeen: number }> {
  const deadline = now() + PHASE_TIMEOUT_MS;
  let fileSeen: number | undefined;
  for (;;) {
    const err = abort();
    if (err) throw err;
    if (fileSeen === undefined && sameSet(hostPairs(hostsPath), want)) fileSeen = wall() - t0Wall;
    if (fileSeen !== undefined) {
      const hups = trace.hups().filter((h) => h.at >= t0Wall);
      const last = hups.at(-1);
      if (last && wall() - last.at >= QUIET_MS) {
        const mtime = statSync(hostsPath).mtimeMs;
        if (last.at < mtime)
          throw new Error(
            `${what}: the final hosts file (written ${(mtime - t0Wall).toFixed(0)} ms) ` +
              `was never followed by a SIGHUP (last at ${(last.at - t0Wall).toFixed(0)} ms)`,
          );
        if (!sameSet(hostPairs(hostsPath), want))
          throw new Error(`${what}: the hosts file changed again after matching`);
        return { last, hups, fileSeen };
      }
    }
    if (now() > deadline) {
      const have = hostPairs(hostsPath);
      throw new Error(
        `${what}: no final state after ${PHASE_TIMEOUT_MS / 1000} s (hosts file ` +
          `${have.size} entries, ${[...want].filter((x) => !have.has(x)).length} missing; ` +
          `${trace.hups().length} SIGHUPs)`,
      );
    }
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------- the operations

type Op =
  | { kind: 'create'; k: number }
  | { kind: 'update'; k: number; ip: string }
  | { kind: 'delete'; k: number };

/** Creates; each update (even k) / delete (odd k) LAG operations after its create. */
function plan(): Op[] {
  const ops: Op[] = [];
  const follow = (k: number): Op =>
    k % 2 === 0
      ? // 10.30.8.0 and up: the upper half of the /20, never allocated by IPAM here.
        { kind: 'update', k, ip: `10.30.${8 + Math.floor(k / 250)}.${(k % 250) + 2}` }
      : { kind: 'delete', k };
  for (let k = 0; k < CREATES; k++) {
    ops.push({ kind: 'create', k });
    if (k >= LAG) ops.push(follow(k - LAG));
  }
  for (let k = CREATES - LAG; k < CREATES; k++) ops.push(follow(k));
  return ops;
}

/** One applied change: the port after it (null: deleted) and when its response arrived. */
interface Change {
  portId: string;
  port: DhcpPort | null;
  at: number;
}

const dhcpPortOf = (p: Port): DhcpPort => ({
  id: p.id,
  mac_address: p.mac_address,
  device_owner: p.device_owner,
  fixed_ips: p.fixed_ips.map((f) => ({ subnet_id: f.subnet_id, ip_address: f.ip_address })),
});

async function runOps(c: Cluster, networkId: string, subnetId: string, t0: number) {
  const ops = plan();
  const created = new Map<number, Promise<Port>>();
  const resolvers = new Map<number, (p: Port) => void>();
  for (let k = 0; k < CREATES; k++) created.set(k, new Promise((r) => resolvers.set(k, r)));
  const changes: Change[] = [];
  let next = 0;
  const worker = async () => {
    while (next < ops.length) {
      const op = ops[next++] as Op;
      if (op.kind === 'create') {
        const port = await post<Port>(c, '/v2.0/ports', 'port', { network_id: networkId });
        changes.push({ portId: port.id, port: dhcpPortOf(port), at: now() - t0 });
        resolvers.get(op.k)?.(port);
      } else if (op.kind === 'update') {
        const id = (await created.get(op.k))?.id;
        const body = (await call(
          c,
          'PUT',
          `/v2.0/ports/${id}`,
          { port: { fixed_ips: [{ subnet_id: subnetId, ip_address: op.ip }] } },
          200,
        )) as { port: Port };
        changes.push({ portId: body.port.id, port: dhcpPortOf(body.port), at: now() - t0 });
      } else {
        const id = (await created.get(op.k))?.id as string;
        await call(c, 'DELETE', `/v2.0/ports/${id}`, undefined, 204);
        changes.push({ portId: id, port: null, at: now() - t0 });
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { changes, counts: countOps(ops) };
}

const countOps = (ops: Op[]) =>
  ['create', 'update', 'delete'].map((k) => `${ops.filter((o) => o.kind === k).length} ${k}s`);

// ---------------------------------------------------------------- the baseline

async function startBaseline(c: Cluster, snapshot: DhcpNetwork) {
  const net: DhcpNetwork = { ...snapshot, id: randomUUID() };
  const dhcpPort = snapshot.dhcp_port as DhcpPort;
  const stateDir = join(c.dir.path, 'bench-baseline', net.id);
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  chmodSync(join(c.dir.path, 'bench-baseline'), 0o755);
  const netns = `${(lab as Lab).prefix}-bdhcp`;
  baselineNetns = netns;
  const device = portDevice('tap', randomUUID());
  await runner.run({ argv: ['ip', 'netns', 'add', netns] });
  await runner.run(
    ipBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['link', 'add', device, 'type', 'veth', 'peer', 'name', 'bpeer'],
        ['link', 'set', 'dev', 'bpeer', 'up'],
        ['link', 'set', 'dev', device, 'address', dhcpPort.mac_address.toLowerCase()],
        ['addr', 'add', `${dhcpPort.fixed_ips[0]?.ip_address}/20`, 'dev', device],
        ['link', 'set', 'dev', device, 'up'],
      ],
      netns,
    ),
  );
  await writeDnsmasqFiles(stateDir, renderFiles(net));
  const paths = dnsmasqPaths(stateDir);
  const argv = dnsmasqArgv(net, { stateDir, interfaceName: device, leaseSeconds: 86400 });
  const pid = await startDaemon(
    runner,
    { argv, netns },
    { pidfile: paths.pid, expected: dnsmasqIdentity(paths) },
  );
  return { net, stateDir, paths, pid };
}

/** One full rewrite + SIGHUP per change, at the changes' phase-1 arrival offsets. */
async function replay(
  base: Awaited<ReturnType<typeof startBaseline>>,
  changes: Change[],
  t0: number,
): Promise<{ busyMs: number; sent: number }> {
  const ports = new Map(base.net.ports.map((p) => [p.id, p]));
  let busyMs = 0;
  let sent = 0;
  for (const ch of changes) {
    const wait = t0 + ch.at - now();
    if (wait > 0) await sleep(wait);
    const t = now();
    if (ch.port) ports.set(ch.portId, ch.port);
    else ports.delete(ch.portId);
    const files = renderFiles({ ...base.net, ports: [...ports.values()] });
    await writeDnsmasqFiles(base.stateDir, files);
    if (!signal(base.pid, 'SIGHUP')) throw new Error('baseline dnsmasq is gone');
    sent++;
    busyMs += now() - t;
  }
  return { busyMs, sent };
}

// ---------------------------------------------------------------- main

/** The agent's dnsmasq for `networkId` (found by its --pid-file under the cluster dir). */
function agentDnsmasq(c: Cluster, networkId: string) {
  const d = dnsmasqUnder(c.dir.path).find((x) =>
    x.argv.some((a) => a.startsWith('--pid-file=') && a.endsWith(`/${networkId}/pid`)),
  );
  if (!d) return undefined;
  const pidArg = d.argv.find((a) => a.startsWith('--pid-file=')) as string;
  const stateDir = pidArg.slice('--pid-file='.length).replace(/\/pid$/, '');
  return { pid: d.pid, stateDir };
}

function dhcpApplies(logPath: string, sinceWall: number): { dnsmasq: string[]; all: number } {
  const lines = readFileSync(logPath, 'utf8').split('\n');
  const out = { dnsmasq: [] as string[], all: 0 };
  for (const l of lines) {
    if (!l.includes('"msg":"dhcp apply"')) continue;
    const rec = JSON.parse(l) as { time: number; steps: string[] };
    if (rec.time < sinceWall) continue;
    out.all++;
    out.dnsmasq.push(...rec.steps.filter((s) => s.startsWith('dnsmasq:')));
  }
  return out;
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main() {
  const started = now();
  lab = await createLab({ hosts: 1 });
  const h = lab.hosts[0] as LabHost;
  cluster = await Cluster.create('sqlite', ovsOf(h));
  const c = cluster;
  const script = writeUdhcpcScript(c.dir.path);
  await c.startApi();
  c.startAgent('ovs');
  dhcpAgent = c.startAgent('dhcp');
  const agentProc = dhcpAgent;
  const agentDied = () =>
    agentProc.child.exitCode !== null || agentProc.child.signalCode !== null
      ? new Error(
          `kumo-dhcp-agent exited (${agentProc.child.exitCode ?? agentProc.child.signalCode})`,
        )
      : undefined;
  await waitFor(
    'the DHCP agent alive',
    async () => {
      const res = await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent&alive=true');
      return (res.body as { agents: unknown[] }).agents.length === 1;
    },
    30_000,
  );
  const net = await post<Network>(c, '/v2.0/networks', 'network', { name: 'churn-net' });
  ourNetworks.push(net.id);
  const subnet = await post<{ id: string }>(c, '/v2.0/subnets', 'subnet', {
    network_id: net.id,
    cidr: '10.30.0.0/20',
    ip_version: 4,
  });
  const served = await waitFor(
    "the network's qdhcp namespace and dnsmasq",
    async () => {
      const err = agentDied();
      if (err) throw err;
      const d = agentDnsmasq(c, net.id);
      return d && hostPairs(dnsmasqPaths(d.stateDir).hosts).size === 1 ? d : undefined;
    },
    60_000,
    100,
  );
  const hostsPath = dnsmasqPaths(served.stateDir).hosts;

  // The agent's own view of the network before t0: the baseline's starting point.
  broker = createBroker({ url: c.vhost.url, log: silentLogger() });
  await broker.start();
  const snapshot = GetNetworkInfoResult.parse(
    await broker.call(PLUGIN_TOPIC, 'get_network_info', { host: c.host, network_id: net.id }),
  ).network;
  if (!snapshot?.dhcp_port) throw new Error('get_network_info: no DHCP port for this host');
  const kumoTrace = await traceHups(served.pid);
  console.log(
    `dhcp-churn bench: ${OPS} API operations on one /20 network, ${CONCURRENCY} in flight; ` +
      `setup ${s(now() - started)}`,
  );

  // Phase 1: kumo-dhcp-agent.
  const t1 = now();
  const { changes, counts } = await runOps(c, net.id, subnet.id, t1);
  const apiDone = now() - t1;
  const want = await expectedPairs(c, net.id);
  const kumo = await settle('kumo', hostsPath, want, kumoTrace, wall(t1), agentDied);
  const kumoTime = kumo.last.at - wall(t1);
  const fromAgent = kumo.hups.filter((x) => x.from === agentProc.child.pid).length;
  const applies = dhcpApplies(agentProc.logPath, wall(t1));
  const restarts = applies.dnsmasq.filter((x) => !/^dnsmasq: (\w+ changed(; )?)+$/.test(x));
  if (agentDnsmasq(c, net.id)?.pid !== served.pid)
    throw new Error(`kumo: dnsmasq was restarted (${restarts.join(' | ')})`);
  console.log(
    `  operations: ${counts.join(', ')}; last API response at ${s(apiDone)}; ` +
      `final state ${want.size} hosts (DHCP port included)`,
  );
  console.log(
    `kumo-dhcp-agent: final state served at ${s(kumoTime)} (hosts file final at ≤ ` +
      `${s(kumo.fileSeen)}), reloads ${kumo.hups.length} (SIGHUPs delivered, ${fromAgent} ` +
      `from the agent; agent log: ${applies.all} "dhcp apply", ${applies.dnsmasq.length} ` +
      `with a dnsmasq step)`,
  );

  // Phase 2: the baseline, one rewrite + SIGHUP per change.
  const base = await startBaseline(c, snapshot);
  const baseTrace = await traceHups(base.pid);
  const baseHosts = base.paths.hosts;
  const t2 = now();
  let replayError: Error | undefined;
  const replaying = replay(base, changes, t2).catch((e: Error) => {
    replayError = e;
    return { busyMs: 0, sent: 0 };
  });
  const { busyMs, sent } = await replaying;
  if (replayError) throw replayError;
  const baseline = await settle('baseline', baseHosts, want, baseTrace, wall(t2), () => undefined);
  const baseTime = baseline.last.at - wall(t2);
  console.log(
    `baseline (rewrite+HUP per change): final state served at ${s(baseTime)}, reloads ` +
      `${sent} SIGHUPs sent (${baseline.hups.length} delivered: the kernel merges a SIGHUP ` +
      `sent while one is pending); busy ${s(busyMs)} (${(busyMs / sent).toFixed(2)} ms per change)`,
  );

  // Not timed: a real client gets a surviving port's updated address from kumo's dnsmasq.
  const survivor = changes
    .filter((ch) => Number(ch.port?.fixed_ips[0]?.ip_address.split('.')[2]) >= 8)
    .at(-1)?.port;
  if (!survivor) throw new Error('no updated port survived');
  const ep = await lab.endpoint(h, { ifaceId: survivor.id, mac: survivor.mac_address });
  const got = await waitFor(
    'a udhcpc lease for a surviving port',
    async () => {
      const lease = await dhcpLease(lab as Lab, ep, script).catch(() => undefined);
      return lease?.ip;
    },
    60_000,
    500,
  );
  const wantIp = survivor.fixed_ips[0]?.ip_address;
  if (got !== wantIp) throw new Error(`udhcpc got ${got}, expected ${wantIp}`);
  console.log(`  check: udhcpc on a surviving port got ${got} (its updated address)`);
  console.log(
    `bench took ${s(now() - started)}; reloads kumo ${kumo.hups.length} vs baseline ${sent}`,
  );
  console.log(`ratio baseline/kumo (time to final state): ${(baseTime / kumoTime).toFixed(1)}`);
}

await runBench({
  main,
  cleanup,
  lastly: () => {
    for (const p of [cluster?.api, ...(cluster?.agents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
    for (const t of tracers) if (t.exitCode === null) t.kill('SIGKILL');
    killOurDnsmasq();
  },
  onFailure: () => {
    if (dhcpAgent)
      console.error(`kumo-dhcp-agent log (last lines):\n${logTail(dhcpAgent.logPath)}`);
  },
});
