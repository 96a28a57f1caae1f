#!/usr/bin/env node
/**
 * bench/dhcp-resync: kumo-dhcp-agent restarted with --networks hosted networks, some of
 * them broken while it was down; how long until every namespace, tap address and
 * dnsmasq is verified or rebuilt, against a same-run minimal script doing the same host
 * operations directly (no AMQP, no API). Goal: within 1.5× of the script.
 *
 *   node bench/dhcp-resync.ts [--networks 200] [--kill-every 2] [--delete-netns 0]
 *
 * Standalone: a 1-host lab (test/helpers/lab.ts), a Cluster (test/helpers/cluster.ts: own
 * vhost, SQLite, the real kumo-api) with the real kumo-ovs-agent and kumo-dhcp-agent, as
 * in test/fullstack/dhcp-lab.test.ts. Not timed: --networks vxlan networks, each with one
 * DHCP-enabled /24, all scheduled to the one DHCP agent, until all of them are healthy.
 * Every dnsmasq and qdhcp namespace of the run is removed at the end, also on error or
 * Ctrl-C (only ours: found by their --pid-file under the cluster's temp dir, and by our
 * network ids).
 *
 * Healthy (checked from the outside): the namespace is listed by `ip -j netns list`; the
 * tap inside has the DHCP port's address (`ip -n NS -j addr show dev TAP`, address from
 * the API); the pid file names a live, non-zombie process whose cmdline carries that
 * `--pid-file=` and whose network namespace (/proc/<pid>/ns/net) is NS.
 *
 * What is broken, the same way before each phase, with the agent stopped (SIGTERM):
 * - every --kill-every'th network (index 0, 2, 4, … by default: half): its dnsmasq is
 *   SIGKILLed, the stale pid file stays (a crashed dnsmasq);
 * - --delete-netns networks among the others (odd indices spread over the list): their
 *   dnsmasq is SIGKILLed and the namespace deleted (`ip netns del`), which also destroys
 *   the tap inside; OVS keeps its Interface row (an operator's cleanup, or a lost netns).
 * The rest must only be verified.
 *
 * Phase 1 (kumo): t0 = the agent is spawned again. Done when (a) every network is healthy
 * and (b) the agent has looked at every network since t0. (b) is read from the outside
 * without touching the agent: before t0 the access time of each network's `host` file is
 * set back (utimes, atime < mtime), so under relatime the agent's first read of it (its
 * observe step, which runs for every network it reconciles) stamps the atime; a network
 * counts as verified at that atime. (a) is polled every 50 ms, cheapest checks first: a
 * network's rebuild is done when its dnsmasq runs (the pid file's mtime gives the time);
 * then the full check above runs (`ip` only for networks whose dnsmasq already runs).
 * Time = max over networks of max(verified, healthy).
 *
 * Phase 2 (baseline, same run): the agent is stopped again, the same networks broken the
 * same way, and the script runs, sequentially, for every network: one `ip -j netns list`
 * for all; per network, if the namespace is missing: `ip netns add`, `ip -n NS link set lo
 * up`, the agent's `ovs-vsctl --may-exist add-port br-int TAP -- set Interface …` and `ip
 * link set TAP netns NS` (in ovs-vswitchd's namespace); `ip -n NS -j addr show dev TAP`;
 * if the address, MAC, MTU or up state is missing, one `ip -n NS -batch` (the agent's
 * lines); the pid file + /proc check; a dead dnsmasq is started (host/process startDaemon,
 * the argv it ran with, read from /proc before anything was broken: the script's config).
 * Time = the script's run time; then the same health check (not timed) must pass.
 *
 * Output: both times with what was rebuilt, and as the last line `ratio kumo/script
 * (resync time): X.XX` (lower is better; the goal is ≤ 1.5). Exit 1 if a phase does not
 * finish within --timeout seconds (default 120), with the unhealthy networks and the tail
 * of the agent's log.
 */
