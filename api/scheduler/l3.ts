/**
 * L3 scheduling: which L3 agent hosts each router (router_l3_agent_bindings), the
 * router's ports bound to that agent's host (the fence), the periodic failover sweep, and
 * the hints that tell L3 agents to reconcile a router.
 *
 * Invariants:
 * - a router that needs a host (admin-up, with a gateway or an interface) is bound to one
 *   alive, admin-up L3 agent, fewest routers first, ties by host name; nothing is ever
 *   scheduled to a dead or admin-down agent;
 * - with automatic failover, a router on a dead or admin-down agent moves when an eligible
 *   agent can take it; otherwise its binding stays;
 * - binding decisions and the rebinding of the router's ports run in one transaction
 *   under the L3 scheduler lock, so two replicas never double-bind and a moved router's
 *   ports are bound to the new host in the same commit;
 * - after a move, the ports' L2 hints go out first (the old host's OVS agent cuts its copy
 *   off: dead VLAN), then the new and the old host's L3 agents are hinted;
 * - the sweep binds an unhosted router only once a previous pass saw it unhosted too, so
 *   an operator's remove-then-add is not raced by the sweep;
 * - an operator's remove leaves the router unhosted and its ports bound where they were
 *   (an unbound port would be claimed by the first L2 agent that asks for it); the next
 *   add or scheduling rebinds them.
 */

import type { Db, Queryable } from '../db/index.ts';
import {
  bindRouter,
  bindRouterPorts,
  bindUnhosted,
  formerPortHost,
  gatewayPhysnets,
  hostingAgent,
  l3AgentInfos,
  l3HostsOfRouter,
  l3SchedulerTransaction,
  routerBindings,
  routersNeedingHost,
  routersWithStrayPorts,
  unbindRouter,
} from '../db/l3-bindings.ts';
import { type HintDeps, hintL2Port, hintL3Agents, hintRouterDeleted } from '../hints.ts';
import type { Clock } from '../liveness.ts';
import { planRouterBindings } from './l3-plan.ts';

export interface L3Settings {
  agentDownTime: number;
  /** [api] allow_automatic_failover; default true. */
  allowAutomaticFailover?: boolean;
}

export interface L3Deps extends HintDeps {
  db: Db;
  clock: Clock;
  settings: L3Settings;
}

/** What one router's settling changed: its host (before → after) and the ports rebound. */
export interface RouterSettled {
  routerId: string;
  /**
   * The host that lost the router: its agent's, or for a router that had none (its agent
   * deleted) the host its ports were bound to (null: none, or it kept the router).
   */
  from: string | null;
  /** The host serving it now (null: none). */
  to: string | null;
  /** Whether the binding changed (else only ports were rebound). */
  moved: boolean;
  /** Ports whose host changed (to `to`). */
  ports: string[];
}

/**
 * Inside the lock: binds `routers` as the plan says and rebinds the ports of every router
 * that moved, plus those of `alsoRebind`. Returns the routers whose host or ports changed.
 */
async function settle(
  tx: Queryable,
  deps: L3Deps,
  routers: readonly string[],
  opts: { schedulable?: ReadonlySet<string>; alsoRebind: readonly string[] },
): Promise<RouterSettled[]> {
  const now = deps.clock.now();
  const agents = await l3AgentInfos(tx, now, deps.settings.agentDownTime);
  const bindings = await routerBindings(tx);
  const failover = deps.settings.allowAutomaticFailover ?? true;
  const moves = planRouterBindings(
    routers,
    bindings,
    agents,
    failover,
    opts.schedulable,
    await gatewayPhysnets(tx),
  );
  const hostOf = new Map(agents.map((a) => [a.id, a.host]));
  const out = new Map<string, RouterSettled>();
  for (const m of moves) {
    await bindRouter(tx, m.routerId, m.to);
    const to = hostOf.get(m.to) ?? null;
    const from =
      m.from === null || !hostOf.has(m.from)
        ? await formerPortHost(tx, m.routerId, to ?? '')
        : (hostOf.get(m.from) as string);
    out.set(m.routerId, { routerId: m.routerId, from, to, moved: true, ports: [] });
  }
  for (const routerId of new Set([...out.keys(), ...opts.alsoRebind])) {
    const host = (await hostingAgent(tx, routerId))?.host;
    if (host === undefined) continue;
    const ports = await bindRouterPorts(tx, routerId, host, now);
    const entry = out.get(routerId) ?? { routerId, from: null, to: host, moved: false, ports: [] };
    entry.ports = ports;
    if (out.has(routerId) || ports.length > 0) out.set(routerId, entry);
  }
  return [...out.values()];
}

/** The fence first (L2 hints for the rebound ports), then the L3 agents, old and new. */
async function announce(deps: L3Deps, s: RouterSettled, lostHosts: readonly string[] = []) {
  for (const portId of s.ports) await hintL2Port(deps, portId);
  await hintL3Agents(deps, s.routerId, [...lostHosts, ...(s.from ? [s.from] : [])]);
}

