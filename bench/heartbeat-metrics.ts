#!/usr/bin/env node
/**
 * bench/heartbeat-metrics: what Prometheus metrics cost kumo-api on its hottest path, the
 * heartbeat ingest (bench/heartbeats' phase 2), with metrics on against metrics off in the
 * same run.
 *
 *   node bench/heartbeat-metrics.ts [--flood 100000] [--rounds 4] [--scrape 2]
 *
 A first, untimed drain registers `--flood` hosts; then each round drains a backlog of
 * `--flood` reports of those same hosts twice (so every timed run does the same work on a
 * table of the same size), once with `[DEFAULT] metrics_port = 0` and once with metrics on
 * while a scraper reads `/metrics` every `--scrape` seconds, as a Prometheus would (each
 * scrape also counts the agents table for kumo_agents). The order alternates between
 * rounds. Standalone like bench/heartbeats (its stack, bench/heartbeat-stack.ts).
 *
 * Output: each run's rate, the median of each mode, and last `ratio metrics-on/off: X`
 * (median drain rate with metrics / without). The target is >= 0.95.
 */
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { freePort } from '../test/helpers/cluster.ts';
import { hostName, publisher, report } from './heartbeat-reports.ts';
import { createHeartbeatStack, drainBacklog, type HeartbeatStack } from './heartbeat-stack.ts';
import { logTail, runBench } from './lib.ts';

const { values: opts } = parseArgs({
  options: {
    flood: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '4' },
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main() {
  stack = await createHeartbeatStack(10);
  const metricsPort = await freePort();
  await stack.startApi();
  const conn = await amqp.connect(stack.env.amqpUrl);
  stack.onCleanup(() => conn.close().catch(() => {}));
  const pub = await publisher(conn);
  const rates: Record<'on' | 'off', number[]> = { on: [], off: [] };
  console.log(`kumo-api heartbeat ingest, metrics on vs off: ${ROUNDS} rounds of ${FLOOD} reports`);
  const bodies = Array.from({ length: FLOOD }, (_, i) => report(hostName('metrics', i), i, true));
  const warm = await drainBacklog(stack, conn, pub, bodies, () => undefined);
  console.log(`warm-up (registers the hosts, untimed): ${warm.rate.toFixed(0)} reports/s`);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
    for (const mode of order) {
      stack.setMetricsPort(mode === 'on' ? metricsPort : 0);
      const scrape = mode === 'on' ? scraper(metricsPort) : undefined;
      const r = await drainBacklog(stack, conn, pub, bodies, () => undefined);
      const seen = scrape?.stop();
      rates[mode].push(r.rate);
      console.log(
        `round ${round + 1} metrics ${mode.padEnd(3)}: ${FLOOD} reports in ${r.seconds.toFixed(2)} s = ` +
          `${r.rate.toFixed(0)} reports/s${seen ? ` (${seen.scrapes} scrapes of ${seen.bytes} bytes)` : ''}`,
      );
    }
  }
  const on = median(rates.on);
  const off = median(rates.off);
  const ratio = on / off;
  console.log(
    `median: metrics on ${on.toFixed(0)} reports/s, off ${off.toFixed(0)} reports/s; ` +
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
