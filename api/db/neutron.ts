/**
 * Helpers shared by the networks, subnets and ports tables: Neutron timestamps, column
 * filters built from list queries, and recognising constraint violations on both engines.
 *
 * Invariants: filter values only ever reach SQL as bound parameters; column names come from
 * the fixed tables in the callers, never from the request. A create guarded by a quota
 * counts its project's rows inside its own transaction, under the quota lock (quotas.ts),
 * so a limit of N admits exactly N however many creates race.
 */
import { ApiError } from '../../contracts/errors.ts';
import type { Param, Queryable } from './index.ts';
import { admit, type QuotaLimits } from './quotas.ts';

/** Neutron's resource timestamps: `YYYY-MM-DDTHH:MM:SSZ` (UTC). */
export function resourceTime(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** The row columns behind Neutron's standard attributes. */
export interface StandardRow {
  project_id: string;
  created_at: string;
  updated_at: string;
  revision_number: unknown;
}

/** Neutron's standard attributes, the same on every resource (tenant_id = project_id). */
export function standardAttributes(row: StandardRow) {
  return {
    project_id: row.project_id,
    tenant_id: row.project_id,
    created_at: row.created_at,
    updated_at: row.updated_at,
    revision_number: Number(row.revision_number),
    tags: [] as string[],
  };
}

/** The filters every resource takes: id, name, description and the project. */
export const STANDARD_FILTERS = {
  id: { column: 'id', type: 'text' },
  name: { column: 'name', type: 'text' },
  description: { column: 'description', type: 'text' },
  project_id: { column: 'project_id', type: 'text' },
  tenant_id: { column: 'project_id', type: 'text' },
} as const;

/** column → values, each list OR-ed, columns AND-ed; plus raw EXISTS clauses. */
export interface ColumnFilter {
  columns: Record<string, Param[]>;
  /** Extra SQL conditions with their parameters (already safe). */
  clauses: { sql: string; params: Param[] }[];
}

export const emptyFilter = (): ColumnFilter => ({ columns: {}, clauses: [] });

export function whereSql(filter: ColumnFilter, alias = ''): { sql: string; params: Param[] } {
  const where: string[] = [];
  const params: Param[] = [];
  const prefix = alias ? `${alias}.` : '';
  for (const [column, values] of Object.entries(filter.columns)) {
    if (values.length === 0) continue;
    const nonNull = values.filter((v) => v !== null);
    const parts: string[] = [];
    if (nonNull.length) {
      parts.push(`${prefix}${column} IN (${nonNull.map(() => '?').join(', ')})`);
      params.push(...nonNull);
    }
    if (nonNull.length < values.length) parts.push(`${prefix}${column} IS NULL`);
    where.push(parts.length > 1 ? `(${parts.join(' OR ')})` : (parts[0] as string));
  }
  for (const c of filter.clauses) {
    where.push(c.sql);
    params.push(...c.params);
  }
  return { sql: where.length ? ` WHERE ${where.join(' AND ')}` : '', params };
}

export type ConstraintKind = 'unique' | 'foreign_key';

/** PostgreSQL SQLSTATE 23505/23503; node:sqlite's extended codes and messages. */
export function constraintKind(err: unknown): ConstraintKind | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown };
  if (e.code === '23505' || e.errcode === 2067 || e.errcode === 1555) return 'unique';
  if (e.code === '23503' || e.errcode === 787) return 'foreign_key';
  const msg = typeof e.message === 'string' ? e.message : '';
  if (msg.includes('UNIQUE constraint failed')) return 'unique';
  if (msg.includes('FOREIGN KEY constraint failed')) return 'foreign_key';
  return undefined;
}

export const bool = (v: unknown): boolean => v === true || v === 1 || v === '1' || v === 't';

export const numOrNull = (v: unknown): number | null =>
  v === null || v === undefined ? null : Number(v);

/** The SET list of an UPDATE, built from optional values (undefined leaves a column). */
export function columnUpdates() {
  const sets: string[] = [];
  const params: Param[] = [];
  return {
    sets,
    params,
    set(column: string, value: Param | undefined) {
      if (value === undefined) return;
      sets.push(`${column} = ?`);
      params.push(value);
    },
  };
}

/**
 * Writes `u` to row `id` of `table` (a fixed name, never from a request) with a revision
 * bump and `updated_at`; writes nothing when no column changed.
 */
export async function writeUpdates(
  tx: Queryable,
  table: 'networks' | 'subnets' | 'ports' | 'routers',
  id: string,
  u: ReturnType<typeof columnUpdates>,
  now: Date,
): Promise<void> {
  if (u.sets.length === 0) return;
  await tx.query(
    `UPDATE ${table} SET ${u.sets.join(', ')}, revision_number = revision_number + 1, updated_at = ? WHERE id = ?`,
    [...u.params, resourceTime(now), id],
  );
}

/** How a create is held to its project's quota; absent for creates Neutron does not police. */
export interface QuotaGuard {
  engine: 'sqlite' | 'postgres';
  defaults: QuotaLimits;
}

const QUOTA_TABLES = {
  network: 'networks',
  subnet: 'subnets',
  port: 'ports',
  router: 'routers',
  floatingip: 'floatingips',
  security_group: 'securitygroups',
  security_group_rule: 'securitygrouprules',
  pool: 'lb_pools',
  vip: 'lb_vips',
  member: 'lb_members',
  health_monitor: 'lb_health_monitors',
} as const;
export type NeutronQuotaResource = keyof typeof QUOTA_TABLES;

/** The rows of `resource` that `projectId` owns. */
export async function countOwned(
  q: Queryable,
  resource: NeutronQuotaResource,
  projectId: string,
): Promise<number> {
  const [row] = await q.query<{ n: unknown }>(
    `SELECT COUNT(*) AS n FROM ${QUOTA_TABLES[resource]} WHERE project_id = ?`,
    [projectId],
  );
  return Number(row?.n ?? 0);
}

/** Neutron's OverQuota (409) unless `requested` more `resource` rows fit; run in the insert's tx. */
export async function guardQuota(
  tx: Queryable,
  guard: QuotaGuard | undefined,
  projectId: string,
  resource: NeutronQuotaResource,
  requested = 1,
): Promise<void> {
  if (!guard) return;
  const check = await admit(tx, guard.engine, {
    projectId,
    resource,
    requested,
    defaults: guard.defaults,
    count: (q) => countOwned(q, resource, projectId),
  });
  if (!check.ok) throw new ApiError('OverQuota', `Quota exceeded for resources: ['${resource}'].`);
}
