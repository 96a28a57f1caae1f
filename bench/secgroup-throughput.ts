#!/usr/bin/env node
/**
 * bench/secgroup-throughput: what the OVS conntrack firewall costs in TCP throughput
 * between two stand-in VMs: a pair whose ports are in a 50-rule group (one rule allows
 * the test port) against a pair with port security disabled, in the same run.
 *
 *   node bench/secgroup-throughput.ts [--seconds 5] [--runs 3] [--rules 50]
 *
 * Standalone: a 1-host lab and a Cluster with the real kumo-api and one kumo-ovs-agent
 * (bench/sg-lab.ts). Not timed: a vxlan network with a /24; a group of --rules rules
 * (Neutron's two egress rules, ingress rules of five kinds from bench/sg-lab.ts, one of
 * them from the group itself, and ingress TCP PORT from anywhere); four ports at fixed
 * addresses: a firewalled server and client in that group, an open server and client
 * with port_security_enabled=false and no groups; an endpoint namespace per port
 * (test/helpers/lab.ts: an OVS internal port on br-int, MTU 1400). Before measuring, the
 * firewall must be seen in force: the firewalled server refuses TCP CLOSED (it listens
 * there) while the open one accepts it, and both accept TCP PORT.
 *
 * Measured: bench/tcp-blast-main.ts in the namespaces (Node's sockets, 256 KiB writes),
 * one connection per run from the client to the server's PORT, --seconds long, in both
 * directions: upload (the client sends: the rule admits a new connection at the server's
 * port) and download (the server sends on the client's connection: the reply direction,
 * established traffic). MB/s = bytes received / first to last byte at the receiver.
 * A 1 s warm-up per pair is not counted. Runs alternate firewalled/open in ABBA order so
 * drift hits both. Medians per pair and direction; the ratio firewalled/open of each
 * direction; the last line is the lower of the two (target ≥ 0.7): `ratio firewalled/open (TCP MB/s, median, worse direction): X`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { Network, Port } from '../contracts/network.ts';
import { REPO, waitFor } from '../test/helpers/env.ts';
import type { Endpoint } from '../test/helpers/lab.ts';
import { stopPeers, tcpConnect, tcpServer } from '../test/helpers/tcp-peer.ts';
import { logTail, runBench } from './lib.ts';
import {
  call,
  destroyMade,
  killMade,
  type Made,
  makeGroup,
  median,
  raiseRuleQuota,
  ruleSet,
  type SgLab,
  startSgLab,
} from './sg-lab.ts';

const PORT = 5001;
const CLOSED = 5002;
const TARGET = 0.7;
const BLAST = join(REPO, 'bench', 'tcp-blast-main.ts');

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    rules: { type: 'string', default: '50' },
  },
  strict: true,
});
const SECONDS = Number(opts.seconds);
const RUNS = Number(opts.runs);
const RULES = Number(opts.rules);
if (!(SECONDS >= 1 && SECONDS <= 30)) throw new Error('--seconds must be in 1..30');
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error('--runs must be 1..20');
if (!Number.isInteger(RULES) || RULES < 4 || RULES > 500) throw new Error('--rules must be 4..500');

const made: Made = {};
const blasts = new Set<ChildProcess>();

interface Pair {
  name: 'firewalled' | 'open';
  server: Endpoint;
  client: Endpoint;
}
type Direction = 'upload' | 'download';

/** A tcp-blast process in `netns`; its stdout lines, one at a time. */
function blast(netns: string, args: string[]) {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, BLAST, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  blasts.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => (waiting.shift() ?? ((x: string) => queue.push(x)))(l));
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (code) => {
      blasts.delete(child);
      r(code);
    }),
  );
  const next = async (what: string) => {
    const line = queue.shift();
    if (line !== undefined) return line;
    const got = await Promise.race([
      new Promise<string>((r) => waiting.push(r)),
      exited.then((code) => `exit ${code}`),
    ]);
    if (got.startsWith('exit ')) throw new Error(`tcp-blast ${what} ended (${got}): ${stderr}`);
    return got;
  };
  return { next, exited };
}

/** One run: MB/s received in `dir` over one connection client → server:PORT. */
async function measure(pair: Pair, dir: Direction, seconds = SECONDS): Promise<number> {
  const s = String(seconds);
  const server = blast(pair.server.netns, [
    'listen',
    String(PORT),
    dir === 'upload' ? 'recv' : 'send',
    s,
  ]);
  if ((await server.next('server')) !== 'listening') throw new Error('tcp-blast did not listen');
  const client = blast(pair.client.netns, [
    'connect',
    pair.server.ip,
    String(PORT),
    dir === 'upload' ? 'send' : 'recv',
    s,
  ]);
  const receiver = dir === 'upload' ? server : client;
  const { bytes, ms } = JSON.parse(await receiver.next('receiver')) as {
    bytes: number;
    ms: number;
  };
  await Promise.all([server.exited, client.exited]);
  if (bytes === 0 || ms <= 0) throw new Error(`${pair.name} ${dir}: nothing received`);
  return bytes / 1e6 / (ms / 1000);
}

/** Whether a TCP connection from the pair's client to its server's `port` is made. */
async function connects(pair: Pair, port: number): Promise<boolean> {
  const conn = await tcpConnect(pair.client.netns, pair.server.ip, port, 2000).catch(() => null);
  conn?.close();
  return conn !== null;
}

