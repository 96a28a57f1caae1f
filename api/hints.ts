/**
 * Hints: the API's one way to tell agents that something changed (ARCHITECTURE.md §3):
 * `hint {resource, id, revision?}` cast to an agent's host queue (`<topic>.<host>`) or
 * fanned out to every agent of a topic.
 *
 * Invariants: every hint kumo-api sends goes through `sendHint`; it names a ResourceKind
 * (contracts/status.ts), waits at most HINT_TIMEOUT_MS for the broker, and never rejects:
 * a hint that cannot be sent is logged, never fails the API request or RPC that caused
 * it, and the agents' periodic resync catches up with it.
 */
import { agentTypeByKind } from '../contracts/agents.ts';
import { fanoutExchange, hostQueue } from '../contracts/messages.ts';
import type { ResourceKind } from '../contracts/status.ts';
import type { Broker } from '../core/amqp.ts';
import type { Logger } from '../core/log.ts';
import { dhcpHostsOf } from './db/dhcp-bindings.ts';
import type { Queryable } from './db/index.ts';
import { l3HostsOfRouter, routersOnNetwork } from './db/l3-bindings.ts';
import { lbaasHostsOfPool } from './db/lbaas-bindings.ts';

/** Bounded: an API request that hints must not wait out a broker outage. */
export const HINT_TIMEOUT_MS = 2000;
export const OVS_FANOUT = fanoutExchange(agentTypeByKind('ovs').topic);
const DHCP_TOPIC = agentTypeByKind('dhcp').topic;
const COMPUTE_TOPIC = agentTypeByKind('compute').topic;
const L3_TOPIC = agentTypeByKind('l3').topic;
const OVS_TOPIC = agentTypeByKind('ovs').topic;
const LBAAS_TOPIC = agentTypeByKind('lbaas').topic;

export interface HintDeps {
  broker: Pick<Broker, 'cast' | 'fanout'>;
  log: Logger;
}

/** What the DHCP hints also need: the bindings, to find the hosts serving a network. */
export interface DhcpHintDeps extends HintDeps {
  db: Queryable;
}

/** What the L3 hints also need: the bindings, to find the host serving a router. */
export type L3HintDeps = DhcpHintDeps;

export interface Hint {
  resource: ResourceKind;
  id: string;
  revision?: number;
  deleted?: boolean;
}

/** One agent's host queue, or a topic's fanout exchange. */
export type HintTarget = { queue: string } | { fanout: string };

/** Sends one hint; never rejects (see the module invariants). */
export async function sendHint(deps: HintDeps, to: HintTarget, hint: Hint): Promise<void> {
  const opts = { timeoutMs: HINT_TIMEOUT_MS };
  const sent =
    'queue' in to
      ? deps.broker.cast(to.queue, 'hint', hint, opts)
      : deps.broker.fanout(to.fanout, 'hint', hint, opts);
  await sent.catch((e: Error) =>
    deps.log.warn(
      { err: e.message, [`${hint.resource}Id`]: hint.id, to: 'queue' in to ? to.queue : to.fanout },
      `${hint.resource} hint not sent`,
    ),
  );
}

/** The instance's task changed: its host's compute agent reconciles it. */
export const hintInstance = (deps: HintDeps, host: string, id: string, taskId: number) =>
  sendHint(
    deps,
    { queue: hostQueue(COMPUTE_TOPIC, host) },
    { resource: 'instance', id, revision: taskId },
  );

/** A port changed: every L2 agent hears it, the one that has it re-reads its details. */
export const hintL2Port = (deps: HintDeps, id: string) =>
  sendHint(deps, { fanout: OVS_FANOUT }, { resource: 'port', id });

/** A security group's rules or members changed: the OVS agent of `host` re-reads it. */
export const hintSecurityGroup = (deps: HintDeps, host: string, groupId: string) =>
  sendHint(
    deps,
    { queue: hostQueue(OVS_TOPIC, host) },
    { resource: 'security_group', id: groupId },
  );

/** The set of tunnel endpoints changed: every L2 agent re-reads it. */
export const hintTunnels = (deps: HintDeps) =>
  sendHint(deps, { fanout: OVS_FANOUT }, { resource: 'tunnels', id: 'all' });

/**
 * `hint` to the `topic` agent of every host `bound` lists (read from the bindings), plus
 * `extraHosts` (agents that just lost the resource). Never rejects: a failed read leaves
 * only `extraHosts`, and the agents' resync catches up.
 */
