/**
 * LBaaS scheduling: which LBaaS agent hosts each pool (pool_loadbalancer_agent_bindings),
 * the VIP port bound to that agent's host (the fence), the periodic failover sweep, and
 * the hints that tell LBaaS agents to reconcile a pool.
 *
 * Invariants:
 * - every pool (Neutron schedules a pool when it is created) is bound to one alive,
 *   admin-up LBaaS agent, fewest pools first, ties by host name (the L3 plan, pure, reused:
 *   api/scheduler/l3-plan.ts); nothing is ever scheduled to a dead or admin-down agent; a
 *   pool no agent can take stays unhosted with NO_LBAAS_AGENT as its status_description
 *   (while PENDING_*) until the sweep places it;
 * - with automatic failover, a pool on a dead or admin-down agent moves when an eligible
 *   agent can take it; otherwise its binding stays;
 * - binding decisions and the rebinding of the VIP port run in one transaction under the
 *   LBaaS scheduler lock, so two replicas never double-bind and a moved pool's VIP port is
 *   bound to the new host in the same commit;
 * - after a move, the VIP port's L2 hint goes out first (the old host's OVS agent cuts its
 *   copy off), then the new and the old host's LBaaS agents are hinted;
 * - the sweep binds an unhosted pool only once a previous pass saw it unhosted too.
 */
import type { Db, Queryable } from '../db/index.ts';
import {
  bindPool,
  bindVipPort,
  existingPools,
  formerVipHost,
  isUsableLbaasAgent,
  lbaasAgentInfos,
  lbaasHostsOfPool,
  lbaasSchedulerTransaction,
  markUnhosted,
  poolAgent,
  poolBindings,
  poolsWithStrayVip,
} from '../db/lbaas-bindings.ts';
import { type HintDeps, hintL2Port, hintLbaasAgents, hintPoolDeleted } from '../hints.ts';
import type { Clock } from '../liveness.ts';
import { planRouterBindings } from './l3-plan.ts';

export interface LbaasSettings {
  agentDownTime: number;
  /** [api] allow_automatic_failover; default true. */
  allowAutomaticFailover?: boolean;
}

export interface LbaasDeps extends HintDeps {
  db: Db;
  clock: Clock;
  settings: LbaasSettings;
}

/** What one pool's settling changed: its host (before → after) and the VIP port rebound. */
export interface PoolSettled {
  poolId: string;
  /** The host that lost the pool (its agent's, else its VIP port's); null: none. */
  from: string | null;
  /** The host serving it now (null: none). */
  to: string | null;
  /** Whether the binding changed (else only the VIP port was rebound). */
  moved: boolean;
  /** The VIP port, when its host changed (to `to`). */
  ports: string[];
}

/** Inside the lock: binds the moves the plan gives for `pools`; returns them by pool. */
async function bindMoves(
  tx: Queryable,
  deps: LbaasDeps,
  pools: readonly string[],
  schedulable?: ReadonlySet<string>,
): Promise<Map<string, PoolSettled>> {
  const agents = await lbaasAgentInfos(tx, deps.clock.now(), deps.settings.agentDownTime);
  const bindings = await poolBindings(tx);
  const failover = deps.settings.allowAutomaticFailover ?? true;
  const moves = planRouterBindings(pools, bindings, agents, failover, schedulable);
  const hostOf = new Map(agents.map((a) => [a.id, a.host]));
  const out = new Map<string, PoolSettled>();
  for (const m of moves) {
    await bindPool(tx, m.routerId, m.to);
    const to = hostOf.get(m.to) ?? null;
    const from =
      m.from === null || !hostOf.has(m.from)
        ? await formerVipHost(tx, m.routerId, to ?? '')
        : (hostOf.get(m.from) as string);
    out.set(m.routerId, { poolId: m.routerId, from, to, moved: true, ports: [] });
  }
  const placed = new Set([...bindings.keys(), ...out.keys()]);
  const stranded = agents.some((a) => a.eligible) ? [] : pools.filter((id) => !placed.has(id));
  await markUnhosted(tx, stranded, [...out.keys()]);
  return out;
}

/**
 * Inside the lock: binds `pools` as the plan says and rebinds the VIP port of every pool
 * that moved, plus those of `alsoRebind`. Returns the pools whose host or port changed.
 */
async function settle(
  tx: Queryable,
  deps: LbaasDeps,
  pools: readonly string[],
  opts: { schedulable?: ReadonlySet<string>; alsoRebind: readonly string[] },
): Promise<PoolSettled[]> {
  const out = await bindMoves(tx, deps, pools, opts.schedulable);
  for (const poolId of new Set([...out.keys(), ...opts.alsoRebind])) {
    const host = (await poolAgent(tx, poolId))?.host;
    if (host === undefined) continue;
    const ports = await bindVipPort(tx, poolId, host, deps.clock.now());
    const entry = out.get(poolId) ?? { poolId, from: null, to: host, moved: false, ports: [] };
    entry.ports = ports;
    if (out.has(poolId) || ports.length > 0) out.set(poolId, entry);
  }
  return [...out.values()];
}

