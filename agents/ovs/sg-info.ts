/**
 * What the API says about security groups (security_group_info), parsed item by item and
 * cached between syncs.
 *
 * Invariants: a bad rule, member address or group entry is left out and reported while its
 * neighbours stay (a left-out rule allows nothing, a left-out member is not allowed in);
 * an answer that is not the contract's shape at all, or a failed call, fails the sync, so
 * the flows already installed stay (fail safe); the cache answers only for exactly the
 * groups it was filled for, and any hint or resync empties it.
 */
import { addressOrPrefix, FirewallRule } from '../../contracts/l2.ts';
import { parseParts } from '../../contracts/parts.ts';
import { isPlainObject, UUID, ValidationError } from '../../contracts/schema.ts';
import type { RejectedPart } from '../../contracts/status.ts';
import type { SgInfo } from './sg-flows.ts';

const RESOURCE = 'security_group' as const;

function list(reply: Record<string, unknown>, key: string): unknown[] {
  const v = reply[key];
  if (!Array.isArray(v)) throw new ValidationError(key, 'must be an array');
  return v;
}

/** The entries of `values` with a UUID `id` and an array at `key`; the others rejected. */
function entries(values: unknown[], key: string, label: string, rejected: RejectedPart[]) {
  return values.flatMap((v, i) => {
    if (isPlainObject(v) && typeof v.id === 'string' && UUID.test(v.id) && Array.isArray(v[key]))
      return [{ id: v.id, items: v[key] as unknown[] }];
    rejected.push({
      resource: RESOURCE,
      id: `${label}-${i}`,
      reason: `${label}[${i}] is malformed`,
    });
    return [];
  });
}

/** security_group_info's answer: the rules and members it names, and what was left out. */
export function parseSgInfo(reply: unknown): { info: SgInfo; rejected: RejectedPart[] } {
  if (!isPlainObject(reply)) throw new ValidationError('', 'must be an object');
  const rejected: RejectedPart[] = [];
  const rules = new Map<string, FirewallRule[]>();
  for (const g of entries(list(reply, 'groups'), 'rules', 'groups', rejected))
    rules.set(
      g.id,
      parseParts(g.items, FirewallRule, { list: 'rules', resource: RESOURCE }, rejected),
    );
  const members = new Map<string, string[]>();
  const address = addressOrPrefix();
  for (const m of entries(list(reply, 'members'), 'ips', 'members', rejected))
    members.set(
      m.id,
      parseParts(m.items, address, { list: 'ips', resource: RESOURCE, ownIds: false }, rejected),
    );
  return { info: { rules, members }, rejected };
}

export interface SgCache {
  /** The info for `groups`: the cached answer when it covers exactly them, else a new call. */
  get(groups: readonly string[]): Promise<SgInfo>;
  forget(): void;
}

export function createSgCache(
  call: (groups: string[]) => Promise<unknown>,
  report: (rejected: RejectedPart[]) => void,
): SgCache {
  let cached: { key: string; info: SgInfo } | undefined;
  return {
    async get(groups) {
      const wanted = [...new Set(groups)].sort();
      const key = wanted.join(',');
      if (cached?.key === key) return cached.info;
      let info: SgInfo = { rules: new Map(), members: new Map() };
      if (wanted.length) {
        const parsed = parseSgInfo(await call(wanted));
        if (parsed.rejected.length) report(parsed.rejected);
        info = parsed.info;
      }
      cached = { key, info };
      return info;
    },
    forget() {
      cached = undefined;
    },
  };
}
