/**
 * L3 scheduling decisions, pure: which L3 agent each router should be bound to (legacy
 * routers: exactly one agent each).
 *
 * Invariant: the same agents and bindings always give the same plan — fewest routers
 * first, ties by host name, never a dead or admin-down agent; with failover, a router on
 * an ineligible agent moves only when an eligible one can take it (otherwise its binding
 * stays, so a router never loses its last host for nothing).
 */

export interface L3AgentInfo {
  id: string;
  host: string;
  /** Alive and admin-up: may be scheduled to. */
  eligible: boolean;
  /** Routers bound to it. */
  load: number;
}

/** One binding change: `from` null for a router that had no agent. */
export interface RouterMove {
  routerId: string;
  from: string | null;
  to: string;
}

const byLoadThenHost = (x: L3AgentInfo, y: L3AgentInfo) =>
  x.load - y.load || (x.host < y.host ? -1 : x.host > y.host ? 1 : 0);

/** The eligible agent that should take the next router, if any. */
export function pickAgent(agents: readonly L3AgentInfo[]): L3AgentInfo | undefined {
  return agents.filter((a) => a.eligible).sort(byLoadThenHost)[0];
}

/**
 * The binding changes for `routers` (each needing a host), given the current bindings
 * (router → agent) and agents. `schedulable` limits which unbound routers may be bound
 * now (all when absent). Pure; `agents[].load` is updated as moves are planned so one
 * pass spreads routers over agents.
 */
export function planRouterBindings(
  routers: readonly string[],
  bindings: ReadonlyMap<string, string>,
  agents: L3AgentInfo[],
  failover: boolean,
  schedulable?: ReadonlySet<string>,
): RouterMove[] {
  const byId = new Map(agents.map((a) => [a.id, a]));
  const moves: RouterMove[] = [];
  for (const routerId of [...routers].sort()) {
    const bound = bindings.get(routerId);
    const current = bound === undefined ? undefined : byId.get(bound);
    if (current?.eligible) continue;
    if (bound === undefined && schedulable && !schedulable.has(routerId)) continue;
    if (bound !== undefined && !failover) continue;
    const target = pickAgent(agents);
    if (!target) continue;
    if (current) current.load--;
    target.load++;
    moves.push({ routerId, from: bound ?? null, to: target.id });
  }
  return moves;
}
