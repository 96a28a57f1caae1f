#!/usr/bin/env node
/**
 * bench/port-wiring: how fast ports added to br-int become ACTIVE in the API with
 * kumo-ovs-agent, against a baseline that wires the same ports with one `ovs-vsctl` /
 * `ovs-ofctl` process per operation (the way Neutron's OVS agent once did, before it moved
 * to an OVSDB monitor and batched transactions for being ~10× slower).
 *
 *   node bench/port-wiring.ts [--ports 100]
 *
 * Standalone: a 1-host lab (test/helpers/lab.ts: ovsdb-server + ovs-vswitchd with the
 * userspace datapath in a netns), a Cluster (test/helpers/cluster.ts: its own RabbitMQ
 * vhost, SQLite, the real `bin/kumo-api.ts`) and one real kumo-ovs-agent process for the lab
 * host. Not timed: a vxlan network + subnet and 2×--ports + 20 API ports (POST /v2.0/ports).
 * Everything is removed at the end, also on error or Ctrl-C.
 *
 * Both phases add their ports the same way: ONE OVSDB transaction (our client,
 * host/ovs/ovsdb.ts) inserting N `type=internal` Interface+Port rows on br-int with
 * external_ids iface-id / attached-mac / iface-status and bumping next_cfg, as
 * `ovs-vsctl --no-wait add-port … -- add-port …` would. t0 = when that transaction's reply
 * arrives, i.e. when the ports are in OVSDB; ovs-vswitchd creating the N taps is inside the
 * measured time of both phases (each waits for it before it writes flows / reports).
 * The API is then polled (`GET /v2.0/ports?network_id=…&status=ACTIVE`, every 20 ms) and a
 * port's latency is the arrival time of the first response listing it ACTIVE, minus t0
 * (an upper bound, coarse by one poll period plus one request). total = last port − t0.
 *
 * Phase 1 (kumo): the agent is running and has done its first sync (br-int, br-tun and its
 * flows exist) before t0; it sees the ports through its monitor and does what it does in
 * production: get_devices_details, one transaction, replace-flows, update_device_list.
 *
 * Phase 2 (baseline, same run): the agent is stopped (SIGTERM; OVS keeps its state), then
 * the other N ports are added at t0 and wired sequentially, one process per OVS operation:
 * `ovs-vsctl list-ports br-int` once, then per port `ovs-vsctl get Interface <p>
 * external_ids:iface-id`, get_devices_details for that one device, `ovs-vsctl set Port <p>
 * tag=<vlan> other_config:…` (waiting for ovs-vswitchd, as ovs-vsctl does by default and
 * the agent does through cur_cfg), `ovs-ofctl add-flow` of the network's tunnel→VLAN flow on
 * br-tun, and update_device_list up for that one device. The RPCs are the agent's own
 * (core/amqp broker.call to q-plugin, connected before t0), so kumo-api's work per port is
 * the same. The network's local VLAN is read from OVSDB before t0 (the old agent kept its
 * VLAN map in memory), and the baseline writes fewer flows than the agent (one per port,
 * none on br-int): where it differs, it favours the baseline.
 *
 * Single port (between the phases, agent running, the N phase-1 ports on br-int): 20 runs,
 * one at a time, of adding ONE port the same way (one transaction, as `ovs-vsctl --no-wait
 * add-port br-int P -- set Interface P type=internal external_ids:iface-id=…` would); its
 * latency is from just before that transaction is sent to the first API response listing
 * the port ACTIVE (polled every SINGLE_POLL_MS). Where the time goes comes from the
 * agent's own log (pino JSON; the clocks are wall-clock ms with sub-ms precision in both
 * processes): the bench's commit (send → OVSDB reply), the monitor wake-up (reply → the
 * agent's `wokeAt`, when its OVSDB monitor update arrived), the queue (update → sync
 * start), get_devices_details, the OVSDB step (the agent's transaction + ovs-vswitchd's
 * cur_cfg wait, from its `step` line), replace-flows (its `flows` step: both bridges),
 * update_device_list, and what is left (the report reaching the API's DB + the poll).
 *
 * Output: N, per phase p50/p99 per port and total, the single-port p50 (< 100 ms) and its
 * breakdown (p50 per part), the target verdict (N ACTIVE in < 2 s, ≥ 5× the baseline),
 * and as the last line `ratio baseline/kumo (total time): X` — baseline total / kumo
 * total, how many times faster Kumo is. Exit 1 if a phase does not finish
 * within 60 s (or anything else fails), with the reason and the tail of the agent's log.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { GetDevicesDetailsResult } from '../contracts/l2.ts';
import { PLUGIN_TOPIC } from '../contracts/messages.ts';
import type { Network, Port } from '../contracts/network.ts';
import { type Broker, createBroker } from '../core/amqp.ts';
import { silentLogger } from '../core/log.ts';
import {
  createOvsdbClient,
  fromMap,
  fromOptional,
  insert,
  map,
  mutate,
  namedUuid,
  type OvsdbClient,
  type OvsdbOperation,
  select,
  set,
} from '../host/ovs/ovsdb.ts';
import { Cluster, ovsOf, type Proc } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import { createLab, type Lab, type LabHost } from '../test/helpers/lab.ts';
import { logTail, runBench } from './lib.ts';

const POLL_MS = 20;
const PHASE_TIMEOUT_MS = 60_000;
const TARGET_MS = 2000;
const TARGET_RATIO = 5;
const SINGLE_RUNS = 20;
const SINGLE_POLL_MS = 5;
const SINGLE_TARGET_MS = 100;
/** After a single-port run: the agent's follow-up syncs (its own transaction) settle. */
const SINGLE_SETTLE_MS = 300;

