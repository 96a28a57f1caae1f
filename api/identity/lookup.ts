/**
 * Reads of the identity tables that authentication and the admin routes share: domains,
 * projects, users, roles and the roles a user holds on a project.
 *
 * Invariant: rows come back typed with booleans as booleans (SQLite stores 0/1); names are
 * looked up within their domain, as Keystone's are unique only there.
 */
import type { Queryable, Row } from '../db/index.ts';

export interface DomainRow {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
}
export interface ProjectRow {
  id: string;
  domain_id: string;
  name: string;
  description: string;
  enabled: boolean;
}
export interface UserRow {
  id: string;
  domain_id: string;
  name: string;
  password_hash: string | null;
  enabled: boolean;
  default_project_id: string | null;
  email: string | null;
  description: string;
  password_changed_at: string | null;
}
export interface RoleRow {
  id: string;
  name: string;
  description: string;
}

const bool = <T extends Row>(row: T | undefined): T | undefined =>
  row && 'enabled' in row ? { ...row, enabled: Boolean(row.enabled) } : row;

async function one<T extends Row>(q: Queryable, sql: string, params: string[]) {
  return bool((await q.query<T>(sql, params))[0]);
}

export const getDomain = (q: Queryable, id: string) =>
  one<DomainRow & Row>(q, 'SELECT * FROM domains WHERE id = ?', [id]);
export const findDomainByName = (q: Queryable, name: string) =>
  one<DomainRow & Row>(q, 'SELECT * FROM domains WHERE name = ?', [name]);

export const getProject = (q: Queryable, id: string) =>
  one<ProjectRow & Row>(q, 'SELECT * FROM projects WHERE id = ?', [id]);
export const findProjectByName = (q: Queryable, domainId: string, name: string) =>
  one<ProjectRow & Row>(q, 'SELECT * FROM projects WHERE domain_id = ? AND name = ?', [
    domainId,
    name,
  ]);

export const getUser = (q: Queryable, id: string) =>
  one<UserRow & Row>(q, 'SELECT * FROM users WHERE id = ?', [id]);
export const findUserByName = (q: Queryable, domainId: string, name: string) =>
  one<UserRow & Row>(q, 'SELECT * FROM users WHERE domain_id = ? AND name = ?', [domainId, name]);

export const getRole = (q: Queryable, id: string) =>
  one<RoleRow & Row>(q, 'SELECT * FROM roles WHERE id = ?', [id]);
export const findRoleByName = (q: Queryable, name: string) =>
  one<RoleRow & Row>(q, 'SELECT * FROM roles WHERE name = ?', [name]);

/** The roles assigned to `userId` directly on `projectId` (implied ones not added). */
export const rolesOnProject = (q: Queryable, userId: string, projectId: string) =>
  q.query<RoleRow & Row>(
    `SELECT r.* FROM role_assignments a JOIN roles r ON r.id = a.role_id
      WHERE a.user_id = ? AND a.target_type = 'project' AND a.target_id = ? ORDER BY r.name`,
    [userId, projectId],
  );

/** The enabled projects on which `userId` holds any role. */
export async function projectsOfUser(q: Queryable, userId: string): Promise<ProjectRow[]> {
  const rows = await q.query<ProjectRow & Row>(
    `SELECT DISTINCT p.* FROM role_assignments a JOIN projects p ON p.id = a.target_id
      WHERE a.user_id = ? AND a.target_type = 'project' ORDER BY p.name`,
    [userId],
  );
  return rows.map((r) => bool(r) as ProjectRow).filter((p) => p.enabled);
}