/** The fence first (the VIP port's L2 hint), then the LBaaS agents, old and new. */
async function announce(deps: LbaasDeps, s: PoolSettled, lostHosts: readonly string[] = []) {
  for (const portId of s.ports) await hintL2Port(deps, portId);
  await hintLbaasAgents(deps, s.poolId, [...lostHosts, ...(s.from ? [s.from] : [])]);
}

/**
 * A pool, its VIP, a member or a monitor association changed (or the pool was created):
 * schedules the pool if it has no agent, binds its VIP port to the hosting agent's host,
 * and hints the hosting agent and `lostHosts`. Never rejects.
 */
export async function poolChanged(
  deps: LbaasDeps,
  poolId: string,
  lostHosts: readonly string[] = [],
): Promise<void> {
  let settled: PoolSettled = { poolId, from: null, to: null, moved: false, ports: [] };
  try {
    const [changed] = await lbaasSchedulerTransaction(deps.db, async (tx) =>
      settle(tx, deps, await existingPools(tx, [poolId]), { alsoRebind: [poolId] }),
    );
    if (changed) settled = changed;
    if (changed?.moved)
      deps.log.info({ poolId, from: changed.from, to: changed.to }, 'pool scheduled');
  } catch (e) {
    deps.log.warn({ err: (e as Error).message, poolId }, 'LBaaS scheduling failed');
  }
  await announce(deps, settled, lostHosts);
}

/**
 * An admin moves a pool to `agent` (POST /v2.0/agents/{id}/loadbalancer-pools): inside
 * the scheduler lock the pool must still exist and the agent still be an admin-up LBaaS
 * agent (else nothing changes and the answer says which was missing); the pool and its
 * VIP port are bound there and NO_LBAAS_AGENT taken back in one transaction; then the
 * hints go out as after a failover (fence first). Moving a pool to the agent that has it
 * changes nothing.
 */
export async function movePoolTo(
  deps: LbaasDeps,
  poolId: string,
  agent: { id: string; host: string },
): Promise<'moved' | 'unchanged' | 'no pool' | 'unusable agent'> {
  const settled = await lbaasSchedulerTransaction(deps.db, async (tx) => {
    if ((await existingPools(tx, [poolId])).length === 0) return 'no pool' as const;
    if (!(await isUsableLbaasAgent(tx, agent.id))) return 'unusable agent' as const;
    const current = await poolAgent(tx, poolId);
    if (current?.id === agent.id) return 'unchanged' as const;
    await bindPool(tx, poolId, agent.id);
    await markUnhosted(tx, [], [poolId]);
    const from = current?.host ?? (await formerVipHost(tx, poolId, agent.host));
    const ports = await bindVipPort(tx, poolId, agent.host, deps.clock.now());
    return { poolId, from, to: agent.host, moved: true, ports } satisfies PoolSettled;
  });
  if (typeof settled === 'string') return settled;
  deps.log.info({ poolId, from: settled.from, to: settled.to }, 'pool moved by an admin');
  await announce(deps, settled);
  return 'moved';
}

/** The hosts of the LBaaS agents hosting `poolId` (read before deleting it). */
export async function lbaasHostsOf(db: Queryable, poolId: string): Promise<string[]> {
  return lbaasHostsOfPool(db, poolId);
}

/** A pool was deleted: hints the LBaaS agents of `hosts` (lbaasHostsOf, read before). */
export async function poolDeleted(
  deps: HintDeps,
  poolId: string,
  hosts: readonly string[],
): Promise<void> {
  await hintPoolDeleted(deps, poolId, hosts);
}

/** What the sweep remembers between passes: pools it saw unhosted last time. */
export interface LbaasSweepMemory {
  unhosted: Set<string>;
}

export const newLbaasSweepMemory = (): LbaasSweepMemory => ({ unhosted: new Set() });

/**
 * One failover/scheduling pass over every pool: moves pools off dead or admin-down agents
 * (when failover is allowed), binds pools found unhosted by this pass and the previous
 * one, rebinds VIP ports that strayed from their pool's host, and announces every change
 * (fence first). Callable from tests with an injected clock.
 */
export async function runLbaasSweep(
  deps: LbaasDeps,
  memory: LbaasSweepMemory = newLbaasSweepMemory(),
): Promise<PoolSettled[]> {
  const changes = await lbaasSchedulerTransaction(deps.db, async (tx) => {
    const pools = await existingPools(tx);
    const bound = await poolBindings(tx);
    const unhosted = pools.filter((id) => !bound.has(id));
    const stray = await poolsWithStrayVip(tx);
    const result = await settle(tx, deps, pools, {
      schedulable: memory.unhosted,
      alsoRebind: stray,
    });
    const placed = new Set(result.map((r) => r.poolId));
    memory.unhosted = new Set(unhosted.filter((id) => !placed.has(id)));
    return result;
  });
  for (const c of changes) {
    const what = c.moved ? 'pool moved by the LBaaS sweep' : 'VIP port rebound by the LBaaS sweep';
    deps.log.info({ poolId: c.poolId, from: c.from, to: c.to, ports: c.ports }, what);
    await announce(deps, c);
  }
  return changes;
}