async function hintBoundAgents(
  deps: HintDeps,
  topic: string,
  hint: Hint,
  bound: () => Promise<string[]>,
  extraHosts: Iterable<string>,
): Promise<void> {
  let hosts: string[] = [];
  try {
    hosts = await bound();
  } catch (e) {
    const err = (e as Error).message;
    deps.log.warn({ err, [`${hint.resource}Id`]: hint.id }, `agents of ${hint.resource} not read`);
  }
  const all = new Set([...hosts, ...extraHosts].filter((h) => h !== ''));
  await Promise.all(
    [...all].map((host) => sendHint(deps, { queue: hostQueue(topic, host) }, hint)),
  );
}

/**
 * `hint {resource: network}` to the DHCP agent of every host that serves the network,
 * plus `extraHosts` (agents that just lost it). Never rejects.
 */
export const hintDhcpAgents = (
  deps: DhcpHintDeps,
  networkId: string,
  extraHosts: Iterable<string> = [],
) =>
  hintBoundAgents(
    deps,
    DHCP_TOPIC,
    { resource: 'network', id: networkId },
    () => dhcpHostsOf(deps.db, networkId),
    extraHosts,
  );

/** A port changed: its L2 agent re-reads it, its network's DHCP agents reconcile. */
export async function hintPort(deps: DhcpHintDeps, port: { id: string; network_id: string }) {
  await hintL2Port(deps, port.id);
  await hintDhcpAgents(deps, port.network_id);
}

/**
 * `hint {resource: router}` to the L3 agent of the host that hosts the router, plus
 * `extraHosts` (agents that just lost it). Never rejects.
 */
export const hintL3Agents = (
  deps: L3HintDeps,
  routerId: string,
  extraHosts: Iterable<string> = [],
) =>
  hintBoundAgents(
    deps,
    L3_TOPIC,
    { resource: 'router', id: routerId },
    () => l3HostsOfRouter(deps.db, routerId),
    extraHosts,
  );

/**
 * A network or one of its subnets changed (MTU, gateway IP, CIDR-bound attributes): the
 * L3 agents of the routers with a port on it reconcile them. Never rejects.
 */
export async function hintRoutersOnNetwork(deps: L3HintDeps, networkId: string): Promise<void> {
  let routers: string[] = [];
  try {
    routers = await routersOnNetwork(deps.db, networkId);
  } catch (e) {
    deps.log.warn({ err: (e as Error).message, networkId }, 'routers of network not read');
  }
  await Promise.all(routers.map((id) => hintL3Agents(deps, id)));
}

/** A router was deleted: `hint {resource: router, deleted}` to the L3 agents of `hosts`. */
export const hintRouterDeleted = (deps: HintDeps, routerId: string, hosts: Iterable<string>) =>
  hintBoundAgents(
    deps,
    L3_TOPIC,
    { resource: 'router', id: routerId, deleted: true },
    async () => [],
    hosts,
  );

/**
 * `hint {resource: pool}` to the LBaaS agent of the host that hosts the pool, plus
 * `extraHosts` (agents that just lost it). Never rejects.
 */
export const hintLbaasAgents = (
  deps: L3HintDeps,
  poolId: string,
  extraHosts: Iterable<string> = [],
) =>
  hintBoundAgents(
    deps,
    LBAAS_TOPIC,
    { resource: 'pool', id: poolId },
    () => lbaasHostsOfPool(deps.db, poolId),
    extraHosts,
  );

/** A pool was deleted: `hint {resource: pool, deleted}` to the LBaaS agents of `hosts`. */
export const hintPoolDeleted = (deps: HintDeps, poolId: string, hosts: Iterable<string>) =>
  hintBoundAgents(
    deps,
    LBAAS_TOPIC,
    { resource: 'pool', id: poolId, deleted: true },
    async () => [],
    hosts,
  );

const VOLUME_TOPIC = agentTypeByKind('volume').topic;

/** A volume changed (`revision`: the one to serve): its storage host's agent reconciles it. */
export const hintVolume = (deps: HintDeps, host: string, id: string, revision?: number) =>
  sendHint(
    deps,
    { queue: hostQueue(VOLUME_TOPIC, host) },
    { resource: 'volume', id, ...(revision !== undefined ? { revision } : {}) },
  );

/** A snapshot changed: the agent of its volume's storage host reconciles it. */
export const hintSnapshot = (deps: HintDeps, host: string, id: string, revision?: number) =>
  sendHint(
    deps,
    { queue: hostQueue(VOLUME_TOPIC, host) },
    { resource: 'snapshot', id, ...(revision !== undefined ? { revision } : {}) },
  );
