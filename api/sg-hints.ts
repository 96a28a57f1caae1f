/**
 * Security group hints: which OVS agents hear that a group's rules or members changed.
 * (Skeleton; the sg-rpc branch fills it in.)
 */
import type { DhcpHintDeps } from './hints.ts';

/** The rules of `groupIds` changed: the hosts of their member ports re-read them. */
export async function sgRulesChanged(_deps: DhcpHintDeps, _groupIds: readonly string[]) {}

/**
 * The members of `groupIds` changed (a port joined, left, changed addresses or pairs, or
 * was deleted): the hosts of every port whose groups have a rule naming one of them as
 * remote_group_id re-read them. `hosts` adds hosts already known to be affected.
 */
export async function sgMembersChanged(
  _deps: DhcpHintDeps,
  _groupIds: readonly string[],
  _hosts: readonly string[] = [],
) {}