/** Not timed: the firewalled server refuses CLOSED, the open one accepts it; PORT passes. */
async function firewallInForce(pairs: Pair[]) {
  const servers = [];
  for (const p of pairs)
    for (const port of [PORT, CLOSED]) servers.push(await tcpServer(p.server.netns, port));
  const [fw, open] = pairs as [Pair, Pair];
  await waitFor(
    `the firewall in force (TCP ${CLOSED} refused on the firewalled pair only)`,
    async () =>
      !(await connects(fw, CLOSED)) &&
      (await connects(open, CLOSED)) &&
      (await connects(fw, PORT)) &&
      (await connects(open, PORT)),
    30_000,
    500,
  );
  for (const srv of servers) srv.stop();
}

/** Network, subnet, the group, four ports and their endpoints. */
async function setup(l: SgLab): Promise<Pair[]> {
  await raiseRuleQuota(l.c, 10 * RULES);
  const net = await call<Network>(l.c, 'POST', '/v2.0/networks', 'network', {
    name: 'sg-throughput',
    'provider:network_type': 'vxlan',
  });
  await call(l.c, 'POST', '/v2.0/subnets', 'subnet', {
    network_id: net.id,
    cidr: '10.0.0.0/24',
    ip_version: 4,
  });
  const group = await makeGroup(l.c, 'sg-throughput', (id) => [
    ...ruleSet(RULES - 3, { remoteGroup: id, remoteEvery: 10, keepClosed: CLOSED }),
    {
      direction: 'ingress',
      ethertype: 'IPv4',
      protocol: 'tcp',
      port_range_min: PORT,
      port_range_max: PORT,
      remote_ip_prefix: '0.0.0.0/0',
    },
  ]);
  if (group.rules !== RULES) throw new Error(`the group has ${group.rules} rules, not ${RULES}`);
  const eps: Endpoint[] = [];
  for (const [i, open] of [false, false, true, true].entries()) {
    const ip = `10.0.0.${11 + i}`;
    const port = await call<Port>(l.c, 'POST', '/v2.0/ports', 'port', {
      network_id: net.id,
      fixed_ips: [{ ip_address: ip }],
      ...(open
        ? { port_security_enabled: false, security_groups: [] }
        : { security_groups: [group.id] }),
    });
    eps.push(
      await l.lab.endpoint(l.host, { ifaceId: port.id, mac: port.mac_address, cidr: `${ip}/24` }),
    );
  }
  await waitFor(
    '4 ports ACTIVE',
    async () => {
      const err = l.agentDied();
      if (err) throw err;
      const res = await l.c.http('GET', `/v2.0/ports?network_id=${net.id}&status=ACTIVE&fields=id`);
      return (res.body as { ports: unknown[] }).ports.length === 4;
    },
    30_000,
    200,
  );
  const [fs, fc, os, oc] = eps as [Endpoint, Endpoint, Endpoint, Endpoint];
  return [
    { name: 'firewalled', server: fs, client: fc },
    { name: 'open', server: os, client: oc },
  ];
}

const fmt = (x: number) => `${x.toFixed(1)} MB/s`;

async function main() {
  const started = performance.now();
  const l = await startSgLab(made);
  const pairs = await setup(l);
  await firewallInForce(pairs);
  console.log(
    `secgroup-throughput bench: TCP ${PORT} between two endpoints on br-int of 1 lab host, ` +
      `${RUNS} runs × ${SECONDS} s per pair and direction (ABBA order); the firewalled pair is ` +
      `in a ${RULES}-rule group (TCP ${CLOSED} refused, checked), the open pair has port ` +
      `security disabled; setup ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  for (const p of pairs) await measure(p, 'upload', 1);
  const ratios: number[] = [];
  for (const dir of ['upload', 'download'] as const) {
    const got = new Map<string, number[]>([
      ['firewalled', []],
      ['open', []],
    ]);
    for (let r = 0; r < RUNS; r++) {
      const order = r % 2 ? [...pairs].reverse() : pairs;
      for (const p of order) got.get(p.name)?.push(await measure(p, dir));
    }
    const [fw, open] = [median(got.get('firewalled') ?? []), median(got.get('open') ?? [])];
    const runs = (name: string) => (got.get(name) ?? []).map(fmt).join(', ');
    console.log(
      `${dir} (${dir === 'upload' ? 'client sends' : 'server sends'}): firewalled ${fmt(fw)} ` +
        `[${runs('firewalled')}], open ${fmt(open)} [${runs('open')}], ratio ${(fw / open).toFixed(2)}`,
    );
    ratios.push(fw / open);
  }
  const worst = Math.min(...ratios);
  console.log(
    `target (firewalled/open >= ${TARGET}: the firewall costs less than 30%): ` +
      `${worst >= TARGET ? 'met' : 'MISSED'}; bench took ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(`ratio firewalled/open (TCP MB/s, median, worse direction): ${worst.toFixed(2)}`);
}

await runBench({
  main,
  async cleanup() {
    stopPeers();
    for (const b of blasts) b.kill('SIGKILL');
    await destroyMade(made);
  },
  lastly: () => {
    for (const b of blasts) b.kill('SIGKILL');
    killMade(made);
  },
  onFailure: () => {
    const agent = made.c?.hostAgents.values().next().value;
    if (agent) console.error(`kumo-ovs-agent log (last lines):\n${logTail(agent.logPath)}`);
    if (made.c?.api) console.error(`kumo-api log (last lines):\n${logTail(made.c.api.logPath)}`);
  },
});
