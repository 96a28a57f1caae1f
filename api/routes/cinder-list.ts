/**
 * Cinder's list queries, shared by volumes and snapshots: filters (exact values, a
 * metadata subset, all_tenants for admins), `sort` / `sort_key` + `sort_dir`, and
 * `limit` / `marker` pages with a `next` link (cinder/api/common.py).
 *
 * Invariants: a query is checked whole before any row is read: an unknown filter, a bad
 * limit, sort key or direction is a 400 naming it; a marker the caller cannot see is
 * Cinder's 404; sorting is total (ties broken by id), so pages never repeat or skip;
 * `all_tenants` and `project_id` widen or move a list only for an admin.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject } from '../../contracts/schema.ts';
import { type Query, values } from '../query.ts';

const PAGING = ['limit', 'marker', 'sort', 'sort_key', 'sort_dir', 'offset'];

export interface ListQuery {
  /** Exact filters by column (those the list takes). */
  filters: Record<string, string>;
  metadata: Record<string, string> | undefined;
  /** The project the list is limited to (undefined: every project, admins only). */
  project: string | undefined;
  limit: number | undefined;
  marker: string | undefined;
  offset: number;
  sort: [string, 'asc' | 'desc'][];
}

const one = (q: Query, key: string): string | undefined => values(q[key]).at(-1);

function intParam(q: Query, key: string): number | undefined {
  const raw = one(q, key);
  if (raw === undefined) return undefined;
  if (!/^-?\d{1,12}$/.test(raw))
    throw new ApiError('BadRequest', `${key} param must be an integer`);
  const n = Number(raw);
  if (n < 0) throw new ApiError('BadRequest', `${key} param must be positive`);
  return n;
}

/** `{"k": "v"}` as JSON or as cinderclient's Python repr (`{'k': 'v'}`). */
function metadataFilter(raw: string | undefined): Record<string, string> | undefined {
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.replace(/'/g, '"'));
  } catch {
    parsed = undefined;
  }
  if (!isPlainObject(parsed) || !Object.values(parsed).every((v) => typeof v === 'string'))
    throw new ApiError('BadRequest', `Invalid input for field/attribute metadata. Value: ${raw}`);
  return parsed as Record<string, string>;
}

function sortOf(q: Query, sortable: readonly string[]): [string, 'asc' | 'desc'][] {
  const sort = one(q, 'sort');
  const keys = values(q.sort_key);
  if (sort !== undefined && keys.length)
    throw new ApiError(
      'BadRequest',
      "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
    );
  const pairs: [string, string][] = sort
    ? sort.split(',').map((p) => {
        const [k, d] = p.trim().split(':');
        return [k ?? '', d ?? 'desc'];
      })
    : keys.map((k) => [k, one(q, 'sort_dir') ?? 'desc']);
  const out: [string, 'asc' | 'desc'][] = [];
  for (const [k, d] of pairs) {
    if (!sortable.includes(k))
      throw new ApiError(
        'BadRequest',
        `Invalid input received: Invalid sort key ${k}; sortable keys: ${sortable.join(', ')}`,
      );
    if (d !== 'asc' && d !== 'desc')
      throw new ApiError('BadRequest', "Unknown sort direction, must be 'desc' or 'asc'");
    out.push([k, d]);
  }
  if (out.length === 0) out.push(['created_at', 'desc']);
  if (!out.some(([k]) => k === 'id')) out.push(['id', out[0]?.[1] ?? 'desc']);
  return out;
}

/** The list query of `req`, given the exact filters and sort keys the list takes. */
export function listQuery(
  req: FastifyRequest<{ Querystring: Query }>,
  own: string,
  filterKeys: readonly string[],
  sortable: readonly string[],
): ListQuery {
  const q = req.query;
  const unknown = Object.keys(q).filter(
    (k) =>
      !PAGING.includes(k) &&
      !filterKeys.includes(k) &&
      !['metadata', 'all_tenants', 'project_id'].includes(k),
  );
  if (unknown.length)
    throw new ApiError(
      'BadRequest',
      `Invalid filters ${unknown.join(',')} are found in query options.`,
    );
  const filters: Record<string, string> = {};
  for (const k of filterKeys) {
    const v = one(q, k);
    if (v !== undefined) filters[k] = v;
  }
  // all_tenants and project_id widen or move a list for admins only; a member's list is
  // its project's whatever it names (Cinder drops filters a member may not use).
  const allTenants = /^(1|true|t|yes|y|on)$/i.test(one(q, 'all_tenants') ?? '');
  const named = one(q, 'project_id');
  const project = req.caller.isAdmin ? (named ?? (allTenants ? undefined : own)) : own;
  return {
    filters,
    metadata: metadataFilter(one(q, 'metadata')),
    project,
    limit: intParam(q, 'limit'),
    marker: one(q, 'marker'),
    offset: intParam(q, 'offset') ?? 0,
    sort: sortOf(q, sortable),
  };
}

const cmp = (a: unknown, b: unknown): number => {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  return a < b ? -1 : 1;
};

/** `rows` filtered by metadata, sorted and paged; `next`: the marker of a following page. */
export function pageOf<T extends { id: string; metadata: Record<string, string> }>(
  rows: readonly T[],
  lq: ListQuery,
  notFound: (id: string) => ApiError,
): { items: T[]; next: string | undefined } {
  const meta = Object.entries(lq.metadata ?? {});
  const kept = rows.filter((r) => meta.every(([k, v]) => r.metadata[k] === v));
  const sorted = [...kept].sort((a, b) => {
    for (const [k, d] of lq.sort) {
      const c = cmp((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
      if (c !== 0) return d === 'asc' ? c : -c;
    }
    return 0;
  });
  let start = lq.offset;
  if (lq.marker !== undefined) {
    const at = sorted.findIndex((r) => r.id === lq.marker);
    if (at < 0) throw notFound(lq.marker);
    start = at + 1;
  }
  const items = sorted.slice(start, lq.limit === undefined ? undefined : start + lq.limit);
  const more =
    lq.limit !== undefined && items.length === lq.limit && start + lq.limit < sorted.length;
  return { items, next: more ? items.at(-1)?.id : undefined };
}

/** Cinder's `<collection>_links` next link: the same query with the new marker. */
export function nextLinks(
  req: FastifyRequest<{ Querystring: Query }>,
  path: string,
  next: string | undefined,
) {
  if (next === undefined) return undefined;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query))
    if (k !== 'marker') for (const x of values(v)) params.append(k, x);
  params.set('marker', next);
  return [{ rel: 'next', href: `${req.publicEndpoint}${path}?${params.toString()}` }];
}
