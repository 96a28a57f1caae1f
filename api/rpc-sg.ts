/**
 * The L2 agent's security_group_info (contracts/l2.ts): the rules of the groups asked
 * about and the members of the groups those rules name as remote_group_id.
 *
 * Invariants: the answer always passes SecurityGroupInfoResult.parse, because every rule
 * and address goes through the contract's own parser here and one that fails is left out
 * and logged (a bad row costs its own filtering, never the whole answer); protocols
 * become numbers (contracts/sg-protocols.ts); the same rows give the same answer (sorted,
 * addresses canonical and unique).
 */

import { canonicalIp } from '../contracts/inet.ts';
import { addressOrPrefix, FirewallRule, type SecurityGroupInfoResult } from '../contracts/l2.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import type { SecurityGroupRule } from '../contracts/secgroup.ts';
import { protocolNumber } from '../contracts/sg-protocols.ts';
import type { Logger } from '../core/log.ts';
import type { Db } from './db/index.ts';
import { existingGroups, memberAddresses } from './db/sg-agent.ts';
import { rulesOfGroups } from './db/sg-rules.ts';

type Warn = Pick<Logger, 'warn'>;
const ADDRESS = addressOrPrefix();

/** Stored text in canonical form (address or prefix), or undefined when it is neither. */
export function canonicalAddress(text: string): string | undefined {
  const [addr = '', len, ...rest] = text.split('/');
  const ip = canonicalIp(addr);
  if (ip === undefined || rest.length > 0) return undefined;
  try {
    return ADDRESS.parse(len === undefined ? ip : `${ip}/${len}`);
  } catch {
    return undefined;
  }
}

/** One stored rule as the agent gets it, or undefined (logged) when it cannot be. */
function firewallRule(row: SecurityGroupRule, log?: Warn): FirewallRule | undefined {
  const protocol = protocolNumber(row.protocol);
  const prefix = row.remote_ip_prefix;
  const remote = prefix === null ? null : canonicalAddress(prefix);
  try {
    if (protocol === undefined) throw new Error(`unknown protocol ${row.protocol}`);
    if (remote === undefined) throw new Error(`bad remote_ip_prefix ${prefix}`);
    return FirewallRule.parse({
      id: row.id,
      direction: row.direction,
      ethertype: row.ethertype,
      protocol,
      port_range_min: row.port_range_min,
      port_range_max: row.port_range_max,
      remote_ip_prefix: remote,
      remote_group_id: row.remote_group_id,
    });
  } catch (e) {
    const err = (e as Error).message;
    log?.warn({ err, securityGroupRuleId: row.id }, 'security group rule left out');
    return undefined;
  }
}

/** The members' canonical addresses of each group of `ids` (every one listed, sorted). */
async function members(db: Db, ids: string[], log?: Warn) {
  const ips = new Map(ids.map((id) => [id, new Set<string>()]));
  for (const row of await memberAddresses(db, ids)) {
    const ip = canonicalAddress(row.ip);
    if (ip === undefined)
      log?.warn({ securityGroupId: row.group_id, ip: row.ip }, 'member address left out');
    else ips.get(row.group_id)?.add(ip);
  }
  return ids.map((id) => ({ id, ips: [...(ips.get(id) ?? [])].sort() }));
}

export async function securityGroupInfo(
  db: Db,
  args: ArgsOf<'security_group_info'>,
  log?: Warn,
): Promise<SecurityGroupInfoResult> {
  const ids = await existingGroups(db, args.security_groups);
  const stored = await rulesOfGroups(db, ids);
  const byId = (a: SecurityGroupRule, b: SecurityGroupRule) => (a.id < b.id ? -1 : 1);
  const groups = ids.map((id) => ({
    id,
    rules: [...(stored.get(id) ?? [])].sort(byId).flatMap((row) => firewallRule(row, log) ?? []),
  }));
  const remotes = new Set<string>();
  for (const g of groups)
    for (const r of g.rules) if (r.remote_group_id !== null) remotes.add(r.remote_group_id);
  return { groups, members: await members(db, [...remotes].sort(), log) };
}
