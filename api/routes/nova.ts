/**
 * Nova's (and Glance's, as Kumo serves it) HTTP conventions, shared by the flavor, server
 * and image routes: the error body `{"<kind>": {code, message}}`, the admin policy check
 * and the self/bookmark links.
 *
 * Invariant: every error on a scope that installs these handlers — 401s included — leaves
 * in Nova's shape with a message naming what was wrong; only 5xx errors are logged.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { novaError, ReadOnlyAttribute } from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import { ValidationError } from '../../contracts/schema.ts';
import type { Logger } from '../../core/log.ts';

/** Fastify's own errors (body parsing, content type) → status and message. */
function fromFastify(err: FastifyError, req: FastifyRequest): [number, string] {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return [413, 'Request body is larger than the configured limit.'];
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return [415, `Unsupported Content-Type: ${req.headers['content-type'] ?? '(none)'}`];
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return [400, 'Request body is empty.'];
    default:
      if (err.statusCode === 400 || err instanceof SyntaxError)
        return [400, `Malformed request body: ${err.message}`];
      return [500, 'Unexpected API Error. Please report this at the Kumo issue tracker.'];
  }
}

function statusOf(err: FastifyError, req: FastifyRequest): [number, string] {
  if (err instanceof ApiError) return [err.status, err.message];
  if (err instanceof ValidationError)
    return [
      400,
      err.field
        ? `Invalid input for field/attribute ${err.field}. Value: ${err.reason}`
        : `Invalid input: ${err.reason}`,
    ];
  if (err instanceof ReadOnlyAttribute) return [403, err.message];
  return fromFastify(err, req);
}

/** Errors in Nova's shape for every route of an encapsulated scope (also for 401s). */
export function installNovaErrors(scope: FastifyInstance, log: Logger) {
  scope.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const [status, message] = statusOf(err, req);
    if (status >= 500) log.error({ err: err.message, url: req.url }, 'request failed');
    void reply.status(status).send(novaError(status, message));
  });
}

export function requireAdminNova(req: FastifyRequest, rule: string) {
  if (req.role !== 'admin')
    throw new ApiError('PolicyNotAuthorized', `Policy doesn't allow ${rule} to be performed.`);
}

/** The endpoint's URL as the client reached it, plus `prefix` ('' or '/v2.1'). */
export const base = (req: FastifyRequest, prefix: string) =>
  `${req.protocol}://${req.headers.host ?? req.hostname}${prefix}`;

/** Nova's self (under the request's prefix) and bookmark (at the root) links. */
export const links = (req: FastifyRequest, prefix: string, kind: string, id: string) => [
  { rel: 'self' as const, href: `${base(req, prefix)}/${kind}/${encodeURIComponent(id)}` },
  { rel: 'bookmark' as const, href: `${base(req, '')}/${kind}/${encodeURIComponent(id)}` },
];