const { values: opts } = parseArgs({
  options: { ports: { type: 'string', default: '100' } },
  strict: true,
});
const N = Number(opts.ports);
if (!Number.isInteger(N) || N < 1 || N > 999)
  throw new Error(`--ports must be an integer in 1..999 (got ${opts.ports})`);

const now = () => performance.now();
/** Wall-clock ms with sub-ms precision, comparable with the agent's log fields. */
const epochOf = (t: number) => performance.timeOrigin + t;
const portName = (prefix: string, i: number) => `${prefix}${String(i + 1).padStart(3, '0')}`;

// ---------------------------------------------------------------- environment

let lab: Lab | undefined;
let cluster: Cluster | undefined;
let agent: Proc | undefined;
let ovsdb: OvsdbClient | undefined;
let broker: Broker | undefined;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await broker?.close().catch(() => {});
    await ovsdb?.close().catch(() => {});
    await cluster?.cleanup().catch((e: Error) => console.error(`cleanup: ${e.message}`));
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

const flowsOf = async (h: LabHost, bridge: string) =>
  h.ofctl(['dump-flows', '--no-stats', `unix:${h.dir}/${bridge}.mgmt`]);

// ---------------------------------------------------------------- measuring

/**
 * One OVSDB transaction adding `ports` to br-int as VM ports; resolves with the time it
 * was sent and t0 = when its reply arrived (the ports are in OVSDB).
 */
async function addPorts(
  names: string[],
  ports: Port[],
): Promise<{ sent: number; committed: number }> {
  const ops: OvsdbOperation[] = [];
  names.forEach((name, i) => {
    const port = ports[i] as Port;
    ops.push(
      insert(
        'Interface',
        {
          name,
          type: 'internal',
          external_ids: map({
            'iface-id': port.id,
            'attached-mac': port.mac_address,
            'iface-status': 'active',
          }),
        },
        `i${i}`,
      ),
      insert('Port', { name, interfaces: namedUuid(`i${i}`) }, `p${i}`),
    );
  });
  ops.push(
    mutate(
      'Bridge',
      [['name', '==', 'br-int']],
      [['ports', 'insert', set(names.map((_, i) => namedUuid(`p${i}`)))]],
    ),
    mutate('Open_vSwitch', [], [['next_cfg', '+=', 1]]),
  );
  const sent = now();
  const results = await (ovsdb as OvsdbClient).transact('Open_vSwitch', ops);
  const committed = now();
  const failed = results.find((r) => r.error);
  if (failed || results.length < ops.length)
    throw new Error(`adding ports to br-int failed: ${JSON.stringify(failed ?? results)}`);
  return { sent, committed };
}

interface Seen {
  latencies: number[];
  total: number;
}

/** Polls the API until every port in `ids` is ACTIVE; latency = response arrival − t0. */
async function watchActive(
  c: Cluster,
  networkId: string,
  ids: Set<string>,
  t0: number,
  phase: string,
  abort: () => Error | undefined,
  pollMs = POLL_MS,
): Promise<Seen> {
  const seen = new Map<string, number>();
  const path = `/v2.0/ports?network_id=${networkId}&status=ACTIVE&fields=id`;
  while (seen.size < ids.size) {
    const res = await c.http('GET', path);
    const at = now();
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
    for (const p of (res.body as { ports: { id: string }[] }).ports)
      if (ids.has(p.id) && !seen.has(p.id)) seen.set(p.id, at - t0);
    if (seen.size === ids.size) break;
    const err = abort();
    if (err) throw err;
    if (at - t0 > PHASE_TIMEOUT_MS)
      throw new Error(
        `${phase}: only ${seen.size}/${ids.size} ports ACTIVE after ${PHASE_TIMEOUT_MS / 1000} s`,
      );
    await sleep(pollMs);
  }
  const latencies = [...seen.values()];
  return { latencies, total: Math.max(...latencies) };
}

