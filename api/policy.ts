/**
 * The project rules every OpenStack-shaped route applies, in one place: who owns what a
 * caller creates, and which rows a caller may see.
 *
 * Invariants: a non-admin sees only rows of its own project (plus what a route's own rule
 * adds: shared and external networks, public images…), and a row it may not see is
 * answered exactly as a missing one (404, left out of lists); only an admin names another
 * project as the owner of what it creates.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../contracts/errors.ts';
import { projectId } from '../contracts/schema.ts';

/** The caller's project (auth.ts admits no service request without one). */
export const callerProjectId = (req: FastifyRequest): string => req.caller.projectId ?? '';

/** The project a list is limited to: the caller's, or none for an admin. */
export const listScope = (req: FastifyRequest): string | undefined =>
  req.caller.isAdmin ? undefined : callerProjectId(req);

/** Whether the caller may see (and so act on) a row owned by `projectId`. */
export const owns = (req: FastifyRequest, projectId: string): boolean =>
  req.caller.isAdmin || projectId === callerProjectId(req);

/**
 * The owner of a new resource: the body's project_id / tenant_id when an admin gives one,
 * else the caller's project. A non-admin naming another project gets Neutron's 400.
 */
export function ownerForCreate(
  req: FastifyRequest,
  body: { project_id?: string | undefined; tenant_id?: string | undefined },
): string {
  const named = body.project_id ?? body.tenant_id;
  if (named === undefined || named === callerProjectId(req)) return callerProjectId(req);
  if (req.caller.isAdmin) return named;
  throw new ApiError(
    'BadRequest',
    "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
  );
}

/** A project id a request names in its path (quotas): a 400 naming it unless well-formed. */
export const namedProject = (value: string): string => projectId().parse(value, 'project_id');
