#!/usr/bin/env node
/**
 * bench/boot: --servers servers through kumo-api, --concurrency in flight; time from
 * `POST /servers` to ACTIVE and to the guest's first DHCP lease, where that time goes, and
 * the same guest booted by hand with `virsh create` in the same run (the floor).
 *
 *   node bench/boot.ts [--servers 10] [--concurrency 5] [--ram 192] [--timeout 300]
 *
 * Standalone: the test guest (test/helpers/guest.ts: Debian's cloud kernel + a busybox
 * initramfs running udhcpc on eth0), a 2-host lab (test/helpers/lab.ts) and a Cluster
 * (test/helpers/cluster.ts: own vhost, SQLite, the real kumo-api) with an OVS and a compute
 * agent per host and a DHCP agent on host 0; a flavor (1 vCPU, --ram MiB, 1 GB disk) made
 * through the flavors API, the guest uploaded once (kernel aki + ramdisk ari + a 1 MiB ami),
 * one network with a /24. Everything is removed at the end, also on error or Ctrl-C.
 *
 * Phases, in this order:
 * 1. floor (bench/boot-floor.ts): --servers domains, --concurrency at a time, each a
 *    hand-written domain XML started by one `virsh create` process, its tap moved into a
 *    namespace with a dnsmasq; time = virsh spawn → MAC first in that dnsmasq's lease file.
 *    The domains are destroyed before the next phase.
 * 2. cold cache: two servers at once (the scheduler puts them on different hosts), which
 *    fill each host's image cache; reported on their own line and deleted (the measured
 *    servers then get their addresses again: the DHCP agent releases a deleted port's lease).
 * 3. kumo: --servers servers, each `networks: [{uuid: net}]`, --concurrency in flight. A
 *    slot frees when its server's lease appears (as in the floor), so both phases have at
 *    most --concurrency guests booting at once. Per server: POST latency (the API,
 *    including scheduling and port creation); ACTIVE, from one `GET /servers/detail` every
 *    50 ms (one request for all servers instead of one per server: less load on the API
 *    being measured, the same granularity); the first lease, from the DHCP agent's
 *    dnsmasq lease file (`<state>/dhcp/<network>/leases`) read every 20 ms, as in the
 *    floor; and the agent's `kumo:spawn_timings` (asked for with X-Kumo-Diagnostics).
 *
 * Shares of POST→lease per server, averaged: api (POST latency), dispatch (ACTIVE − POST
 * end − the agent's timings: hint delivery, RPCs, the state report, the API poll), image,
 * define, plug, wait_port (the L2 agent binding the port), boot (resume), guest (lease −
 * ACTIVE: kernel and userspace until DHCP). Last two lines: the p95 and p50 ratios of
 * kumo's POST→lease to the floor's virsh→lease (1.00 = no overhead over a bare virsh).
 * Exit 1 on failure, with the tails of the logs.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Agent } from '../contracts/agents.ts';
import type { SpawnTimings } from '../contracts/instances.ts';
import type { Network } from '../contracts/network.ts';
import { createCommandRunner } from '../core/exec.ts';
import { Cluster, ovsOf } from '../test/helpers/cluster.ts';
import {
  consoleOutput,
  type GuestImages,
  getWithTimings,
  type ServerView,
  uploadGuest,
  waitGone,
} from '../test/helpers/compute.ts';
import { waitFor } from '../test/helpers/env.ts';
import { buildTestGuest, type TestGuest } from '../test/helpers/guest.ts';
import { createLab, type Lab, type LabHost } from '../test/helpers/lab.ts';
import {
  createFloor,
  type Floor,
  type FloorBoot,
  floorLine,
  type LeaseWatch,
  mean,
  now,
  percentile,
  pool,
  sec,
  stats,
  until,
  watchLeases,
} from './boot-floor.ts';
import { dnsmasqUnder, killDnsmasqUnder, logTail, runBench } from './lib.ts';

const { values: opts } = parseArgs({
  options: {
    servers: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '5' },
    ram: { type: 'string', default: '192' },
    timeout: { type: 'string', default: '300' },
  },
  strict: true,
});
const intOpt = (name: keyof typeof opts, min: number, max: number) => {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer in ${min}..${max} (got ${opts[name]})`);
  return v;
};
const N = intOpt('servers', 1, 50);
const CONCURRENCY = intOpt('concurrency', 1, 20);
const RAM_MIB = intOpt('ram', 128, 4096);
const TIMEOUT_MS = intOpt('timeout', 30, 3600) * 1000;
const API_POLL_MS = 50;
const runner = createCommandRunner({ defaultTimeoutMs: 60_000 });

// ---------------------------------------------------------------- environment

let lab: Lab | undefined;
let cluster: Cluster | undefined;
let floor: Floor | undefined;
let cleaning: Promise<void> | undefined;
const stoppers: (() => void)[] = [];

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const stop of stoppers) stop();
    await floor?.close().catch((e: Error) => console.error(`cleanup: ${e.message}`));
    await cluster?.cleanup().catch((e: Error) => console.error(`cleanup: ${e.message}`));
    await lab?.destroy().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  })();
  return cleaning;
}

/** An error once kumo-api or any agent has exited. */
function clusterDied(): Error | undefined {
  const c = cluster as Cluster;
  for (const [name, p] of [['kumo-api', c.api], ...c.hostAgents] as const) {
    if (p && (p.child.exitCode !== null || p.child.signalCode !== null))
      return new Error(`${name} exited (${p.child.exitCode ?? p.child.signalCode})`);
  }
  return undefined;
}

