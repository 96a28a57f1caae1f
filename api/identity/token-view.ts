/**
 * Keystone's token body (`{"token": {...}}`, as keystone's render_token gives it) from a
 * token's claims and the rows they name.
 *
 * Invariants: pure; times are ISO 8601 with six fractional digits and `Z`, as Keystone
 * writes them; a project-scoped token carries `project`, `is_domain`, `roles` (implied
 * ones included, each `{id, name}`) and, unless asked not to, the catalog; an unscoped
 * token carries none of those, as Keystone's.
 */
import type { CatalogService } from './catalog.ts';
import { tokenCatalog } from './catalog.ts';
import type { DomainRow, ProjectRow, RoleRow, UserRow } from './lookup.ts';
import type { TokenClaims } from './tokens.ts';

/** What a token names, read from the database. */
export interface TokenSubject {
  user: UserRow;
  userDomain: DomainRow;
  /** Present when the token is project-scoped. */
  project?: { row: ProjectRow; domain: DomainRow };
  /** The rows of the token's roles (implied ones included). */
  roles: RoleRow[];
}

/** `2026-11-22T10:00:00.123000Z`: milliseconds padded to Keystone's microseconds. */
export const keystoneTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');

const ref = (row: { id: string; name: string }) => ({ id: row.id, name: row.name });

export function tokenBody(
  claims: TokenClaims,
  subject: TokenSubject,
  catalog: readonly CatalogService[] | undefined,
) {
  const token: Record<string, unknown> = {
    methods: claims.methods,
    user: {
      domain: ref(subject.userDomain),
      id: subject.user.id,
      name: subject.user.name,
      password_expires_at: null,
    },
    audit_ids: claims.auditIds,
    expires_at: keystoneTime(claims.expiresAt),
    issued_at: keystoneTime(claims.issuedAt),
  };
  const project = subject.project;
  if (project) {
    token.project = { domain: ref(project.domain), ...ref(project.row) };
    token.is_domain = false;
    token.roles = subject.roles.map(ref);
    if (catalog) token.catalog = tokenCatalog(catalog, project.row.id);
  }
  return { token };
}
