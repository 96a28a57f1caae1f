/**
 * Nova's quotas as a server create meets them: the limits a project has (the configured
 * [quota] defaults, Nova's own defaults for the legacy keys shown below microversion
 * 2.36, a project's own rows over both) and the check of a batch against instances,
 * cores and ram (nova/compute/api.py _check_num_instances_quota).
 *
 * Invariants: the check counts the project's live servers inside the transaction that
 * inserts the server, after taking the project's quota lock (db/quotas.ts lockQuota), so
 * concurrent creates count one after the other and a limit of N admits exactly N; -1 is
 * unlimited; a refusal is Nova's 403 TooManyInstances message naming every resource over
 * its limit, and nothing is written.
 */
import { ApiError } from '../../contracts/errors.ts';
import type { Queryable } from '../db/index.ts';
import { lockQuota, projectQuotas, type QuotaLimits, UNLIMITED } from '../db/quotas.ts';
import { projectUsage } from '../db/servers.ts';
import { type AppDeps, QUOTA_DEFAULTS } from '../deps.ts';

/** Nova's defaults of the keys it shows below 2.36 and Kumo does not enforce. */
export const LEGACY_DEFAULTS: QuotaLimits = {
  fixed_ips: -1,
  floating_ips: 10,
  injected_file_content_bytes: 10240,
  injected_file_path_bytes: 255,
  injected_files: 5,
  metadata_items: 128,
  security_group_rules: 20,
  security_groups: 10,
  server_group_members: 10,
  server_groups: 10,
};

/** Every key os-quota-sets shows, with its default (the configured ones win). */
export const novaDefaults = (deps: AppDeps): QuotaLimits => ({
  ...LEGACY_DEFAULTS,
  ...(deps.settings.quotas?.nova ?? QUOTA_DEFAULTS.nova),
});

/** The resources a server create counts, in Nova's order of its message. */
export const COUNTED = ['cores', 'instances', 'ram'] as const;
export type Counted = (typeof COUNTED)[number];

export interface BatchDemand {
  projectId: string;
  vcpus: number;
  ram: number;
  min: number;
  max: number;
}

/** How many servers of `d` fit each limit's headroom (Infinity when unlimited). */
function fits(limits: QuotaLimits, used: Record<Counted, number>, d: BatchDemand): number {
  const per: Record<Counted, number> = { cores: d.vcpus, instances: 1, ram: d.ram };
  let allowed = Number.POSITIVE_INFINITY;
  for (const r of COUNTED) {
    const limit = limits[r] ?? UNLIMITED;
    if (limit === UNLIMITED || per[r] === 0) continue;
    allowed = Math.min(allowed, Math.floor(Math.max(0, limit - used[r]) / per[r]));
  }
  return allowed;
}

/** Nova's TooManyInstances (403), for the resources `max` servers would take over their limit. */
function tooMany(limits: QuotaLimits, used: Record<Counted, number>, d: BatchDemand): ApiError {
  const requested: Record<Counted, string> = {
    cores: String(d.max * d.vcpus),
    instances: d.min === d.max ? String(d.max) : `${d.min}-${d.max}`,
    ram: String(d.max * d.ram),
  };
  const take: Record<Counted, number> = { cores: d.vcpus, instances: 1, ram: d.ram };
  const overs = COUNTED.filter((r) => {
    const limit = limits[r] ?? UNLIMITED;
    return limit !== UNLIMITED && used[r] + d.max * take[r] > limit;
  });
  const join = (f: (r: Counted) => string) => overs.map(f).join(', ');
  const names = overs.join(', ');
  return new ApiError(
    'QuotaExceeded',
    `Quota exceeded for ${names}: Requested ${join((r) => requested[r])}, but already used ${join((r) => String(used[r]))} of ${join((r) => String(limits[r]))} ${names}`,
  );
}

/**
 * Inside the insert's transaction: how many servers of the batch (min..max) the project's
 * quota admits now, or Nova's 403 when not even `min` fit.
 */
export async function admitServers(tx: Queryable, deps: AppDeps, d: BatchDemand): Promise<number> {
  await lockQuota(tx, deps.db.engine, d.projectId, 'instances');
  const limits = await projectQuotas(tx, d.projectId, novaDefaults(deps));
  const used = await projectUsage(tx, d.projectId);
  const allowed = Math.min(d.max, fits(limits, used, d));
  if (allowed < d.min) throw tooMany(limits, used, d);
  return allowed;
}
