/**
 * Security group rows: list, read, create, update, delete, each group shown with its rules.
 *
 * Invariants: every write is one transaction, so a refused request changes nothing; a
 * create is held to the owner's `security_group` quota and starts with Neutron's egress
 * rules (and ensures the owner's default group first, as Neutron does); the default group
 * keeps its name; a group a port is bound to is never deleted (SecurityGroupInUse), and a
 * deleted group takes its rules and every other group's rules naming it as remote group.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import type {
  SecurityGroup,
  SecurityGroupCreate,
  SecurityGroupUpdate,
} from '../../contracts/secgroup.ts';
import { forgetResourceStatuses } from './agent-status.ts';
import { ensureDefaultSecurityGroup, insertStarterRules } from './default-sg.ts';
import type { Db, Queryable, Row } from './index.ts';
import {
  type ColumnFilter,
  columnUpdates,
  constraintKind,
  guardQuota,
  type QuotaGuard,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
} from './neutron.ts';
import { rulesOfGroups, touchGroup } from './sg-rules.ts';

interface GroupRow extends Row {
  id: string;
  project_id: string;
  name: string;
  description: string;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

export const GROUP_FILTERS = { ...STANDARD_FILTERS } as const;

export const groupNotFound = (id: string) =>
  new ApiError('SecurityGroupNotFound', `Security group ${id} does not exist`);

const groupInUse = (id: string) =>
  new ApiError('SecurityGroupInUse', `Security Group ${id} in use.`);

async function views(q: Queryable, rows: GroupRow[]): Promise<SecurityGroup[]> {
  const rules = await rulesOfGroups(
    q,
    rows.map((r) => r.id),
  );
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    description: row.description,
    security_group_rules: rules.get(row.id) ?? [],
    ...standardAttributes(row),
  }));
}

export async function listGroups(q: Queryable, filter: ColumnFilter): Promise<SecurityGroup[]> {
  const where = whereSql(filter);
  const rows = await q.query<GroupRow>(
    `SELECT * FROM securitygroups${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  return views(q, rows);
}

export async function getGroup(q: Queryable, id: string): Promise<SecurityGroup | undefined> {
  const rows = await q.query<GroupRow>('SELECT * FROM securitygroups WHERE id = ?', [id]);
  return (await views(q, rows))[0];
}

/** Whether `id` is its project's default group. */
export async function isDefaultGroup(q: Queryable, id: string): Promise<boolean> {
  const rows = await q.query(
    'SELECT 1 AS one FROM default_security_groups WHERE security_group_id = ?',
    [id],
  );
  return rows.length > 0;
}

/** The project's default group, made on first use (its own transaction). */
export function ensureDefault(db: Db, projectId: string, now: Date): Promise<string> {
  return db.transaction((tx) => ensureDefaultSecurityGroup(tx, projectId, now));
}

export async function createGroup(
  db: Db,
  req: SecurityGroupCreate & { project_id: string },
  now: Date,
  quota?: QuotaGuard,
): Promise<SecurityGroup> {
  const id = randomUUID();
  const at = resourceTime(now);
  await ensureDefault(db, req.project_id, now);
  await db.transaction(async (tx) => {
    await guardQuota(tx, quota, req.project_id, 'security_group');
    await tx.query(
      `INSERT INTO securitygroups (id, project_id, name, description, revision_number,
         created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)`,
      [id, req.project_id, req.name ?? '', req.description ?? '', at, at],
    );
    await insertStarterRules(tx, id, req.project_id, at, false);
  });
  return (await getGroup(db, id)) as SecurityGroup;
}

export async function updateGroup(
  db: Db,
  id: string,
  changes: SecurityGroupUpdate,
  now: Date,
): Promise<SecurityGroup> {
  await db.transaction(async (tx) => {
    const [row] = await tx.query<GroupRow>('SELECT * FROM securitygroups WHERE id = ?', [id]);
    if (!row) throw groupNotFound(id);
    if (changes.name !== undefined && changes.name !== row.name && (await isDefaultGroup(tx, id)))
      throw new ApiError(
        'SecurityGroupCannotUpdateDefault',
        'Updating default security group not allowed.',
      );
    const u = columnUpdates();
    u.set('name', changes.name);
    u.set('description', changes.description);
    if (u.sets.length === 0) return;
    await touchGroup(tx, id, now);
    await tx.query(`UPDATE securitygroups SET ${u.sets.join(', ')} WHERE id = ?`, [
      ...u.params,
      id,
    ]);
  });
  return (await getGroup(db, id)) as SecurityGroup;
}

/**
 * Deletes group `id` with its rules and the rules of other groups naming it as their
 * remote group; those groups' ids, whose rules changed.
 */
export async function deleteGroup(
  db: Db,
  id: string,
  now: Date,
  mayDeleteDefault: boolean,
): Promise<string[]> {
  try {
    return await db.transaction((tx) => removeGroup(tx, id, now, mayDeleteDefault));
  } catch (e) {
    // A port bound to it meanwhile (PostgreSQL: its binding committed while this waited).
    if (constraintKind(e) === 'foreign_key') throw groupInUse(id);
    throw e;
  }
}

async function removeGroup(
  tx: Queryable,
  id: string,
  now: Date,
  mayDeleteDefault: boolean,
): Promise<string[]> {
  if (!(await touchGroup(tx, id, now))) throw groupNotFound(id);
  if (!mayDeleteDefault && (await isDefaultGroup(tx, id)))
    throw new ApiError(
      'SecurityGroupCannotRemoveDefault',
      'Insufficient rights for removing default security group.',
    );
  const bound = await tx.query(
    'SELECT 1 AS one FROM securitygroupportbindings WHERE security_group_id = ? LIMIT 1',
    [id],
  );
  if (bound.length) throw groupInUse(id);
  const others = await tx.query<{ security_group_id: string }>(
    `SELECT DISTINCT security_group_id FROM securitygrouprules
        WHERE remote_group_id = ? AND security_group_id <> ? ORDER BY security_group_id`,
    [id, id],
  );
  for (const o of others) await touchGroup(tx, o.security_group_id, now);
  await tx.query(
    'DELETE FROM securitygrouprules WHERE remote_group_id = ? OR security_group_id = ?',
    [id, id],
  );
  await tx.query('DELETE FROM securitygroups WHERE id = ?', [id]);
  await forgetResourceStatuses(tx, 'security_group', id);
  return others.map((o) => o.security_group_id);
}
