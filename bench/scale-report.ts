/**
 * bench/scale's verdicts and printed figures: one block per step, then the summary, the
 * ceiling with its measured reason, the Neutron anchor and the ratio as the last line.
 *
 * Invariant: a step holds only on its own measurements (p99 lag < 1 s, no lost report, the
 * simulators offering ≥ 95% of the target rate, ≤ 1% of RPC calls failed, no API error); when it does not, every reason is printed
 * with the CPU shares that explain it, and the ratio counts only steps that held.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { ChurnWindow } from './scale-churn.ts';
import type { SimStats } from './scale-sim.ts';
import { type CpuFigure, fmtMs, type LagWindow, percentile } from './scale-stats.ts';

export interface StepResult {
  hosts: number;
  /** Set when the step could not be measured (registration timeout, a simulator died). */
  failed?: string;
  declareMs: number;
  /** The broker's refusals of queue declarations (retried on a new connection). */
  refused: string[];
  registerS: number;
  lag: LagWindow;
  rpc: SimStats;
  api: ChurnWindow;
  usage: { figures: CpuFigure[]; machineBusy: number };
  /** Reports per second the agents should send. */
  targetRate: number;
  window: number;
}

const LAG_LIMIT_MS = 1000;

export function verdict(r: StepResult): { holds: boolean; reasons: string[] } {
  if (r.failed) return { holds: false, reasons: [r.failed] };
  const reasons: string[] = [];
  const p99 = percentile(r.lag.lags, 0.99);
  const offered = r.lag.published / r.window;
  if (!(p99 < LAG_LIMIT_MS)) reasons.push(`heartbeat lag p99 ${fmtMs(p99)} ≥ 1 s`);
  if (r.lag.lost > 0) reasons.push(`${r.lag.lost} reports of the window never stored`);
  const calls = Object.values(r.rpc.latency).reduce((n, xs) => n + xs.length, 0);
  const failed = Object.values(r.rpc.errors).reduce((n, x) => n + x, 0);
  if (failed > 0.01 * (calls + failed))
    reasons.push(`${failed} of ${calls + failed} RPC calls failed (error, timeout or refusal)`);
  if (r.api.errors.length > 0) reasons.push(`${r.api.errors.length} API requests failed`);
  if (offered < 0.95 * r.targetRate)
    reasons.push(
      `the simulators offered only ${offered.toFixed(1)} of ${r.targetRate.toFixed(1)} reports/s (the simulator is the limit)`,
    );
  return { holds: reasons.length === 0, reasons };
}

const pair = (xs: number[]) => `${fmtMs(percentile(xs, 0.5))}/${fmtMs(percentile(xs, 0.99))}`;
const pct = (x: number) => `${x.toFixed(0)}%`;

function cpuLine(r: StepResult): string {
  const parts = r.usage.figures.map(
    (f) =>
      `${f.name} ${pct(f.cpu)} ${f.rssMb.toFixed(0)} MB${f.processes > 1 ? ` (${f.processes} procs)` : ''}`,
  );
  return `${parts.join('; ')}; machine ${pct(r.usage.machineBusy)} busy of ${cpus().length} CPUs, of which ${pct(others(r))} of a core outside this bench`;
}

/** CPU (% of one core) the machine spent outside every component measured: other users. */
function others(r: StepResult): number {
  const ours = r.usage.figures
    .filter((f) => !f.name.includes('shared'))
    .reduce((a, f) => a + f.cpu, 0);
  return Math.max(0, r.usage.machineBusy * cpus().length - ours);
}

export function printStep(r: StepResult): void {
  const offered = r.lag.published / r.window;
  const all = Object.values(r.rpc.latency).flat();
  const calls = Object.entries(r.rpc.latency)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([m, xs]) => `${m} ${pair(xs)} (${xs.length})`);
  const errors = Object.entries(r.rpc.errors).map(([m, n]) => `${m} ${n}`);
  const received = Object.entries(r.rpc.received).map(([m, n]) => `${m} ${n}`);
  const apiErrors = r.api.errors.length ? ` — ${r.api.errors.slice(0, 3).join('; ')}` : '';
  const v = verdict(r);
  console.log(
    [
      `step ${r.hosts} hosts (${3 * r.hosts} agents): queues declared in ${(r.declareMs / 1000).toFixed(1)} s, ` +
        `all agents registered ${r.registerS.toFixed(1)} s after the step began; ` +
        `declarations refused by the broker and retried: ${r.refused.length}${r.refused.length ? ` (e.g. ${r.refused[0]})` : ''}`,
      `  heartbeats: offered ${offered.toFixed(1)}/s (target ${r.targetRate.toFixed(1)}), stored ${(r.lag.stored / r.window).toFixed(1)}/s; ` +
        `lag p50 ${fmtMs(percentile(r.lag.lags, 0.5))}, p99 ${fmtMs(percentile(r.lag.lags, 0.99))}, ` +
        `max ${fmtMs(percentile(r.lag.lags, 1))} (${r.lag.lags.length} reports); lost ${r.lag.lost}`,
      `  rpc p50/p99 (calls): all ${pair(all)} (${all.length}); ${calls.join(', ')}`,
      `  rpc errors: ${errors.length ? errors.join(', ') : 'none'}; deliveries to agents: ${received.join(', ') || 'none'}`,
      `  api (port churn): create ${pair(r.api.create)} (${r.api.create.length}), delete ${pair(r.api.delete)} (${r.api.delete.length}); ` +
        `errors ${r.api.errors.length}${apiErrors}`,
      `  cpu (% of one core) and RSS: ${cpuLine(r)}`,
      `  verdict: ${v.holds ? 'holds' : `does not hold: ${v.reasons.join('; ')}`}`,
    ].join('\n'),
  );
}

