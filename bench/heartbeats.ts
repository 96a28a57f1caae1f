#!/usr/bin/env node
/**
 * bench/heartbeats: how many `report_state` heartbeats a real kumo-api stores, how late,
 * and how that compares with the broker's own limit (a consumer that only acks).
 *
 *   node bench/heartbeats.ts [--agents 10000] [--interval 10] [--duration 30] [--flood 50000]
 *
 * Standalone (bench/heartbeat-stack.ts): it creates a RabbitMQ vhost and a temp dir, writes
 * a kumo.conf (SQLite under the temp dir, a free port), spawns the real
 * `node bin/kumo-api.ts --config-file …` and removes all of it at the end, also on error or
 * Ctrl-C.
 *
 * Phase 0 (register, untimed against anything): one start report per agent is queued while
 * kumo-api runs, until the DB holds all of them; so the paced phase measures the steady
 * state (updates of known agents), not a registration storm no real cloud sees.
 *
 * Phase 1 (paced, the target): `--agents` simulated compute agents (`bench-00001`…), each
 * casting report_state every `--interval` s with start offsets spread evenly, so the offered
 * rate is agents/interval per second. Messages are what kumo-compute-agent sends (14 keys of
 * configurations, per-message TTL = interval), published on
 * one amqplib confirm channel (properties as core/amqp's cast; measured, cast itself does
 * ~3,000/s one at a time and ~17,600/s with 2,000 in flight, raw publishes with a confirm
 * wait per 2,000 ~25,000/s, so raw publishing leaves more CPU to kumo-api). The first
 * interval is a warm-up; the next `--duration` s are the steady window. Lag: a read-only
 * node:sqlite connection (WAL lets it read beside
 * kumo-api) polls every 20 ms for rows whose heartbeat_timestamp changed; the lag of a stored
 * report is the poll's start time minus the time the bench published that host's oldest
 * unobserved report still within its TTL (an upper bound, within one poll period; older
 * ones count as never seen). "stored reports/s" counts observed row changes in the steady
 * window. The publisher's lateness against its schedule is printed too: when the bench
 * itself runs short of CPU, that shows it.
 *
 * Phase 2 (kumo-api capacity): kumo-api is stopped, `--flood` reports for distinct hosts
 * (`flood-00001`…) are queued in q-reports-plugin, kumo-api is started again and timed from
 * its first delivery (passive queue.declare shows the ready count dropping) to the moment
 * the DB holds all of them (50,000 by default: long enough to measure the sustained rate,
 * not JIT warm-up). Measuring a drained backlog instead of a live flood keeps the
 * publisher off the 2 cores while the consumer is timed, so the number is the consumer's
 * (the flood hosts are new rows; the bench's own 20 ms COUNT poll runs beside kumo-api).
 *
 * Phase 3 (baseline, same run, kumo-api stopped): the same `--flood` messages are queued in
 * a separate queue of the same kind as q-reports-plugin (core/amqp.ts apiQueue: classic,
 * non-durable, bound to the `kumo` exchange) and
 * drained by a bare amqplib consumer with kumo-api's prefetch (2000) that acks each message
 * and does nothing else; timed from its first delivery to its last ack.
 *
 * Output: one line per phase with the CPU of kumo-api, the bench and the broker process in
 * it (bench/proc-cpu.ts), the target verdict, and last `ratio kumo-api/bare-consumer: X`
 * (phase 2 rate / phase 3 rate). On failure it exits 1 and prints the tail of kumo-api's log.
 */
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { EXCHANGE, REPORTS_TOPIC } from '../contracts/messages.ts';
import {
  hostName,
  maximum,
  type Publisher,
  percentile,
  prefill,
  publisher,
  report,
  reportMaker,
  Samples,
} from './heartbeat-reports.ts';
import {
  BROKER_PORT,
  createHeartbeatStack,
  drainBacklog,
  type Env,
  type HeartbeatStack,
} from './heartbeat-stack.ts';
import { logTail, runBench } from './lib.ts';
import { cpuMeter, listenerPid } from './proc-cpu.ts';