async function call<T>(c: Cluster, method: string, path: string, body?: unknown, want = 200) {
  const res = await c.http(method, path, body);
  if (res.status !== want)
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as T;
}

interface Env {
  c: Cluster;
  flavorId: string;
  images: GuestImages;
  networkId: string;
  /** The DHCP agent's dnsmasq lease file for the network. */
  leasesPath: string;
}

const hostName = (l: Lab, h: LabHost) => `bt-${l.prefix}-${h.name}`;

async function startCluster(l: Lab): Promise<Cluster> {
  cluster = await Cluster.create('sqlite');
  const c = cluster;
  await c.startApi();
  const [h0] = l.hosts as [LabHost];
  c.startAgentOn('dhcp', hostName(l, h0), ovsOf(h0));
  for (const h of l.hosts) {
    c.startAgentOn('ovs', hostName(l, h), ovsOf(h));
    c.startAgentOn('compute', hostName(l, h), ovsOf(h));
  }
  const want = { 'kumo-compute-agent': 2, 'kumo-ovs-agent': 2, 'kumo-dhcp-agent': 1 };
  await waitFor(
    'two compute agents, two OVS agents and the DHCP agent alive',
    async () => {
      const err = clusterDied();
      if (err) throw err;
      const { agents } = await call<{ agents: Agent[] }>(c, 'GET', '/v2.0/agents?alive=true');
      return Object.entries(want).every(
        ([b, n]) => agents.filter((a) => a.binary === b).length === n,
      );
    },
    60_000,
    200,
  );
  return c;
}

async function setup(guest: TestGuest): Promise<Env> {
  lab = await createLab({ hosts: 2 });
  const c = await startCluster(lab);
  const images = await uploadGuest(c, guest);
  const flavor = { name: 'bench.boot', vcpus: 1, ram: RAM_MIB, disk: 1 };
  const made = await call<{ flavor: { id: string } }>(c, 'POST', '/flavors', { flavor });
  const network = { name: 'boot-net' };
  const net = await call<{ network: Network }>(c, 'POST', '/v2.0/networks', { network }, 201);
  const networkId = net.network.id;
  const subnet = { network_id: networkId, cidr: '10.31.0.0/24', ip_version: 4 };
  await call(c, 'POST', '/v2.0/subnets', { subnet }, 201);
  const dhcpDir = join(
    c.dir.path,
    'hosts',
    hostName(lab, lab.hosts[0] as LabHost),
    'dhcp',
    networkId,
  );
  await waitFor("the network's dnsmasq", () => dnsmasqUnder(dhcpDir).length > 0, 60_000, 100);
  return { c, flavorId: made.flavor.id, images, networkId, leasesPath: join(dhcpDir, 'leases') };
}

// ---------------------------------------------------------------- measuring

interface Active {
  /** `now()` when the first response showing the server ACTIVE arrived. */
  at: number;
  view: ServerView;
}

