/**
 * Neutron's list-query plumbing, shared by every collection route: filters (a repeated
 * value ORs), `fields=`, sorting and limit/marker pages (the policy is routes/neutron-policy.ts).
 *
 * Invariants: an unknown filter, a value that does not convert, or a sort Neutron refuses
 * (a key that is no sortable attribute, a direction other than asc/desc, unpaired keys and
 * directions) is a 400 naming it, before any query runs; links start with the configured
 * public endpoint, never with the request's Host header.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../contracts/errors.ts';
import type { Param } from './db/index.ts';
import type { ColumnFilter } from './db/neutron.ts';

export type Query = Record<string, string | string[] | undefined>;
export type FilterSpec = Record<string, { column: string; type: 'text' | 'bool' | 'int' }>;

export const values = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v : [v];

const PAGING = ['fields', 'limit', 'marker', 'sort_key', 'sort_dir', 'page_reverse'];

export function parseValue(field: string, type: 'text' | 'bool' | 'int', raw: string): Param {
  if (type === 'text') return raw;
  if (type === 'int') {
    if (!/^-?\d{1,12}$/.test(raw))
      throw new ApiError(
        'BadRequest',
        `Invalid input for ${field}. Reason: '${raw}' is not an integer.`,
      );
    return Number(raw);
  }
  const v = raw.toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ApiError(
    'BadRequest',
    `Invalid input for ${field}. Reason: '${raw}' cannot be converted to boolean.`,
  );
}

export interface ListQuery {
  filter: ColumnFilter;
  fields: string[];
  limit?: number;
  marker?: string;
  sortKeys: string[];
  sortDirs: ('asc' | 'desc')[];
}

/** Query string → filters (OR within a key, AND across keys) and list options. */
export function parseListQuery(
  query: Query,
  resource: string,
  filters: FilterSpec,
  extra: Record<string, (values: string[]) => ColumnFilter['clauses']> = {},
): ListQuery {
  const out: ListQuery = {
    filter: { columns: {}, clauses: [] },
    fields: [],
    sortKeys: [],
    sortDirs: [],
  };
  for (const [key, raw] of Object.entries(query)) {
    const vals = values(raw);
    const spec = filters[key];
    if (spec) {
      const parsed = vals.map((v) => parseValue(key, spec.type, v));
      const existing = out.filter.columns[spec.column];
      out.filter.columns[spec.column] = existing ? [...existing, ...parsed] : parsed;
    } else if (extra[key]) {
      out.filter.clauses.push(...extra[key](vals));
    } else if (!PAGING.includes(key)) {
      throw new ApiError(
        'BadRequest',
        `Invalid filter: '${key}' is not a filterable attribute of ${resource}.`,
      );
    }
  }
  out.fields = values(query.fields);
  const limit = values(query.limit)[0];
  if (limit !== undefined) {
    if (!/^\d{1,9}$/.test(limit))
      throw new ApiError(
        'BadRequest',
        `Invalid input for limit. Reason: '${limit}' is not an integer.`,
      );
    if (Number(limit) > 0) out.limit = Number(limit);
  }
  out.marker = values(query.marker)[0];
  Object.assign(out, sorts(query, Object.keys(filters)));
  return out;
}

const pyList = (items: string[]) => `[${items.map((i) => `'${i}'`).join(', ')}]`;

/** Neutron's get_sorts: paired sort_key/sort_dir, sortable keys (the filterable scalars). */
function sorts(query: Query, sortable: string[]): Pick<ListQuery, 'sortKeys' | 'sortDirs'> {
  const keys = values(query.sort_key).filter((k) => k !== '');
  const dirs = values(query.sort_dir).filter((d) => d !== '');
  if (keys.length !== dirs.length)
    throw new ApiError('HTTPBadRequest', 'The number of sort_keys and sort_dirs must be same');
  const absent = keys.filter((k) => !sortable.includes(k));
  if (absent.length)
    throw new ApiError('HTTPBadRequest', `${pyList(absent)} is invalid attribute for sort_keys`);
  const invalid = dirs.filter((d) => d !== 'asc' && d !== 'desc');
  if (invalid.length)
    throw new ApiError(
      'HTTPBadRequest',
      `${pyList(invalid)} is invalid value for sort_dirs, valid value is 'asc' and 'desc'`,
    );
  return { sortKeys: keys, sortDirs: dirs as ('asc' | 'desc')[] };
}

export function pick<T extends object>(item: T, fields: string[]): Partial<T> {
  if (fields.length === 0) return item;
  return Object.fromEntries(Object.entries(item).filter(([k]) => fields.includes(k))) as Partial<T>;
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a ?? '').localeCompare(String(b ?? ''));
}

/** Sorting, marker and limit applied to a list already ordered by creation. */
export function page<T extends { id: string }>(
  req: FastifyRequest,
  collection: string,
  items: T[],
  q: ListQuery,
): Record<string, unknown> {
  let list = items;
  if (q.sortKeys.length) {
    list = [...items].sort((x, y) => {
      for (const [i, key] of q.sortKeys.entries()) {
        const c = compare((x as Record<string, unknown>)[key], (y as Record<string, unknown>)[key]);
        if (c !== 0) return q.sortDirs[i] === 'desc' ? -c : c;
      }
      return 0;
    });
  }
  if (q.marker !== undefined) {
    const at = list.findIndex((i) => i.id === q.marker);
    list = at < 0 ? [] : list.slice(at + 1);
  }
  const body: Record<string, unknown> = {};
  if (q.limit !== undefined && list.length > q.limit) {
    list = list.slice(0, q.limit);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query as Query))
      if (k !== 'marker') for (const one of values(v)) params.append(k, one);
    params.append('marker', list[list.length - 1]?.id ?? '');
    body[`${collection}_links`] = [
      { rel: 'next', href: `${req.publicEndpoint}/v2.0/${collection}?${params.toString()}` },
    ];
  }
  body[collection] = list.map((i) => pick(i, q.fields));
  return body;
}
