/** The LBaaS agent's RPC (get_active_pools, get_pool_info, update_pool_stats): issue 16. */
import type { ArgsOf } from '../contracts/messages.ts';
import type { Db } from './db/index.ts';

export async function getActivePools(_db: Db, _args: ArgsOf<'get_active_pools'>) {
  return { pools: [] as string[] };
}

export async function getPoolInfo(_db: Db, _args: ArgsOf<'get_pool_info'>) {
  return { pool: null };
}

export async function updatePoolStats(_db: Db, _args: ArgsOf<'update_pool_stats'>) {
  return { updated: 0 };
}
