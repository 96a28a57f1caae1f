#!/usr/bin/env node
/**
 * bench/scale's simulator process (forked by bench/scale.ts, driven over IPC): a slice of
 * the simulated hosts (bench/scale-sim-agents.ts), one AMQP connection per `hostsPerConn`
 * hosts (bench/scale-sim-link.ts), connections spread over the cluster's nodes.
 *
 * Every agent casts report_state every `interval` s at a random phase (the first with
 * start_flag, TTL one interval, as core/agent.ts) and runs a full resync at start and then
 * every `resyncInterval` s at a random phase: real agents start at different times, and a
 * simulator that started 250 at once would otherwise report and resync them in lockstep.
 * The wheel follows the clock, not the timer: a late tick runs every slot that came due.
 *
 * IPC in: init, add {hosts}, plug/unplug {host, port}, reset, stats, stop.
 * IPC out: added {declareMs}, published {at: [hostIndex, kindIndex, wallMs][]} every 200 ms
 * (the publish times bench/scale.ts matches against the agents table), stats, error.
 *
 * Invariant: a report's publish time is taken just before it is handed to the broker, and
 * every report handed over is announced to the parent exactly once.
 */
import { performance } from 'node:perf_hooks';
import { type AgentKind, agentTypeByKind } from '../contracts/agents.ts';
import { REPORTS_TOPIC } from '../contracts/messages.ts';
import { type Role, SimHost } from './scale-sim-agents.ts';
import { emptyStats, type Link, type LinkStats, openLink } from './scale-sim-link.ts';

export const KINDS: readonly AgentKind[] = ['ovs', 'dhcp', 'l3', 'compute'];
const TICK_MS = 50;

export interface HostSpec {
  index: number;
  name: string;
  role: Role;
  tunnelIp: string;
}

export type ToSim =
  | {
      type: 'init';
      urls: string[];
      hostsPerConn: number;
      interval: number;
      resyncInterval: number;
      tunnels: boolean;
      slot: number;
    }
  | { type: 'add'; hosts: HostSpec[] }
  | { type: 'plug' | 'unplug'; host: string; port: string }
  | { type: 'reset' | 'stats' | 'stop' };

export interface SimStats {
  latency: Record<string, number[]>;
  errors: Record<string, number>;
  received: Record<string, number>;
}

export type FromSim =
  | { type: 'added'; count: number; declareMs: number; refused: string[] }
  | { type: 'published'; at: [number, number, number][] }
  | { type: 'stats'; stats: SimStats }
  | { type: 'error'; message: string };

const wall = () => performance.timeOrigin + performance.now();
const send = (m: FromSim) => process.send?.(m);

let init: Extract<ToSim, { type: 'init' }> | undefined;
const links: Link[] = [];
const hosts = new Map<string, SimHost>();
const indexOf = new Map<string, number>();
const byQueue = new Map<string, { host: SimHost; kind: AgentKind }>();
/** Per wheel slot: the agents that report (and resync) in it. */
let reportWheel: { host: SimHost; kind: AgentKind; first: boolean }[][] = [];
let resyncWheel: { host: SimHost; kind: AgentKind }[][] = [];
let published: [number, number, number][] = [];
let tick = 0;
let wheelStart = 0;
let timers: NodeJS.Timeout[] = [];

function report(slot: { host: SimHost; kind: AgentKind; first: boolean }, intervalMs: number) {
  const info = agentTypeByKind(slot.kind);
  const state = {
    agent_type: info.agentType,
    binary: info.binary,
    topic: info.topic,
    host: slot.host.name,
    ...(info.zoned ? { availability_zone: 'nova' } : {}),
    configurations: slot.host.configurations(slot.kind),
    ...(slot.first ? { start_flag: true } : {}),
  };
  slot.first = false;
  const link = linkOf(slot.host);
  published.push([indexOf.get(slot.host.name) ?? -1, KINDS.indexOf(slot.kind), wall()]);
  void link
    .cast(
      REPORTS_TOPIC,
      'report_state',
      { agent_state: state, time: new Date().toISOString() },
      intervalMs,
    )
    .catch(() => {});
}

const hostLink = new Map<string, Link>();
const linkOf = (h: SimHost) => hostLink.get(h.name) as Link;

/** Runs every wheel slot that is due by the clock, so a late timer catches up. */
function onTick() {
  if (!init) return;
  const intervalMs = init.interval * 1000;
  const due = Math.floor((performance.now() - wheelStart) / TICK_MS);
  for (; tick <= due; tick++) {
    for (const slot of reportWheel[tick % reportWheel.length] ?? []) report(slot, intervalMs);
    for (const r of resyncWheel[tick % resyncWheel.length] ?? []) void r.host.resync(r.kind);
  }
}

