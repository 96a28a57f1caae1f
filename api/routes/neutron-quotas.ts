/**
 * Neutron's quota API (quotasv2 and quota_details): GET /v2.0/quotas, GET /v2.0/quotas/
 * project, GET/PUT/DELETE /v2.0/quotas/{project_id}, GET …/{project_id}/default and
 * …/{project_id}/details; and the guard network, subnet, port, router, floating IP, security
 * group (rule) and LBaaS v1 pool, VIP, member and health monitor creates carry.
 *
 * Invariants: a project reads its own quotas; another project's, the list, and every
 * change need an admin (Neutron's get_quota / update_quota / delete_quota, 403 otherwise);
 * a PUT is validated whole (known resources, integers from -1) before anything is written,
 * and DELETE resets only Neutron's resources (Nova's limits share the table); limits come
 * from [quotas] (QUOTA_DEFAULTS when absent) overlaid with the project's own rows.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject } from '../../contracts/schema.ts';
import type { Queryable } from '../db/index.ts';
import { countOwned, type NeutronQuotaResource, type QuotaGuard } from '../db/neutron.ts';
import { projectQuotas, type QuotaLimits, setProjectQuotas } from '../db/quotas.ts';
import { type AppDeps, QUOTA_DEFAULTS } from '../deps.ts';
import { callerProjectId, namedProject } from '../policy.ts';
import { disallowed, isAdmin } from './neutron-policy.ts';

/** Neutron's DB_INTEGER_MAX_VALUE. */
const MAX_LIMIT = 2 ** 31 - 1;
const COUNTED: readonly string[] = [
  'network',
  'subnet',
  'port',
  'router',
  'floatingip',
  'security_group',
  'security_group_rule',
  'pool',
  'vip',
  'member',
  'health_monitor',
];
/** Keys a PUT may carry beside the limits (openstack quota set --force / --check-limit). */
const OPTIONS = ['force', 'check_limit'];

const defaultsOf = (deps: AppDeps): QuotaLimits =>
  deps.settings.quotas?.neutron ?? QUOTA_DEFAULTS.neutron;

/** The quota guard of an API create (network, subnet, port or floating IP). */
export const neutronQuota = (deps: AppDeps): QuotaGuard => ({
  engine: deps.db.engine,
  defaults: defaultsOf(deps),
});

type ById = FastifyRequest<{ Params: { id: string } }>;

/** get_quota for another project than the caller's: admin only. */
/** The project the path names, if the caller may read its quotas (another's: admin only). */
function mayRead(req: ById): string {
  const projectId = namedProject(req.params.id);
  if (projectId !== callerProjectId(req) && !isAdmin(req)) throw disallowed('get_quota');
  return projectId;
}

function requireQuotaAdmin(
  req: FastifyRequest,
  action: 'get_quota' | 'update_quota' | 'delete_quota',
) {
  if (!isAdmin(req)) throw disallowed(action);
}

/** Neutron's convert_to_int and type:range [-1, MAX]. */
function limitOf(resource: string, raw: unknown): number {
  const n = typeof raw === 'string' && /^-?\d{1,12}$/.test(raw.trim()) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n))
    throw new ApiError(
      'InvalidInput',
      `Invalid input for operation: '${String(raw).slice(0, 40)}' is not an integer.`,
    );
  if (n < -1)
    throw new ApiError(
      'HTTPBadRequest',
      `Invalid input for ${resource}. Reason: '${n}' is too small - must be at least '-1'.`,
    );
  if (n > MAX_LIMIT)
    throw new ApiError(
      'HTTPBadRequest',
      `Invalid input for ${resource}. Reason: '${n}' is too large - must be no larger than '${MAX_LIMIT}'.`,
    );
  return n;
}

/** A PUT body → the limits it sets, and whether to check them against usage. */
export function parseQuotaUpdate(body: unknown, known: QuotaLimits) {
  if (!isPlainObject(body) || Object.keys(body).length === 0)
    throw new ApiError('HTTPBadRequest', 'Resource body required');
  const inner = body.quota;
  if (!isPlainObject(inner))
    throw new ApiError('HTTPBadRequest', "Unable to find 'quota' in request body");
  const unknown = Object.keys(inner).filter(
    (k) => !Object.hasOwn(known, k) && !OPTIONS.includes(k),
  );
  if (unknown.length)
    throw new ApiError('HTTPBadRequest', `Unrecognized attribute(s) '${unknown.join(', ')}'`);
  const limits: Record<string, number> = {};
  for (const [k, v] of Object.entries(inner))
    if (Object.hasOwn(known, k)) limits[k] = limitOf(k, v);
  return { limits, checkLimit: inner.check_limit === true || inner.check_limit === 'true' };
}

