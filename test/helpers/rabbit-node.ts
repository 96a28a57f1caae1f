/**
 * One RabbitMQ node of the test lab (test/helpers/rabbit-cluster.ts): its files, its
 * process, and rabbitmqctl against it.
 *
 * Invariant: a node runs as the `rabbitmq` user with that user's HOME (so it shares the
 * machine's Erlang cookie and the Debian rabbitmqctl reaches it), from files under its own
 * dir only (config, data, logs, pid file, an empty plugin list), on loopback ports that
 * RabbitMQ's own tools and the machine's broker do not use.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RABBIT_PASSWORD, RABBIT_USER, waitFor } from './env.ts';

export interface RabbitNode {
  name: string;
  port: number;
  distPort: number;
  dir: string;
}

const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
const RABBIT_HOME = '/var/lib/rabbitmq';
export const LAB_PREFIX = 'kumo-rabbit-lab-';
/** A node boots in ~10 s alone here; three on two shared cores take longer. */
const BOOT_TIMEOUT_MS = 120_000;
/** Erlang kept small: the machine has two cores and other labs beside this one. */
const ERL_ARGS = '+S 1:1 +SDio 2 +A 2 -kernel inet_dist_use_interface {127,0,0,1}';
/**
 * rabbitmqctl's own distribution ports for the lab: the default range (35672-35682, eleven
 * ports) runs out when other suites' CLI calls hang, and a CLI without a port fails.
 */
const CTL_PORTS = { min: 36100, max: 36199 };
/** Ports the machine's broker, RabbitMQ's tools and the lab's CLI calls use. */
const RESERVED = (p: number) =>
  p === 5672 ||
  p === 25672 ||
  (p >= 35672 && p <= 35682) ||
  (p >= CTL_PORTS.min && p <= CTL_PORTS.max);

const execFileAsync = promisify(execFile);

export interface RabbitUser {
  uid: number;
  gid: number;
}

export function rabbitUser(): RabbitUser {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('rabbitmq:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid) {
    throw new Error(
      'no rabbitmq user: the three-node lab needs Debian rabbitmq-server. Run ./run_tests.sh, which installs it.',
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

function ctlEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: RABBIT_HOME,
    LANG: 'C.UTF-8',
    RABBITMQ_CTL_DIST_PORT_MIN: String(CTL_PORTS.min),
    RABBITMQ_CTL_DIST_PORT_MAX: String(CTL_PORTS.max),
  };
}

/** rabbitmqctl against `node`, as the rabbitmq user (its HOME holds the cookie). */
export async function ctl(node: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const u = rabbitUser();
  try {
    const { stdout } = await execFileAsync(`${RABBIT_BIN}/rabbitmqctl`, ['-n', node, ...args], {
      uid: u.uid,
      gid: u.gid,
      cwd: RABBIT_HOME,
      env: ctlEnv(),
      timeout: timeoutMs,
      encoding: 'utf8',
    });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `rabbitmqctl -n ${node} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`,
    );
  }
}

export function ctlSync(node: string, args: string[]): string {
  const u = rabbitUser();
  return execFileSync(`${RABBIT_BIN}/rabbitmqctl`, ['-n', node, ...args], {
    uid: u.uid,
    gid: u.gid,
    cwd: RABBIT_HOME,
    env: ctlEnv(),
    timeout: 60_000,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** A port free on every interface, outside the ones RabbitMQ's tools reserve. */
export async function freePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.on('error', reject);
      srv.listen(0, () => {
        const addr = srv.address();
        srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject()));
      });
    });
    if (!RESERVED(port) && !RESERVED(port + 1) && !taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
}

export const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * The pid in `pidFile` while that process is still the node that wrote it: pids wrap
 * around here within the hour, so a stale pid file must never get another process killed.
 */
