/**
 * Nova's (and Glance's, as Kumo serves it) HTTP conventions, shared by the flavor, server
 * and image routes: the error body `{"<kind>": {code, message}}`, the admin policy check
 * and the self/bookmark links.
 *
 * Invariants: every error on a scope that installs these handlers — 401s included — leaves
 * in Nova's shape (http.ts maps it to the catalogue) with a message naming what was wrong;
 * only 5xx errors are logged. Links start with the configured public endpoint, never with
 * the request's Host header.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { Logger } from '../../core/log.ts';
import { errorHandler } from '../http.ts';

/** Errors in Nova's shape for every route of an encapsulated scope (also for 401s). */
export function installNovaErrors(scope: FastifyInstance, log: Logger) {
  scope.setErrorHandler(errorHandler(log, 'nova'));
}

export function requireAdminNova(req: FastifyRequest, rule: string) {
  if (req.role !== 'admin')
    throw new ApiError('PolicyNotAuthorized', `Policy doesn't allow ${rule} to be performed.`);
}

/** The endpoint's public URL, plus `prefix` ('' or '/v2.1'). */
export const base = (req: FastifyRequest, prefix: string) => `${req.publicEndpoint}${prefix}`;

/** Nova's self (under the request's prefix) and bookmark (at the root) links. */
export const links = (
  req: FastifyRequest,
  prefix: string,
  kind: string,
  id: string,
): [{ rel: 'self'; href: string }, { rel: 'bookmark'; href: string }] => [
  { rel: 'self', href: `${base(req, prefix)}/${kind}/${encodeURIComponent(id)}` },
  { rel: 'bookmark', href: `${base(req, '')}/${kind}/${encodeURIComponent(id)}` },
];
