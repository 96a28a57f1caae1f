/**
 * bench/scale's issue setup: the three-node RabbitMQ lab (test/helpers/rabbit-cluster.ts,
 * own node names, ports and data dirs beside the machine's broker) and two kumo-api
 * replicas on one fresh PostgreSQL database behind a real HAProxy
 * (test/helpers/api-replicas.ts, debug logging off as in production).
 *
 * Invariant: as every stack (bench/scale-stack.ts): `cleanup()` stops and removes all of
 * it, in reverse order of creation, whatever failed before.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApiReplicas } from '../test/helpers/api-replicas.ts';
import { ADMIN_TOKEN } from '../test/helpers/cluster.ts';
import { tempDir, testDatabase } from '../test/helpers/env.ts';
import { type RabbitNode, startRabbitCluster } from '../test/helpers/rabbit-cluster.ts';
import {
  agentDownTime,
  apiExtraConfig,
  postgresComponents,
  type Stack,
  type StackOptions,
} from './scale-stack.ts';
import { type Component, pidsMatching } from './scale-stats.ts';

const REPLICAS = 2;

/** A node's beam.smp: its pid file, else the process naming the node. */
function beamPids(node: RabbitNode): number[] {
  try {
    const pid = Number(readFileSync(join(node.dir, 'pid'), 'utf8').trim());
    if (pid > 0) return [pid];
  } catch {
    /* not written yet, or the node is down */
  }
  return pidsMatching('beam.smp', node.name.split('@')[0] as string);
}

export async function clusterStack(o: StackOptions): Promise<Stack> {
  const undo: (() => unknown)[] = [];
  let cleaned = false;
  const cleanup = async () => {
    for (const u of undo.splice(0).reverse())
      await Promise.resolve()
        .then(u)
        .catch(() => {});
    cleaned = true;
  };
  try {
    const dir = tempDir('kumo-scale-');
    undo.push(() => dir.cleanup());
    const cluster = await startRabbitCluster({ prefix: 'kumo-scale' });
    undo.push(() => cluster.cleanup());
    const db = testDatabase('postgres', dir.path);
    undo.push(() => db.cleanup());
    const replicas = await startApiReplicas({
      n: REPLICAS,
      dir: join(dir.path, 'api'),
      dbConnection: db.connection,
      transportUrl: cluster.transportUrl,
      agentDownTime: agentDownTime(o),
      extraConfig: apiExtraConfig(),
      debug: false,
    });
    undo.push(() => replicas.stop());
    const dbName = new URL(db.connection).pathname.slice(1);
    const components: Component[] = [
      ...replicas.replicas.map((r, i) => ({
        name: `kumo-api #${i + 1}`,
        pids: () => [r.pid()].filter((p): p is number => p !== undefined),
      })),
      ...cluster.nodes.map((n, i) => ({ name: `rabbitmq node ${i + 1}`, pids: () => beamPids(n) })),
      ...postgresComponents(dbName),
      {
        name: 'haproxy',
        pids: () => [replicas.haproxyPid()].filter((p): p is number => p !== undefined),
      },
    ];
    return {
      describe: `cluster: three RabbitMQ nodes (${cluster.nodes.map((n) => n.name).join(', ')}), ${REPLICAS} kumo-api replicas on PostgreSQL behind HAProxy`,
      amqpUrls: cluster.urls,
      apiUrl: replicas.url,
      adminToken: ADMIN_TOKEN,
      pgUrl: db.connection,
      components,
      logs: () =>
        `kumo-api logs: ${replicas.replicas.map((r) => r.log).join(', ')}; broker logs under ${cluster.nodes[0]?.dir ?? '?'}/..`,
      cleanup,
      lastly: () => {
        if (cleaned) return;
        for (const c of components)
          if (!c.name.startsWith('postgresql'))
            for (const p of c.pids()) {
              try {
                process.kill(p, 'SIGKILL');
              } catch {
                /* gone */
              }
            }
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