/** Not timed: every port of a phase is tagged, has an ofport, and br-tun has its flow. */
async function verify(h: LabHost, names: string[], phase: string) {
  const [ports, ifaces] = await (ovsdb as OvsdbClient).transact('Open_vSwitch', [
    select('Port', [], ['name', 'tag', 'other_config']),
    select('Interface', [], ['name', 'ofport']),
  ]);
  const want = new Set(names);
  const tags = new Set<unknown>();
  let tagged = 0;
  let up = 0;
  for (const row of ports?.rows ?? []) {
    if (!want.has(String(row.name))) continue;
    const tag = fromOptional<number>(row.tag);
    if (typeof tag === 'number' && tag >= 1 && tag < 4095) tagged++;
    tags.add(tag);
  }
  for (const row of ifaces?.rows ?? []) {
    const ofport = fromOptional<number>(row.ofport);
    if (want.has(String(row.name)) && typeof ofport === 'number' && ofport > 0) up++;
  }
  const flows = await flowsOf(h, 'br-tun');
  const vlan = [...tags][0];
  if (tagged !== names.length || up !== names.length || tags.size !== 1)
    throw new Error(
      `${phase}: ports ACTIVE but OVS disagrees: ${tagged}/${names.length} tagged, ` +
        `${up}/${names.length} with an ofport, tags ${JSON.stringify([...tags])}`,
    );
  if (!new RegExp(`tun_id=0x[0-9a-f]+ actions=mod_vlan_vid:${vlan},`).test(flows))
    throw new Error(`${phase}: no tunnel→VLAN ${vlan} flow on br-tun:\n${flows}`);
}

// ---------------------------------------------------------------- the baseline agent

/** Neutron-style wiring: one ovs-vsctl/ovs-ofctl process per operation, one port at a time. */
async function baselineWire(
  h: LabHost,
  hostName: string,
  vlans: Map<string, number>,
  spent: Map<string, number>,
) {
  const b = broker as Broker;
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t = now();
    try {
      return await f();
    } finally {
      spent.set(what, (spent.get(what) ?? 0) + now() - t);
    }
  };
  const names = (await h.vsctl(['list-ports', 'br-int']))
    .split('\n')
    .filter((n) => /^bb\d+$/.test(n))
    .sort();
  for (const name of names) {
    const ifaceId = (
      await timed('vsctl get', () => h.vsctl(['get', 'Interface', name, 'external_ids:iface-id']))
    )
      .trim()
      .replace(/^"|"$/g, '');
    const res = GetDevicesDetailsResult.parse(
      await timed('get_devices_details', () =>
        b.call(PLUGIN_TOPIC, 'get_devices_details', { host: hostName, devices: [ifaceId] }),
      ),
    );
    const d = res.devices[0];
    if (!d) throw new Error(`baseline: the API does not know ${name} (${ifaceId})`);
    let vlan = vlans.get(d.network_id);
    if (vlan === undefined) {
      vlan = 1;
      while ([...vlans.values()].includes(vlan)) vlan++;
      vlans.set(d.network_id, vlan);
    }
    await timed('vsctl set', () =>
      h.vsctl([
        'set',
        'Port',
        name,
        `tag=${vlan}`,
        `other_config:net_uuid=${d.network_id}`,
        `other_config:network_type=${d.network_type}`,
        `other_config:segmentation_id=${d.segmentation_id ?? ''}`,
      ]),
    );
    await timed('ofctl add-flow', () =>
      h.ofctl([
        'add-flow',
        `unix:${h.dir}/br-tun.mgmt`,
        `table=4,priority=1,tun_id=${d.segmentation_id},actions=mod_vlan_vid:${vlan},output:patch-int`,
      ]),
    );
    await timed('update_device_list', () =>
      b.call(PLUGIN_TOPIC, 'update_device_list', { host: hostName, up: [d.device], down: [] }),
    );
  }
}

/** The local VLAN each network already has on br-int (the old agent's in-memory map). */
async function currentVlans(): Promise<Map<string, number>> {
  const [res] = await (ovsdb as OvsdbClient).transact('Open_vSwitch', [
    select('Port', [], ['tag', 'other_config']),
  ]);
  const vlans = new Map<string, number>();
  for (const row of res?.rows ?? []) {
    const tag = fromOptional<number>(row.tag);
    const net = (fromMap(row.other_config) as Record<string, string>).net_uuid;
    if (typeof tag === 'number' && net) vlans.set(net, tag);
  }
  return vlans;
}

