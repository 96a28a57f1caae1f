/**
 * HTTP backend stand-ins inside lab namespaces (http-backend-main.ts as a process in the
 * namespace), answering their name; `stop()` and `start()` simulate a dead and a revived
 * backend (a member's health check fails and passes again).
 *
 * Invariant: every process started here is killed by `stopBackends()` (and on exit), so a
 * failing test leaves no listener behind in a namespace it deleted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO } from './env.ts';

const MAIN = join(REPO, 'test', 'helpers', 'http-backend-main.ts');
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export interface HttpBackend {
  /** Kills the server (SIGKILL) and waits until it is gone; a no-op when stopped. */
  stop(): Promise<void>;
  /** Starts the server again; resolves once it listens; a no-op when running. */
  start(): Promise<void>;
  running(): boolean;
}

function launch(netns: string, port: number, name: string): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, MAIN, String(port), name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`http backend ${name} in ${netns} did not start`));
    }, 10_000);
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.once('line', (line) => {
      clearTimeout(timer);
      if (line === 'listening') resolve(child);
      else reject(new Error(`http backend ${name}: ${line}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`http backend ${name} in ${netns} exited (${code})`));
    });
  });
}

/** A server in `netns` on `port` answering `name`; resolves once listening. */
export async function httpBackend(netns: string, port: number, name: string): Promise<HttpBackend> {
  let child: ChildProcess | null = await launch(netns, port, name);
  return {
    async stop() {
      const c = child;
      child = null;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    },
    async start() {
      if (child) return;
      child = await launch(netns, port, name);
    },
    running: () => child !== null,
  };
}

export function stopBackends() {
  for (const p of running) p.kill('SIGKILL');
}
