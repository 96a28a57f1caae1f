/**
 * A three-node RabbitMQ cluster on this machine, beside the machine's own broker, for tests
 * and benches that lose a broker node on purpose.
 *
 * Invariants:
 * - every node has its own node name (unique per run), loopback AMQP and distribution
 *   ports, data, log, pid and config files under one temp dir, and no plugins; they share
 *   the machine's Erlang cookie (they run as the `rabbitmq` user with its HOME), so the
 *   Debian rabbitmqctl reaches them;
 * - the cluster forms by classic-config peer discovery: node 1 boots first, nodes 2 and 3
 *   boot after it is up and join it (a blank node that finds no peer would start alone,
 *   so the order is what makes the formation deterministic);
 * - `cleanup()` leaves no node running and removes the temp dir; a run that died before
 *   its cleanup leaves an `owner` file naming its pid, and the next run kills that lab's
 *   nodes and removes its dir (never a lab whose owner is alive: benches run beside tests).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
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

export interface RabbitCluster {
  nodes: RabbitNode[];
  /** oslo transport_url naming all three nodes, for a fresh vhost made for the caller */
  transportUrl: string;
  /** the same as amqp:// URLs (createBroker({url: urls})) */
  urls: string[];
  vhost: string;
  /** SIGKILL the node's beam (a crash); resolves once the other nodes see it down. */
  kill(i: number): Promise<void>;
  /** Graceful `rabbitmqctl stop`; resolves once the node's process is gone. */
  stop(i: number): Promise<void>;
  /** Restarts a node; resolves once it rejoined the cluster and runs. */
  start(i: number): Promise<void>;
  /** Resolves when all three run, are clustered, and every quorum queue of the vhost has all members online. */
  healed(timeoutMs?: number): Promise<void>;
  /** Runs rabbitmqctl against node i (synchronously; it takes ~1-2 s); returns stdout. */
  rabbitmqctl(i: number, ...args: string[]): string;
  /** Stops all three nodes and removes their data dirs. */
  cleanup(): Promise<void>;
}

const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
const RABBIT_HOME = '/var/lib/rabbitmq';
const LAB_PREFIX = 'kumo-rabbit-lab-';
/** A node boots in ~10 s alone here; three on two shared cores take longer. */
const BOOT_TIMEOUT_MS = 120_000;
/** Erlang kept small: the machine has two cores and other labs beside this one. */
const ERL_ARGS = '+S 1:1 +SDio 2 +A 2 -kernel inet_dist_use_interface {127,0,0,1}';
/** Ports RabbitMQ's own tools and the machine's broker use (5672, 25672, CLI 35672-35682). */
const RESERVED = (p: number) => p === 5672 || p === 25672 || (p >= 35672 && p <= 35682);

const execFileAsync = promisify(execFile);

interface RabbitUser {
  uid: number;
  gid: number;
}

function rabbitUser(): RabbitUser {
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

/**
 * The CLI's own distribution ports (35672-35682 by default) may be passed through: eleven
 * rabbitmqctl calls hung on another broker exhaust that range for everyone.
 */
const CTL_PORTS = ['RABBITMQ_CTL_DIST_PORT_MIN', 'RABBITMQ_CTL_DIST_PORT_MAX'] as const;

function ctlEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: RABBIT_HOME,
    LANG: 'C.UTF-8',
    ...Object.fromEntries(CTL_PORTS.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : []))),
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