// ---------------------------------------------------------------- single port

/** The fields of the agent's log lines the breakdown reads (pino JSON). */
interface AgentLine {
  msg?: string;
  step?: string;
  ms?: number;
  wokeAt?: number;
  startedAt?: number;
  queuedMs?: number;
  detailsMs?: number;
  updateDeviceListMs?: number;
  up?: number;
}

/** One single-port run, in wall-clock ms: transaction sent, its reply, API shows ACTIVE. */
interface SingleRun {
  sent: number;
  committed: number;
  active: number;
}

const PARTS = [
  'commit',
  'monitor wake-up',
  'queue',
  'get_devices_details',
  'OVSDB txn + cur_cfg wait',
  'replace-flows (2 bridges at once)',
  'update_device_list',
  'agent sync total',
  'report → API lists it ACTIVE (+ poll)',
] as const;

function readAgentLog(path: string): AgentLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as AgentLine];
      } catch {
        return [];
      }
    });
}

/** The parts of one run: from the first `l2 sync` woken after `sent` that reported a port up. */
function partsOf(lines: AgentLine[], run: SingleRun): number[] | undefined {
  let steps: AgentLine[] = [];
  for (const l of lines) {
    if (l.msg === 'step') steps.push(l);
    if (l.msg !== 'l2 sync') continue;
    if (l.wokeAt === undefined || l.wokeAt < run.sent || !l.up) {
      steps = [];
      continue;
    }
    const sum = (kind: string) =>
      steps.filter((s) => s.step === kind).reduce((n, s) => n + (s.ms ?? 0), 0);
    const syncMs = l.ms ?? 0;
    return [
      run.committed - run.sent,
      l.wokeAt - run.committed,
      l.queuedMs ?? 0,
      l.detailsMs ?? 0,
      sum('ovsdb'),
      sum('flows'),
      l.updateDeviceListMs ?? 0,
      syncMs,
      run.active - ((l.startedAt ?? 0) + syncMs),
    ];
  }
  return undefined;
}

/** SINGLE_RUNS times: add one port, wait until the API lists it ACTIVE, let the agent settle. */
async function singlePort(
  c: Cluster,
  networkId: string,
  ports: Port[],
  logPath: string,
  abort: () => Error | undefined,
) {
  const runs: SingleRun[] = [];
  for (const [i, port] of ports.entries()) {
    const { sent, committed } = await addPorts([portName('bs', i)], [port]);
    const ids = new Set([port.id]);
    const seen = await watchActive(c, networkId, ids, sent, 'single port', abort, SINGLE_POLL_MS);
    runs.push({
      sent: epochOf(sent),
      committed: epochOf(committed),
      active: epochOf(sent + seen.total),
    });
    await sleep(SINGLE_SETTLE_MS);
  }
  const lines = readAgentLog(logPath);
  const parts = runs.map((run, i) => {
    const found = partsOf(lines, run);
    if (!found) throw new Error(`single port run ${i + 1}: no 'l2 sync' line reporting it`);
    return found;
  });
  return { latencies: runs.map((r) => r.active - r.sent), parts };
}

const ms1 = (x: number) => `${x.toFixed(1)} ms`;

function printSingle(s: { latencies: number[]; parts: number[][] }) {
  const p50 = percentile(s.latencies, 0.5);
  const verdict = p50 < SINGLE_TARGET_MS ? 'met' : 'MISSED';
  console.log(
    `single port (${s.latencies.length} runs, one at a time, ${N} ports already on br-int, ` +
      `API polled every ${SINGLE_POLL_MS} ms): p50 ${ms1(p50)} ` +
      `(min ${ms1(Math.min(...s.latencies))}, max ${ms1(Math.max(...s.latencies))}; ` +
      `target < ${SINGLE_TARGET_MS} ms: ${verdict})`,
  );
  const medians = PARTS.map(
    (name, j) =>
      `${name} ${ms1(
        percentile(
          s.parts.map((p) => p[j] as number),
          0.5,
        ),
      )}`,
  );
  console.log(`  where it goes (p50 of each part): ${medians.join(', ')}`);
}

// ---------------------------------------------------------------- main

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] as number;
}

const ms = (x: number) => `${Math.round(x)} ms`;
const line = (what: string, s: Seen) =>
  `${what} p50 ${ms(percentile(s.latencies, 0.5))}, p99 ${ms(percentile(s.latencies, 0.99))}, ` +
  `total ${ms(s.total)} (${s.latencies.length} ports ACTIVE)`;