const API_PREFETCH = 2000; // api/main.ts
const BARE_QUEUE = 'bench.bare-reports';
const POLL_MS = 20;

const { values: opts } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000' },
    interval: { type: 'string', default: '10' },
    duration: { type: 'string', default: '30' },
    flood: { type: 'string', default: '50000' },
  },
  strict: true,
});
const positive = (name: string, raw: string) => {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`--${name} must be a positive number (got ${raw})`);
  return n;
};
const AGENTS = Math.round(positive('agents', opts.agents));
const INTERVAL_S = positive('interval', opts.interval);
const DURATION_S = positive('duration', opts.duration);
const FLOOD = Math.round(positive('flood', opts.flood));

const now = () => performance.now();

// ---------------------------------------------------------------- phase 1

interface Paced {
  offered: number;
  stored: number;
  lags: Float64Array;
  warmupP99: number;
  unobserved: number;
  /** How far behind its schedule the bench's publisher sent, p99 and max. */
  lateP99: number;
  lateMax: number;
  /** CPU of each process over the steady window. */
  cpu: string;
}

/** The processes whose CPU the bench reports: kumo-api, the bench itself, the broker. */
function meterProcesses() {
  return cpuMeter({
    'kumo-api': stack?.apiPid(),
    bench: process.pid,
    rabbitmq: listenerPid(BROKER_PORT),
  });
}

/**
 * Per agent, the publish times of its reports not yet seen in the DB, oldest first. A
 * report expires after one interval (its TTL), so an agent rarely has more than one or
 * two: plain arrays, with a running total so the poll loop never scans all agents. A row
 * change is matched with the oldest report still within its TTL when it was seen; older
 * ones the broker dropped are counted as expired, not as one very late report.
 */
function pendingReports(agents: number, ttlMs: number) {
  const queues: number[][] = Array.from({ length: agents }, () => []);
  let total = 0;
  let expired = 0;
  return {
    add(i: number, sentAt: number) {
      queues[i]?.push(sentAt);
      total++;
    },
    takeOldest(i: number, seenAt: number): number | undefined {
      const q = queues[i];
      while (q && q.length > 1 && (q[0] as number) < seenAt - ttlMs) {
        q.shift();
        total--;
        expired++;
      }
      const sent = q?.shift();
      if (sent !== undefined) total--;
      return sent;
    },
    count: () => total,
    expired: () => expired,
  };
}

async function paced(env: Env, pub: Publisher): Promise<Paced> {
  const reader = new DatabaseSync(env.dbPath, { readOnly: true });
  const changed = reader.prepare(
    'SELECT host, heartbeat_timestamp AS hb FROM agents WHERE heartbeat_timestamp >= ?',
  );
  const stamps = new Map<string, string>();
  const pending = pendingReports(AGENTS, INTERVAL_S * 1000);
  const warmLags = new Samples();
  const lags = new Samples();
  let lastStamp = '';
  let storedInWindow = 0;
  let publishedInWindow = 0;

  const stepMs = (INTERVAL_S * 1000) / AGENTS;
  const t0 = now() + 100;
  const steadyStart = t0 + INTERVAL_S * 1000;
  const steadyEnd = steadyStart + DURATION_S * 1000;
  const total = Math.floor((steadyEnd - t0) / stepMs);
  let next = 0;
  let publishing = true;

  const poll = () => {
    const at = now();
    const rows = changed.all(lastStamp) as { host: string; hb: string }[];
    for (const { host, hb } of rows) {
      if (hb > lastStamp) lastStamp = hb;
      if (stamps.get(host) === hb) continue;
      stamps.set(host, hb);
      const sent = pending.takeOldest(Number(host.slice(6)) - 1, at);
      if (sent === undefined) continue;
      if (sent >= steadyStart) lags.push(at - sent);
      else warmLags.push(at - sent);
      if (at >= steadyStart && at < steadyEnd) storedInWindow++;
    }
  };

  const pollLoop = (async () => {
    while (publishing || pending.count() > 0) {
      poll();
      await sleep(POLL_MS);
      if (!publishing && now() > steadyEnd + 2 * INTERVAL_S * 1000) break;
    }
  })();

  const reports = reportMaker('bench');
  const late = new Samples();
  let meter: ReturnType<typeof cpuMeter> | undefined;
  while (next < total) {
    const t = now();
    if (!meter && t >= steadyStart) meter = meterProcesses();
    while (next < total && t0 + next * stepMs <= t) {
      const i = next % AGENTS;
      const due = t0 + next * stepMs;
      const sentAt = now();
      pending.add(i, sentAt);
      late.push(sentAt - due);
      if (due >= steadyStart) publishedInWindow++;
      await pub.send(REPORTS_TOPIC, reports(i, false), INTERVAL_S * 1000);
      next++;
    }
    await sleep(5);
  }
  const cpu = meter?.read() ?? 'not measured';
  publishing = false;
  await pub.ch.waitForConfirms();
  if (pub.nacked() > 0) throw new Error(`${pub.nacked()} publishes were nacked by the broker`);
  await pollLoop;
  reader.close();
  return {
    offered: publishedInWindow / DURATION_S,
    stored: storedInWindow / DURATION_S,
    lags: lags.view(),
    warmupP99: percentile(warmLags.view(), 0.99),
    unobserved: pending.count() + pending.expired(),
    lateMax: maximum(late.view()),
    lateP99: percentile(late.view(), 0.99),
    cpu,
  };
}

