/**
 * Cinder's HTTP conventions, shared by the volume, snapshot, type, quota and message
 * routes: errors in Cinder's shape (`{"itemNotFound": {"message", "code"}}`, the same
 * webob faults as Nova's), the admin policy check, the project in the path, and the
 * self/bookmark links.
 *
 * Invariants: a request whose path names another project than its token's is Cinder's
 * 400 "Malformed request url" before anything is read; a row the caller may not see is
 * answered exactly as a missing one (404); links start with the configured public
 * endpoint plus the root the request came through, never the Host header.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { Logger } from '../../core/log.ts';
import { errorHandler } from '../http.ts';
import { callerProjectId, owns } from '../policy.ts';
import type { Query } from '../query.ts';

/** A request under /v3/{project_id}, with Cinder's list query. */
export type InProject<T extends object = object> = FastifyRequest<{
  Params: { project_id: string } & T;
  Querystring: Query;
}>;
export type ById = InProject<{ id: string }>;

/** Errors in Cinder's shape for every route of an encapsulated scope (also for 401s). */
export function installCinderErrors(scope: FastifyInstance, log: Logger) {
  scope.setErrorHandler(errorHandler(log, 'cinder'));
}

/** Cinder's policy refusal (403). */
export function requireAdminCinder(req: FastifyRequest, rule: string) {
  if (!req.caller.isAdmin)
    throw new ApiError('PolicyNotAuthorized', `Policy doesn't allow ${rule} to be performed.`);
}

/** The project the path names: the token's own, else Cinder's 400 (wsgi.py _process_stack). */
export function pathProject(req: FastifyRequest): string {
  const named = (req.params as { project_id: string }).project_id;
  if (named !== callerProjectId(req)) throw new ApiError('BadRequest', 'Malformed request url');
  return named;
}

/** A row the caller may see (admin, or its project's); undefined otherwise. */
export const visible = <T extends { project_id: string }>(
  req: FastifyRequest,
  row: T | undefined,
): T | undefined => (row && owns(req, row.project_id) ? row : undefined);

export const volumeNotFound = (id: string) =>
  new ApiError('NotFound', `Volume ${id} could not be found.`);
export const snapshotNotFound = (id: string) =>
  new ApiError('NotFound', `Snapshot ${id} could not be found.`);

/** Cinder's self (under /v3/{project}) and bookmark (at /{project}) links. */
export const cinderLinks = (req: FastifyRequest, project: string, kind: string, id: string) => [
  { rel: 'self', href: `${req.publicEndpoint}/v3/${project}/${kind}/${id}` },
  { rel: 'bookmark', href: `${req.publicEndpoint}/${project}/${kind}/${id}` },
];

/** The user id a create records (Keystone's user, or the static token's role). */
export const callerUser = (req: FastifyRequest) => req.caller.userId ?? req.role;
