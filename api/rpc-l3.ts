/**
 * The L3 agent's q-plugin calls (contracts/l3.ts). SKELETON: the L3 scheduling helper
 * fills this module in.
 */
import type { L3Router } from '../contracts/l3.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import type { Db } from './db/index.ts';

export async function getActiveRouters(
  _db: Db,
  _args: ArgsOf<'get_active_routers'>,
): Promise<{ routers: string[] }> {
  return { routers: [] };
}

export async function getRouterInfo(
  _db: Db,
  _args: ArgsOf<'get_router_info'>,
): Promise<{ router: L3Router | null }> {
  return { router: null };
}

export async function updateFloatingIpStatuses(
  _db: Db,
  _args: ArgsOf<'update_floatingip_statuses'>,
): Promise<{ updated: number }> {
  return { updated: 0 };
}
