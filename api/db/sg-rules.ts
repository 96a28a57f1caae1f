/**
 * Security group rule rows: list, read, create, delete, and the view other modules show
 * rules with (a group's rules, in its body).
 *
 * Invariants: a create is one transaction that first bumps its group's revision (locking
 * the group's row on PostgreSQL), then checks for an identical rule, the quota, and
 * inserts, so two identical concurrent creates leave one rule and the other gets
 * SecurityGroupRuleExists; a rule's project is its group's; rules are never updated.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import {
  type RuleSpec,
  type SecurityGroupRule,
  type SgEthertype,
  sameRule,
} from '../../contracts/secgroup.ts';
import { queryIn } from './chunks.ts';
import type { Db, Queryable, Row } from './index.ts';
import {
  type ColumnFilter,
  constraintKind,
  guardQuota,
  numOrNull,
  type QuotaGuard,
  resourceTime,
  standardAttributes,
  whereSql,
} from './neutron.ts';

export interface RuleRow extends Row {
  id: string;
  security_group_id: string;
  project_id: string;
  direction: 'ingress' | 'egress';
  ethertype: SgEthertype;
  protocol: string | null;
  port_range_min: unknown;
  port_range_max: unknown;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
  description: string;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

export const RULE_FILTERS = {
  id: { column: 'id', type: 'text' },
  description: { column: 'description', type: 'text' },
  project_id: { column: 'project_id', type: 'text' },
  tenant_id: { column: 'project_id', type: 'text' },
  security_group_id: { column: 'security_group_id', type: 'text' },
  direction: { column: 'direction', type: 'text' },
  ethertype: { column: 'ethertype', type: 'text' },
  protocol: { column: 'protocol', type: 'text' },
  port_range_min: { column: 'port_range_min', type: 'int' },
  port_range_max: { column: 'port_range_max', type: 'int' },
  remote_ip_prefix: { column: 'remote_ip_prefix', type: 'text' },
  remote_group_id: { column: 'remote_group_id', type: 'text' },
} as const;

export const ruleNotFound = (id: string) =>
  new ApiError('SecurityGroupRuleNotFound', `Security group rule ${id} does not exist`);

/** A rule as the API shows it (rules carry no tags). Pure. */
export function ruleView(row: RuleRow): SecurityGroupRule {
  const { tags: _tags, ...std } = standardAttributes(row);
  return {
    id: row.id,
    security_group_id: row.security_group_id,
    direction: row.direction,
    ethertype: row.ethertype,
    protocol: row.protocol,
    port_range_min: numOrNull(row.port_range_min),
    port_range_max: numOrNull(row.port_range_max),
    remote_ip_prefix: row.remote_ip_prefix,
    remote_group_id: row.remote_group_id,
    description: row.description,
    ...std,
  };
}

export async function listRules(q: Queryable, filter: ColumnFilter): Promise<SecurityGroupRule[]> {
  const where = whereSql(filter);
  const rows = await q.query<RuleRow>(
    `SELECT * FROM securitygrouprules${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  return rows.map(ruleView);
}

/** group id → its rules, oldest first. */
export async function rulesOfGroups(
  q: Queryable,
  groupIds: readonly string[],
): Promise<Map<string, SecurityGroupRule[]>> {
  const rows = await queryIn<RuleRow>(
    q,
    groupIds,
    (ids) => `SELECT * FROM securitygrouprules WHERE security_group_id IN ${ids}`,
  );
  rows.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  const out = new Map<string, SecurityGroupRule[]>();
  for (const r of rows)
    out.set(r.security_group_id, [...(out.get(r.security_group_id) ?? []), ruleView(r)]);
  return out;
}

export async function getRule(q: Queryable, id: string): Promise<SecurityGroupRule | undefined> {
  const rows = await q.query<RuleRow>('SELECT * FROM securitygrouprules WHERE id = ?', [id]);
  return rows[0] && ruleView(rows[0]);
}

/** Bumps group `id`'s revision inside `tx` (locking its row); false when it is gone. */
export async function touchGroup(tx: Queryable, id: string, now: Date): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE securitygroups SET revision_number = revision_number + 1, updated_at = ?
      WHERE id = ? RETURNING id`,
    [resourceTime(now), id],
  );
  return rows.length > 0;
}

