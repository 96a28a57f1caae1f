/**
 * HTTP members and request loops inside test namespaces (lb-peer-main.ts as a process in
 * the namespace), for load balancer tests.
 *
 * Invariant: every process started here is killed by `stopLbPeers()` (and on exit), so a
 * failing test leaves no listener behind in a namespace it deleted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO } from './env.ts';

const MAIN = join(REPO, 'test', 'helpers', 'lb-peer-main.ts');
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

function start(netns: string, args: string[]) {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, MAIN, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const lines = rl[Symbol.asyncIterator]();
  /** The next output line, or null when the process ended (or after `ms`). */
  const next = (ms: number) =>
    Promise.race([
      lines.next().then((r) => (r.done ? null : (r.value as string))),
      sleep(ms, null, { ref: false }),
    ]);
  return { child, next };
}

export interface HttpMember {
  stop(): void;
}

/** An HTTP server in `netns` answering `status` with the body `name`; resolves once bound. */
export async function httpMember(
  netns: string,
  ip: string,
  port: number,
  name: string,
  status = 200,
): Promise<HttpMember> {
  const s = start(netns, ['serve', ip, String(port), name, String(status)]);
  if ((await s.next(10_000)) !== 'listening') throw new Error(`member ${name} did not start`);
  return { stop: () => s.child.kill('SIGKILL') };
}

export interface LoopResult {
  ok: number;
  failed: number;
  errors: Record<string, number>;
}

/** A request loop from `netns` against `url`; `finish()` stops it and returns its counts. */
export async function requestLoop(netns: string, url: string) {
  const s = start(netns, ['loop', url]);
  if ((await s.next(10_000)) !== 'started') throw new Error('request loop did not start');
  return {
    async finish(): Promise<LoopResult> {
      s.child.stdin?.write('stop\n');
      const line = await s.next(15_000);
      if (line === null) throw new Error('request loop gave no result');
      return JSON.parse(line) as LoopResult;
    },
  };
}

export function stopLbPeers() {
  for (const p of running) p.kill('SIGKILL');
}
