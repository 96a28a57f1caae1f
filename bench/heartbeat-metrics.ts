#!/usr/bin/env node
/**
 * bench/heartbeat-metrics: what Prometheus metrics cost kumo-api on its hottest path, the
 * heartbeat ingest (bench/heartbeats' phase 2), with metrics on against metrics off in the
 * same run.
 *
 *   node bench/heartbeat-metrics.ts [--flood 100000] [--rounds 6] [--scrape 2]
 *
 * A first, untimed drain registers `--flood` hosts; then each round drains a backlog of
 * `--flood` reports of those same hosts twice (so every timed run does the same work on a
 * table of the same size), once with `[DEFAULT] metrics_port = 0` and once with metrics on
 * while a scraper reads `/metrics` every `--scrape` seconds, as a Prometheus would (each
 * scrape also counts the agents table for kumo_agents). The order alternates between
 * rounds. Standalone like bench/heartbeats (its stack, bench/heartbeat-stack.ts).
 *
 * The measure is kumo-api's CPU time per stored report (bench/proc-cpu.ts, from its first
 * delivery to the last row): on a shared 2-core VM the wall-clock rate of one drain swings
 * by ±20% run to run with no change at all; CPU per report is less disturbed by what
 * else runs, though not immune (see the rounds' spread in the output).
 * Output: each run's rate and CPU per report, each round's ratio (the two runs of a round
 * are neighbours in time), and last `ratio metrics-on/off: X`, the median of the rounds'
 * (CPU per report off) / (CPU per report on): reports per CPU-second with metrics against
 * without. The target is >= 0.95.
 */
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { freePort } from '../test/helpers/cluster.ts';
import { hostName, publisher, report } from './heartbeat-reports.ts';
import { createHeartbeatStack, drainBacklog, type HeartbeatStack } from './heartbeat-stack.ts';
import { logTail, runBench } from './lib.ts';
import { cpuMeter } from './proc-cpu.ts';

const { values: opts } = parseArgs({
  options: {
    flood: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '6' },
    scrape: { type: 'string', default: '2' },
  },
  strict: true,
});
const FLOOD = Number(opts.flood);
const ROUNDS = Number(opts.rounds);
const SCRAPE_S = Number(opts.scrape);
for (const [k, v] of Object.entries({ flood: FLOOD, rounds: ROUNDS, scrape: SCRAPE_S }))
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);

let stack: HeartbeatStack | undefined;

/** Reads /metrics every SCRAPE_S until stopped; counts scrapes and their bytes. */
function scraper(port: number) {
  let scrapes = 0;
  let bytes = 0;
  const timer = setInterval(() => {
    fetch(`http://127.0.0.1:${port}/metrics`)
      .then((r) => r.text())
      .then((t) => {
        scrapes++;
        bytes = t.length;
      })
      .catch(() => {});
  }, SCRAPE_S * 1000);
  return {
    stop() {
      clearInterval(timer);
      return { scrapes, bytes };
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

async function main() {
  stack = await createHeartbeatStack(10);
  const metricsPort = await freePort();
  await stack.startApi();
  const conn = await amqp.connect(stack.env.amqpUrl);
  stack.onCleanup(() => conn.close().catch(() => {}));
  const pub = await publisher(conn);
  const rates: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const cpuUs: Record<'on' | 'off', number[]> = { on: [], off: [] };
  console.log(`kumo-api heartbeat ingest, metrics on vs off: ${ROUNDS} rounds of ${FLOOD} reports`);
  const bodies = Array.from({ length: FLOOD }, (_, i) => report(hostName('metrics', i), i, true));
  const api = stack;
  const meter = () => cpuMeter({ 'kumo-api': api.apiPid() });
  const warm = await drainBacklog(api, conn, pub, bodies, meter);
  console.log(`warm-up (registers the hosts, untimed): ${warm.rate.toFixed(0)} reports/s`);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
    for (const mode of order) {
      stack.setMetricsPort(mode === 'on' ? metricsPort : 0);
      const scrape = mode === 'on' ? scraper(metricsPort) : undefined;
      const r = await drainBacklog(api, conn, pub, bodies, meter);
      const seen = scrape?.stop();
      const us = ((r.apiCpuS ?? Number.NaN) / FLOOD) * 1e6;
      rates[mode].push(r.rate);
      cpuUs[mode].push(us);
      console.log(
        `round ${round + 1} metrics ${mode.padEnd(3)}: ${FLOOD} reports in ${r.seconds.toFixed(2)} s = ` +
          `${r.rate.toFixed(0)} reports/s, kumo-api ${us.toFixed(1)} µs CPU per report` +
          `${seen ? ` (${seen.scrapes} scrapes of ${seen.bytes} bytes)` : ''}`,
      );
    }
  }
  const wall = median(rates.on.map((on, i) => on / (rates.off[i] as number)));
  const cpu = cpuUs.off.map((off, i) => off / (cpuUs.on[i] as number));
  const ratio = median(cpu);
  console.log(
    `median kumo-api CPU per report: metrics on ${median(cpuUs.on).toFixed(1)} µs, off ${median(cpuUs.off).toFixed(1)} µs; ` +
      `rounds' ratios ${cpu.map((r) => r.toFixed(3)).join(' ')}; wall-clock rate ratio (noisier) ${wall.toFixed(3)}; ` +
      `target ratio >= 0.95: ${ratio >= 0.95 ? 'met' : 'MISSED'}`,
  );
  console.log(`ratio metrics-on/off: ${ratio.toFixed(3)}`);
}

await runBench({
  main,
  cleanup: async () => stack?.cleanup(),
  lastly: () => stack?.kill(),
  onFailure: () => {
    if (stack) console.error(`kumo-api log (last lines):\n${logTail(stack.env.logPath, 20)}`);
  },
});
