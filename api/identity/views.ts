/**
 * Keystone v3's JSON views of domains, projects, users, roles and role assignments, as
 * keystone/api/*.py render them (links, options, tags, is_domain, parent_id…).
 *
 * Invariants: pure functions of a row and the identity base URL (the configured public
 * endpoint, never a request header); a user's password hash never appears in any view;
 * attributes Keystone keeps as "extra" (email, description of a user, default project)
 * appear only when set, as Keystone shows them.
 */
import type { DomainRow, ProjectRow, RoleRow, UserRow } from './lookup.ts';

/** `http://host:5000` (no trailing slash): links are `${base}/v3/...`. */
export type Base = string;

const self = (base: Base, path: string) => ({ self: `${base}/v3/${path}` });

/** A collection: `{<key>: items, links: {self, previous, next}}`. */
export const listView = (key: string, items: unknown[], selfUrl: string) => ({
  [key]: items,
  links: { self: selfUrl, previous: null, next: null },
});

export const domainView = (base: Base, d: DomainRow) => ({
  id: d.id,
  name: d.name,
  description: d.description,
  enabled: d.enabled,
  tags: [],
  options: {},
  links: self(base, `domains/${d.id}`),
});

export const projectView = (base: Base, p: ProjectRow) => ({
  id: p.id,
  name: p.name,
  domain_id: p.domain_id,
  description: p.description,
  enabled: p.enabled,
  parent_id: p.domain_id,
  is_domain: false,
  tags: [],
  options: {},
  links: self(base, `projects/${p.id}`),
});

export const userView = (base: Base, u: UserRow) => ({
  id: u.id,
  name: u.name,
  domain_id: u.domain_id,
  enabled: u.enabled,
  password_expires_at: null,
  options: {},
  ...(u.default_project_id === null ? {} : { default_project_id: u.default_project_id }),
  ...(u.email === null ? {} : { email: u.email }),
  ...(u.description === '' ? {} : { description: u.description }),
  links: self(base, `users/${u.id}`),
});

export const roleView = (base: Base, r: RoleRow) => ({
  id: r.id,
  name: r.name,
  domain_id: null,
  description: r.description,
  options: {},
  links: self(base, `roles/${r.id}`),
});

/** A role with only what an implied-role rule shows of it. */
export const roleRef = (base: Base, r: RoleRow) => ({
  id: r.id,
  name: r.name,
  links: self(base, `roles/${r.id}`),
});

/** One assignment as the list shows it; names present when include_names was asked. */
export interface AssignmentRow {
  user_id: string;
  target_type: 'project' | 'domain';
  target_id: string;
  role_id: string;
  /** The directly assigned role this one is implied by (effective lists only). */
  prior_role_id?: string;
  role_name?: string;
  user_name?: string;
  user_domain_id?: string;
  user_domain_name?: string;
  target_name?: string;
  target_domain_id?: string;
  target_domain_name?: string;
}

function scopeOf(a: AssignmentRow, names: boolean) {
  const ref: Record<string, unknown> = { id: a.target_id };
  if (names) {
    ref.name = a.target_name;
    if (a.target_type === 'project')
      ref.domain = { id: a.target_domain_id, name: a.target_domain_name };
  }
  return { [a.target_type]: ref };
}

export function assignmentView(base: Base, a: AssignmentRow, names: boolean) {
  const grant = `${a.target_type}s/${a.target_id}/users/${a.user_id}/roles/${a.prior_role_id ?? a.role_id}`;
  return {
    role: names ? { id: a.role_id, name: a.role_name } : { id: a.role_id },
    user: names
      ? {
          id: a.user_id,
          name: a.user_name,
          domain: { id: a.user_domain_id, name: a.user_domain_name },
        }
      : { id: a.user_id },
    scope: scopeOf(a, names),
    links: {
      assignment: `${base}/v3/${grant}`,
      ...(a.prior_role_id ? { prior_role: `${base}/v3/roles/${a.prior_role_id}` } : {}),
    },
  };
}