/** One `GET /servers/detail` every API_POLL_MS for all servers; `active(id)` waits on it. */
function watchServers(c: Cluster) {
  const active = new Map<string, Active>();
  const last = new Map<string, ServerView>();
  let stopped = false;
  let error: Error | undefined;
  void (async () => {
    while (!stopped && !error) {
      try {
        const res = await getWithTimings(c, '/servers/detail');
        if (res.status !== 200)
          throw new Error(`GET /servers/detail: ${res.status} ${JSON.stringify(res.body)}`);
        const at = now();
        for (const s of (res.body as { servers: ServerView[] }).servers) {
          last.set(s.id, s);
          if (s.status === 'ACTIVE' && !active.has(s.id)) active.set(s.id, { at, view: s });
        }
      } catch (e) {
        error = e as Error;
      }
      await sleep(API_POLL_MS);
    }
  })();
  const stop = () => {
    stopped = true;
  };
  stoppers.push(stop);
  const failed = (id: string) => {
    const s = last.get(id);
    if (s?.status === 'ERROR')
      return new Error(`server ${id} went ERROR: ${JSON.stringify(s.fault)}`);
    return error ?? clusterDied() ?? (stopped ? new Error('server watch stopped') : undefined);
  };
  const state = (id: string) =>
    `server ${id} not ACTIVE (last seen: ${last.get(id)?.status}/${last.get(id)?.['OS-EXT-STS:task_state']})`;
  return {
    active: (id: string, timeoutMs: number) =>
      until(
        () => state(id),
        () => active.get(id),
        timeoutMs,
        () => failed(id),
      ),
    stop,
  };
}

interface ServerBoot {
  id: string;
  host: string;
  postMs: number;
  activeMs: number;
  leaseMs: number;
  timings: SpawnTimings;
}

/** Servers created and not yet deleted: deleted through the API on failure too. */
const created = new Set<string>();

async function bootServer(
  env: Env,
  { name }: { name: string },
  servers: ServerWatch,
  leases: LeaseWatch,
) {
  const { flavorId: flavorRef, images, networkId: uuid } = env;
  const networks = [{ uuid }];
  const server = { name, flavorRef, imageRef: images.machine, networks };
  const t0 = now();
  const res = await call<{ server: { id: string } }>(env.c, 'POST', '/servers', { server }, 202);
  const postMs = now() - t0;
  const id = res.server.id;
  created.add(id);
  const { at, view } = await servers.active(id, TIMEOUT_MS);
  const mac = Object.values(view.addresses).flat()[0]?.['OS-EXT-IPS-MAC:mac_addr'];
  if (!mac) throw new Error(`server ${id} ACTIVE without an address: ${JSON.stringify(view)}`);
  const timings = view['kumo:spawn_timings'] as SpawnTimings | null;
  if (!timings) throw new Error(`server ${id} ACTIVE without kumo:spawn_timings`);
  const leaseAt = await leases
    .seen(mac, TIMEOUT_MS - (now() - t0), clusterDied)
    .catch(async (e: Error) => {
      const text = await consoleOutput(env.c, id).catch((c: Error) => `(${c.message})`);
      const tail = text.trimEnd().split('\n').slice(-8).join('\n  ');
      throw new Error(
        `${e.message}; server ${id} on ${view['OS-EXT-SRV-ATTR:host']}, console:\n  ${tail}`,
      );
    });
  const leaseMs = leaseAt - t0;
  const host = view['OS-EXT-SRV-ATTR:host'] ?? '?';
  return { id, host, postMs, activeMs: at - t0, leaseMs, timings } satisfies ServerBoot;
}

type ServerWatch = ReturnType<typeof watchServers>;

/** Deletes the servers through the API and waits until they are gone. */
async function deleteServers(c: Cluster, ids: string[]) {
  for (const id of ids) await call(c, 'DELETE', `/servers/${id}`, undefined, 204);
  await Promise.all(ids.map((id) => waitGone(c, id, 120_000)));
  for (const id of ids) created.delete(id);
}

const idOf = (b: ServerBoot) => b.id;

/** Boots n servers `<label>-<i>`. */
async function bootMany(env: Env, label: string, n: number, concurrency: number) {
  const servers = watchServers(env.c);
  const leases = watchLeases(env.leasesPath);
  stoppers.push(leases.stop);
  try {
    return await pool(n, concurrency, (i) =>
      bootServer(env, { name: `${label}-${i}` }, servers, leases),
    );
  } finally {
    servers.stop();
    leases.stop();
  }
}

// ---------------------------------------------------------------- reporting

const PHASES = [
  'api',
  'dispatch',
  'image',
  'define',
  'plug',
  'wait_port',
  'boot',
  'guest',
] as const;
type Phase = (typeof PHASES)[number];

/** Where one server's POST→lease went; the phases add up to leaseMs. */
function phasesOf(b: ServerBoot): Record<Phase, number> {
  const t = b.timings;
  const agent = t.image + t.define + t.plug + t.wait_port + t.boot;
  const dispatch = b.activeMs - b.postMs - agent;
  return { api: b.postMs, dispatch, ...t, guest: b.leaseMs - b.activeMs };
}

