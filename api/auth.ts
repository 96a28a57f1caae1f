/**
 * Authentication and the policy rules every route shares: who the caller is (caller.ts),
 * from the X-Auth-Token, before any route runs.
 *
 * Invariants: no route runs without a valid token (401 otherwise) unless it is marked
 * `config.public` (version documents); the static tokens of kumo.conf are compared in
 * constant time and tried first, then the Authenticator (signed Keystone tokens, verified
 * with no database read); a token that is not scoped to a project reaches no service
 * route (403); on the service API the reader role never writes: any method but GET and
 * HEAD answers 403 before the route runs, so a reader's refused request changes nothing; the service
 * token reaches only routes marked `config.allowService`.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../contracts/errors.ts';
import {
  type Authenticator,
  type Caller,
  type Role,
  roleOfCaller,
  staticCaller,
} from './caller.ts';

export interface AuthConfig {
  adminToken: string;
  memberTokens: readonly string[];
  serviceTokens?: readonly string[];
  /** Keystone tokens (kumo-api's own or an external Keystone's); static tokens only when absent. */
  tokens?: Authenticator;
  /**
   * The identity listener: unscoped tokens are admitted and readers may write (revoke
   * their own token, change their password) — its routes check scope and roles themselves.
   */
  identityListener?: boolean;
  /**
   * Keystone's URL, sent on every 401 as keystonemiddleware does
   * (`WWW-Authenticate: Keystone uri="…"`), so a client knows where to log in.
   */
  authUri?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
    /** roleOfCaller(caller): what most routes branch on. */
    role: Role;
  }
  interface FastifyContextConfig {
    /** The route also accepts the service token (image downloads by compute agents). */
    allowService?: boolean;
    /** The route answers without a token (version discovery). */
    public?: boolean;
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The caller of a kumo.conf token, or undefined when `token` is none of them. */
export function staticTokenCaller(token: string, auth: AuthConfig): Caller | undefined {
  if (same(token, auth.adminToken)) return staticCaller('admin');
  if (auth.memberTokens.some((t) => same(token, t))) return staticCaller('member');
  return auth.serviceTokens?.some((t) => same(token, t)) ? staticCaller('service') : undefined;
}

const READS = new Set(['GET', 'HEAD']);

function tokenOf(req: FastifyRequest): string | undefined {
  const header = req.headers['x-auth-token'];
  return (Array.isArray(header) ? header[0] : header) || undefined;
}

/** The policy every route shares, once the caller is known. */
function admit(req: FastifyRequest, caller: Caller, auth: AuthConfig) {
  if (caller.kind === 'service') {
    if (!req.routeOptions.config?.allowService)
      throw new ApiError('PolicyNotAuthorized', 'The service token may only read images.');
    return;
  }
  if (caller.projectId === null && !auth.identityListener)
    throw new ApiError(
      'PolicyNotAuthorized',
      'The token is not scoped to a project: ask for a project-scoped token.',
    );
  if (!READS.has(req.method) && !caller.roles.includes('member') && !auth.identityListener)
    throw new ApiError(
      'PolicyNotAuthorized',
      `The reader role may only read: ${req.method} needs the member or admin role.`,
    );
}

export function installAuth(app: FastifyInstance, auth: AuthConfig) {
  app.decorateRequest('role', 'member');
  app.decorateRequest('caller', null as unknown as Caller);
  // A 401 carries keystonemiddleware's challenge, so a client knows where to log in.
  const challenge = (reply: FastifyReply, message: string) => {
    if (auth.authUri) void reply.header('www-authenticate', `Keystone uri="${auth.authUri}"`);
    return new ApiError('NotAuthenticated', message);
  };
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config?.public) return;
    const token = tokenOf(req);
    if (!token)
      throw challenge(reply, 'Authentication required: the X-Auth-Token header is missing.');
    const caller = staticTokenCaller(token, auth) ?? (await auth.tokens?.authenticate(token));
    if (!caller) throw challenge(reply, 'Authentication failed: the X-Auth-Token is not valid.');
    admit(req, caller, auth);
    req.caller = caller;
    req.role = roleOfCaller(caller);
  });
}
