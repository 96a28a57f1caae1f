/**
 * Tunnel endpoints: the L2 agents' `tunnel_sync` (record this host's endpoint, answer the
 * others), and an endpoint's removal when its L2 agent is deleted.
 *
 * Invariant: any change to the set of endpoints is fanned out to every L2 agent as a
 * `tunnels` hint; an unchanged endpoint is not, so periodic resyncs never start a hint
 * storm.
 */
import type { TunnelPeer } from '../contracts/l2.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import type { Db } from './db/index.ts';
import { deleteEndpoint, peersOf, upsertEndpoint } from './db/tunnels.ts';
import { type HintDeps, hintTunnels } from './hints.ts';

export interface TunnelDeps extends HintDeps {
  db: Db;
}

async function announceTunnels(deps: TunnelDeps, why: string) {
  deps.log.info({ why }, 'tunnel endpoints changed');
  await hintTunnels(deps);
}

export async function tunnelSync(
  deps: TunnelDeps,
  args: ArgsOf<'tunnel_sync'>,
): Promise<{ peers: TunnelPeer[] }> {
  if (await upsertEndpoint(deps.db, args.host, args.tunnel_ip, args.tunnel_types))
    await announceTunnels(deps, `endpoint of ${args.host} is ${args.tunnel_ip}`);
  return { peers: await peersOf(deps.db, args.host) };
}

/** Removes a host's tunnel endpoint (its L2 agent was deleted) and tells the others. */
export async function removeTunnelEndpoint(deps: TunnelDeps, host: string) {
  if (await deleteEndpoint(deps.db, host))
    await announceTunnels(deps, `endpoint of ${host} removed`);
}