function cpuMhz(): number {
  const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

const sumOf = (r: StepResult, prefix: string) =>
  r.usage.figures
    .filter((f) => f.name.startsWith(prefix))
    .reduce((a, f) => ({ cpu: a.cpu + f.cpu, rss: a.rss + f.rssMb }), { cpu: 0, rss: 0 });

function anchor(r: StepResult | undefined): string {
  if (!r) return 'anchor: no step held, nothing to compare with Neutron';
  const api = sumOf(r, 'kumo-api');
  const ghz = (api.cpu / 100) * (cpuMhz() / 1000);
  return (
    `anchor: Neutron's scale reports put 1,000 OVS agents at ~30 GHz of CPU and ~20 GB for neutron-server; ` +
    `here kumo-api served ${r.hosts} hosts (${3 * r.hosts} agents) with ${pct(api.cpu)} of a core in all ` +
    `(~${ghz.toFixed(2)} GHz at ${cpuMhz().toFixed(0)} MHz) and ${api.rss.toFixed(0)} MB RSS`
  );
}

function ceiling(held: StepResult | undefined, broke: StepResult | undefined): string {
  if (!broke) return `ceiling: not reached; every step held (up to ${held?.hosts ?? 0} hosts)`;
  const v = verdict(broke);
  if (broke.failed)
    return `ceiling: ${held?.hosts ?? 0} hosts; ${broke.hosts} could not run: ${broke.failed}`;
  const top = [...broke.usage.figures].sort((a, b) => b.cpu - a.cpu).slice(0, 4);
  const sims = sumOf(broke, 'simulators');
  return (
    `ceiling: ${held?.hosts ?? 0} hosts; at ${broke.hosts}: ${v.reasons.join('; ')}. ` +
    `Machine ${pct(broke.usage.machineBusy)} busy of ${cpus().length} CPUs; the simulators took ${pct(sims.cpu)} of a core ` +
    `(${pct(sims.cpu / cpus().length)} of the machine), work outside this bench ${pct(others(broke))} of a core; ` +
    `top: ${top.map((f) => `${f.name} ${pct(f.cpu)}`).join(', ')}`
  );
}

export function printSummary(results: StepResult[], target: number, seconds: number): void {
  console.log(
    'summary (hosts: p99 lag, rpc p99 all, api create/delete p99, kumo-api CPU, machine busy):',
  );
  for (const r of results) {
    if (r.failed) {
      console.log(`  ${r.hosts}: could not run`);
      continue;
    }
    const all = Object.values(r.rpc.latency).flat();
    const api = sumOf(r, 'kumo-api');
    console.log(
      `  ${r.hosts}: ${fmtMs(percentile(r.lag.lags, 0.99))}, ${fmtMs(percentile(all, 0.99))}, ` +
        `${fmtMs(percentile(r.api.create, 0.99))}/${fmtMs(percentile(r.api.delete, 0.99))}, ${pct(api.cpu)}, ` +
        `${pct(r.usage.machineBusy)} — ${verdict(r).holds ? 'holds' : 'does not hold'}`,
    );
  }
  const held = results.filter((r) => verdict(r).holds).at(-1);
  const broke = results.find((r) => !verdict(r).holds);
  console.log(ceiling(held, broke));
  console.log(anchor(held));
  console.log(`bench took ${seconds.toFixed(0)} s`);
  const n = held?.hosts ?? 0;
  console.log(
    `ratio highest-hosts-holding-p99-lag<1s/${target}-target: ${(n / target).toFixed(2)} (${n} hosts, ${3 * n} agents)`,
  );
}