import { readFileSync, statSync, utimesSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Network, Port } from '../contracts/network.ts';
import { createCommandRunner } from '../core/exec.ts';
import { addrReplace, ipBatch, linkSetMac, linkSetMtu, linkUp } from '../host/ip/link.ts';
import { findRunning, procStat, startDaemon } from '../host/process/daemon.ts';
import { Cluster, ovsOf, type Proc } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import { createLab, type Lab, type LabHost } from '../test/helpers/lab.ts';
import { dnsmasqUnder, killDnsmasqUnder, logTail, runBench } from './lib.ts';

const POLL_MS = 50;

const { values: opts } = parseArgs({
  options: {
    networks: { type: 'string', default: '200' },
    'kill-every': { type: 'string', default: '2' },
    'delete-netns': { type: 'string', default: '0' },
    timeout: { type: 'string', default: '120' },
  },
  strict: true,
});
const N = Number(opts.networks);
const KILL_EVERY = Number(opts['kill-every']);
const DELETE_NETNS = Number(opts['delete-netns']);
const TIMEOUT_MS = Number(opts.timeout) * 1000;
if (!Number.isInteger(N) || N < 2 || N > 1000)
  throw new Error(`--networks must be an integer in 2..1000 (got ${opts.networks})`);
if (!Number.isInteger(KILL_EVERY) || KILL_EVERY < 0)
  throw new Error('--kill-every must be 0 (none) or a positive integer');
if (!Number.isInteger(DELETE_NETNS) || DELETE_NETNS < 0 || DELETE_NETNS > N / 2)
  throw new Error('--delete-netns must be an integer in 0..networks/2');
if (!(TIMEOUT_MS > 0)) throw new Error('--timeout must be positive');

const now = () => performance.now();
const wall = (t = now()) => performance.timeOrigin + t;
const runner = createCommandRunner();
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

// ---------------------------------------------------------------- environment

let lab: Lab | undefined;
let cluster: Cluster | undefined;
let dhcpAgent: Proc | undefined;
let cleaning: Promise<void> | undefined;
const networkIds: string[] = [];
/** Namespaces we know to be ours (by network id, or as found for our dnsmasq). */
const ourNetns = new Set<string>();

function killOurDnsmasq() {
  if (cluster) killDnsmasqUnder(cluster.dir.path);
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await cluster?.cleanup().catch((e: Error) => console.error(`cleanup: ${e.message}`));
    killOurDnsmasq();
    for (const id of networkIds) ourNetns.add(`qdhcp-${id}`);
    const listed = new Set(await listNetns().catch(() => [] as string[]));
    for (const ns of ourNetns)
      if (listed.has(ns)) await runner.run({ argv: ['ip', 'netns', 'del', ns] }).catch(() => {});
    await lab?.destroy().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  })();
  return cleaning;
}

async function post<T>(c: Cluster, path: string, key: string, body: unknown): Promise<T> {
  const res = await c.http('POST', path, { [key]: body });
  if (res.status !== 201)
    throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, T>)[key] as T;
}

async function listNetns(): Promise<string[]> {
  const { stdout } = await runner.run({ argv: ['ip', '-j', 'netns', 'list'] });
  return stdout.trim() ? (JSON.parse(stdout) as { name: string }[]).map((e) => e.name) : [];
}

// ---------------------------------------------------------------- one network's service

/** Everything known about one network's DHCP service: the script's config, and the check's. */
interface Svc {
  index: number;
  networkId: string;
  portId: string;
  netns: string;
  tap: string;
  mac: string;
  mtu: number;
  cidr: string;
  pidfile: string;
  hostsFile: string;
  argv: string[];
}

const inode = (path: string) => {
  try {
    return statSync(path).ino;
  } catch {
    return -1;
  }
};

/** The pid of `svc`'s dnsmasq if it runs with its pid file (cheap: /proc only). */
async function dnsmasqOf(svc: Svc): Promise<number | null> {
  return findRunning(svc.pidfile, `--pid-file=${svc.pidfile}`);
}