/**
 * A router changed (created, gateway or interfaces or routes or admin state changed, a
 * floating IP of it (dis)associated): schedules it if it needs a host and has none, binds
 * every port of it to the hosting agent's host (hinting the L2 agents of ports that moved),
 * and hints the hosting L3 agent and `lostHosts`. Never rejects.
 */
export async function routerChanged(
  deps: L3Deps,
  routerId: string,
  lostHosts: readonly string[] = [],
): Promise<void> {
  let settled: RouterSettled = { routerId, from: null, to: null, moved: false, ports: [] };
  try {
    const [changed] = await l3SchedulerTransaction(deps.db, async (tx) =>
      settle(tx, deps, await routersNeedingHost(tx, [routerId]), { alsoRebind: [routerId] }),
    );
    if (changed) settled = changed;
    if (changed?.moved)
      deps.log.info({ routerId, from: changed.from, to: changed.to }, 'router scheduled');
  } catch (e) {
    deps.log.warn({ err: (e as Error).message, routerId }, 'L3 scheduling failed');
  }
  await announce(deps, settled, lostHosts);
}

/** What a manual add did: bound, already there, or refused (hosted by another agent). */
export type HostResult = { bound: true } | { bound: false; hostedBy: string | null };

/**
 * Binds an unhosted router to `agent` (an operator's add), rebinding its ports in the
 * same transaction; announces it (fence first). Refused when another agent hosts it.
 */
export async function hostRouterOn(
  deps: L3Deps,
  routerId: string,
  agent: { id: string; host: string },
): Promise<HostResult> {
  const result = await l3SchedulerTransaction(deps.db, async (tx) => {
    const current = await hostingAgent(tx, routerId);
    if (current)
      return { bound: false as const, hostedBy: current.id === agent.id ? null : current.id };
    if (!(await bindUnhosted(tx, routerId, agent.id)))
      return { bound: false as const, hostedBy: (await hostingAgent(tx, routerId))?.id ?? null };
    return {
      bound: true as const,
      ports: await bindRouterPorts(tx, routerId, agent.host, deps.clock.now()),
    };
  });
  if (!result.bound) return result;
  deps.log.info({ routerId, agentId: agent.id, host: agent.host }, 'router added to L3 agent');
  await announce(deps, { routerId, from: null, to: agent.host, moved: true, ports: result.ports });
  return { bound: true };
}

/** Unbinds a router from `agent` (an operator's remove) and hints it; false if not hosted there. */
export async function unhostRouterFrom(
  deps: L3Deps,
  routerId: string,
  agent: { id: string; host: string },
): Promise<boolean> {
  const removed = await l3SchedulerTransaction(deps.db, (tx) =>
    unbindRouter(tx, routerId, agent.id),
  );
  if (!removed) return false;
  deps.log.info({ routerId, agentId: agent.id, host: agent.host }, 'router removed from L3 agent');
  await hintL3Agents(deps, routerId, [agent.host]);
  return true;
}

/** The hosts of the L3 agents hosting `routerId` (read before deleting it). */
export async function l3HostsOf(db: Queryable, routerId: string): Promise<string[]> {
  return l3HostsOfRouter(db, routerId);
}

/** A router was deleted: hints the L3 agents of `hosts` (l3HostsOf, read before). Never rejects. */
export async function routerDeleted(
  deps: HintDeps,
  routerId: string,
  hosts: readonly string[],
): Promise<void> {
  await hintRouterDeleted(deps, routerId, hosts);
}

/** What the sweep remembers between passes: routers it saw unhosted last time. */
export interface L3SweepMemory {
  unhosted: Set<string>;
}

export const newL3SweepMemory = (): L3SweepMemory => ({ unhosted: new Set() });

/**
 * One failover/scheduling pass over every router: moves routers off dead or admin-down
 * agents (when failover is allowed), binds routers found unhosted by this pass and the
 * previous one, rebinds ports that strayed from their router's host, and announces every
 * change (fence first). Callable from tests with an injected clock.
 */
export async function runL3Sweep(
  deps: L3Deps,
  memory: L3SweepMemory = newL3SweepMemory(),
): Promise<RouterSettled[]> {
  const changes = await l3SchedulerTransaction(deps.db, async (tx) => {
    const routers = await routersNeedingHost(tx);
    const bound = await routerBindings(tx);
    const unhosted = routers.filter((id) => !bound.has(id));
    const stray = await routersWithStrayPorts(tx);
    const result = await settle(tx, deps, routers, {
      schedulable: memory.unhosted,
      alsoRebind: stray,
    });
    const placed = new Set(result.map((r) => r.routerId));
    memory.unhosted = new Set(unhosted.filter((id) => !placed.has(id)));
    return result;
  });
  for (const c of changes) {
    const what = c.moved ? 'router moved by the L3 sweep' : 'router ports rebound by the L3 sweep';
    deps.log.info({ routerId: c.routerId, from: c.from, to: c.to, ports: c.ports }, what);
    await announce(deps, c);
  }
  return changes;
}
