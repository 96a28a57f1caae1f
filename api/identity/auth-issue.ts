/**
 * Authentication: from a checked request (auth-body.ts) to the claims of a new token and
 * the rows its body names; and the same rows for an existing token (validation).
 *
 * Invariants: every refusal is Keystone's one 401 ("The request you have made requires
 * authentication."), whatever failed — unknown or disabled user, domain or project, wrong
 * password, no role on the project, an invalid or revoked token — so an answer tells an
 * attacker nothing; an unknown user costs a full password hash, as a known one does; the
 * roles a token carries are read at issue, implied ones added; a token from a token keeps
 * its expiry and its audit chain ([new, original]).
 */
import { ApiError } from '../../contracts/errors.ts';
import { expandRoles } from '../caller.ts';
import type { Queryable, Row } from '../db/index.ts';
import type { AuthRequest, DomainRef, IdentityRef, ScopeRef } from './auth-body.ts';
import {
  type DomainRow,
  findDomainByName,
  findProjectByName,
  findUserByName,
  getDomain,
  getProject,
  getUser,
  type ProjectRow,
  type RoleRow,
  rolesOnProject,
  type UserRow,
} from './lookup.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import type { Revocations } from './revocations.ts';
import type { TokenSubject } from './token-view.ts';
import { type KeyRing, newAuditId, type TokenClaims, verifyToken } from './tokens.ts';

export const UNAUTHORIZED = 'The request you have made requires authentication.';
const refuse = () => new ApiError('NotAuthenticated', UNAUTHORIZED);

export interface IssueContext {
  ring: KeyRing;
  revocations: Pick<Revocations, 'isRevoked' | 'isRevokedNow'>;
  nowMs: number;
  /** Seconds a new token lives. */
  expiration: number;
}

async function enabledDomain(q: Queryable, ref: DomainRef): Promise<DomainRow> {
  const d = 'id' in ref ? await getDomain(q, ref.id) : await findDomainByName(q, ref.name);
  if (!d?.enabled) throw refuse();
  return d;
}

/** The user and domain a password authenticates, or a 401. */
async function passwordUser(q: Queryable, id: Extract<IdentityRef, { method: 'password' }>) {
  const user =
    'id' in id.user
      ? await getUser(q, id.user.id)
      : await findUserByName(q, (await enabledDomain(q, id.user.domain)).id, id.user.name);
  // An unknown user costs a hash too, so timing does not tell which names exist.
  if (!user) await hashPassword(id.password);
  if (!user || !(await verifyPassword(id.password, user.password_hash))) throw refuse();
  return user;
}

/**
 * The claims of a token given as an identity (rescoping), or a 401. The database is asked
 * too: a replica whose list has not yet heard a revocation must not mint a fresh token
 * from the revoked one.
 */
async function parentClaims(q: Queryable, token: string, ctx: IssueContext) {
  const v = verifyToken(token, ctx.ring, ctx.nowMs);
  if (!v.ok || ctx.revocations.isRevoked(v.claims)) throw refuse();
  if (await ctx.revocations.isRevokedNow(q, v.claims)) throw refuse();
  return v.claims;
}

async function activeUser(q: Queryable, user: UserRow | undefined) {
  const domain = user?.enabled ? await getDomain(q, user.domain_id) : undefined;
  if (!user || !domain?.enabled) throw refuse();
  return { user, domain };
}

async function activeProject(q: Queryable, project: ProjectRow | undefined) {
  const domain = project?.enabled ? await getDomain(q, project.domain_id) : undefined;
  if (!project || !domain?.enabled) return undefined;
  return { row: project, domain };
}

/** The role rows named by `names`, in name order (unknown names left out). */
async function roleRows(q: Queryable, names: readonly string[]): Promise<RoleRow[]> {
  const all = await q.query<RoleRow & Row>('SELECT * FROM roles ORDER BY name');
  return all.filter((r) => names.includes(r.name));
}

async function requestedProject(q: Queryable, scope: Extract<ScopeRef, { kind: 'project' }>) {
  const p = scope.project;
  const row =
    'id' in p
      ? await getProject(q, p.id)
      : await findProjectByName(q, (await enabledDomain(q, p.domain)).id, p.name);
  const project = await activeProject(q, row);
  if (!project) throw refuse();
  return project;
}

/**
 * The project a token is scoped to: the one asked for; with no scope, the user's
 * default project when it is enabled and the user has a role there (else unscoped).
 */
async function scopeProject(q: Queryable, scope: ScopeRef, user: UserRow) {
  if (scope.kind === 'unsupported') throw refuse();
  if (scope.kind === 'project') return { ...(await requestedProject(q, scope)), required: true };
  if (!user.default_project_id) return undefined;
  const project = await activeProject(q, await getProject(q, user.default_project_id));
  return project && { ...project, required: false };
}

/** A new token's claims and what its body names; a 401 when anything is amiss. */
export async function authenticate(q: Queryable, req: AuthRequest, ctx: IssueContext) {
  const parent =
    req.identity.method === 'token' ? await parentClaims(q, req.identity.token, ctx) : undefined;
  const found =
    req.identity.method === 'password'
      ? await passwordUser(q, req.identity)
      : await getUser(q, (parent as TokenClaims).userId);
  const { user, domain } = await activeUser(q, found);
  const scoped = await scopeProject(q, req.scope, user);
  const granted = scoped
    ? (await rolesOnProject(q, user.id, scoped.row.id)).map((r) => r.name)
    : [];
  if (scoped?.required && granted.length === 0) throw refuse();
  const project = granted.length > 0 ? scoped : undefined;
  const roles = project ? expandRoles(granted) : [];
  const claims: TokenClaims = {
    userId: user.id,
    projectId: project ? project.row.id : null,
    roles,
    methods: parent ? ['token', ...parent.methods.filter((m) => m !== 'token')] : ['password'],
    issuedAt: ctx.nowMs,
    expiresAt: parent ? parent.expiresAt : ctx.nowMs + ctx.expiration * 1000,
    auditIds: parent ? [newAuditId(), parent.auditIds.at(-1) as string] : [newAuditId()],
  };
  const subject: TokenSubject = {
    user,
    userDomain: domain,
    ...(project ? { project: { row: project.row, domain: project.domain } } : {}),
    roles: await roleRows(q, roles),
  };
  return { claims, subject };
}

/** The rows an existing token names; undefined when its user or project is gone. */
export async function subjectOf(
  q: Queryable,
  claims: TokenClaims,
): Promise<TokenSubject | undefined> {
  const user = await getUser(q, claims.userId);
  const userDomain = user && (await getDomain(q, user.domain_id));
  if (!user || !userDomain) return undefined;
  if (claims.projectId === null) return { user, userDomain, roles: [] };
  const row = await getProject(q, claims.projectId);
  const domain = row && (await getDomain(q, row.domain_id));
  if (!row || !domain) return undefined;
  return { user, userDomain, project: { row, domain }, roles: await roleRows(q, claims.roles) };
}