async function newLink(): Promise<Link> {
  const cfg = init as NonNullable<typeof init>;
  const url = cfg.urls[(cfg.slot + links.length) % cfg.urls.length] as string;
  const link = await openLink(url, (queue, message) => {
    const target = byQueue.get(queue);
    target?.host.onMessage(target.kind, message);
  });
  links.push(link);
  return link;
}

/** Adds hosts: queues declared and consumed, then each agent starts (resync + first report). */
async function add(specs: HostSpec[]) {
  const cfg = init as NonNullable<typeof init>;
  const t0 = performance.now();
  for (let i = 0; i < specs.length; i += cfg.hostsPerConn) {
    const slice = specs.slice(i, i + cfg.hostsPerConn);
    const link = await newLink();
    const made = slice.map((s) => {
      const h = new SimHost({ ...s, link, tunnels: cfg.tunnels });
      hosts.set(s.name, h);
      hostLink.set(s.name, link);
      indexOf.set(s.name, s.index);
      for (const kind of h.kinds) {
        const topic = agentTypeByKind(kind).topic;
        byQueue.set(`${topic}.${s.name}`, { host: h, kind });
        byQueue.set(`${topic}_fanout.${s.name}`, { host: h, kind });
      }
      return h;
    });
    const pairs = made.flatMap((h) =>
      h.kinds.map((kind) => ({ topic: agentTypeByKind(kind).topic, host: h.name })),
    );
    await link.attach(pairs);
  }
  const declareMs = performance.now() - t0;
  for (const s of specs) start(hosts.get(s.name) as SimHost);
  const refused = links.flatMap((l) => l.declareFailures.splice(0));
  send({ type: 'added', count: specs.length, declareMs, refused });
}

/**
 * Starts a host's agents: each resyncs now and reports first (with start_flag) at a random
 * phase of the interval, then every interval, as agents started at random times would.
 */
function start(h: SimHost) {
  for (const kind of h.kinds) {
    void h.resync(kind);
    const r = 1 + Math.floor(Math.random() * reportWheel.length);
    reportWheel[(tick + r) % reportWheel.length]?.push({ host: h, kind, first: true });
    const s = 1 + Math.floor(Math.random() * resyncWheel.length);
    resyncWheel[(tick + s) % resyncWheel.length]?.push({ host: h, kind });
  }
}

function merged(): SimStats {
  const all: LinkStats = emptyStats();
  for (const l of links) {
    for (const [k, v] of l.stats.latency) all.latency.set(k, [...(all.latency.get(k) ?? []), ...v]);
    for (const [k, v] of l.stats.errors) all.errors.set(k, (all.errors.get(k) ?? 0) + v);
    for (const [k, v] of l.stats.received) all.received.set(k, (all.received.get(k) ?? 0) + v);
  }
  return {
    latency: Object.fromEntries(all.latency),
    errors: Object.fromEntries(all.errors),
    received: Object.fromEntries(all.received),
  };
}

function reset() {
  for (const l of links) {
    l.stats.latency.clear();
    l.stats.errors.clear();
    l.stats.received.clear();
  }
}

async function stop() {
  for (const t of timers) clearInterval(t);
  await Promise.all(links.map((l) => l.close()));
  process.exit(0);
}

async function handle(m: ToSim) {
  switch (m.type) {
    case 'init':
      init = m;
      wheelStart = performance.now();
      reportWheel = Array.from({ length: Math.round((m.interval * 1000) / TICK_MS) }, () => []);
      resyncWheel = Array.from(
        { length: Math.round((m.resyncInterval * 1000) / TICK_MS) },
        () => [],
      );
      timers = [
        setInterval(onTick, TICK_MS),
        setInterval(() => {
          if (published.length) send({ type: 'published', at: published });
          published = [];
        }, 200),
      ];
      return;
    case 'add':
      return add(m.hosts);
    case 'plug':
      return hosts.get(m.host)?.plug(m.port);
    case 'unplug':
      return hosts.get(m.host)?.unplug(m.port);
    case 'reset':
      return reset();
    case 'stats':
      send({ type: 'stats', stats: merged() });
      return;
    case 'stop':
      return stop();
  }
}

process.on('message', (m: ToSim) => {
  handle(m).catch((e: Error) => {
    send({ type: 'error', message: e.message });
    process.exit(1);
  });
});
process.on('disconnect', () => process.exit(0));