// ---------------------------------------------------------------- phase 2

/**
 * Registration (not timed against anything): one start report per agent is queued while
 * kumo-api runs, until the DB holds every agent. 100,000 agents do not all register within
 * one report interval in a real cloud; registering them first makes the paced phase
 * measure the steady state it is about (every report an update of a known agent).
 */
async function register(env: Env, pub: Publisher) {
  const reader = new DatabaseSync(env.dbPath, { readOnly: true });
  const count = reader.prepare("SELECT COUNT(*) AS n FROM agents WHERE host LIKE 'bench-%'");
  const t0 = now();
  const meter = meterProcesses();
  const reports = reportMaker('bench');
  await prefill(pub, REPORTS_TOPIC, AGENTS, (i) => reports(i, true));
  const deadline = now() + 300_000;
  while (Number(count.get()?.n) < AGENTS) {
    if (now() > deadline) throw new Error('kumo-api did not register every agent within 300 s');
    await sleep(100);
  }
  const seconds = (now() - t0) / 1000;
  const cpu = meter.read();
  reader.close();
  return { seconds, rate: AGENTS / seconds, cpu };
}

async function apiCapacity(
  stack: HeartbeatStack,
  conn: amqp.ChannelModel,
  pub: Publisher,
  bodies: Buffer[],
) {
  const r = await drainBacklog(stack, conn, pub, bodies, meterProcesses);
  const usPerReport = r.apiCpuS === undefined ? Number.NaN : (r.apiCpuS / bodies.length) * 1e6;
  return { ...r, usPerReport };
}

// ---------------------------------------------------------------- phase 3