function serverLine(b: ServerBoot, i: number): string {
  const p = phasesOf(b);
  const parts = PHASES.map((k) => `${k} ${Math.round(p[k])}`).join(', ');
  return `  #${i} ${b.host}: ACTIVE ${sec(b.activeMs)}, lease ${sec(b.leaseMs)} (ms: ${parts})`;
}

function shareLine(boots: ServerBoot[]): string {
  const parts = PHASES.map((k) => {
    const share = mean(boots.map((b) => phasesOf(b)[k] / b.leaseMs)) * 100;
    return `${k} ${share.toFixed(1)}% (${Math.round(mean(boots.map((b) => phasesOf(b)[k])))} ms)`;
  });
  return `mean share of POST→lease: ${parts.join(', ')}`;
}

function coldLine(cold: ServerBoot[]): string {
  const each = (f: (b: ServerBoot) => string) => cold.map(f).join(' / ');
  const hosts = new Set(cold.map((b) => b.host)).size;
  return (
    `cold image cache (${cold.length} servers at once on ${hosts} host(s)): ` +
    `POST→ACTIVE ${each((b) => sec(b.activeMs))}, POST→lease ${each((b) => sec(b.leaseMs))}, ` +
    `image ${each((b) => `${b.timings.image} ms`)}` +
    (hosts < cold.length ? ' (a host left cold: its first boot below fetches the image)' : '')
  );
}

// ---------------------------------------------------------------- main

async function main() {
  const started = now();
  const guest = await buildTestGuest();
  const env = await setup(guest);
  console.log(
    `boot bench: ${N} servers, ${CONCURRENCY} in flight, on 2 lab hosts (TCG, 1 vCPU, ` +
      `${RAM_MIB} MiB; the test guest: cloud kernel + busybox initramfs, DHCP on eth0); ` +
      `${availableParallelism()} CPUs on this machine; setup ${sec(now() - started)}`,
  );

  floor = await createFloor(runner, { ...guest, ramMiB: RAM_MIB, vcpus: 1 }, N);
  const floorBoots = await floor.run(CONCURRENCY, TIMEOUT_MS);
  await floor.close();
  floor = undefined;
  console.log(floorLine(floorBoots));

  const cold = await bootMany(env, 'bench-cold', 2, 2);
  await deleteServers(env.c, cold.map(idOf));
  console.log(coldLine(cold));

  const boots = await bootMany(env, 'bench-boot', N, CONCURRENCY);
  await deleteServers(env.c, boots.map(idOf));
  report(boots, floorBoots, started);
}

/** The kumo phase, the reference beside it, and the ratios to the floor (last). */
function report(boots: ServerBoot[], floorBoots: FloorBoot[], started: number) {
  const active = boots.map((b) => b.activeMs);
  const lease = boots.map((b) => b.leaseMs);
  console.log(`kumo (warm image cache): POST→ACTIVE ${stats(active)}; POST→lease ${stats(lease)}`);
  for (const [i, b] of boots.entries()) console.log(serverLine(b, i));
  console.log(shareLine(boots));
  const floorLease = floorBoots.map((b) => b.leaseMs);
  console.log(
    `reference: published OpenStack runs on real KVM hosts boot 5–8 s per VM on average at ` +
      `concurrency 5; ours under TCG: POST→ACTIVE mean ${sec(mean(active))}, POST→lease mean ` +
      `${sec(mean(lease))}, the floor's create→lease mean ${sec(mean(floorLease))}; ` +
      `bench took ${sec(now() - started)}`,
  );
  const ratio = (p: number) => (percentile(lease, p) / percentile(floorLease, p)).toFixed(2);
  console.log(`ratio kumo/virsh-floor (POST→lease p95): ${ratio(0.95)}`);
  console.log(`ratio kumo/virsh-floor (POST→lease p50): ${ratio(0.5)}`);
}

await runBench({
  main,
  cleanup,
  lastly: () => {
    for (const p of [cluster?.api, ...(cluster?.hostAgents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
    if (cluster) killDnsmasqUnder(cluster.dir.path);
  },
  onFailure: async () => {
    if (!cluster) return;
    const c = cluster;
    for (const [name, p] of [['kumo-api', c.api], ...c.hostAgents] as const)
      if (p) console.error(`--- ${name} log (last lines):\n${logTail(p.logPath, 12)}`);
    if (created.size) await deleteServers(c, [...created]).catch(() => {});
  },
});
