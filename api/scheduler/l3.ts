/**
 * L3 scheduling (SKELETON: the L3 scheduling helper fills this module in): which L3 agent
 * hosts each router (router_l3_agent_bindings), the router's ports bound to that agent's
 * host (the fence), the periodic failover sweep, and the hints that tell L3 agents to
 * reconcile a router.
 */
import type { Db, Queryable } from '../db/index.ts';
import type { HintDeps } from '../hints.ts';
import type { Clock } from '../liveness.ts';

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

/**
 * A router changed (created, gateway or interfaces or routes or admin state changed, a
 * floating IP of it (dis)associated): schedules it if it needs a host and has none, binds
 * every port of it to the hosting agent's host (hinting the L2 agents of ports that moved),
 * and hints the hosting L3 agent and `lostHosts`. Never rejects.
 */
export async function routerChanged(
  _deps: L3Deps,
  _routerId: string,
  _lostHosts: readonly string[] = [],
): Promise<void> {}

/** The hosts of the L3 agents hosting `routerId` (read before deleting it). */
export async function l3HostsOf(_db: Queryable, _routerId: string): Promise<string[]> {
  return [];
}

/** A router was deleted: hints the L3 agents of `hosts` (l3HostsOf, read before). Never rejects. */
export async function routerDeleted(
  _deps: HintDeps,
  _routerId: string,
  _hosts: readonly string[],
): Promise<void> {}

/** Runs the L3 failover sweep every `intervalMs` (never two at once) until stopped. */
export function startL3Sweeper(_deps: L3Deps, _intervalMs: number) {
  return { async stop() {} };
}