async function bareConsumer(env: Env, pub: Publisher, bodies: Buffer[]) {
  await pub.ch.assertQueue(BARE_QUEUE, { durable: false });
  await pub.ch.bindQueue(BARE_QUEUE, EXCHANGE, BARE_QUEUE);
  await prefill(pub, BARE_QUEUE, bodies.length, (i) => bodies[i] as Buffer);
  const conn = await amqp.connect(env.amqpUrl);
  try {
    const ch = await conn.createChannel();
    await ch.prefetch(API_PREFETCH);
    let t0 = 0;
    let acked = 0;
    let meter: ReturnType<typeof cpuMeter> | undefined;
    const done = new Promise<number>((resolve) => {
      void ch.consume(BARE_QUEUE, (m) => {
        if (!m) return;
        if (acked === 0) {
          t0 = now();
          meter = meterProcesses();
        }
        ch.ack(m);
        if (++acked === bodies.length) resolve(now());
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const t1 = await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error('bare consumer did not drain within 120 s')),
          120_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    const cpu = meter?.read() ?? 'not measured';
    const benchS = meter?.used('bench');
    return {
      seconds: (t1 - t0) / 1000,
      rate: bodies.length / ((t1 - t0) / 1000),
      cpu,
      usPerMessage: benchS === undefined ? Number.NaN : (benchS / bodies.length) * 1e6,
    };
  } finally {
    await conn.close().catch(() => {});
  }
}

// ---------------------------------------------------------------- main

const ms = (x: number) => `${Math.round(x)} ms`;
const rate = (x: number) => `${x.toFixed(0)} reports/s`;

/** The bench's stack, once made (cleanup and the last-resort kill may come before). */
let stack: HeartbeatStack | undefined;

async function main() {
  const started = now();
  stack = await createHeartbeatStack(INTERVAL_S);
  const env = stack.env;
  console.log(
    `kumo-api heartbeat bench: ${AGENTS} agents every ${INTERVAL_S} s (${rate(AGENTS / INTERVAL_S)} offered), ` +
      `warm-up ${INTERVAL_S} s, steady window ${DURATION_S} s, flood ${FLOOD}`,
  );
  await stack.startApi();
  const conn = await amqp.connect(env.amqpUrl);
  stack.onCleanup(() => conn.close().catch(() => {}));
  const pub = await publisher(conn);

  const p0 = await register(env, pub);
  console.log(
    `register: ${AGENTS} agents published and stored in ${p0.seconds.toFixed(2)} s = ${rate(p0.rate)} (CPU ${p0.cpu})`,
  );
  const p1 = await paced(env, pub);
  console.log(
    `paced:    offered ${rate(p1.offered)}, stored ${rate(p1.stored)}; heartbeat-to-DB lag ` +
      `p50 ${ms(percentile(p1.lags, 0.5))}, p99 ${ms(percentile(p1.lags, 0.99))}, ` +
      `max ${ms(maximum(p1.lags))} (${p1.lags.length} reports; warm-up p99 ${ms(p1.warmupP99)}; ` +
      `never seen ${p1.unobserved}); publisher behind schedule p99 ${ms(p1.lateP99)}, ` +
      `max ${ms(p1.lateMax)}; CPU ${p1.cpu}`,
  );

  const bodies = Array.from({ length: FLOOD }, (_, i) => report(hostName('flood', i), i, true));
  const p2 = await apiCapacity(stack, conn, pub, bodies);
  console.log(
    `kumo-api: stored a ${FLOOD}-report backlog in ${p2.seconds.toFixed(2)} s = ${rate(p2.rate)} ` +
      `(restart to first delivery ${p2.startupS.toFixed(2)} s; backlog published at ${rate(p2.publishRate)}; CPU ${p2.cpu}; ` +
      `kumo-api ${p2.usPerReport.toFixed(0)} µs CPU per report)`,
  );
  const p3 = await bareConsumer(env, pub, bodies);
  console.log(
    `bare consumer (prefetch ${API_PREFETCH}, ack only): drained ${FLOOD} in ${p3.seconds.toFixed(2)} s = ${rate(p3.rate)} (CPU ${p3.cpu}; ` +
      `${p3.usPerMessage.toFixed(0)} µs CPU per message)`,
  );

  const ratio = p2.rate / p3.rate;
  const target = AGENTS / INTERVAL_S;
  const p99 = percentile(p1.lags, 0.99);
  const pacedOk = p1.stored >= 0.98 * target && p99 < 1000 && p1.unobserved === 0;
  console.log(
    `target (${rate(target)} stored, p99 < 1000 ms): ${pacedOk ? 'met' : 'MISSED'}; ` +
      `ratio >= 0.80: ${ratio >= 0.8 ? 'met' : 'MISSED'}; bench took ${((now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(`ratio kumo-api/bare-consumer: ${ratio.toFixed(2)}`);
}

await runBench({
  main,
  cleanup: async () => stack?.cleanup(),
  lastly: () => stack?.kill(),
  onFailure: () => {
    if (stack) console.error(`kumo-api log (last lines):\n${logTail(stack.env.logPath, 20)}`);
  },
});