export function beamPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return env.includes(`RABBITMQ_PID_FILE=${pidFile}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export const nodePid = (node: RabbitNode) => beamPid(join(node.dir, 'pid'));

/** Kills the nodes of labs whose owning process is gone, and removes their dirs. */
export function reapLeftovers() {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(LAB_PREFIX)) continue;
    const root = join(tmpdir(), entry);
    const ownerFile = join(root, 'owner');
    const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8')) : 0;
    if (owner > 0 && pidAlive(owner)) continue;
    for (const sub of readdirSync(root)) {
      const pid = beamPid(join(root, sub, 'pid'));
      if (pid) process.kill(pid, 'SIGKILL');
    }
    rmSync(root, { recursive: true, force: true });
  }
}

export function writeNodeFiles(node: RabbitNode, seed: string, vhost: string, u: RabbitUser) {
  for (const d of ['', 'mnesia', 'log']) mkdirSync(join(node.dir, d), { recursive: true });
  writeFileSync(join(node.dir, 'enabled_plugins'), '[].\n');
  writeFileSync(
    join(node.dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${node.port}`,
      `default_user = ${RABBIT_USER}`,
      `default_pass = ${RABBIT_PASSWORD}`,
      `default_vhost = ${vhost}`,
      'cluster_formation.peer_discovery_backend = classic_config',
      `cluster_formation.classic_config.nodes.1 = ${seed}`,
      'log.console = false',
      '',
    ].join('\n'),
  );
  for (const f of ['', 'mnesia', 'log', 'enabled_plugins', 'rabbitmq.conf'])
    chownSync(join(node.dir, f), u.uid, u.gid);
}

/** Starts the node's rabbitmq-server in the background, detached from this process. */
export function launch(node: RabbitNode, u: RabbitUser) {
  rmSync(join(node.dir, 'pid'), { force: true });
  const out = openSync(join(node.dir, 'log', 'console.log'), 'a');
  const child = spawn(`${RABBIT_BIN}/rabbitmq-server`, [], {
    uid: u.uid,
    gid: u.gid,
    cwd: node.dir,
    detached: true,
    stdio: ['ignore', out, out],
    env: {
      ...ctlEnv(),
      RABBITMQ_NODENAME: node.name,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(node.port),
      RABBITMQ_DIST_PORT: String(node.distPort),
      RABBITMQ_MNESIA_BASE: join(node.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(node.dir, 'log'),
      RABBITMQ_PID_FILE: join(node.dir, 'pid'),
      RABBITMQ_CONFIG_FILE: join(node.dir, 'rabbitmq.conf'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(node.dir, 'enabled_plugins'),
      RABBITMQ_CONF_ENV_FILE: join(node.dir, 'rabbitmq-env.conf'),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: ERL_ARGS,
    },
  });
  child.unref();
  closeSync(out);
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/** Waits for the node's AMQP listener (the last boot step), then for the boot to finish. */
export async function awaitBoot(node: RabbitNode) {
  const what = `RabbitMQ node ${node.name} to boot (log: ${join(node.dir, 'log')})`;
  await waitFor(what, () => portOpen(node.port), BOOT_TIMEOUT_MS, 200);
  await ctl(node.name, ['-q', 'await_startup', '--timeout', '60']);
}

interface ClusterStatus {
  running_nodes: string[];
  disk_nodes: string[];
}

export async function runningNodes(node: RabbitNode): Promise<string[]> {
  const out = await ctl(node.name, ['-q', 'cluster_status', '--formatter', 'json'], 30_000);
  return (JSON.parse(out) as ClusterStatus).running_nodes;
}

interface QueueRow {
  name: string;
  type: string;
  members?: string[];
  online?: string[];
}

export async function quorumQueuesHealed(node: RabbitNode, vhost: string, all: string[]) {
  const out = await ctl(
    node.name,
    ['-q', 'list_queues', '-p', vhost, 'name', 'type', 'members', 'online', '--formatter', 'json'],
    30_000,
  );
  const rows = JSON.parse(out || '[]') as QueueRow[];
  return rows
    .filter((q) => q.type === 'quorum')
    .every((q) => all.every((n) => q.members?.includes(n) && q.online?.includes(n)));
}
