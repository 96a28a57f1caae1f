/**
 * LBaaS scheduling (issue 16, being filled in by its scheduler work): which LBaaS agent
 * hosts each pool, the VIP port bound to that agent's host (the fence), the failover sweep,
 * and the hints that tell LBaaS agents to reconcile a pool.
 */
import type { Db, Queryable } from '../db/index.ts';
import type { HintDeps } from '../hints.ts';
import type { Clock } from '../liveness.ts';

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

/**
 * A pool, its VIP, a member or a monitor association changed (or the pool was created):
 * schedules the pool if it has no agent, binds its VIP port to the hosting agent's host,
 * and hints the hosting agent and `lostHosts`. Never rejects.
 */
export async function poolChanged(
  _deps: LbaasDeps,
  _poolId: string,
  _lostHosts: readonly string[] = [],
): Promise<void> {}

/** The hosts of the LBaaS agents hosting `poolId` (read before deleting it). */
export async function lbaasHostsOf(_db: Queryable, _poolId: string): Promise<string[]> {
  return [];
}

/** A pool was deleted: hints the LBaaS agents of `hosts` (lbaasHostsOf, read before). */
export async function poolDeleted(
  _deps: HintDeps,
  _poolId: string,
  _hosts: readonly string[],
): Promise<void> {}
