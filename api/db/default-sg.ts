/**
 * A project's `default` security group, made on first use (listing groups, creating a
 * port or a group), and the egress rules every new group starts with, as in Neutron.
 *
 * Invariants: a project has at most one default group, whatever the replicas and the
 * races: default_security_groups' primary key decides, and the loser of a race deletes
 * its own group (never committed) and uses the winner's; the default group admits all
 * egress (IPv4 and IPv6) and ingress from its own members, nothing else.
 */
import { randomUUID } from 'node:crypto';
import type { Queryable } from './index.ts';
import { resourceTime } from './neutron.ts';

export const DEFAULT_GROUP_NAME = 'default';
export const DEFAULT_GROUP_DESCRIPTION = 'Default security group';

interface StarterRule {
  direction: 'ingress' | 'egress';
  ethertype: 'IPv4' | 'IPv6';
  remoteSelf: boolean;
}

const EGRESS: StarterRule[] = [
  { direction: 'egress', ethertype: 'IPv4', remoteSelf: false },
  { direction: 'egress', ethertype: 'IPv6', remoteSelf: false },
];
const DEFAULT_RULES: StarterRule[] = [
  ...EGRESS,
  { direction: 'ingress', ethertype: 'IPv4', remoteSelf: true },
  { direction: 'ingress', ethertype: 'IPv6', remoteSelf: true },
];

/** Adds a new group's starter rules: egress any, plus ingress from itself when default. */
export async function insertStarterRules(
  tx: Queryable,
  groupId: string,
  projectId: string,
  at: string,
  isDefault: boolean,
): Promise<void> {
  for (const r of isDefault ? DEFAULT_RULES : EGRESS)
    await tx.query(
      `INSERT INTO securitygrouprules (id, security_group_id, project_id, direction, ethertype,
         protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id,
         description, revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, '', 0, ?, ?)`,
      [
        randomUUID(),
        groupId,
        projectId,
        r.direction,
        r.ethertype,
        r.remoteSelf ? groupId : null,
        at,
        at,
      ],
    );
}

/** The project's default group id, read. */
export async function defaultGroupOf(tx: Queryable, projectId: string) {
  const rows = await tx.query<{ security_group_id: string }>(
    'SELECT security_group_id FROM default_security_groups WHERE project_id = ?',
    [projectId],
  );
  return rows[0]?.security_group_id;
}

/** The project's default group id, made (with its rules) when the project has none. */
export async function ensureDefaultSecurityGroup(
  tx: Queryable,
  projectId: string,
  now: Date,
): Promise<string> {
  const known = await defaultGroupOf(tx, projectId);
  if (known) return known;
  const id = randomUUID();
  const at = resourceTime(now);
  await tx.query(
    `INSERT INTO securitygroups (id, project_id, name, description, revision_number,
       created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)`,
    [id, projectId, DEFAULT_GROUP_NAME, DEFAULT_GROUP_DESCRIPTION, at, at],
  );
  const won = await tx.query(
    `INSERT INTO default_security_groups (project_id, security_group_id) VALUES (?, ?)
     ON CONFLICT DO NOTHING RETURNING project_id`,
    [projectId, id],
  );
  if (won.length === 0) {
    await tx.query('DELETE FROM securitygroups WHERE id = ?', [id]);
    return (await defaultGroupOf(tx, projectId)) as string;
  }
  await insertStarterRules(tx, id, projectId, at, true);
  return id;
}
