/**
 * Cinder's quotas and limits (cinder/api/contrib/quotas.py, limits.py): GET
 * /v3/{project}/os-quota-sets/{target} (`?usage=True` for limit, in_use, reserved),
 * …/{target}/defaults, PUT (admin), DELETE (admin: back to the defaults), and GET
 * /v3/{project}/limits.
 *
 * Invariants: a project's quotas are shown to its own callers and to admins (403
 * otherwise), changed only by admins; a PUT is checked whole (every key one Cinder shows,
 * every value an integer -1..2^31-1) before anything is stored, and with
 * `skip_validation=False` a limit below what the project uses is Cinder's 400, checked
 * under the project's quota lock; usage is counted from the rows (db/volume-quotas.ts).
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject } from '../../contracts/schema.ts';
import { lockQuota, projectQuotas, setProjectQuotas } from '../db/quotas.ts';
import { CINDER_QUOTA_DEFAULTS, type CinderUsage, cinderUsage } from '../db/volume-quotas.ts';
import type { AppDeps } from '../deps.ts';
import { callerProjectId, namedProject } from '../policy.ts';
import { values } from '../query.ts';
import { type InProject, pathProject, requireAdminCinder } from './cinder-common.ts';
import { cinderQuotaDefaults } from './volume-create.ts';

type ByTarget = InProject<{ target: string }>;

const MAX_INT = 2 ** 31 - 1;
const KEYS = Object.keys(CINDER_QUOTA_DEFAULTS).sort();
const used = (u: CinderUsage, key: string) => (u as Record<string, number>)[key] ?? 0;

const truthy = (v: string | undefined) => /^(1|true|t|yes|y|on)$/i.test(v ?? '');

/** The target project, if the caller may read its quotas (its own, or any for an admin). */
function readable(req: ByTarget): string {
  pathProject(req);
  const target = namedProject(req.params.target);
  if (target !== callerProjectId(req)) requireAdminCinder(req, 'volume_extension:quotas:show');
  return target;
}

async function show(deps: AppDeps, target: string, usage: boolean) {
  const limits = await projectQuotas(deps.db, target, cinderQuotaDefaults(deps));
  const counted = usage ? await cinderUsage(deps.db, target) : undefined;
  const set: Record<string, unknown> = { id: target };
  for (const key of KEYS) {
    const limit = limits[key] ?? -1;
    set[key] = counted ? { limit, in_use: used(counted, key), reserved: 0 } : limit;
  }
  return { quota_set: set };
}

/** One quota value: an integer (or its decimal string) in -1..2^31-1. */
function limitOf(key: string, raw: unknown): number {
  const text = typeof raw === 'number' || typeof raw === 'string' ? String(raw) : '';
  const n = /^-?\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= -1 && n <= MAX_INT))
    throw new ApiError(
      'BadRequest',
      `Invalid input for field/attribute quota_set.${key}. Value: ${JSON.stringify(raw)} is not an integer from -1 to ${MAX_INT}.`,
    );
  return n;
}

function parseUpdate(body: unknown): Record<string, number> {
  const set = isPlainObject(body) ? body.quota_set : undefined;
  if (!isPlainObject(set))
    throw new ApiError('BadRequest', 'Missing required element quota_set in request body.');
  const bad = Object.keys(set).filter((k) => !KEYS.includes(k) && k !== 'tenant_id');
  if (bad.length) throw new ApiError('BadRequest', `Bad key(s) in quota set: ${bad.join(', ')}`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(set)) if (k !== 'tenant_id') out[k] = limitOf(k, v);
  return out;
}

async function update(deps: AppDeps, req: ByTarget) {
  pathProject(req);
  requireAdminCinder(req, 'volume_extension:quotas:update');
  const target = namedProject(req.params.target);
  const limits = parseUpdate(req.body);
  const validate = values(req.query.skip_validation).some((v) => /^(0|false|f|no|n|off)$/i.test(v));
  await deps.db.transaction(async (tx) => {
    await lockQuota(tx, deps.db.engine, target, 'gigabytes');
    const u = validate ? await cinderUsage(tx, target) : undefined;
    for (const [key, limit] of Object.entries(limits))
      if (u && limit !== -1 && limit < used(u, key))
        throw new ApiError(
          'BadRequest',
          `Quota limit invalid for project '${target}' for resource '${key}', limit of ${limit} is less than in-use value of ${used(u, key)}`,
        );
    await setProjectQuotas(tx, target, limits);
  });
  deps.log.info({ projectId: target, quotas: limits }, 'volume quotas set');
  const { id: _id, ...rest } = (await show(deps, target, false)).quota_set;
  return { quota_set: rest };
}

/** Cinder's absolute limits (views/limits.py): no backups in Kumo, so none used. */
async function absoluteLimits(deps: AppDeps, project: string) {
  const q = await projectQuotas(deps.db, project, cinderQuotaDefaults(deps));
  const u = await cinderUsage(deps.db, project);
  return {
    totalSnapshotsUsed: u.snapshots,
    maxTotalBackups: q.backups,
    maxTotalVolumeGigabytes: q.gigabytes,
    maxTotalSnapshots: q.snapshots,
    maxTotalBackupGigabytes: q.backup_gigabytes,
    totalBackupGigabytesUsed: 0,
    maxTotalVolumes: q.volumes,
    totalVolumesUsed: u.volumes,
    totalBackupsUsed: 0,
    totalGigabytesUsed: u.gigabytes,
  };
}

export function cinderQuotaRoutes(scope: FastifyInstance, deps: AppDeps) {
  const base = '/v3/:project_id/os-quota-sets/:target';
  scope.get(base, (req: ByTarget) =>
    show(deps, readable(req), truthy(values(req.query.usage).at(-1))),
  );
  scope.get(`${base}/defaults`, async (req: ByTarget) => {
    pathProject(req);
    return { quota_set: { id: namedProject(req.params.target), ...cinderQuotaDefaults(deps) } };
  });
  scope.put(base, (req: ByTarget) => update(deps, req));
  scope.delete(base, async (req: ByTarget) => {
    pathProject(req);
    requireAdminCinder(req, 'volume_extension:quotas:delete');
    const projectId = namedProject(req.params.target);
    await setProjectQuotas(deps.db, projectId, Object.fromEntries(KEYS.map((k) => [k, undefined])));
    deps.log.info({ projectId }, 'volume quotas reset to the defaults');
    return {};
  });
  scope.get('/v3/:project_id/limits', async (req: InProject) => {
    const project = pathProject(req);
    return { limits: { rate: [], absolute: await absoluteLimits(deps, project) } };
  });
}
