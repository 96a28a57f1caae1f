/**
 * Per-project quotas: the configured defaults ([quotas] for Neutron's resources, [quota]
 * for Nova's), a project's own limits where an admin set them, and the race-free check a
 * create makes inside its transaction.
 *
 * Invariant: `admit` runs in the same transaction as the insert it guards, after taking
 * the (project, resource) lock: on SQLite every transaction already holds the one write
 * lock (BEGIN IMMEDIATE), on PostgreSQL the quota_locks row is locked FOR UPDATE, so two
 * creates in one project count one after the other and a limit of N admits exactly N.
 * -1 is unlimited.
 */
import type { Queryable } from './index.ts';

/** Limits by resource name (network, port, instances, cores, …). */
export type QuotaLimits = Record<string, number>;

export const UNLIMITED = -1;

/** A project's limits: the defaults overlaid with its own rows. */
export async function projectQuotas(
  q: Queryable,
  projectId: string,
  defaults: QuotaLimits,
): Promise<QuotaLimits> {
  const rows = await q.query<{ resource: string; hard_limit: number }>(
    'SELECT resource, hard_limit FROM quotas WHERE project_id = ?',
    [projectId],
  );
  const out: QuotaLimits = { ...defaults };
  for (const r of rows) if (r.resource in defaults) out[r.resource] = Number(r.hard_limit);
  return out;
}

/**
 * Sets (or, with `undefined`, resets to the default) a project's limits. One upsert per
 * row, in resource order: concurrent sets of one project neither collide on the primary
 * key nor lock its rows in opposite orders (PostgreSQL); the last to commit wins whole.
 */
export async function setProjectQuotas(
  q: Queryable,
  projectId: string,
  limits: Record<string, number | undefined>,
): Promise<void> {
  const sorted = Object.entries(limits).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [resource, limit] of sorted) {
    if (limit === undefined)
      await q.query('DELETE FROM quotas WHERE project_id = ? AND resource = ?', [
        projectId,
        resource,
      ]);
    else
      await q.query(
        `INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)
          ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit`,
        [projectId, resource, limit],
      );
  }
}

/** Drops a project's own limits (back to the defaults). */
export async function deleteProjectQuotas(q: Queryable, projectId: string): Promise<void> {
  await q.query('DELETE FROM quotas WHERE project_id = ?', [projectId]);
}

/** Serialises creates of `resource` in `projectId` until the transaction ends. */
export async function lockQuota(
  tx: Queryable,
  engine: 'sqlite' | 'postgres',
  projectId: string,
  resource: string,
): Promise<void> {
  if (engine === 'sqlite') return;
  await tx.query(
    'INSERT INTO quota_locks (project_id, resource) VALUES (?, ?) ON CONFLICT DO NOTHING',
    [projectId, resource],
  );
  await tx.query(
    'SELECT project_id FROM quota_locks WHERE project_id = ? AND resource = ? FOR UPDATE',
    [projectId, resource],
  );
}

export interface QuotaCheck {
  resource: string;
  limit: number;
  used: number;
  requested: number;
}

/**
 * Locks, reads the limit, counts with `count` (inside the lock) and says whether
 * `requested` more fit. The caller throws its service's error when `ok` is false.
 */
export async function admit(
  tx: Queryable,
  engine: 'sqlite' | 'postgres',
  opts: {
    projectId: string;
    resource: string;
    requested: number;
    defaults: QuotaLimits;
    count: (tx: Queryable) => Promise<number>;
  },
): Promise<QuotaCheck & { ok: boolean }> {
  await lockQuota(tx, engine, opts.projectId, opts.resource);
  const limits = await projectQuotas(tx, opts.projectId, opts.defaults);
  const limit = limits[opts.resource] ?? UNLIMITED;
  const base = { resource: opts.resource, limit, requested: opts.requested };
  if (limit === UNLIMITED) return { ...base, used: 0, ok: true };
  const used = await opts.count(tx);
  return { ...base, used, ok: used + opts.requested <= limit };
}
