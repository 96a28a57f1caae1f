/**
 * Running bench/lbaas-load-main.ts in a namespace: for a fixed time (`runLoad`) or for as
 * long as a phase lasts (`startLoad(...).stop()`), and summing what it reports.
 *
 * Invariant: the client process is a child of the bench; stop() ends it by closing its
 * stdin, and the bench's exit kills it (`killLoads`), so no load outlives a run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { LoadResult } from './lbaas-load-main.ts';

export type { LoadResult } from './lbaas-load-main.ts';

export interface LoadSpec {
  netns: string;
  url: string;
  concurrency: number;
  mode: 'keepalive' | 'close';
  /** Regular expression every answer's body must match. */
  expect: string;
}

const MAIN = join(import.meta.dirname, 'lbaas-load-main.ts');
const running = new Set<ChildProcess>();

function spawnLoad(spec: LoadSpec, seconds: number) {
  const argv = [
    'netns',
    'exec',
    spec.netns,
    process.execPath,
    MAIN,
    spec.url,
    String(spec.concurrency),
    String(seconds),
    spec.mode,
    spec.expect,
  ];
  const child = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  running.add(child);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const done = new Promise<LoadResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      running.delete(child);
      if (code !== 0) return reject(new Error(`load client exited ${code}: ${out}`));
      resolve(JSON.parse(out) as LoadResult);
    });
  });
  return { child, done };
}

/** One run of `seconds`. */
export function runLoad(spec: LoadSpec, seconds: number): Promise<LoadResult> {
  return spawnLoad(spec, seconds).done;
}

/** A load running until stop(), which returns its result. */
export function startLoad(spec: LoadSpec): { stop(): Promise<LoadResult> } {
  const { child, done } = spawnLoad(spec, 0);
  return {
    stop() {
      child.stdin?.end();
      return done;
    },
  };
}

/** SIGKILLs every load client still running (the bench's exit hook). */
export function killLoads(): void {
  for (const child of running) child.kill('SIGKILL');
}

export const rate = (r: LoadResult) => r.ok / r.seconds;

/** One line about a load result. */
export function describeLoad(r: LoadResult): string {
  const retried = r.retried > 0 ? `, ${r.retried} resent on a new connection` : '';
  return (
    `${r.ok} ok, ${r.failed} failed${retried} in ${r.seconds.toFixed(1)} s ` +
    `(${rate(r).toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(1)} ms)` +
    (r.firstFailure ? `; first failure: ${r.firstFailure}` : '')
  );
}
