/**
 * bench/scale's deployment: what the simulated hosts run against, and the processes whose
 * CPU the bench reports.
 *
 * - `cluster` (the setup): the three-node RabbitMQ cluster of
 *   test/helpers/rabbit-cluster.ts and two kumo-api replicas on one PostgreSQL database
 *   behind HAProxy (test/helpers/api-replicas.ts);
 * - `single` (for development and comparison): the machine's own broker (a fresh vhost)
 *   and one kumo-api on a fresh PostgreSQL database, no HAProxy.
 *
 * Invariant: everything a stack starts or creates (vhost, database, cluster, processes, temp
 * dir) is removed by `cleanup()`, which runs once whatever happened before it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/helpers/cluster.ts';
import { REPO, rabbitVhost, tempDir, testDatabase } from '../test/helpers/env.ts';
import { type Component, pidsMatching, pidsWhere } from './scale-stats.ts';

export interface StackOptions {
  /** [agent] report_interval of the simulated agents, s: agent_down_time is three of them. */
  interval: number;
}

export interface Stack {
  describe: string;
  /** amqp:// URLs of the broker nodes, with the vhost. */
  amqpUrls: string[];
  /** Where API clients go (HAProxy, or the one replica). */
  apiUrl: string;
  adminToken: string;
  pgUrl: string;
  components: Component[];
  /** Diagnostics for a failure: log tails. */
  logs(): string;
  cleanup(): Promise<void>;
  /** Synchronous last resort on exit: SIGKILL what must not outlive the bench. */
  lastly(): void;
}

/** kumo-api settings every stack shares: no quotas (the churn's ports add up over a run). */
export function apiExtraConfig(): string[] {
  return [
    '[quotas]',
    'quota_network = -1',
    'quota_subnet = -1',
    'quota_port = -1',
    'quota_security_group = -1',
    'quota_security_group_rule = -1',
  ];
}

export const agentDownTime = (o: StackOptions) => 3 * o.interval;

const PG_SERVER =
  /^(\/usr\/lib\/postgresql\/\S+\/bin\/postgres |postgres: \S+: (checkpointer|background writer|walwriter|autovacuum|logical replication|stats|archiver))/;

/**
 * PostgreSQL's processes: this bench's backends (named by database) and the server's own
 * (postmaster, writers, autovacuum launcher), which other users of the machine share.
 */
export function postgresComponents(dbName: string): Component[] {
  return [
    { name: 'postgresql (our backends)', pids: () => pidsMatching('postgres: ', ` ${dbName} `) },
    { name: 'postgresql (server, shared)', pids: () => pidsWhere((c) => PG_SERVER.test(c)) },
  ];
}

/** The machine's broker and one kumo-api: for development, and as a one-node comparison. */
export async function singleStack(o: StackOptions): Promise<Stack> {
  const undo: (() => void | Promise<void>)[] = [];
  const dir = tempDir('kumo-scale-');
  undo.push(() => dir.cleanup());
  const vhost = rabbitVhost();
  undo.push(() => vhost.cleanup());
  const db = testDatabase('postgres', dir.path);
  undo.push(() => db.cleanup());
  const port = await freePort();
  const adminToken = `bench-${randomBytes(12).toString('hex')}`;
  const conf = join(dir.path, 'kumo.conf');
  writeFileSync(
    conf,
    [
      '[DEFAULT]',
      'host = scale-api',
      `state_path = ${dir.path}`,
      `transport_url = ${vhost.transportUrl}`,
      `agent_down_time = ${agentDownTime(o)}`,
      '[api]',
      'bind_host = 127.0.0.1',
      `bind_port = ${port}`,
      `admin_token = ${adminToken}`,
      '[database]',
      `connection = ${db.connection}`,
      ...apiExtraConfig(),
      '',
    ].join('\n'),
  );
  const logPath = join(dir.path, 'kumo-api.log');
  const api = await spawnApi(conf, logPath, port);
  undo.push(() => stopChild(api));
  const dbName = new URL(db.connection).pathname.slice(1);
  return {
    describe: 'single: the machine broker (own vhost), one kumo-api on PostgreSQL, no HAProxy',
    amqpUrls: [vhost.url],
    apiUrl: `http://127.0.0.1:${port}`,
    adminToken,
    pgUrl: db.connection,
    components: [
      { name: 'kumo-api', pids: () => (api.pid ? [api.pid] : []) },
      {
        name: 'rabbitmq (machine broker, shared)',
        pids: () => pidsMatching('beam.smp', '-s rabbit boot'),
      },
      ...postgresComponents(dbName),
    ],
    logs: () => `kumo-api log: ${logPath}`,
    cleanup: async () => {
      for (const u of undo.reverse()) await Promise.resolve(u()).catch(() => {});
    },
    lastly: () => api.kill('SIGKILL'),
  };
}

async function spawnApi(conf: string, logPath: string, port: number): Promise<ChildProcess> {
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [join(REPO, 'bin', 'kumo-api.ts'), '--config-file', conf], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`kumo-api exited with ${child.exitCode}; see ${logPath}`);
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return child;
    } catch {
      if (Date.now() > deadline)
        throw new Error(`kumo-api did not listen within 30 s; see ${logPath}`);
      await sleep(100);
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(timer);
}
