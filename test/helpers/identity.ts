/**
 * Users, projects and role assignments for tests, written straight into the identity
 * tables of migration 11 (as `kumo-manage bootstrap` would make them), so a suite can log
 * in with a password through the real identity listener — and that login itself
 * (passwordAuth, loginAt), as Keystone v3's password method takes it.
 *
 * Invariant: rows are what the identity code reads — passwords hashed with the real
 * scrypt (passwords.ts), roles looked up by name among the seeded ones, projects and
 * users in the Default domain unless told otherwise; seeding twice with one name reuses
 * the project and adds roles, never a duplicate.
 */
import assert from 'node:assert/strict';
import type { Db } from '../../api/db/index.ts';
import { findProjectByName, findRoleByName, findUserByName } from '../../api/identity/lookup.ts';
import { hashPassword } from '../../api/identity/passwords.ts';
import type { Credentials } from './os-clients.ts';
import { hexId } from './tokens.ts';

const CREATED = '2026-11-22T10:00:00Z';

/** The project named `name` in `domain`, made (enabled) when missing; its id. */
export async function seedProject(db: Db, name: string, domain = 'default'): Promise<string> {
  const found = await findProjectByName(db, domain, name);
  if (found) return found.id;
  const id = hexId();
  await db.query(
    'INSERT INTO projects (id, domain_id, name, description, enabled, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    [id, domain, name, '', true, CREATED],
  );
  return id;
}

/** Grants `role` (admin, member or reader) to `userId` on `projectId`. */
export async function seedRole(db: Db, userId: string, projectId: string, role: string) {
  const row = await findRoleByName(db, role);
  if (!row) throw new Error(`no role ${role} (migration 11 seeds admin, member, reader)`);
  await db.query(
    `INSERT INTO role_assignments (user_id, target_type, target_id, role_id) VALUES (?, 'project', ?, ?)`,
    [userId, projectId, row.id],
  );
}

export interface SeedUser {
  name: string;
  password: string;
  /** The project the roles are granted on (made when missing). */
  project: string;
  /** Default: ['member']; [] grants nothing. */
  roles?: string[];
  domain?: string;
  enabled?: boolean;
  /** Make `project` the user's default_project_id. */
  defaultProject?: boolean;
}

/** A user with a password and roles on a project; made when missing. */
export async function seedUser(
  db: Db,
  opts: SeedUser,
): Promise<{ userId: string; projectId: string }> {
  const domain = opts.domain ?? 'default';
  const projectId = await seedProject(db, opts.project, domain);
  const existing = await findUserByName(db, domain, opts.name);
  const userId = existing?.id ?? hexId();
  if (!existing)
    await db.query(
      `INSERT INTO users (id, domain_id, name, password_hash, enabled, default_project_id, description, created_at)
       VALUES (?, ?, ?, ?, ?, ?, '', ?)`,
      [
        userId,
        domain,
        opts.name,
        await hashPassword(opts.password),
        opts.enabled ?? true,
        opts.defaultProject ? projectId : null,
        CREATED,
      ],
    );
  for (const role of opts.roles ?? ['member']) await seedRole(db, userId, projectId, role);
  return { userId, projectId };
}

/**
 * Keystone v3's `POST /auth/tokens` body: the password method, user and project both in
 * the Default domain.
 */
export const passwordAuth = (who: Credentials) => ({
  auth: {
    identity: {
      methods: ['password'],
      password: { user: { name: who.user, password: who.password, domain: { id: 'default' } } },
    },
    scope: { project: { name: who.project, domain: { id: 'default' } } },
  },
});

/** Logs `who` in at the identity endpoint `authUrl` (…/v3); asserts the 201. */
export async function loginAt(
  authUrl: string,
  who: Credentials,
): Promise<{ token: string; projectId: string; userId: string }> {
  const res = await fetch(`${authUrl}/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(passwordAuth(who)),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const body = (await res.json()) as { token: { project: { id: string }; user: { id: string } } };
  return {
    token: res.headers.get('x-subject-token') as string,
    projectId: body.token.project.id,
    userId: body.token.user.id,
  };
}
