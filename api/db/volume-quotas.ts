/**
 * Cinder's quotas: volumes, gigabytes (volumes and snapshots together, as Cinder counts
 * them) and snapshots, plus the keys Cinder shows that Kumo has nothing to count for
 * (backups, backup_gigabytes, groups) and per_volume_gigabytes; checked by a create or an
 * extend inside its own transaction.
 *
 * Invariants: usage is counted from the rows, never stored; one lock per project
 * (`gigabytes`, which every volume and snapshot write touches) serialises the checks, so
 * a limit of N admits exactly N however many creates race (quotas.ts); -1 is unlimited;
 * refusals are Cinder's 413 messages, checked in Cinder's order (per-volume size,
 * gigabytes, then the count).
 */
import { ApiError } from '../../contracts/errors.ts';
import type { Db, Queryable } from './index.ts';
import { lockQuota, projectQuotas, type QuotaLimits, UNLIMITED } from './quotas.ts';
import { snapshotUsage } from './snapshots.ts';
import { volumeUsage } from './volumes.ts';

/** Cinder's own defaults for what [quotas] does not configure. */
export const CINDER_QUOTA_DEFAULTS = {
  volumes: 10,
  snapshots: 10,
  gigabytes: 1000,
  backups: 10,
  backup_gigabytes: 1000,
  groups: 10,
  per_volume_gigabytes: -1,
} as const satisfies QuotaLimits;

export type CinderUsage = { volumes: number; snapshots: number; gigabytes: number };

export async function cinderUsage(q: Queryable, projectId: string): Promise<CinderUsage> {
  const v = await volumeUsage(q, projectId);
  const s = await snapshotUsage(q, projectId);
  return { volumes: v.volumes, snapshots: s.snapshots, gigabytes: v.gigabytes + s.gigabytes };
}

const over = (limit: number, used: number, more: number) =>
  limit !== UNLIMITED && used + more > limit;

/** What a write adds: one volume or snapshot (or none, for an extend) and its gigabytes. */
export interface QuotaAsk {
  kind: 'volumes' | 'snapshots';
  count: 0 | 1;
  gigabytes: number;
  /** The size the volume will have (per_volume_gigabytes); none for snapshots. */
  volumeSize?: number;
}

/** Cinder's 413s, in its order, unless `ask` fits; run in the write's transaction. */
export async function admitCinder(
  tx: Queryable,
  engine: Db['engine'],
  projectId: string,
  defaults: QuotaLimits,
  ask: QuotaAsk,
): Promise<void> {
  await lockQuota(tx, engine, projectId, 'gigabytes');
  const limits = await projectQuotas(tx, projectId, defaults);
  const perVolume = limits.per_volume_gigabytes ?? UNLIMITED;
  if (ask.volumeSize !== undefined && perVolume !== UNLIMITED && ask.volumeSize > perVolume)
    throw new ApiError(
      'RequestEntityTooLarge',
      `VolumeSizeExceedsLimit: Requested volume size ${ask.volumeSize}G is larger than maximum allowed limit ${perVolume}G.`,
    );
  const used = await cinderUsage(tx, projectId);
  const gb = limits.gigabytes ?? UNLIMITED;
  if (over(gb, used.gigabytes, ask.gigabytes))
    throw new ApiError(
      'RequestEntityTooLarge',
      `VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested ${ask.gigabytes}G, quota is ${gb}G and ${used.gigabytes}G has been consumed.`,
    );
  const n = limits[ask.kind] ?? UNLIMITED;
  if (ask.count && over(n, used[ask.kind], ask.count))
    throw new ApiError(
      'RequestEntityTooLarge',
      ask.kind === 'volumes'
        ? `VolumeLimitExceeded: Maximum number of volumes allowed (${n}) exceeded for quota 'volumes'.`
        : `SnapshotLimitExceeded: Maximum number of snapshots allowed (${n}) exceeded`,
    );
}
