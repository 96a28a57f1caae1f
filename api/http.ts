/**
 * HTTP plumbing shared by every route: token authentication and Neutron-shaped errors.
 *
 * Invariants: no route runs without a valid X-Auth-Token (401 otherwise); admin-only
 * routes refuse member tokens with 403; every error leaves as
 * `{"NeutronError": {type, message, detail}}` with a message naming what was wrong.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, neutronError } from '../contracts/errors.ts';
import { ValidationError } from '../contracts/schema.ts';
import type { Logger } from '../core/log.ts';

/** `service`: compute agents' token, accepted only on routes with `config.allowService`. */
export type Role = 'admin' | 'member' | 'service';

export interface AuthConfig {
  adminToken: string;
  memberTokens: readonly string[];
  serviceTokens?: readonly string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    role: Role;
  }
  interface FastifyContextConfig {
    /** The route also accepts the service token (image downloads by compute agents). */
    allowService?: boolean;
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function roleOf(token: string, auth: AuthConfig): Role | undefined {
  if (same(token, auth.adminToken)) return 'admin';
  if (auth.memberTokens.some((t) => same(token, t))) return 'member';
  return auth.serviceTokens?.some((t) => same(token, t)) ? 'service' : undefined;
}

export function installAuth(app: FastifyInstance, auth: AuthConfig) {
  app.decorateRequest('role', 'member');
  app.addHook('onRequest', async (req) => {
    const header = req.headers['x-auth-token'];
    const token = Array.isArray(header) ? header[0] : header;
    if (!token)
      throw new ApiError(
        'NotAuthenticated',
        'Authentication required: the X-Auth-Token header is missing.',
      );
    const role = roleOf(token, auth);
    if (!role)
      throw new ApiError(
        'NotAuthenticated',
        'Authentication failed: the X-Auth-Token is not valid.',
      );
    if (role === 'service' && !req.routeOptions.config?.allowService)
      throw new ApiError('PolicyNotAuthorized', 'The service token may only read images.');
    req.role = role;
  });
}

/** Admin-only routes call this first; `rule` is the Neutron policy rule's name. */
export function requireAdmin(req: FastifyRequest, rule: string) {
  if (req.role !== 'admin')
    throw new ApiError('PolicyNotAuthorized', `(rule:${rule}) is disallowed by policy`);
}

function fromFastify(err: FastifyError): ApiError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(
        'RequestEntityTooLarge',
        'Request body is larger than the configured limit.',
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('UnsupportedMediaType', 'Request bodies must be application/json.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('BadRequest', 'Request body is empty.');
    default:
      if (err.statusCode === 400 || err instanceof SyntaxError) {
        return new ApiError('BadRequest', `Malformed request body: ${err.message}`);
      }
      return new ApiError('InternalError', 'Request failed due to an internal error.');
  }
}

export function installErrors(app: FastifyInstance, log: Logger) {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const apiErr =
      err instanceof ApiError
        ? err
        : err instanceof ValidationError
          ? new ApiError('BadRequest', `Invalid input: ${err.message}`)
          : fromFastify(err);
    if (apiErr.status >= 500) log.error({ err: err.message, url: req.url }, 'request failed');
    void reply.status(apiErr.status).send(neutronError(apiErr.type, apiErr.message, apiErr.detail));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .status(404)
      .send(
        neutronError(
          'NotFound',
          `The resource could not be found: ${req.method} ${req.url.split('?')[0]}`,
        ),
      );
  });
}
