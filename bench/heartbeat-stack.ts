/**
 * bench/heartbeats' stack: a RabbitMQ vhost, a temp dir with a kumo.conf (SQLite under it, a
 * free port) and the real `node bin/kumo-api.ts --config-file …`, which the bench stops and
 * starts between phases.
 *
 * Invariant: everything made here is undone by `cleanup()` (kumo-api stopped, vhost and
 * temp dir removed), in reverse order, whatever failed before; a broker CLI that does not
 * answer within a minute fails the bench instead of hanging it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/helpers/cluster.ts';

const REPO = join(import.meta.dirname, '..');
const RABBIT_USER = process.env.KUMO_TEST_RABBIT_USER ?? 'kumo_test';
const RABBIT_PASSWORD = process.env.KUMO_TEST_RABBIT_PASSWORD ?? 'kumo_test_pw';
/** A broker of the bench's own (another node on this machine) when the shared one is busy. */
export const BROKER_PORT = Number(process.env.KUMO_BENCH_RABBIT_PORT ?? 5672);
const RABBITMQCTL = [
  'rabbitmqctl',
  ...(process.env.KUMO_BENCH_RABBIT_NODE ? ['-n', process.env.KUMO_BENCH_RABBIT_NODE] : []),
  '-q',
];

export interface Env {
  dir: string;
  amqpUrl: string;
  confPath: string;
  dbPath: string;
  logPath: string;
  port: number;
}

export interface HeartbeatStack {
  env: Env;
  startApi(): Promise<void>;
  stopApi(): Promise<void>;
  /** kumo-api's pid while it runs. */
  apiPid(): number | undefined;
  /** Registers something to undo at cleanup (run in reverse order). */
  onCleanup(fn: () => void | Promise<void>): void;
  cleanup(): Promise<void>;
  /** Last resort on exit: SIGKILL kumo-api. */
  kill(): void;
}

/** Runs a command; a broker that does not answer within a minute fails the bench. */
function sh(argv: string[]) {
  try {
    execFileSync(argv[0] as string, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (e) {
    throw new Error(`${argv.join(' ')} failed: ${(e as Error).message}`);
  }
}

function writeConf(path: string, dir: string, vhost: string, port: number, intervalS: number) {
  const auth = `${RABBIT_USER}:${RABBIT_PASSWORD}`;
  writeFileSync(
    path,
    [
      '[DEFAULT]',
      'host = bench-api',
      `state_path = ${dir}`,
      `transport_url = rabbit://${auth}@127.0.0.1:${BROKER_PORT}/${vhost}`,
      `agent_down_time = ${Math.max(30, Math.ceil(intervalS * 7.5))}`,
      '',
      '[api]',
      'bind_host = 127.0.0.1',
      `bind_port = ${port}`,
      `admin_token = bench-${randomBytes(12).toString('hex')}`,
      '',
      '[database]',
      `connection = sqlite:///${join(dir, 'kumo.sqlite')}`,
      '',
    ].join('\n'),
  );
}

/**
 * Spawns kumo-api and resolves once it listens. `onSpawn` has the child at once (its CPU is
 * metered from its first delivery, before it listens); `onExit` learns when it ends.
 */
async function spawnApi(
  env: Env,
  onSpawn: (child: ChildProcess) => void,
  onExit: (child: ChildProcess) => void,
): Promise<void> {
  const fd = openSync(env.logPath, 'a');
  const flags = process.env.KUMO_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(
    process.execPath,
    [...flags, join(REPO, 'bin', 'kumo-api.ts'), '--config-file', env.confPath],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  onSpawn(child);
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
    onExit(child);
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited !== undefined) throw new Error(`kumo-api exited with ${exited} while starting`);
    try {
      await fetch(`http://127.0.0.1:${env.port}/`);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error('kumo-api did not listen within 20 s');
      await sleep(50);
    }
  }
}

export async function createHeartbeatStack(intervalS: number): Promise<HeartbeatStack> {
  const cleanups: (() => void | Promise<void>)[] = [];
  let api: ChildProcess | undefined;
  const vhost = `kumo-bench-${randomBytes(4).toString('hex')}`;
  sh([...RABBITMQCTL, 'add_vhost', vhost]);
  cleanups.push(() => sh([...RABBITMQCTL, 'delete_vhost', vhost]));
  sh([...RABBITMQCTL, 'set_permissions', '-p', vhost, RABBIT_USER, '.*', '.*', '.*']);
  const dir = mkdtempSync(join(tmpdir(), 'kumo-bench-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const env: Env = {
    dir,
    amqpUrl: `amqp://${RABBIT_USER}:${RABBIT_PASSWORD}@127.0.0.1:${BROKER_PORT}/${vhost}`,
    confPath: join(dir, 'kumo.conf'),
    dbPath: join(dir, 'kumo.sqlite'),
    logPath: join(dir, 'kumo-api.log'),
    port,
  };
  writeConf(env.confPath, dir, vhost, port, intervalS);

  const stopApi = async () => {
    const child = api;
    if (!child || child.exitCode !== null) return;
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(timer);
  };
  return {
    env,
    async startApi() {
      await spawnApi(
        env,
        (child) => {
          api = child;
        },
        (child) => {
          if (api === child) api = undefined;
        },
      );
    },
    stopApi,
    apiPid: () => api?.pid,
    onCleanup: (fn) => cleanups.push(fn),
    async cleanup() {
      await stopApi().catch(() => {});
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch (e) {
          console.error(`cleanup: ${(e as Error).message}`);
        }
      }
      cleanups.length = 0;
    },
    kill: () => api?.kill('SIGKILL'),
  };
}
