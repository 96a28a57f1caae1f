/**
 * GET /v2/images: which images a caller sees, Glance's filters (visibility, member_status,
 * os_hidden, size_min/size_max, every `tag`, columns and extra properties), its two sort
 * syntaxes (`sort=key:dir,…` or `sort_key`/`sort_dir`) and limit/marker pages.
 *
 * Invariants: every parameter is checked, with Glance's message, before a page is cut;
 * a caller lists what it may see (image-access.ts canSee), shared images by its
 * membership's asked `member_status` (accepted unless asked); without `visibility`, the
 * community images listed are only the caller's own (Glance keys on the caller's project,
 * not on `?owner=`); a property filter matches own properties only; the page is cut after
 * filtering and sorting, at most `limit` (Glance's default 25, capped at 1000) images,
 * with `next` exactly when the page is full and not empty, as Glance's index.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { MemberStatus } from '../../contracts/images.ts';
import { ValidationError } from '../../contracts/schema.ts';
import type { ImageRecord } from '../db/images.ts';
import { type Query, values } from '../query.ts';
import { canSee, type ImageViewer, viewerProject } from './image-access.ts';

const badRequest = (message: string) => new ApiError('BadRequest', message);
const last = (q: Query, key: string) => values(q[key]).at(-1);

const SORT_KEYS = [
  'name',
  'status',
  'container_format',
  'disk_format',
  'size',
  'id',
  'created_at',
  'updated_at',
] as const;
type SortKey = (typeof SORT_KEYS)[number];
const VISIBILITY_FILTERS = ['community', 'public', 'private', 'shared', 'all'];
const MEMBER_STATUS_FILTERS = ['pending', 'accepted', 'rejected', 'all'];
/** Parameters that are not column or property filters. */
const LIST_PARAMS = [
  'limit',
  'marker',
  'sort',
  'sort_key',
  'sort_dir',
  'member_status',
  'name',
  'status',
  'visibility',
  'os_hidden',
  'size_min',
  'size_max',
  'tag',
];
const COLUMNS = ['disk_format', 'container_format', 'owner', 'id', 'checksum', 'os_hash_value'];
/** Glance's limit_param_default and api_limit_max. */
const LIMIT_DEFAULT = 25;
const LIMIT_MAX = 1000;

/** The images the caller may see at all, shared ones by its membership's status. */
function visibleTo(
  req: FastifyRequest<{ Querystring: Query }>,
  images: ImageRecord[],
  memberships: Map<string, MemberStatus>,
): ImageRecord[] {
  const status = last(req.query, 'member_status') ?? 'accepted';
  if (!MEMBER_STATUS_FILTERS.includes(status)) throw badRequest(`Invalid status: ${status}`);
  return images.filter((i) => {
    const mine = memberships.get(i.id);
    return canSee(req, i, status === 'all' || mine === status ? mine : undefined);
  });
}

function byVisibility(viewer: ImageViewer, q: Query, images: ImageRecord[]): ImageRecord[] {
  const visibility = last(q, 'visibility');
  if (visibility === undefined) {
    const project = viewerProject(viewer);
    return images.filter((i) => i.visibility !== 'community' || i.owner === project);
  }
  if (!VISIBILITY_FILTERS.includes(visibility))
    throw badRequest(`Invalid visibility value: ${visibility}`);
  return visibility === 'all' ? images : images.filter((i) => i.visibility === visibility);
}

function bySize(q: Query, images: ImageRecord[]): ImageRecord[] {
  const bound = (key: string) => {
    const raw = last(q, key);
    if (raw === undefined) return undefined;
    if (!/^\s*-?\d{1,18}\s*$/.test(raw))
      throw badRequest('Unable to filter on a range with a non-numeric value.');
    return Number(raw);
  };
  const min = bound('size_min');
  const max = bound('size_max');
  if (min === undefined && max === undefined) return images;
  return images.filter(
    (i) =>
      i.size !== null &&
      (min === undefined || i.size >= min) &&
      (max === undefined || i.size <= max),
  );
}

/** os_hidden (false unless asked), every tag, then columns and extra properties. */
function byAttributes(q: Query, images: ImageRecord[]): ImageRecord[] {
  const hidden = last(q, 'os_hidden');
  if (hidden !== undefined && !['true', 'false'].includes(hidden.toLowerCase()))
    throw new ValidationError('os_hidden', `'${hidden}' is not true or false`);
  const wantHidden = hidden?.toLowerCase() === 'true';
  const tags = values(q.tag).map((t) => t.trim());
  let list = images.filter(
    (i) => i.os_hidden === wantHidden && tags.every((t) => i.tags.includes(t)),
  );
  for (const [key, raw] of Object.entries(q)) {
    if (LIST_PARAMS.includes(key)) continue;
    const want = values(raw);
    const column = COLUMNS.includes(key);
    list = list.filter((i) => {
      if (column) return want.includes(String(i[key as 'owner']));
      return Object.hasOwn(i.properties, key) && want.includes(i.properties[key] as string);
    });
  }
  return list;
}