function ctlSync(node: string, args: string[]): string {
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
async function freePort(taken: Set<number>): Promise<number> {
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

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function nodePid(node: RabbitNode): number | undefined {
  try {
    const pid = Number(readFileSync(join(node.dir, 'pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Kills the nodes of labs whose owning process is gone, and removes their dirs. */
function reapLeftovers() {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(LAB_PREFIX)) continue;
    const root = join(tmpdir(), entry);
    const ownerFile = join(root, 'owner');
    const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8')) : 0;
    if (owner > 0 && pidAlive(owner)) continue;
    for (const sub of readdirSync(root)) {
      const pidFile = join(root, sub, 'pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
      if (pid > 0 && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(root, { recursive: true, force: true });
  }
}

function writeNodeFiles(node: RabbitNode, seed: string, vhost: string, u: RabbitUser) {
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
function launch(node: RabbitNode, u: RabbitUser) {
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
async function awaitBoot(node: RabbitNode) {
  const what = `RabbitMQ node ${node.name} to boot (log: ${join(node.dir, 'log')})`;
  await waitFor(what, () => portOpen(node.port), BOOT_TIMEOUT_MS, 200);
  await ctl(node.name, ['-q', 'await_startup', '--timeout', '60']);
}

interface ClusterStatus {
  running_nodes: string[];
  disk_nodes: string[];
}

async function runningNodes(node: RabbitNode): Promise<string[]> {
  const out = await ctl(node.name, ['-q', 'cluster_status', '--formatter', 'json'], 30_000);
  return (JSON.parse(out) as ClusterStatus).running_nodes;
}

interface QueueRow {
  name: string;
  type: string;
  members?: string[];
  online?: string[];
}

async function quorumQueuesHealed(node: RabbitNode, vhost: string, all: string[]) {
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

export async function startRabbitCluster(opts: { prefix?: string } = {}): Promise<RabbitCluster> {
  const u = rabbitUser();
  reapLeftovers();
  const id = randomBytes(3).toString('hex');
  // Named as a lab only once its owner file exists, so no other run reaps it half-made.
  const staging = join(tmpdir(), `.${LAB_PREFIX}${id}`);
  const root = join(tmpdir(), `${LAB_PREFIX}${id}`);
  mkdirSync(staging);
  writeFileSync(join(staging, 'owner'), String(process.pid));
  chownSync(staging, u.uid, u.gid);
  renameSync(staging, root);
  const taken = new Set<number>();
  const nodes: RabbitNode[] = [];
  for (let i = 1; i <= 3; i++) {
    nodes.push({
      name: `${opts.prefix ?? 'kumo-lab'}-${id}-${i}@localhost`,
      port: await freePort(taken),
      distPort: await freePort(taken),
      dir: join(root, `node${i}`),
    });
  }
  const vhost = `kumo-cluster-${id}`;
  const seed = (nodes[0] as RabbitNode).name;
  for (const n of nodes) writeNodeFiles(n, seed, vhost, u);
  const cluster = makeCluster(root, nodes, vhost, u);
  try {
    launch(nodes[0] as RabbitNode, u);
    await awaitBoot(nodes[0] as RabbitNode);
    for (const n of nodes.slice(1)) launch(n, u);
    await Promise.all(nodes.slice(1).map((n) => awaitBoot(n)));
    const running = await runningNodes(nodes[0] as RabbitNode);
    if (running.length !== 3) {
      throw new Error(`the lab's nodes did not form one cluster: ${running.join(', ')} run`);
    }
  } catch (e) {
    await cluster.cleanup();
    throw e;
  }
  return cluster;
}

function makeCluster(
  root: string,
  nodes: RabbitNode[],
  vhost: string,
  u: RabbitUser,
): RabbitCluster {
  const node = (i: number): RabbitNode => {
    const n = nodes[i];
    if (!n) throw new RangeError(`no lab node ${i} (0..${nodes.length - 1})`);
    return n;
  };
  const others = (i: number) => nodes.filter((_, j) => j !== i);
  const auth = `${encodeURIComponent(RABBIT_USER)}:${encodeURIComponent(RABBIT_PASSWORD)}`;
  const hosts = nodes.map((n) => `${auth}@127.0.0.1:${n.port}`);
  const killAll = () => {
    for (const n of nodes) {
      const pid = nodePid(n);
      if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  };
  process.once('exit', killAll);

  const waitGone = (n: RabbitNode, pid: number | undefined) =>
    waitFor(`${n.name} (pid ${pid}) to exit`, () => !pid || !pidAlive(pid), 60_000, 50);

  return {
    nodes,
    vhost,
    transportUrl: `rabbit://${hosts.join(',')}/${vhost}`,
    urls: hosts.map((h) => `amqp://${h}/${vhost}`),
    async kill(i) {
      const n = node(i);
      const pid = nodePid(n);
      if (!pid) throw new Error(`${n.name} has no pid file: is it running?`);
      process.kill(pid, 'SIGKILL');
      await waitGone(n, pid);
      const survivor = others(i).find((o) => pidAlive(nodePid(o) ?? 0)) ?? node((i + 1) % 3);
      await waitFor(
        `${survivor.name} to see ${n.name} down`,
        async () => !(await runningNodes(survivor)).includes(n.name),
        60_000,
        200,
      );
    },
    async stop(i) {
      const n = node(i);
      const pid = nodePid(n);
      await ctl(n.name, ['-q', 'stop']);
      await waitGone(n, pid);
    },
    async start(i) {
      const n = node(i);
      const pid = nodePid(n);
      if (pid && pidAlive(pid)) throw new Error(`${n.name} is still running (pid ${pid})`);
      launch(n, u);
      await awaitBoot(n);
      await waitFor(
        `${n.name} to rejoin the cluster`,
        async () => (await runningNodes(n)).includes(others(i)[0]?.name ?? n.name),
        60_000,
        500,
      );
    },
    async healed(timeoutMs = 60_000) {
      const names = nodes.map((n) => n.name);
      await waitFor(
        'the lab cluster to heal (three nodes running, every quorum member online)',
        async () => {
          const running = await runningNodes(node(0));
          if (!names.every((n) => running.includes(n))) return false;
          return quorumQueuesHealed(node(0), vhost, names);
        },
        timeoutMs,
        500,
      );
    },
    rabbitmqctl: (i, ...args) => ctlSync(node(i).name, args),
    async cleanup() {
      process.removeListener('exit', killAll);
      const pids = nodes.map(nodePid);
      killAll();
      await Promise.all(nodes.map((n, j) => waitGone(n, pids[j])));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
