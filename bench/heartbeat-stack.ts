/**
 * bench/heartbeats' stack: a RabbitMQ vhost, a temp dir with a kumo.conf (SQLite under it, a
 * free port) and the real `node bin/kumo-api.ts --config-file …`, which the bench stops and
 * starts between phases, and the backlog drain both heartbeat benches time (drainBacklog).
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
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import type amqp from 'amqplib';
import { REPORTS_TOPIC } from '../contracts/messages.ts';
import { freePort } from '../test/helpers/cluster.ts';
import { type Publisher, prefill } from './heartbeat-reports.ts';
import type { cpuMeter } from './proc-cpu.ts';

type CpuMeter = ReturnType<typeof cpuMeter>;

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
  /** kumo-api's [api] admin_token. */
  adminToken: string;
}

export interface HeartbeatStack {
  env: Env;
  /** Rewrites kumo.conf with `[DEFAULT] metrics_port` (0: off); takes effect at startApi. */
  setMetricsPort(port: number): void;
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

function writeConf(env: Env, vhost: string, intervalS: number, metricsPort = 0) {
  const { dir, port } = env;
  const auth = `${RABBIT_USER}:${RABBIT_PASSWORD}`;
  writeFileSync(
    env.confPath,
    [
      '[DEFAULT]',
      'host = bench-api',
      `state_path = ${dir}`,
      `transport_url = rabbit://${auth}@127.0.0.1:${BROKER_PORT}/${vhost}`,
      `agent_down_time = ${Math.max(30, Math.ceil(intervalS * 7.5))}`,
      `metrics_port = ${metricsPort}`,
      '',
      '[api]',
      'bind_host = 127.0.0.1',
      `bind_port = ${port}`,
      `admin_token = ${env.adminToken}`,
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
    adminToken: `bench-${randomBytes(12).toString('hex')}`,
  };
  writeConf(env, vhost, intervalS);

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
    setMetricsPort: (metricsPort) => writeConf(env, vhost, intervalS, metricsPort),
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

const POLL_MS = 20;

/**
 * kumo-api's drain rate: with kumo-api stopped, `bodies` (reports of hosts not yet in the
 * database) are queued in q-reports-plugin; kumo-api is started and timed from its first
 * delivery (the queue's ready count drops) until the database holds all of them; `meter`
 * (bench/proc-cpu.ts) runs over the same span, and kumo-api's CPU seconds (`apiCpuS`) are
 * read before kumo-api is stopped again at the end.
 */
export async function drainBacklog(
  stack: HeartbeatStack,
  conn: amqp.ChannelModel,
  pub: Publisher,
  bodies: Buffer[],
  meter: () => CpuMeter,
) {
  await stack.stopApi();
  const reader = new DatabaseSync(stack.env.dbPath, { readOnly: true });
  const marker =
    (reader.prepare('SELECT MAX(heartbeat_timestamp) AS m FROM agents').get()?.m as string) ?? '';
  const count = reader.prepare('SELECT COUNT(*) AS n FROM agents WHERE heartbeat_timestamp > ?');
  const publishRate = await prefill(pub, REPORTS_TOPIC, bodies.length, (i) => bodies[i] as Buffer);
  const ch = await conn.createChannel();
  const ready = async () => (await ch.checkQueue(REPORTS_TOPIC)).messageCount;
  const queued = await ready();
  if (queued !== bodies.length)
    throw new Error(`expected ${bodies.length} queued reports, found ${queued}`);
  const spawned = performance.now();
  const starting = stack.startApi();
  while ((await ready()) === bodies.length) await sleep(5);
  const t0 = performance.now();
  const m = meter();
  const deadline = t0 + 120_000;
  while (Number(count.get(marker)?.n) < bodies.length) {
    if (performance.now() > deadline)
      throw new Error('kumo-api did not store the backlog within 120 s');
    await sleep(POLL_MS);
  }
  const t1 = performance.now();
  // Read while kumo-api still runs: a stopped process has no CPU time to read.
  const cpu = m.read();
  const apiCpuS = m.used('kumo-api');
  await starting;
  await ch.close();
  reader.close();
  await stack.stopApi();
  return {
    publishRate,
    startupS: (t0 - spawned) / 1000,
    seconds: (t1 - t0) / 1000,
    rate: bodies.length / ((t1 - t0) / 1000),
    cpu,
    apiCpuS,
  };
}
