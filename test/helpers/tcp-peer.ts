/**
 * TCP peers inside lab namespaces (tcp-peer-main.ts as a process in the namespace): a
 * server that tells each client the source address it sees, and a client connection a
 * test can hold open and probe.
 *
 * Invariant: every process started here is killed by `stopPeers()` (and on exit), so a
 * failing test leaves no listener behind in a namespace it deleted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO } from './env.ts';

const MAIN = join(REPO, 'test', 'helpers', 'tcp-peer-main.ts');
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
  const waiting: ((line: string | null) => void)[] = [];
  const queued: string[] = [];
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  rl.on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else queued.push(line);
  });
  rl.on('close', () => {
    for (const w of waiting.splice(0)) w(null);
  });
  /** The next output line, or null after `ms` (or when the process ended). */
  const next = (ms: number) =>
    new Promise<string | null>((resolve) => {
      const line = queued.shift();
      if (line !== undefined) return resolve(line);
      const timer = setTimeout(() => {
        waiting.splice(waiting.indexOf(done), 1);
        resolve(null);
      }, ms);
      const done = (l: string | null) => {
        clearTimeout(timer);
        resolve(l);
      };
      waiting.push(done);
    });
  return { child, next };
}

/** A server in `netns` on `port` answering `from=<client address>`; resolves once listening. */
export async function tcpServer(netns: string, port: number) {
  const s = start(netns, ['serve', String(port)]);
  if ((await s.next(10_000)) !== 'listening')
    throw new Error(`tcp server in ${netns} did not start`);
  return { stop: () => s.child.kill('SIGKILL') };
}

export interface TcpConnection {
  /** Sends a line; resolves with the answer, or null when none came within `ms`. */
  ask(ms?: number): Promise<string | null>;
  close(): void;
}

/** Connects from `netns` to host:port; rejects when the connection is not made within `ms`. */
export async function tcpConnect(
  netns: string,
  host: string,
  port: number,
  ms = 5000,
): Promise<TcpConnection> {
  const c = start(netns, ['connect', host, String(port)]);
  const first = await c.next(ms);
  if (first !== 'connected') {
    c.child.kill('SIGKILL');
    throw new Error(`no connection from ${netns} to ${host}:${port}: ${first ?? 'timed out'}`);
  }
  return {
    async ask(wait = 3000) {
      c.child.stdin?.write('?\n');
      const line = await c.next(wait);
      return line?.startsWith('from=') ? line : null;
    },
    close: () => c.child.kill('SIGKILL'),
  };
}

/** One connection, one answer: the source address the server saw, or null. */
export async function sourceSeen(netns: string, host: string, port: number) {
  const conn = await tcpConnect(netns, host, port).catch(() => null);
  if (!conn) return null;
  try {
    return (await conn.ask())?.slice('from='.length) ?? null;
  } finally {
    conn.close();
  }
}

export function stopPeers() {
  for (const p of running) p.kill('SIGKILL');
}