/** Full check of one network; a string says what is wrong. */
async function unhealthy(svc: Svc, namespaces: Set<string>): Promise<string | null> {
  if (!namespaces.has(svc.netns)) return 'no namespace';
  const pid = await dnsmasqOf(svc);
  if (pid === null) return 'dnsmasq not running';
  if (inode(`/proc/${pid}/ns/net`) !== inode(`/run/netns/${svc.netns}`))
    return 'dnsmasq in another namespace';
  const res = await runner
    .run({ argv: ['ip', '-n', svc.netns, '-j', 'addr', 'show', 'dev', svc.tap] })
    .catch(() => null);
  if (!res) return 'no tap';
  const addrs = (JSON.parse(res.stdout) as { addr_info?: { local: string; prefixlen: number }[] }[])
    .flatMap((l) => l.addr_info ?? [])
    .map((a) => `${a.local}/${a.prefixlen}`);
  return addrs.includes(svc.cidr) ? null : `tap without ${svc.cidr}`;
}

async function healthReport(svcs: Svc[]): Promise<Map<Svc, string>> {
  const namespaces = new Set(await listNetns());
  const bad = new Map<Svc, string>();
  for (const svc of svcs) {
    const why = await unhealthy(svc, namespaces);
    if (why) bad.set(svc, why);
  }
  return bad;
}

// ---------------------------------------------------------------- breaking

interface Broken {
  killed: Svc[];
  deleted: Svc[];
}

function chooseBroken(svcs: Svc[]): Broken {
  const killed = KILL_EVERY > 0 ? svcs.filter((x) => x.index % KILL_EVERY === 0) : [];
  const rest = svcs.filter((x) => !killed.includes(x));
  const deleted: Svc[] = [];
  for (let i = 0; i < DELETE_NETNS; i++) {
    const svc = rest[Math.floor((i * rest.length) / DELETE_NETNS)];
    if (svc) deleted.push(svc);
  }
  return { killed, deleted };
}

async function breakThem(b: Broken) {
  const killAndWait = async (svc: Svc) => {
    const pid = await dnsmasqOf(svc);
    if (pid === null) throw new Error(`${svc.netns}: no dnsmasq to kill`);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 200; i++) {
      const st = await procStat(pid);
      if (st === null || st.state === 'Z' || st.state === 'X') return;
      await sleep(10);
    }
    throw new Error(`dnsmasq ${pid} survived SIGKILL`);
  };
  for (const svc of [...b.killed, ...b.deleted]) await killAndWait(svc);
  for (const svc of b.deleted) await runner.run({ argv: ['ip', 'netns', 'del', svc.netns] });
}

/** Sets each hosts file's atime before its mtime, so the next read (relatime) stamps it. */
function armAtimes(svcs: Svc[]): Map<Svc, number> {
  const armed = new Map<Svc, number>();
  for (const svc of svcs) {
    const st = statSync(svc.hostsFile);
    const atime = new Date(st.mtimeMs - 60_000);
    utimesSync(svc.hostsFile, atime, st.mtime);
    armed.set(svc, statSync(svc.hostsFile).atimeMs);
  }
  return armed;
}

// ---------------------------------------------------------------- the script

