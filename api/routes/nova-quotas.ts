/**
 * Nova's quotas as 2.1–2.35 show them (nova/api/openstack/compute/quota_sets.py,
 * quota_classes.py, limits.py): GET /os-quota-sets/{project}, /defaults, /detail, PUT and
 * DELETE; GET /os-quota-class-sets/default; GET /limits. Served at the endpoint root and
 * under /v2.1, as the servers are.
 *
 * Invariants: a project's quotas are shown to its own callers and to admins (Nova's
 * PROJECT_READER_OR_ADMIN, 403 otherwise), changed and reset only by admins; a PUT is
 * checked whole (every key known, every value an integer -1..2^31-1) before anything is
 * stored, so a refused one changes nothing; a limit below what the project already uses
 * is Nova's 400 unless `force` is true (quota_sets.py _validate_quota_limit, whose minimum
 * is the counted in_use), checked under the project's quota lock in the transaction that
 * stores the limits, so a concurrent server create cannot slip in between; usage is
 * counted from the project's live servers, never stored.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject, ValidationError } from '../../contracts/schema.ts';
import type { Queryable } from '../db/index.ts';
import { countKeypairs } from '../db/keypairs.ts';
import {
  deleteProjectQuotas,
  lockQuota,
  projectQuotas,
  type QuotaLimits,
  setProjectQuotas,
} from '../db/quotas.ts';
import { projectUsage } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import { callerProjectId, namedProject } from '../policy.ts';
import { type Query, values } from '../query.ts';
import { callerUserId } from './keypairs.ts';
import { installNovaErrors, requireAdminNova } from './nova.ts';
import { novaDefaults } from './nova-quota-rules.ts';

type ByProject = FastifyRequest<{ Params: { project: string } }>;
type Listing = FastifyRequest<{ Querystring: Query }>;

const MAX_INT = 2 ** 31 - 1;
const sorted = (limits: QuotaLimits): QuotaLimits =>
  Object.fromEntries(Object.entries(limits).sort(([a], [b]) => a.localeCompare(b)));

/** What each shown key has in use: servers, and key pairs (Nova counts those per user: the
 * caller's own, in the caller's own project); the rest is 0 in Kumo. */
async function inUse(deps: AppDeps, project: string, keypairUser?: string) {
  const used = await projectUsage(deps.db, project);
  const keyPairs = keypairUser === undefined ? 0 : await countKeypairs(deps.db, keypairUser);
  const counted: Record<string, number> = { ...used, key_pairs: keyPairs };
  return counted;
}

/** The user whose key pairs a quota detail of `project` counts: the caller, in its project. */
const keypairUserOf = (req: FastifyRequest, project: string) =>
  project === callerProjectId(req) ? callerUserId(req) : undefined;

/** Nova's show policy: the project's own callers, or an admin. */
function requireReader(req: FastifyRequest, project: string, rule: string) {
  if (!req.caller.isAdmin && project !== callerProjectId(req)) requireAdminNova(req, rule);
}

/** One quota value: an integer (or its decimal string) in -1..2^31-1. */
function limitOf(key: string, raw: unknown): number {
  const text = typeof raw === 'number' || typeof raw === 'string' ? String(raw) : '';
  const n = /^-?\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= -1 && n <= MAX_INT))
    throw new ValidationError(
      `quota_set.${key}`,
      `${JSON.stringify(raw)} is not an integer from -1 to ${MAX_INT}`,
    );
  return n;
}

/** Nova's bool_from_string for `force`, strict: a boolean or its spelling. */
function forceOf(raw: unknown): boolean {
  const v = String(raw).toLowerCase();
  if (typeof raw === 'boolean') return raw;
  if (['true', '1', 't', 'yes', 'y', 'on'].includes(v)) return true;
  if (['false', '0', 'f', 'no', 'n', 'off'].includes(v)) return false;
  throw new ValidationError('quota_set.force', 'must be a boolean');
}

interface QuotaUpdate {
  limits: QuotaLimits;
  force: boolean;
}

/** The PUT body: `{"quota_set": {key: limit, …, "force"?}}`, every key one Nova shows. */
function parseUpdate(deps: AppDeps, body: unknown): QuotaUpdate {
  const set = isPlainObject(body) ? body.quota_set : undefined;
  if (!isPlainObject(set) || Object.keys(body as object).length !== 1)
    throw new ValidationError('quota_set', 'is required and must be an object');
  const known = novaDefaults(deps);
  const limits: QuotaLimits = {};
  let force = false;
  for (const [key, raw] of Object.entries(set)) {
    if (key === 'force') {
      force = forceOf(raw);
      continue;
    }
    if (!Object.hasOwn(known, key))
      throw new ValidationError(`quota_set.${key}`, 'is not a recognised attribute');
    limits[key] = limitOf(key, raw);
  }
  return { limits, force };
}

/**
 * Nova's minimum of a new limit: what the project already uses (-1, unlimited, is above
 * any). Under the project's quota lock, so no server create counts meanwhile.
 */
