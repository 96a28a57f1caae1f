/**
 * A broker node dies while agents report and servers boot (issue 18): kumo-api, and an OVS,
 * a DHCP and a compute agent on a lab host booting real guests, against the three-node
 * RabbitMQ lab (helpers/rabbit-cluster.ts).
 *
 * The layout makes node 0 the node that matters most, and checks it before the kill: the
 * API is connected to it (transport_url lists 0, 1, 2), the agents to node 1 (1, 2, 0), and
 * node 0 leads q-plugin and the agents' host queues (the test declares those quorum queues
 * over node 0 first; RabbitMQ places a new quorum queue's leader on the declaring client's
 * node). The heartbeat queue (classic, non-durable) lives on node 0 too, declared by the API.
 *
 * What the kill proves, and why it is honest:
 * - the compute agent is frozen (SIGSTOP) before two servers are created, so their hints,
 *   confirmed by the broker when the API answers 202, are still unhandled when node 0 (the
 *   leader of that host queue) is killed; the agent is thawed only after, and its log shows
 *   it received them after the kill; a third server is created while the API fails over;
 * - the agents run with resync_interval = 1 h and never lose their own connection (their
 *   logs show one connect and only the start resync), so nothing but the hints and RPC
 *   replies that crossed the kill can have built these servers: every server going ACTIVE
 *   with its ports ACTIVE shows that none was lost; no agent log has a failed or timed-out
 *   call, and no message was dead-lettered;
 * - the agent list is read every 200 ms throughout, and no agent is ever shown dead;
 * - node 0 comes back, the cluster heals, a fourth server boots, and every guest got its
 *   address by DHCP.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { type Agent, type AgentKind, agentTypeByKind } from '../../contracts/agents.ts';
import { hostQueue, PLUGIN_TOPIC, REPORTS_TOPIC } from '../../contracts/messages.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { apiQueue, hostQueueSpec, type QueueSpec } from '../../core/amqp.ts';
import { queueArguments } from '../../core/amqp-consumer.ts';
import { Cluster, ovsOf, type Proc } from '../helpers/cluster.ts';
import {
  consoleOutput,
  type GuestImages,
  type ServerView,
  uploadGuest,
  waitStatus,
} from '../helpers/compute.ts';
import { waitFor } from '../helpers/env.ts';
import { buildTestGuest, GUEST_UP_MARKER } from '../helpers/guest.ts';
import { createLab, type Lab, type LabHost } from '../helpers/lab.ts';
import { type RabbitCluster, startRabbitCluster } from '../helpers/rabbit-cluster.ts';

const KINDS: readonly AgentKind[] = ['ovs', 'dhcp', 'compute'];
/** The node killed: the API's, and the leader of q-plugin and of the host queues. */
const KILLED = 0;
const API_ORDER = [0, 1, 2];
const AGENT_ORDER = [1, 2, 0];

const running = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

type LogLine = Record<string, unknown> & { msg?: string; time?: number };

/** The JSON lines of a process's log (pino), skipping anything else it printed. */
function logLines(proc: Proc): LogLine[] {
  return readFileSync(proc.logPath, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
}

/** Lines that would mean a call, a cast or a handler went wrong. */
const TROUBLE = [
  /timed out/i,
  /^reconcile failed$/,
  /^state report failed$/,
  /^handler failed$/,
  /^message dead-lettered$/,
  /hint not sent$/,
];
const troubleIn = (proc: Proc) =>
  logLines(proc)
    .filter((l) => TROUBLE.some((re) => re.test(String(l.msg)) || re.test(String(l.err ?? ''))))
    .map((l) => JSON.stringify(l));

/** Reads the agent list every 200 ms and keeps every reading that is not `count` alive agents. */
function watchLiveness(c: Cluster, count: number) {
  const problems: string[] = [];
  let readings = 0;
  /** The oldest heartbeat read, in ms (the API stamps heartbeats to the second). */
  let oldest = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const at = new Date().toISOString();
      try {
        const res = await c.http('GET', '/v2.0/agents');
        const agents = (res.body as { agents: Agent[] }).agents;
        readings++;
        for (const a of agents)
          oldest = Math.max(oldest, Date.now() - Date.parse(`${a.heartbeat_timestamp}Z`));
        if (agents.length !== count) problems.push(`${at}: ${agents.length} agents listed`);
        for (const a of agents.filter((x) => !x.alive))
          problems.push(`${at}: ${a.binary}@${a.host} dead (heartbeat ${a.heartbeat_timestamp})`);
      } catch (e) {
        problems.push(`${at}: agent list failed: ${(e as Error).message}`);
      }
      await sleep(200);
    }
  })();
  return {
    problems,
    readings: () => readings,
    oldest: () => oldest,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Declares quorum queues over one node's connection, so that node leads them. */
async function declareOver(url: string, specs: readonly QueueSpec[]) {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    for (const s of specs)
      await ch.assertQueue(s.name, { durable: true, arguments: queueArguments(s) });
  } finally {
    await conn.close();
  }
}

