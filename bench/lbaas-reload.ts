/**
 * bench/lbaas-reload: changing a 1,000-member pool under load. Twenty member updates go one
 * after another, each timed from the call until the new config is in force (haproxy's stats
 * socket shows the member's new weight), while two steady request loops run from the client
 * namespace (keep-alive connections, and a new connection per request); every failed request
 * is counted.
 *
 * 1. **kumo**: `PUT /v2.0/lb/members/{id}` on kumo-api → scheduler → the LBaaS agent renders,
 *    checks and reloads its haproxy hitlessly (`-x <socket> -sf <old pid>`); load on the VIP.
 * 2. **baseline**: an haproxy with the same members (same renderer), in the backend
 *    namespace; each change rewrites its config and restarts it without `-sf`/`-x`
 *    (SIGTERM, wait, start). Same loads, same changes, aimed at its address.
 *
 * Last line: failed requests kumo/baseline (0 is the target); the times are printed above.
 * The lab is bench/lbaas-bench-lab.ts. Invariant: all traffic stays in the lab's namespaces;
 * everything goes at exit, also after a failure or Ctrl-C.
 */
import { parseArgs } from 'node:util';
import type { Baseline } from './lbaas-baseline.ts';
import { startBaseline } from './lbaas-baseline.ts';
import { FIRST_PORT, onCleanup, runLbaasBench, setUpLbaasBench } from './lbaas-bench-lab.ts';
import { describeLoad, type LoadResult, type LoadSpec, startLoad } from './lbaas-load.ts';
import { setWeight } from './lbaas-pool.ts';
import { waitWeight } from './lbaas-stats.ts';

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '1000' },
    changes: { type: 'string', default: '20' },
    // connections per loop (two loops: keep-alive and a connection per request)
    concurrency: { type: 'string', default: '4' },
    // ms of plain load before, between and after the changes
    gap: { type: 'string', default: '250' },
  },
});
const memberCount = Number(args.members);
const changes = Number(args.changes);
const concurrency = Number(args.concurrency);
const gapMs = Number(args.gap);
const BASELINE_PORT = 81;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Phase {
  times: number[];
  loads: { mode: string; result: LoadResult }[];
}

/** Runs `change(i)` `changes` times under both loops aimed at `url`. */
async function phase(
  netns: string,
  url: string,
  expect: string,
  change: (i: number) => Promise<number>,
): Promise<Phase> {
  const modes = ['keepalive', 'close'] as const;
  const specs: LoadSpec[] = modes.map((mode) => ({ netns, url, concurrency, mode, expect }));
  const running = specs.map((s) => startLoad(s));
  const times: number[] = [];
  await sleep(4 * gapMs);
  for (let i = 0; i < changes; i++) {
    times.push(await change(i));
    await sleep(gapMs);
  }
  await sleep(4 * gapMs);
  const loads: Phase['loads'] = [];
  for (const [i, r] of running.entries())
    loads.push({ mode: modes[i] as string, result: await r.stop() });
  return { times, loads };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) =>
  sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;
const failed = (p: Phase) => p.loads.reduce((n, l) => n + l.result.failed, 0);
const total = (p: Phase) => p.loads.reduce((n, l) => n + l.result.ok + l.result.failed, 0);

function report(name: string, p: Phase) {
  console.log(
    `${name}: time to new config in force p50 ${pct(p.times, 0.5).toFixed(0)} ms, ` +
      `max ${Math.max(...p.times).toFixed(0)} ms, total ${p.times.reduce((a, b) => a + b, 0).toFixed(0)} ms for ${p.times.length} changes`,
  );
  for (const l of p.loads) console.log(`  ${name} ${l.mode} loop: ${describeLoad(l.result)}`);
  console.log(`  ${name}: ${failed(p)} failed of ${total(p)} requests`);
}

/** New weight of the i-th change: 2.., distinct from the initial 1. */
const weightOf = (i: number) => 2 + (i % 200);

async function main() {
  const b = await setUpLbaasBench(memberCount);
  const { lab, pool } = b;
  if (pool.members.length < changes) throw new Error(`--changes ${changes} > --members`);
  const expect = b.members.anyBody;
  const kumo = await phase(lab.clientNetns, b.vipUrl, expect, async (i) => {
    const m = pool.members[i] as (typeof pool.members)[number];
    const t0 = performance.now();
    await setWeight(lab, m.id, weightOf(i));
    await waitWeight(pool.socket, m.id, weightOf(i));
    return performance.now() - t0;
  });
  report('kumo', kumo);
  const members = pool.members.map((m) => ({ ...m, weight: 1 }));
  const baseline: Baseline = await startBaseline({
    netns: b.backendNetns,
    address: b.members.address,
    port: BASELINE_PORT,
    dir: b.dir,
    members,
  });
  onCleanup(() => baseline.stop());
  const url = `http://${baseline.address}:${baseline.port}/`;
  await lab.curl(url);
  const base = await phase(lab.clientNetns, url, expect, (i) =>
    baseline.change((pool.members[i] as { id: string }).id, weightOf(i)),
  );
  report('baseline (rewrite + stop + start)', base);
  console.log(
    `${memberCount} members on ports ${FIRST_PORT}-${FIRST_PORT + memberCount - 1}; ` +
      `time ratio kumo/baseline (p50 to new config in force): ${(pct(kumo.times, 0.5) / pct(base.times, 0.5)).toFixed(2)}`,
  );
  console.log(
    `target (0 failed requests through the VIP): ${failed(kumo) === 0 ? 'met' : 'MISSED'}`,
  );
  console.log(
    `ratio kumo/baseline (failed requests during ${changes} changes, over at least 1): ${(failed(kumo) / Math.max(1, failed(base))).toFixed(3)} (${failed(kumo)} vs ${failed(base)})`,
  );
}

await runLbaasBench(main);
