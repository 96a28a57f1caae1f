/**
 * The body of `POST /v3/auth/tokens`, checked and reduced to what authentication needs:
 * who (a password for a user named by id, or by name within a domain; or an existing
 * token) and which scope (a project by id, or by name within a domain; none; or a scope
 * kumo does not issue).
 *
 * Invariant: pure; every malformed body is a 400 naming the field at fault, in Keystone's
 * words ("Invalid input for field '…'"), before any database read or password hash.
 */
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject } from '../../contracts/schema.ts';

export type DomainRef = { id: string } | { name: string };

export type IdentityRef =
  | {
      method: 'password';
      user: { id: string } | { name: string; domain: DomainRef };
      password: string;
    }
  | { method: 'token'; token: string };

export type ScopeRef =
  | { kind: 'none' }
  | { kind: 'project'; project: { id: string } | { name: string; domain: DomainRef } }
  /** domain, system or trust scope: kumo issues project-scoped and unscoped tokens only. */
  | { kind: 'unsupported'; what: string };

export interface AuthRequest {
  identity: IdentityRef;
  scope: ScopeRef;
}

const invalid = (field: string, reason: string) =>
  new ApiError('BadRequest', `Invalid input for field '${field}': ${reason}.`);

function object(v: unknown, field: string): Record<string, unknown> {
  if (!isPlainObject(v)) throw invalid(field, 'must be an object');
  return v;
}

function text(v: unknown, field: string, max = 255): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    throw invalid(field, `must be a string of 1 to ${max} characters`);
  return v;
}

/** `{id}` or `{name}` (an id wins, as Keystone's); for names a domain may be required. */
function idOrName(v: Record<string, unknown>, field: string): { id: string } | { name: string } {
  if (v.id !== undefined) return { id: text(v.id, `${field}.id`, 64) };
  if (v.name !== undefined) return { name: text(v.name, `${field}.name`) };
  throw invalid(field, 'needs an id or a name');
}

function domainOf(v: Record<string, unknown>, field: string): DomainRef {
  if (v.domain === undefined)
    throw invalid(`${field}.domain`, `a ${field} named by name needs its domain`);
  return idOrName(object(v.domain, `${field}.domain`), `${field}.domain`);
}

function passwordIdentity(v: unknown): IdentityRef {
  const pw = object(v, 'auth.identity.password');
  const user = object(pw.user, 'auth.identity.password.user');
  const password = text(user.password, 'auth.identity.password.user.password', 4096);
  const ref = idOrName(user, 'auth.identity.password.user');
  if ('id' in ref) return { method: 'password', user: ref, password };
  return {
    method: 'password',
    user: { name: ref.name, domain: domainOf(user, 'auth.identity.password.user') },
    password,
  };
}

function identityOf(v: unknown): IdentityRef {
  const identity = object(v, 'auth.identity');
  const methods = identity.methods;
  if (
    !Array.isArray(methods) ||
    methods.length === 0 ||
    !methods.every((m) => typeof m === 'string')
  )
    throw invalid('auth.identity.methods', 'must be a non-empty list of method names');
  // Keystone answers an unsupported method, or a combination it cannot satisfy, with 401.
  if (methods.length !== 1 || (methods[0] !== 'password' && methods[0] !== 'token'))
    throw new ApiError('NotAuthenticated', 'Attempted to authenticate with an unsupported method.');
  if (methods[0] === 'password') return passwordIdentity(identity.password);
  const token = object(identity.token, 'auth.identity.token');
  return { method: 'token', token: text(token.id, 'auth.identity.token.id', 8192) };
}

function scopeOf(v: unknown): ScopeRef {
  if (v === undefined || v === 'unscoped') return { kind: 'none' };
  const scope = object(v, 'auth.scope');
  const kinds = Object.keys(scope);
  if (kinds.length !== 1)
    throw invalid('auth.scope', 'must name exactly one of project, domain, system');
  if (scope.project === undefined) return { kind: 'unsupported', what: kinds[0] as string };
  const project = object(scope.project, 'auth.scope.project');
  const ref = idOrName(project, 'auth.scope.project');
  if ('id' in ref) return { kind: 'project', project: ref };
  return {
    kind: 'project',
    project: { name: ref.name, domain: domainOf(project, 'auth.scope.project') },
  };
}

export function parseAuthRequest(body: unknown): AuthRequest {
  const root = object(body, 'auth');
  const auth = object(root.auth, 'auth');
  return { identity: identityOf(auth.identity), scope: scopeOf(auth.scope) };
}