async function checkAboveUsage(tx: Queryable, deps: AppDeps, project: string, limits: QuotaLimits) {
  await lockQuota(tx, deps.db.engine, project, 'instances');
  const used: Record<string, number> = await projectUsage(tx, project);
  for (const [key, limit] of Object.entries(limits)) {
    const minimum = used[key] ?? 0;
    if (limit !== -1 && limit < minimum)
      throw new ApiError(
        'BadRequest',
        `Quota limit ${limit} for ${key} must be greater than or equal to already used and reserved ${minimum}.`,
      );
  }
}

/** PUT: the whole body checked, then (unless forced) against usage, then stored. */
async function updateQuotas(deps: AppDeps, project: string, body: unknown) {
  const { limits, force } = parseUpdate(deps, body);
  await deps.db.transaction(async (tx) => {
    if (!force) await checkAboveUsage(tx, deps, project, limits);
    await setProjectQuotas(tx, project, limits);
  });
  deps.log.info({ projectId: project, quotas: limits, force }, 'compute quotas set');
}

async function detail(deps: AppDeps, project: string, keypairUser: string | undefined) {
  const limits = sorted(await projectQuotas(deps.db, project, novaDefaults(deps)));
  const used = await inUse(deps, project, keypairUser);
  const shown: Record<string, unknown> = { id: project };
  for (const [key, limit] of Object.entries(limits))
    shown[key] = { in_use: used[key] ?? 0, limit, reserved: 0 };
  return { quota_set: shown };
}

/** Nova's absolute limits of `project` (limits.py, views/limits.py below 2.36). */
async function absoluteLimits(deps: AppDeps, project: string) {
  const q = await projectQuotas(deps.db, project, novaDefaults(deps));
  const used = await inUse(deps, project);
  return {
    maxImageMeta: q.metadata_items,
    maxPersonality: q.injected_files,
    maxPersonalitySize: q.injected_file_content_bytes,
    maxSecurityGroupRules: q.security_group_rules,
    maxSecurityGroups: q.security_groups,
    maxServerGroupMembers: q.server_group_members,
    maxServerGroups: q.server_groups,
    maxServerMeta: q.metadata_items,
    maxTotalCores: q.cores,
    maxTotalFloatingIps: q.floating_ips,
    maxTotalInstances: q.instances,
    maxTotalKeypairs: q.key_pairs,
    maxTotalRAMSize: q.ram,
    totalCoresUsed: used.cores,
    totalFloatingIpsUsed: 0,
    totalInstancesUsed: used.instances,
    totalRAMUsed: used.ram,
    totalSecurityGroupsUsed: 0,
    totalServerGroupsUsed: 0,
  };
}

/** GET /limits: the caller's project, or (admin only) the one `tenant_id` names. */
async function limits(deps: AppDeps, req: Listing) {
  const named = values(req.query.tenant_id)[0];
  const project = named ?? callerProjectId(req);
  if (project !== callerProjectId(req))
    requireAdminNova(req, 'os_compute_api:limits:other_project');
  return { limits: { rate: [], absolute: await absoluteLimits(deps, project) } };
}

function quotaScope(scope: FastifyInstance, deps: AppDeps) {
  installNovaErrors(scope, deps.log);
  scope.get('/os-quota-sets/:project', async (req: ByProject) => {
    const project = namedProject(req.params.project);
    requireReader(req, project, 'os_compute_api:os-quota-sets:show');
    const limits = await projectQuotas(deps.db, project, novaDefaults(deps));
    return { quota_set: { id: project, ...sorted(limits) } };
  });
  scope.get('/os-quota-sets/:project/defaults', async (req: ByProject) => ({
    quota_set: { id: namedProject(req.params.project), ...sorted(novaDefaults(deps)) },
  }));
  scope.get('/os-quota-sets/:project/detail', async (req: ByProject) => {
    const project = namedProject(req.params.project);
    requireReader(req, project, 'os_compute_api:os-quota-sets:detail');
    return detail(deps, project, keypairUserOf(req, project));
  });
  scope.put('/os-quota-sets/:project', async (req: ByProject) => {
    requireAdminNova(req, 'os_compute_api:os-quota-sets:update');
    const project = namedProject(req.params.project);
    await updateQuotas(deps, project, req.body);
    return { quota_set: sorted(await projectQuotas(deps.db, project, novaDefaults(deps))) };
  });
  scope.delete('/os-quota-sets/:project', async (req: ByProject, reply) => {
    requireAdminNova(req, 'os_compute_api:os-quota-sets:delete');
    const projectId = namedProject(req.params.project);
    await deleteProjectQuotas(deps.db, projectId);
    deps.log.info({ projectId }, 'compute quotas reset to the defaults');
    return reply.status(202).send();
  });
  scope.get('/os-quota-class-sets/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    requireAdminNova(req, 'os_compute_api:os-quota-class-sets:show');
    return { quota_class_set: { id: req.params.id, ...sorted(novaDefaults(deps)) } };
  });
  scope.get('/limits', (req: Listing) => limits(deps, req));
}

export function novaQuotaRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const prefix of ['', '/v2.1'])
    void app.register(async (scope) => quotaScope(scope, deps), { prefix });
}