async function main() {
  const started = now();
  lab = await createLab({ hosts: 1 });
  const h = lab.hosts[0] as LabHost;
  const hostName = `lab-${lab.prefix}-${h.name}`;
  cluster = await Cluster.create('sqlite', ovsOf(h));
  const c = cluster;
  await c.startApi();
  agent = c.startAgentOn('ovs', hostName, ovsOf(h));
  const agentProc = agent;
  const agentDied = () =>
    agentProc.child.exitCode !== null || agentProc.child.signalCode !== null
      ? new Error(
          `kumo-ovs-agent exited (${agentProc.child.exitCode ?? agentProc.child.signalCode})`,
        )
      : undefined;
  await waitFor(
    "the agent's first sync (br-int, br-tun and its flows)",
    async () => {
      const err = agentDied();
      if (err) throw err;
      return /cookie=0x6b756d6f/.test(await flowsOf(h, 'br-tun'));
    },
    30_000,
    100,
  );
  ovsdb = await createOvsdbClient({ socket: `unix:${h.dbSocket}` });

  const net = await post<Network>(c, '/v2.0/networks', 'network', {
    name: 'bench-net',
    'provider:network_type': 'vxlan',
  });
  await post(c, '/v2.0/subnets', 'subnet', {
    network_id: net.id,
    cidr: '10.0.0.0/16',
    ip_version: 4,
  });
  const ports: Port[] = [];
  for (let i = 0; i < 2 * N + SINGLE_RUNS; i++)
    ports.push(await post<Port>(c, '/v2.0/ports', 'port', { network_id: net.id }));
  const kumoPorts = ports.slice(0, N);
  const basePorts = ports.slice(N, 2 * N);
  const singlePorts = ports.slice(2 * N);
  console.log(
    `port-wiring bench: ${N} ports on br-int of 1 lab host (userspace datapath), ` +
      `API polled every ${POLL_MS} ms; setup ${((now() - started) / 1000).toFixed(1)} s`,
  );

  // Phase 1: kumo-ovs-agent.
  const kumoNames = kumoPorts.map((_, i) => portName('bk', i));
  const t1 = (await addPorts(kumoNames, kumoPorts)).committed;
  const kumo = await watchActive(
    c,
    net.id,
    new Set(kumoPorts.map((p) => p.id)),
    t1,
    'kumo',
    agentDied,
  );
  console.log(line('kumo-ovs-agent:        ', kumo));
  await verify(h, kumoNames, 'kumo');
  const single = await singlePort(c, net.id, singlePorts, agentProc.logPath, agentDied);
  printSingle(single);

  // Phase 2: the baseline, with the agent stopped.
  await c.stop(agentProc, 'SIGTERM');
  broker = createBroker({ url: c.vhost.url, log: silentLogger() });
  await broker.start();
  const vlans = await currentVlans();
  const baseNames = basePorts.map((_, i) => portName('bb', i));
  const t2 = (await addPorts(baseNames, basePorts)).committed;
  let wireError: Error | undefined;
  const spent = new Map<string, number>();
  const wiring = baselineWire(h, hostName, vlans, spent).catch((e: Error) => {
    wireError = e;
  });
  const base = await watchActive(
    c,
    net.id,
    new Set(basePorts.map((p) => p.id)),
    t2,
    'baseline',
    () => wireError,
  );
  await wiring;
  console.log(line('baseline (1 proc/op):  ', base));
  console.log(
    `  baseline time per port: ${[...spent].map(([k, v]) => `${k} ${(v / N).toFixed(1)} ms`).join(', ')}`,
  );
  await verify(h, baseNames, 'baseline');

  const ratio = base.total / kumo.total;
  const fastOk = kumo.latencies.length === N && kumo.total < TARGET_MS;
  console.log(
    `target (${N} ports ACTIVE < ${TARGET_MS} ms: ${fastOk ? 'met' : 'MISSED'}; ` +
      `>= ${TARGET_RATIO}x the baseline: ${ratio >= TARGET_RATIO ? 'met' : 'MISSED'}); ` +
      `bench took ${((now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(`ratio baseline/kumo (total time): ${ratio.toFixed(1)}`);
}

await runBench({
  main,
  cleanup,
  lastly: () => {
    for (const p of [cluster?.api, ...(cluster?.hostAgents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
  },
  onFailure: () => {
    if (agent) console.error(`kumo-ovs-agent log (last lines):\n${logTail(agent.logPath)}`);
  },
});
