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
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RABBIT_PASSWORD, RABBIT_USER, waitFor } from './env.ts';
import {
  awaitBoot,
  ctl,
  ctlSync,
  freePort,
  LAB_PREFIX,
  launch,
  nodePid,
  quorumQueuesHealed,
  type RabbitNode,
  type RabbitUser,
  rabbitUser,
  reapLeftovers,
  runningNodes,
  writeNodeFiles,
} from './rabbit-node.ts';

export type { RabbitNode } from './rabbit-node.ts';

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

/** Waits until `pid` (a node's beam) is gone. */
const waitGone = (n: RabbitNode) =>
  waitFor(`${n.name} to exit`, () => nodePid(n) === undefined, 60_000, 50);

/** SIGKILLs node `n`, then waits until a surviving node no longer lists it as running. */
async function killNode(n: RabbitNode, others: RabbitNode[]) {
  const pid = nodePid(n);
  if (!pid) throw new Error(`${n.name} has no pid file: is it running?`);
  process.kill(pid, 'SIGKILL');
  await waitGone(n);
  const survivor = others.find((o) => nodePid(o) !== undefined) ?? (others[0] as RabbitNode);
  await waitFor(
    `${survivor.name} to see ${n.name} down`,
    async () => !(await runningNodes(survivor)).includes(n.name),
    60_000,
    200,
  );
}

/** Boots a node that ran before; it rejoins the cluster from its own data dir. */
async function restartNode(n: RabbitNode, others: RabbitNode[], u: RabbitUser) {
  const pid = nodePid(n);
  if (pid) throw new Error(`${n.name} is still running (pid ${pid})`);
  launch(n, u);
  await awaitBoot(n);
  const peer = (others[0] as RabbitNode).name;
  await waitFor(
    `${n.name} to rejoin the cluster`,
    async () => (await runningNodes(n)).includes(peer),
    60_000,
    500,
  );
}

async function waitHealed(nodes: RabbitNode[], vhost: string, timeoutMs: number) {
  const names = nodes.map((n) => n.name);
  const first = nodes[0] as RabbitNode;
  await waitFor(
    'the lab cluster to heal (three nodes running, every quorum member online)',
    async () => {
      const running = await runningNodes(first);
      if (!names.every((n) => running.includes(n))) return false;
      return quorumQueuesHealed(first, vhost, names);
    },
    timeoutMs,
    500,
  );
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
      if (pid) process.kill(pid, 'SIGKILL');
    }
  };
  process.once('exit', killAll);

  return {
    nodes,
    vhost,
    transportUrl: `rabbit://${hosts.join(',')}/${vhost}`,
    urls: hosts.map((h) => `amqp://${h}/${vhost}`),
    kill: (i) => killNode(node(i), others(i)),
    async stop(i) {
      const n = node(i);
      await ctl(n.name, ['-q', 'stop']);
      await waitGone(n);
    },
    start: (i) => restartNode(node(i), others(i), u),
    healed: (timeoutMs = 60_000) => waitHealed(nodes, vhost, timeoutMs),
    rabbitmqctl: (i, ...args) => ctlSync(node(i).name, args),
    async cleanup() {
      process.removeListener('exit', killAll);
      killAll();
      await Promise.all(nodes.map(waitGone));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