describe('a broker node dies while agents report and servers boot', { timeout: 600_000 }, () => {
  let rabbit: RabbitCluster;
  let lab: Lab;
  let c: Cluster;
  let host: LabHost;
  let images: GuestImages;
  let net: Network;
  let liveness: ReturnType<typeof watchLiveness>;
  const servers: string[] = [];

  const hostName = () => `bk-${lab.prefix}-${host.name}`;
  const agent = (kind: AgentKind) => c.hostAgents.get(`${kind}@${hostName()}`) as Proc;
  const brokerOf = (i: number) => {
    const u = new URL(rabbit.urls[i] as string);
    return `${u.hostname}:${u.port}`;
  };
  /** A transport_url naming the nodes in `order` (oslo's several-host form). */
  const transportUrl = (order: readonly number[]) => {
    const us = order.map((i) => new URL(rabbit.urls[i] as string));
    const hosts = us.map((u) => `${u.username}:${u.password}@${u.hostname}:${u.port}`);
    return `rabbit://${hosts.join(',')}${us[0]?.pathname}`;
  };
  const hostQueues = () =>
    KINDS.map((k) => hostQueueSpec(hostQueue(agentTypeByKind(k).topic, hostName())));
  /** queue name → leader node name, from a live node. */
  const leaders = (via: number) => {
    const out = rabbit.rabbitmqctl(via, 'list_queues', '-s', '-p', rabbit.vhost, 'name', 'leader');
    return new Map(
      out
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length === 2) as [string, string][],
    );
  };
  const queueDepths = (via: number) => {
    const out = rabbit.rabbitmqctl(
      via,
      'list_queues',
      '-s',
      '-p',
      rabbit.vhost,
      'name',
      'messages',
    );
    return out
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length === 2 && /^\d+$/.test(f[1] as string))
      .map(([name, n]) => ({ name: name as string, messages: Number(n) }));
  };
  const boot = async (name: string) => {
    const res = await c.http('POST', '/servers', {
      server: { name, flavorRef: '1', imageRef: images.machine, networks: [{ uuid: net.id }] },
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const id = (res.body as { server: { id: string } }).server.id;
    servers.push(id);
    return id;
  };
  const activeWithPorts = async (id: string): Promise<ServerView> => {
    const s = await waitStatus(c, id, 'ACTIVE', 180_000);
    const res = await c.http('GET', `/v2.0/ports?device_id=${id}`);
    const ports = (res.body as { ports: Port[] }).ports;
    assert.ok(ports.length > 0, `${s.name} has its port`);
    for (const p of ports) assert.equal(p.status, 'ACTIVE', `${s.name}'s port ${p.id} is ACTIVE`);
    return s;
  };

  before(async () => {
    const guest = await buildTestGuest();
    rabbit = await startRabbitCluster();
    lab = await createLab({ hosts: 1 });
    host = lab.hosts[0] as LabHost;
    await declareOver(rabbit.urls[KILLED] as string, [apiQueue(PLUGIN_TOPIC), ...hostQueues()]);
    const vhost = {
      name: rabbit.vhost,
      url: rabbit.urls[0] as string,
      transportUrl: transportUrl(API_ORDER),
      cleanup: () => {},
    };
    c = await Cluster.create('sqlite', undefined, [], undefined, vhost);
    await c.startApi();
    // Repeated keys of a host's extra lines win: the agents' own broker order, and
    // resync_interval = 1 h, so that no periodic resync may make up for a lost hint.
    const extra = [
      '[DEFAULT]',
      `transport_url = ${transportUrl(AGENT_ORDER)}`,
      '[agent]',
      'resync_interval = 3600',
    ];
    for (const kind of KINDS) c.startAgentOn(kind, hostName(), ovsOf(host), extra);
    await waitFor(
      'the three agents alive',
      async () => {
        const res = await c.http('GET', '/v2.0/agents');
        const agents = (res.body as { agents: Agent[] }).agents;
        return agents.length === 3 && agents.every((a) => a.alive);
      },
      60_000,
      200,
    );
    liveness = watchLiveness(c, 3);
    images = await uploadGuest(c, guest);
    const made = await c.http('POST', '/v2.0/networks', { network: { name: 'bk-net' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    net = (made.body as { network: Network }).network;
    const subnet = await c.http('POST', '/v2.0/subnets', {
      subnet: { network_id: net.id, cidr: '10.31.0.0/24', ip_version: 4 },
    });
    assert.equal(subnet.status, 201, JSON.stringify(subnet.body));
  });
  after(async () => {
    await liveness?.stop();
    await c?.cleanup();
    await lab?.destroy();
    await rabbit?.cleanup();
  });

  test('node 0 holds the API connection and leads q-plugin and the host queues; the agents sit on node 1', async () => {
    const apiConnects = logLines(c.api as Proc).filter((l) => l.msg === 'amqp connected');
    assert.deepEqual(
      apiConnects.map((l) => l.broker),
      [brokerOf(KILLED)],
    );
    for (const kind of KINDS) {
      const connects = logLines(agent(kind)).filter((l) => l.msg === 'amqp connected');
      assert.deepEqual(
        connects.map((l) => l.broker),
        [brokerOf(1)],
        `${kind} agent's connections`,
      );
    }
    const led = leaders(1);
    for (const q of [PLUGIN_TOPIC, ...hostQueues().map((s) => s.name)])
      assert.equal(led.get(q), rabbit.nodes[KILLED]?.name, `${q} is led by node ${KILLED}`);
  });

  /**
   * Freezes the compute agent, boots two servers (their hints confirmed, unhandled), kills
   * node 0 and thaws the agent once the node's process is gone; kill() itself resolves only
   * once the others see the node down (rabbitmqctl, seconds). Returns when each happened.
   */
  const killDuringBoots = async () => {
    const compute = agent('compute');
    compute.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    try {
      await boot('bk-vm-1');
      await boot('bk-vm-2');
      const pid = Number(readFileSync(join(rabbit.nodes[KILLED]?.dir ?? '', 'pid'), 'utf8'));
      const killed = rabbit.kill(KILLED);
      await waitFor('node 0 to die', () => !running(pid), 10_000, 20);
      const killedAt = Date.now();
      compute.child.kill('SIGCONT');
      await killed;
      return { frozenAt, killedAt };
    } finally {
      compute.child.kill('SIGCONT');
    }
  };
  /** Each boot casts one instance hint (revision 1), confirmed before its 202. */
  const assertHintsArrived = (killedAt: number) => {
    const hints = logLines(agent('compute')).filter(
      (l) => l.msg === 'hint' && l.resource === 'instance',
    );
    assert.deepEqual(new Set(hints.map((l) => l.id)), new Set(servers), 'every hint arrived');
    for (const [i, id] of servers.slice(0, 2).entries()) {
      const first = hints.find((l) => l.id === id);
      assert.ok((first?.time ?? 0) >= killedAt, `server ${i + 1}'s hint handled after the kill`);
    }
    return hints.length;
  };
  /** No agent lost its connection or resynced after start, and none saw a failed call. */
  const assertAgentsUndisturbed = () => {
    for (const kind of KINDS) {
      const lines = logLines(agent(kind));
      const connects = lines.filter((l) => l.msg === 'amqp connected');
      assert.equal(connects.length, 1, `${kind}: one connect`);
      const resyncs = lines.filter((l) => l.msg === 'full resync').map((l) => l.reason);
      assert.deepEqual(resyncs, ['start'], `${kind}: only the start resync ran`);
      assert.deepEqual(troubleIn(agent(kind)), [], `${kind} agent's log`);
    }
  };

  test('node 0 killed during three boots: no agent dead, no hint or reply lost', async (t) => {
    const { frozenAt, killedAt } = await killDuringBoots();
    await boot('bk-vm-3');
    for (const id of servers) await activeWithPorts(id);
    const api = logLines(c.api as Proc);
    const lost = api.find((l) => l.msg === 'amqp connection closed; reconnecting');
    const back = api.find((l) => l.msg === 'amqp connected' && l.reconnected === true);
    assert.ok(lost && back, 'kumo-api lost node 0 and connected again');
    assert.notEqual(back.broker, brokerOf(KILLED));
    const received = assertHintsArrived(killedAt);
    assertAgentsUndisturbed();
    assert.deepEqual(troubleIn(c.api as Proc), [], "kumo-api's log");
    assert.ok(liveness.readings() > 0, 'the agent list was read');
    assert.deepEqual(liveness.problems, [], 'no agent was ever shown dead');
    const failover = Number(back.time) - Number(lost.time);
    t.diagnostic(`compute agent frozen ${killedAt - frozenAt} ms; 3 instance hints sent`);
    t.diagnostic(`${received} received; kumo-api on ${back.broker} ${failover} ms after the loss`);
    t.diagnostic(
      `${liveness.readings()} agent lists read; oldest heartbeat ${liveness.oldest()} ms`,
    );
  });

  test('node 0 comes back, the cluster heals and serves: a fourth server boots; every guest got its DHCP address', async (t) => {
    await rabbit.start(KILLED);
    await rabbit.healed();
    await activeWithPorts(await boot('bk-vm-4'));
    for (const id of servers) {
      const s = await waitStatus(c, id, 'ACTIVE');
      const ip = s.addresses['bk-net']?.[0]?.addr;
      await waitFor(
        `${s.name} got ${ip} by DHCP`,
        async () => (await consoleOutput(c, id)).includes(`${GUEST_UP_MARKER} ${ip}`),
        120_000,
        1000,
      );
    }
    const depths = queueDepths(KILLED);
    const left = depths.filter((q) => q.messages > 0 && q.name !== REPORTS_TOPIC);
    assert.deepEqual(left, [], 'no message is left waiting or dead-lettered');
    await liveness.stop();
    assert.deepEqual(liveness.problems, [], 'no agent was ever shown dead');
    t.diagnostic(
      `${liveness.readings()} agent-list readings; oldest heartbeat ${liveness.oldest()} ms`,
    );
    for (const kind of KINDS) assert.deepEqual(troubleIn(agent(kind)), [], `${kind} agent's log`);
  });
});
