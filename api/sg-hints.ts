/**
 * Security group hints: which OVS agents hear that a group's rules or members changed.
 *
 * Invariants: a hint `{resource: security_group, id: <changed group>}` goes to the host
 * queue of each OVS agent with a bound port that the change affects, once per (host,
 * group), and nowhere else; the hosts are found with set-based queries (api/db/sg-agent.ts),
 * whatever the number of ports; neither function rejects: a failed read is logged and the
 * agents' periodic resync catches up (api/hints.ts).
 */
import { type HostGroup, hostsOfGroups, hostsReferring } from './db/sg-agent.ts';
import { type DhcpHintDeps, hintSecurityGroup } from './hints.ts';

/** The (host, group) pairs `read` finds; none (logged) when the read fails. */
async function pairs(deps: DhcpHintDeps, groupIds: readonly string[], read: typeof hostsOfGroups) {
  if (groupIds.length === 0) return [];
  try {
    return await read(deps.db, groupIds);
  } catch (e) {
    deps.log.warn({ err: (e as Error).message, groupIds }, 'hosts of security groups not read');
    return [];
  }
}

/** One hint per distinct (host, group) of `targets`. */
async function send(deps: DhcpHintDeps, targets: readonly HostGroup[]) {
  const seen = new Map<string, HostGroup>();
  for (const t of targets) if (t.host !== '') seen.set(`${t.host} ${t.group_id}`, t);
  await Promise.all([...seen.values()].map((t) => hintSecurityGroup(deps, t.host, t.group_id)));
}

/** The rules of `groupIds` changed: the hosts of their member ports re-read them. */
export async function sgRulesChanged(deps: DhcpHintDeps, groupIds: readonly string[]) {
  await send(deps, await pairs(deps, groupIds, hostsOfGroups));
}

/**
 * The members of `groupIds` changed (a port joined, left, changed addresses or pairs, or
 * was deleted): the hosts of every port whose groups have a rule naming one of them as
 * remote_group_id re-read them. `hosts` adds hosts already known to be affected.
 */
export async function sgMembersChanged(
  deps: DhcpHintDeps,
  groupIds: readonly string[],
  hosts: readonly string[] = [],
) {
  const extra = hosts.flatMap((host) => groupIds.map((group_id) => ({ host, group_id })));
  await send(deps, [...(await pairs(deps, groupIds, hostsReferring)), ...extra]);
}
