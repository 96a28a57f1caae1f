/**
 * What the L2 agents' firewall reads of security groups (their rules are sg-rules.ts'): the
 * addresses of their members, and the hosts whose ports a group change affects.
 *
 * Invariant: every query is set-based over its list of ids (queryIn), so the cost of a
 * call grows with the rows it returns, never with one query per port or group; results
 * come back sorted, so the same rows give the same answer.
 */
import { queryIn } from './chunks.ts';
import type { Queryable } from './index.ts';

const byKeys = <T>(rows: T[], key: (r: T) => string) =>
  rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

/** The groups of `ids` that exist, sorted. */
export async function existingGroups(db: Queryable, ids: readonly string[]): Promise<string[]> {
  const rows = await queryIn<{ id: string }>(
    db,
    [...new Set(ids)],
    (list) => `SELECT id FROM securitygroups WHERE id IN ${list}`,
  );
  return rows.map((r) => r.id).sort();
}

/**
 * The addresses of the members of the groups `ids` (any host, any status): each bound
 * port's fixed IPs and allowed-address-pair addresses, as stored, one row per pair.
 */
export async function memberAddresses(
  db: Queryable,
  ids: readonly string[],
): Promise<{ group_id: string; ip: string }[]> {
  const groups = [...new Set(ids)];
  const from = (table: string) => (list: string) =>
    `SELECT b.security_group_id AS group_id, a.ip_address AS ip
       FROM securitygroupportbindings b JOIN ${table} a ON a.port_id = b.port_id
       WHERE b.security_group_id IN ${list}`;
  return [
    ...(await queryIn<{ group_id: string; ip: string }>(db, groups, from('ipallocations'))),
    ...(await queryIn<{ group_id: string; ip: string }>(db, groups, from('allowedaddresspairs'))),
  ];
}

export interface HostGroup {
  host: string;
  group_id: string;
}

/** (host, group) for every bound port (non-empty host) in one of the groups `ids`. */
export async function hostsOfGroups(db: Queryable, ids: readonly string[]): Promise<HostGroup[]> {
  const rows = await queryIn<HostGroup & Record<string, unknown>>(
    db,
    [...new Set(ids)],
    (list) => `SELECT DISTINCT p.host_id AS host, b.security_group_id AS group_id
       FROM securitygroupportbindings b JOIN ports p ON p.id = b.port_id
       WHERE p.host_id <> '' AND b.security_group_id IN ${list}`,
  );
  return byKeys(rows, (r) => `${r.host} ${r.group_id}`);
}

/**
 * (host, remote group) for every bound port (non-empty host) in a group with a rule that
 * names one of `ids` as remote_group_id: the hosts that must re-read that remote group.
 */
export async function hostsReferring(db: Queryable, ids: readonly string[]): Promise<HostGroup[]> {
  const rows = await queryIn<HostGroup & Record<string, unknown>>(
    db,
    [...new Set(ids)],
    (list) => `SELECT DISTINCT p.host_id AS host, r.remote_group_id AS group_id
       FROM securitygrouprules r
       JOIN securitygroupportbindings b ON b.security_group_id = r.security_group_id
       JOIN ports p ON p.id = b.port_id
       WHERE p.host_id <> '' AND r.remote_group_id IN ${list}`,
  );
  return byKeys(rows, (r) => `${r.host} ${r.group_id}`);
}