/** SecurityGroupRuleExists (409) naming the existing rule, when `spec` is already there. */
async function refuseDuplicate(tx: Queryable, spec: RuleSpec): Promise<void> {
  const rows = await tx.query<RuleRow>(
    'SELECT * FROM securitygrouprules WHERE security_group_id = ? ORDER BY created_at, id',
    [spec.security_group_id],
  );
  const twin = rows.map(ruleView).find((r) => sameRule(r, spec));
  if (twin)
    throw new ApiError(
      'SecurityGroupRuleExists',
      `Security group rule already exists. Rule id is ${twin.id}.`,
    );
}

async function insertRule(
  tx: Queryable,
  id: string,
  spec: RuleSpec,
  projectId: string,
  at: string,
) {
  await tx.query(
    `INSERT INTO securitygrouprules (id, security_group_id, project_id, direction, ethertype,
       protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id,
       description, revision_number, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    [
      id,
      spec.security_group_id,
      projectId,
      spec.direction,
      spec.ethertype,
      spec.protocol,
      spec.port_range_min,
      spec.port_range_max,
      spec.remote_ip_prefix,
      spec.remote_group_id,
      spec.description,
      at,
      at,
    ],
  );
}

/**
 * Creates `specs` (one request, single or bulk), all owned by `projectId` (their groups'
 * project), in one transaction: all of them or none.
 */
export async function createRules(
  db: Db,
  specs: readonly RuleSpec[],
  projectId: string,
  now: Date,
  quota?: QuotaGuard,
): Promise<SecurityGroupRule[]> {
  const ids = specs.map(() => randomUUID());
  const at = resourceTime(now);
  try {
    await db.transaction(async (tx) => {
      const groups = [...new Set(specs.map((s) => s.security_group_id))].sort();
      for (const g of groups) if (!(await touchGroup(tx, g, now))) throw groupGone(g);
      for (const spec of specs) await refuseDuplicate(tx, spec);
      await guardQuota(tx, quota, projectId, 'security_group_rule', specs.length);
      for (const [i, spec] of specs.entries())
        await insertRule(tx, ids[i] as string, spec, projectId, at);
    });
  } catch (e) {
    if (constraintKind(e) === 'foreign_key') throw await remoteGone(db, specs, e);
    throw e;
  }
  return Promise.all(ids.map(async (id) => (await getRule(db, id)) as SecurityGroupRule));
}

const groupGone = (id: string) =>
  new ApiError('SecurityGroupNotFound', `Security group ${id} does not exist`);

/** A remote group deleted while the rules naming it were written: SecurityGroupNotFound. */
async function remoteGone(db: Queryable, specs: readonly RuleSpec[], e: unknown) {
  const remotes = [...new Set(specs.flatMap((s) => s.remote_group_id ?? []))].sort();
  for (const id of remotes) {
    const rows = await db.query('SELECT 1 AS one FROM securitygroups WHERE id = ?', [id]);
    if (rows.length === 0) return groupGone(id);
  }
  return e;
}

/** Deletes rule `id` (bumping its group's revision); SecurityGroupRuleNotFound if gone. */
export async function deleteRule(db: Db, id: string, now: Date): Promise<void> {
  await db.transaction(async (tx) => {
    const rule = await getRule(tx, id);
    if (!rule) throw ruleNotFound(id);
    await touchGroup(tx, rule.security_group_id, now);
    await tx.query('DELETE FROM securitygrouprules WHERE id = ?', [id]);
  });
}
