/**
 * Writes and lists of the identity tables for the admin routes (single-row reads shared
 * with authentication are in lookup.ts).
 *
 * Invariants: every function takes the Queryable it runs on, so a route composes a change
 * and its revocation events in one transaction; deleting a project, user or domain takes
 * its role assignments with it (and a project its quota rows), so nothing is left pointing
 * at a row that is gone; table and column names are fixed here, never from a request.
 */
import type { Param, Queryable, Row } from '../db/index.ts';
import { bool, columnUpdates } from '../db/neutron.ts';
import type { DomainRow, ProjectRow, RoleRow, UserRow } from './lookup.ts';
import type { AssignmentRow } from './views.ts';

export type Filters = Record<string, Param | undefined>;
type Table = 'domains' | 'projects' | 'users' | 'roles';

const withBool = <T>(row: Row): T =>
  ('enabled' in row ? { ...row, enabled: bool(row.enabled) } : row) as T;

/** Rows of `table` whose columns equal every defined filter, by name. */
async function select<T>(q: Queryable, table: Table, filters: Filters): Promise<T[]> {
  const where: string[] = [];
  const params: Param[] = [];
  for (const [column, value] of Object.entries(filters)) {
    if (value === undefined) continue;
    where.push(`${column} = ?`);
    params.push(value);
  }
  const cond = where.length ? ` WHERE ${where.join(' AND ')}` : '';
  const rows = await q.query(`SELECT * FROM ${table}${cond} ORDER BY name, id`, params);
  return rows.map((r) => withBool<T>(r));
}

export const listDomains = (q: Queryable, f: Filters) => select<DomainRow>(q, 'domains', f);
export const listProjects = (q: Queryable, f: Filters) => select<ProjectRow>(q, 'projects', f);
export const listUsers = (q: Queryable, f: Filters) => select<UserRow>(q, 'users', f);
export const listRoles = (q: Queryable, f: Filters) => select<RoleRow>(q, 'roles', f);

/** Inserts `row` (column → value) into `table`. */
export async function insertRow(q: Queryable, table: Table, row: Record<string, Param>) {
  const columns = Object.keys(row);
  await q.query(
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
    Object.values(row),
  );
}

/** Sets the defined `changes` on row `id` of `table`. */
export async function updateRow(
  q: Queryable,
  table: Table,
  id: string,
  changes: Record<string, Param | undefined>,
) {
  const u = columnUpdates();
  for (const [column, value] of Object.entries(changes)) u.set(column, value);
  if (u.sets.length === 0) return;
  await q.query(`UPDATE ${table} SET ${u.sets.join(', ')} WHERE id = ?`, [...u.params, id]);
}

export async function deleteProject(q: Queryable, id: string) {
  await q.query("DELETE FROM role_assignments WHERE target_type = 'project' AND target_id = ?", [
    id,
  ]);
  await q.query('DELETE FROM quotas WHERE project_id = ?', [id]);
  await q.query('DELETE FROM quota_locks WHERE project_id = ?', [id]);
  await q.query('DELETE FROM projects WHERE id = ?', [id]);
}

export async function deleteUser(q: Queryable, id: string) {
  await q.query('DELETE FROM role_assignments WHERE user_id = ?', [id]);
  await q.query('DELETE FROM users WHERE id = ?', [id]);
}

/** Deletes a domain with its projects and users; returns their ids (to revoke). */
export async function deleteDomain(q: Queryable, id: string) {
  const projects = (await listProjects(q, { domain_id: id })).map((p) => p.id);
  const users = (await listUsers(q, { domain_id: id })).map((u) => u.id);
  for (const p of projects) await deleteProject(q, p);
  for (const u of users) await deleteUser(q, u);
  await q.query("DELETE FROM role_assignments WHERE target_type = 'domain' AND target_id = ?", [
    id,
  ]);
  await q.query('DELETE FROM domains WHERE id = ?', [id]);
  return { projects, users };
}

export interface Grant {
  userId: string;
  targetType: 'project' | 'domain';
  targetId: string;
  roleId: string;
}

const grantParams = (g: Grant) => [g.userId, g.targetType, g.targetId, g.roleId];
const GRANT_WHERE = 'user_id = ? AND target_type = ? AND target_id = ? AND role_id = ?';

export async function addGrant(q: Queryable, g: Grant) {
  await q.query(
    'INSERT INTO role_assignments (user_id, target_type, target_id, role_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
    grantParams(g),
  );
}

export async function hasGrant(q: Queryable, g: Grant): Promise<boolean> {
  return (
    (await q.query(`SELECT 1 FROM role_assignments WHERE ${GRANT_WHERE}`, grantParams(g))).length >
    0
  );
}

export async function removeGrant(q: Queryable, g: Grant) {
  await q.query(`DELETE FROM role_assignments WHERE ${GRANT_WHERE}`, grantParams(g));
}

export interface AssignmentFilter {
  userId?: string;
  targetType?: 'project' | 'domain';
  targetId?: string;
  roleId?: string;
}

/** Assignments (direct) matching the filter, with every name a view may show. */
export async function listAssignments(q: Queryable, f: AssignmentFilter): Promise<AssignmentRow[]> {
  const where: string[] = [];
  const params: Param[] = [];
  const add = (sql: string, v: string | undefined) => {
    if (v === undefined) return;
    where.push(sql);
    params.push(v);
  };
  add('a.user_id = ?', f.userId);
  add('a.target_type = ?', f.targetType);
  add('a.target_id = ?', f.targetId);
  add('a.role_id = ?', f.roleId);
  return q.query<AssignmentRow & Row>(
    `SELECT a.user_id, a.target_type, a.target_id, a.role_id, r.name AS role_name,
            u.name AS user_name, u.domain_id AS user_domain_id, ud.name AS user_domain_name,
            COALESCE(p.name, d.name) AS target_name,
            COALESCE(p.domain_id, d.id) AS target_domain_id,
            COALESCE(pd.name, d.name) AS target_domain_name
       FROM role_assignments a
       JOIN roles r ON r.id = a.role_id
       JOIN users u ON u.id = a.user_id
       JOIN domains ud ON ud.id = u.domain_id
       LEFT JOIN projects p ON a.target_type = 'project' AND p.id = a.target_id
       LEFT JOIN domains pd ON pd.id = p.domain_id
       LEFT JOIN domains d ON a.target_type = 'domain' AND d.id = a.target_id
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY a.user_id, a.target_type, a.target_id, r.name`,
    params,
  );
}