function sortKey(key: string): SortKey {
  if (!(SORT_KEYS as readonly string[]).includes(key))
    throw badRequest(
      `Invalid sort key: ${key}. It must be one of the following: ${SORT_KEYS.join(', ')}.`,
    );
  return key as SortKey;
}
function sortDir(dir: string): 'asc' | 'desc' {
  if (dir !== 'asc' && dir !== 'desc') throw badRequest(`Invalid sort direction: ${dir}`);
  return dir;
}

/** `key:dir` split at its first colon, as Python's partition (a second one is the dir's). */
function sortPart(part: string): [SortKey, 'asc' | 'desc'] {
  const at = part.indexOf(':');
  const key = at < 0 ? part : part.slice(0, at);
  const dir = at < 0 ? '' : part.slice(at + 1);
  return [sortKey(key.trim()), sortDir(dir.trim() || 'desc')];
}

/** Glance's `_get_sorting_params`: the new syntax, or paired (or one shared) sort_dir. */
function sortParams(q: Query): [SortKey, 'asc' | 'desc'][] {
  const sort = last(q, 'sort');
  if (sort !== undefined) {
    if (q.sort_key !== undefined || q.sort_dir !== undefined)
      throw badRequest('Old and new sorting syntax cannot be combined');
    return sort.trim().split(',').map(sortPart);
  }
  const keys = values(q.sort_key).map((k) => sortKey(k.trim()));
  const dirs = values(q.sort_dir).map((d) => sortDir(d.trim()));
  if (dirs.length > 1 && dirs.length !== keys.length)
    throw badRequest('Number of sort dirs does not match the number of sort keys');
  if (!keys.length) keys.push('created_at');
  return keys.map((k, i) => [k, dirs[i] ?? dirs[0] ?? 'desc']);
}

function compare(a: ImageRecord, b: ImageRecord, key: SortKey): number {
  const x = a[key];
  const y = b[key];
  if (x === y) return 0;
  if (x === null) return -1;
  if (y === null) return 1;
  return x < y ? -1 : 1;
}

/** Sorted by the asked keys, then created_at and id (as Glance adds) for a stable page. */
function sortImages(q: Query, list: ImageRecord[]): ImageRecord[] {
  // Only a key's first occurrence can order anything: repeats are dropped, so a long
  // query costs no more per comparison than the distinct keys.
  const params = sortParams(q).filter(([k], i, all) => all.findIndex(([x]) => x === k) === i);
  for (const key of ['created_at', 'id'] as const)
    if (!params.some(([k]) => k === key)) params.push([key, params[0]?.[1] ?? 'desc']);
  return [...list].sort((a, b) => {
    for (const [key, dir] of params) {
      const c = compare(a, b, key);
      if (c) return dir === 'asc' ? c : -c;
    }
    return 0;
  });
}

/** Glance's `_get_limit`: an integer, not negative; its default, and at most its max. */
function limitOf(q: Query): number {
  const raw = last(q, 'limit');
  if (raw === undefined) return LIMIT_DEFAULT;
  if (!/^\s*[-+]?\d{1,9}\s*$/.test(raw)) throw badRequest('limit param must be an integer');
  const limit = Number(raw);
  if (limit < 0) throw badRequest('limit param must be positive');
  return Math.min(limit, LIMIT_MAX);
}

/**
 * After the marker, at most `limit`; `next` repeats the query with the page's last image
 * as marker when the page is full and not empty (Glance's rule; a limit of 0 has none).
 */
function pageImages(q: Query, sorted: ImageRecord[]) {
  let list = sorted;
  const marker = last(q, 'marker');
  if (marker !== undefined) {
    const at = list.findIndex((i) => i.id === marker);
    if (at < 0) throw badRequest(`Invalid marker. Image ${marker} could not be found.`);
    list = list.slice(at + 1);
  }
  const limit = limitOf(q);
  list = list.slice(0, limit);
  const lastId = list.at(-1)?.id;
  if (lastId === undefined || list.length < limit) return { list, next: undefined };
  return { list, next: `/v2/images?${queryString(q, lastId)}` };
}

/** The query again, without its marker (and with `marker` when given). */
export function queryString(q: Query, marker?: string): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q))
    if (k !== 'marker') for (const one of values(v)) params.append(k, one);
  if (marker !== undefined) params.append('marker', marker);
  return params.toString();
}

/** The page of `images` a list query selects for the caller, and the next page's link. */
export function listQuery(
  req: FastifyRequest<{ Querystring: Query }>,
  images: ImageRecord[],
  memberships: Map<string, MemberStatus>,
) {
  const q = req.query;
  const seen = byVisibility(req, q, visibleTo(req, images, memberships));
  return pageImages(q, sortImages(q, byAttributes(q, bySize(q, seen))));
}