/** The baseline: the same host operations, sequentially, no AMQP, no API. */
async function script(h: LabHost, svcs: Svc[], c: Cluster) {
  const counts = { netns: 0, addr: 0, dnsmasq: 0 };
  const namespaces = new Set(await listNetns());
  const vsctl = (args: string[]) => ({
    argv: ['ovs-vsctl', `--db=unix:${c.ovs.dbSocket}`, '--timeout=10', ...args],
  });
  for (const svc of svcs) {
    if (!namespaces.has(svc.netns)) {
      counts.netns++;
      await runner.run({ argv: ['ip', 'netns', 'add', svc.netns] });
      await runner.run({ argv: ['ip', '-n', svc.netns, 'link', 'set', 'lo', 'up'] });
      // The agent's add-port after a del-port: `--may-exist add-port` alone is a no-op
      // when OVSDB still has the port but its device went with the namespace, and so is
      // del-port + add-port in one transaction (ovs-vswitchd sees no change).
      await runner.run(vsctl(['--if-exists', 'del-port', 'br-int', svc.tap]));
      await runner.run(
        vsctl([
          'add-port',
          'br-int',
          svc.tap,
          '--',
          'set',
          'Interface',
          svc.tap,
          'type=internal',
          `external_ids:iface-id=${svc.portId}`,
          `external_ids:attached-mac=${svc.mac}`,
          'external_ids:iface-status=active',
        ]),
      );
      await runner.run({
        argv: ['ip', '-n', h.netns, 'link', 'set', 'dev', svc.tap, 'netns', svc.netns],
      });
    }
    const { stdout } = await runner.run({
      argv: ['ip', '-n', svc.netns, '-j', 'addr', 'show', 'dev', svc.tap],
    });
    const link = (
      JSON.parse(stdout) as {
        address?: string;
        mtu?: number;
        flags?: string[];
        addr_info?: { local: string; prefixlen: number; scope: string }[];
      }[]
    )[0];
    const have = (link?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
    const lines = [
      ...(link?.address === svc.mac ? [] : [linkSetMac(svc.tap, svc.mac)]),
      ...(link?.mtu === svc.mtu ? [] : [linkSetMtu(svc.tap, svc.mtu)]),
      ...(link?.flags?.includes('UP') ? [] : [linkUp(svc.tap)]),
      ...(have.includes(svc.cidr) ? [] : [addrReplace(svc.tap, svc.cidr)]),
    ];
    if (lines.length) {
      counts.addr++;
      await runner.run(ipBatch(lines, svc.netns));
    }
    if ((await dnsmasqOf(svc)) === null) {
      counts.dnsmasq++;
      await startDaemon(
        runner,
        { argv: svc.argv, netns: svc.netns },
        { pidfile: svc.pidfile, expected: `--pid-file=${svc.pidfile}` },
      );
    }
  }
  return counts;
}

// ---------------------------------------------------------------- main

async function setup(c: Cluster): Promise<Svc[]> {
  const subnets = new Map<string, string>();
  for (let i = 0; i < N; i++) {
    const net = await post<Network>(c, '/v2.0/networks', 'network', {
      name: `resync-${i}`,
      'provider:network_type': 'vxlan',
    });
    networkIds.push(net.id);
    ourNetns.add(`qdhcp-${net.id}`);
    const cidr = `10.${64 + Math.floor(i / 250)}.${i % 250}.0/24`;
    await post(c, '/v2.0/subnets', 'subnet', { network_id: net.id, cidr, ip_version: 4 });
    subnets.set(net.id, cidr);
  }
  const agentProc = dhcpAgent as Proc;
  // The agent's dnsmasq processes, by network id (found by their --pid-file, which keeps
  // this independent of where the cluster puts state_path).
  const running = await waitFor(
    `${N} qdhcp dnsmasq processes`,
    async () => {
      if (agentProc.child.exitCode !== null) throw new Error('kumo-dhcp-agent exited');
      const byNet = new Map<string, string[]>();
      for (const d of dnsmasqUnder(c.dir.path)) {
        const pidArg = d.argv.find((a) => a.startsWith('--pid-file=')) as string;
        const id = /\/([0-9a-f-]{36})\/pid$/.exec(pidArg)?.[1];
        if (id && subnets.has(id)) byNet.set(id, d.argv);
      }
      return byNet.size === N ? byNet : undefined;
    },
    TIMEOUT_MS,
    250,
  );
  const res = await c.http('GET', '/v2.0/ports?device_owner=network:dhcp');
  const dhcpPorts = new Map(
    (res.body as { ports: Port[] }).ports.map((p) => [p.network_id, p] as const),
  );
  const nets = new Map(
    ((await c.http('GET', '/v2.0/networks')).body as { networks: Network[] }).networks.map(
      (n) => [n.id, n] as const,
    ),
  );
  const svcs: Svc[] = [];
  for (const [index, networkId] of networkIds.entries()) {
    const argv = running.get(networkId) as string[];
    const port = dhcpPorts.get(networkId);
    if (!port) throw new Error(`network ${networkId} has no DHCP port`);
    const pidfile = (argv.find((a) => a.startsWith('--pid-file=')) as string).slice(11);
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    const netns = (await runner.run({ argv: ['ip', 'netns', 'identify', `${pid}`] })).stdout.trim();
    if (!netns) throw new Error(`dnsmasq ${pid} runs in no named namespace`);
    ourNetns.add(netns);
    const prefix = (subnets.get(networkId) as string).split('/')[1];
    svcs.push({
      index,
      networkId,
      portId: port.id,
      netns,
      tap: (argv.find((a) => a.startsWith('--interface=')) as string).slice(12),
      mac: port.mac_address.toLowerCase(),
      mtu: nets.get(networkId)?.mtu as number,
      cidr: `${port.fixed_ips[0]?.ip_address}/${prefix}`,
      pidfile,
      hostsFile: pidfile.replace(/\/pid$/, '/host'),
      argv,
    });
  }
  await waitFor(
    `all ${N} networks healthy`,
    async () => (await healthReport(svcs)).size === 0,
    TIMEOUT_MS,
    500,
  );
  return svcs;
}

function describe(b: Broken) {
  return (
    `${b.killed.length} dnsmasq killed, ${b.deleted.length} namespaces deleted ` +
    `(dnsmasq killed, ip netns del), ${N - b.killed.length - b.deleted.length} intact`
  );
}

function dhcpApplies(logPath: string, sinceWall: number) {
  const kinds = new Map<string, number>();
  let networks = 0;
  for (const l of readFileSync(logPath, 'utf8').split('\n')) {
    if (!l.includes('"msg":"dhcp apply"')) continue;
    const rec = JSON.parse(l) as { time: number; steps: string[] };
    if (rec.time < sinceWall) continue;
    networks++;
    for (const st of rec.steps) {
      const k = st.split(':')[0] as string;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
  }
  const failures = readFileSync(logPath, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"reconcile failed"'))
    .filter((l) => (JSON.parse(l) as { time: number }).time >= sinceWall).length;
  return { networks, kinds, failures };
}

async function main() {
  const started = now();
  lab = await createLab({ hosts: 1 });
  const h = lab.hosts[0] as LabHost;
  cluster = await Cluster.create('sqlite', ovsOf(h));
  const c = cluster;
  await c.startApi();
  c.startAgent('ovs');
  dhcpAgent = c.startAgent('dhcp');
  await waitFor(
    'the DHCP agent alive',
    async () => {
      const res = await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent&alive=true');
      return (res.body as { agents: unknown[] }).agents.length === 1;
    },
    30_000,
  );
  const svcs = await setup(c);
  const broken = chooseBroken(svcs);
  console.log(
    `dhcp-resync bench: ${N} networks hosted by one kumo-dhcp-agent; ` +
      `setup ${s(now() - started)}; broken before each phase: ${describe(broken)}`,
  );

  // Phase 1: the script, with the agent stopped.
  await c.stop(dhcpAgent, 'SIGTERM');
  await breakThem(broken);
  const t2 = now();
  const counts = await script(h, svcs, c);
  const scriptTime = now() - t2;
  const bad = await healthReport(svcs);
  if (bad.size > 0)
    throw new Error(
      `script: ${bad.size} unhealthy: ${[...bad]
        .slice(0, 5)
        .map(([x, why]) => `${x.netns}: ${why}`)
        .join('; ')}`,
    );
  console.log(
    `script (sequential, same commands): ${s(scriptTime)} (rebuilt ${counts.netns} ` +
      `namespaces, ${counts.addr} tap setups, ${counts.dnsmasq} dnsmasq); health check passed`,
  );
  // Phase 2: kumo-dhcp-agent restarted, the same networks broken again.
  await breakThem(broken);
  const armed = armAtimes(svcs);
  const rebuilt = new Set([...broken.killed, ...broken.deleted]);
  const t1 = now();
  const agent = c.startAgent('dhcp');
  dhcpAgent = agent;
  const verified = new Map<Svc, number>();
  const running = new Map<Svc, number>();
  let healthyAt: number | undefined;
  for (;;) {
    if (agent.child.exitCode !== null) throw new Error('kumo-dhcp-agent exited');
    for (const svc of svcs) {
      if (!verified.has(svc)) {
        const at = statSync(svc.hostsFile).atimeMs;
        if (at !== armed.get(svc)) verified.set(svc, at - wall(t1));
      }
      if (rebuilt.has(svc) && !running.has(svc) && (await dnsmasqOf(svc)) !== null)
        running.set(svc, statSync(svc.pidfile).mtimeMs - wall(t1));
    }
    if (verified.size === N && running.size === rebuilt.size) {
      const bad = await healthReport(svcs);
      if (bad.size === 0) {
        healthyAt ??= now() - t1;
        break;
      }
    }
    if (now() - t1 > TIMEOUT_MS) {
      const bad = await healthReport(svcs);
      throw new Error(
        `kumo-dhcp-agent: after ${TIMEOUT_MS / 1000} s, ${N - verified.size} networks never looked at, ` +
          `${bad.size} unhealthy: ${[...bad]
            .slice(0, 5)
            .map(([x, why]) => `${x.netns}: ${why}`)
            .join('; ')}`,
      );
    }
    await sleep(POLL_MS);
  }
  const lastVerified = Math.max(...verified.values());
  const lastRebuilt = Math.max(0, ...running.values());
  const kumoTime = Math.max(lastVerified, lastRebuilt);
  const applies = dhcpApplies(agent.logPath, wall(t1));
  const resyncLine = readFileSync(agent.logPath, 'utf8')
    .split('\n')
    .find(
      (l) =>
        l.includes('"msg":"full resync"') && (JSON.parse(l) as { time: number }).time >= wall(t1),
    );
  const resyncAt = resyncLine ? (JSON.parse(resyncLine) as { time: number }).time - wall(t1) : NaN;
  console.log(
    `kumo-dhcp-agent: ${s(kumoTime)} (every network looked at by ${s(lastVerified)}, ` +
      `last rebuilt dnsmasq at ${s(lastRebuilt)}, health check passed at ≤ ${s(healthyAt)}); ` +
      `its resync began at ${s(resyncAt)} (process start, broker, dnsmasq --version); ` +
      `"dhcp apply" for ${applies.networks} networks, steps ` +
      `${[...applies.kinds].map(([k, v]) => `${k} ${v}`).join(', ')}; ` +
      `${applies.failures} failed reconciles`,
  );

  const ratio = kumoTime / scriptTime;
  console.log(
    `target (kumo within 1.5x of the script): ${ratio <= 1.5 ? 'met' : 'MISSED'}; ` +
      `bench took ${s(now() - started)}`,
  );
  console.log(`ratio kumo/script (resync time): ${ratio.toFixed(2)}`);
}

await runBench({
  main,
  cleanup,
  lastly: () => {
    for (const p of [cluster?.api, ...(cluster?.agents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
    killOurDnsmasq();
  },
  onFailure: () => {
    if (dhcpAgent)
      console.error(
        `kumo-dhcp-agent log (last lines):\n${logTail(dhcpAgent.logPath, 15, (l) => !l.includes('"msg":"hint"'))}`,
      );
  },
});
