/**
 * L3 scheduling decisions, pure: which L3 agent each router should be bound to (legacy
 * routers: exactly one agent each).
 *
 * Invariant: the same agents and bindings always give the same plan — fewest routers
 * first, ties by host name, never a dead or admin-down agent, and never an agent whose
 * host cannot carry the router's external network (a flat or VLAN physical network its
 * OVS agent has no bridge mapping for: the gateway would be cut off from the outside);
 * with failover, a router on an ineligible agent moves only when an eligible one can take
 * it (otherwise its binding stays, so a router never loses its last host for nothing).
 * The LBaaS scheduler plans pools with the same functions (ids only, no physical network).
 */

export interface L3AgentInfo {
  id: string;
  host: string;
  /** Alive and admin-up: may be scheduled to. */
  eligible: boolean;
  /** Routers bound to it. */
  load: number;
  /** The physical networks its host's OVS agent maps; null: unknown (no OVS agent row). */
  physnets?: ReadonlySet<string> | null;
}

/** One binding change: `from` null for a router that had no agent. */
export interface RouterMove {
  routerId: string;
  from: string | null;
  to: string;
}

const byLoadThenHost = (x: L3AgentInfo, y: L3AgentInfo) =>
  x.load - y.load || (x.host < y.host ? -1 : x.host > y.host ? 1 : 0);

/** Whether `agent`'s host can carry physical network `physnet` (none needed: any can). */
const carries = (agent: L3AgentInfo, physnet: string | undefined) =>
  physnet === undefined || agent.physnets == null || agent.physnets.has(physnet);

/** The eligible agent that should take the next router (needing `physnet`), if any. */
export function pickAgent(
  agents: readonly L3AgentInfo[],
  physnet?: string,
): L3AgentInfo | undefined {
  return agents.filter((a) => a.eligible && carries(a, physnet)).sort(byLoadThenHost)[0];
}

/**
 * The binding changes for `routers` (each needing a host), given the current bindings
 * (router → agent) and agents. `schedulable` limits which unbound routers may be bound
 * now (all when absent); `physnets` gives the physical network a router's gateway needs
 * (routers absent from it need none). Pure; `agents[].load` is updated as moves are
 * planned so one pass spreads routers over agents.
 */
export function planRouterBindings(
  routers: readonly string[],
  bindings: ReadonlyMap<string, string>,
  agents: L3AgentInfo[],
  failover: boolean,
  schedulable?: ReadonlySet<string>,
  physnets: ReadonlyMap<string, string> = new Map(),
): RouterMove[] {
  const byId = new Map(agents.map((a) => [a.id, a]));
  const moves: RouterMove[] = [];
  for (const routerId of [...routers].sort()) {
    const bound = bindings.get(routerId);
    const current = bound === undefined ? undefined : byId.get(bound);
    if (current?.eligible) continue;
    if (bound === undefined && schedulable && !schedulable.has(routerId)) continue;
    if (bound !== undefined && !failover) continue;
    const target = pickAgent(agents, physnets.get(routerId));
    if (!target) continue;
    if (current) current.load--;
    target.load++;
    moves.push({ routerId, from: bound ?? null, to: target.id });
  }
  return moves;
}