const usedOf = (q: Queryable, resource: string, projectId: string) =>
  COUNTED.includes(resource)
    ? countOwned(q, resource as NeutronQuotaResource, projectId)
    : Promise.resolve(0);

/** quota_details: `{limit, used, reserved}` per resource. */
async function details(q: Queryable, projectId: string, defaults: QuotaLimits) {
  const limits = await projectQuotas(q, projectId, defaults);
  const out: Record<string, { limit: number; used: number; reserved: number }> = {};
  for (const [resource, limit] of Object.entries(limits))
    out[resource] = { limit, used: await usedOf(q, resource, projectId), reserved: 0 };
  return out;
}

/** --check-limit: no new limit below what the project already uses (-1 always fits). */
async function checkAgainstUsage(q: Queryable, projectId: string, limits: Record<string, number>) {
  for (const [resource, limit] of Object.entries(limits)) {
    const used = await usedOf(q, resource, projectId);
    if (limit !== -1 && used > limit)
      throw new ApiError(
        'HTTPBadRequest',
        `Quota limit ${limit} for ${resource} must be greater than or equal to already used ${used}`,
      );
  }
}

/** The projects with limits of their own, each with all its limits (admin's quota list). */
async function allQuotas(q: Queryable, defaults: QuotaLimits) {
  const names = Object.keys(defaults);
  const rows = await q.query<{ project_id: string }>(
    `SELECT DISTINCT project_id FROM quotas WHERE resource IN (${names.map(() => '?').join(', ')})
      ORDER BY project_id`,
    names,
  );
  const out = [];
  for (const { project_id } of rows)
    out.push({
      ...(await projectQuotas(q, project_id, defaults)),
      project_id,
      tenant_id: project_id,
    });
  return out;
}

function readRoutes(app: FastifyInstance, deps: AppDeps) {
  const defaults = defaultsOf(deps);
  app.get('/v2.0/quotas', async (req) => {
    requireQuotaAdmin(req, 'get_quota');
    return { quotas: await allQuotas(deps.db, defaults) };
  });
  app.get('/v2.0/quotas/project', async (req) => ({
    project: { project_id: callerProjectId(req) },
  }));
  app.get('/v2.0/quotas/tenant', async (req) => ({
    tenant: { tenant_id: callerProjectId(req) },
  }));
  app.get('/v2.0/quotas/:id', async (req: ById) => {
    const project = mayRead(req);
    return { quota: await projectQuotas(deps.db, project, defaults) };
  });
  app.get('/v2.0/quotas/:id/default', async (req: ById) => {
    mayRead(req);
    return { quota: { ...defaults } };
  });
  app.get('/v2.0/quotas/:id/details', async (req: ById) => {
    const project = mayRead(req);
    return { quota: await details(deps.db, project, defaults) };
  });
}

export function neutronQuotaRoutes(app: FastifyInstance, deps: AppDeps) {
  const defaults = defaultsOf(deps);
  readRoutes(app, deps);
  app.put('/v2.0/quotas/:id', async (req: ById) => {
    requireQuotaAdmin(req, 'update_quota');
    const { limits, checkLimit } = parseQuotaUpdate(req.body, defaults);
    const projectId = namedProject(req.params.id);
    await deps.db.transaction(async (tx) => {
      if (checkLimit) await checkAgainstUsage(tx, projectId, limits);
      await setProjectQuotas(tx, projectId, limits);
    });
    deps.log.info({ projectId, limits }, 'network quotas set');
    return { quota: await projectQuotas(deps.db, projectId, defaults) };
  });
  app.delete('/v2.0/quotas/:id', async (req: ById, reply) => {
    requireQuotaAdmin(req, 'delete_quota');
    const reset = Object.fromEntries(Object.keys(defaults).map((k) => [k, undefined]));
    const projectId = namedProject(req.params.id);
    await deps.db.transaction((tx) => setProjectQuotas(tx, projectId, reset));
    deps.log.info({ projectId }, 'network quotas reset');
    return reply.status(204).send();
  });
}
