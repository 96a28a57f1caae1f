/**
 * The LBaaS agent's q-plugin calls (contracts/lbaas.ts): which pools a host's LBaaS agent
 * serves, one pool as that host's qlbaas namespace must serve it, and the stats and member
 * health the agent reports back.
 *
 * Invariants: a host is told only about pools bound to its LBaaS agent; for any other pool
 * (moved, deleted) get_pool_info answers `{pool: null}`, so the agent tears its copy down
 * (fencing after a move); a pool is read from one snapshot (one read-only REPEATABLE READ
 * transaction on PostgreSQL, SQLite's one connection); stats and health are stored only
 * from the hosting host (api/db/lbaas-status.ts).
 */
import type { LbPool } from '../contracts/lbaas.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import type { Db } from './db/index.ts';
import { poolsOfHost, servesPool } from './db/lbaas-bindings.ts';
import { readLbPool } from './db/lbaas-info.ts';
import { storePoolStats } from './db/lbaas-status.ts';
import { ONE_SNAPSHOT } from './rpc-l3.ts';

export async function getActivePools(
  db: Db,
  args: ArgsOf<'get_active_pools'>,
): Promise<{ pools: string[] }> {
  return { pools: await poolsOfHost(db, args.host) };
}

/** One pool as `host`'s LBaaS agent must serve it, or null (see the module invariants). */
export async function getPoolInfo(
  db: Db,
  args: ArgsOf<'get_pool_info'>,
): Promise<{ pool: LbPool | null }> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(ONE_SNAPSHOT);
    if (!(await servesPool(tx, args.pool_id, args.host))) return { pool: null };
    return { pool: await readLbPool(tx, args.pool_id) };
  });
}

/** Stores the pool's stats and members' health, only while `host` hosts the pool. */
export async function updatePoolStats(
  db: Db,
  args: ArgsOf<'update_pool_stats'>,
): Promise<{ updated: number }> {
  return { updated: await storePoolStats(db, args) };
}
