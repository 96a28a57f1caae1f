/**
 * What a Glance v2 request asks of images, checked: a create body's fields, a JSON patch
 * applied to a copy of an image's fields, and a list query's filters, sort and page.
 *
 * Invariants: read-only attributes (and `id`) are never patched (403); core attributes are
 * never removed, and disk/container formats change only while the image is queued; only
 * an admin makes an image public; kernel_id / ramdisk_id name other, existing images; a
 * list page is cut after filtering and sorting, with a `next` link when more remain.
 */
import type { FastifyRequest } from 'fastify';
import {
  IMAGE_CORE,
  IMAGE_READ_ONLY,
  IMAGE_REF_PROPERTIES,
  type ImageCoreKey,
  ImageCreate,
  ImagePatch,
  MAX_IMAGE_PROPERTIES,
  type PatchOp,
  parseProperty,
  patchKey,
  ReadOnlyAttribute,
} from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import { type Schema, ValidationError } from '../../contracts/schema.ts';
import type { ImageFields, ImageRecord } from '../db/images.ts';
import { missingImages } from '../db/images.ts';
import type { Db } from '../db/index.ts';
import { type Query, values } from '../query.ts';

export const fieldsOf = (r: ImageRecord): ImageFields => ({
  id: r.id,
  name: r.name,
  visibility: r.visibility,
  protected: r.protected,
  os_hidden: r.os_hidden,
  disk_format: r.disk_format,
  container_format: r.container_format,
  min_disk: r.min_disk,
  min_ram: r.min_ram,
  tags: r.tags,
  properties: { ...r.properties },
});

export function requirePublicizer(req: FastifyRequest, visibility: string) {
  if (visibility === 'public' && req.role !== 'admin')
    throw new ApiError('PolicyNotAuthorized', 'You are not authorized to publicize images.');
}

/** kernel_id / ramdisk_id must name existing images (other than this one). */
export async function checkRefs(db: Db, self: string | undefined, props: Record<string, string>) {
  for (const key of IMAGE_REF_PROPERTIES) {
    const ref = props[key];
    if (ref === undefined) continue;
    if (ref === self) throw new ValidationError(key, 'must not name the image itself');
    if ((await missingImages(db, [ref])).length)
      throw new ValidationError(key, `image ${ref} does not exist`);
  }
}

/** A POST /images body → the new image's fields, with Glance's defaults. */
export function createFields(req: FastifyRequest): ImageFields {
  const body = ImageCreate.parse(req.body);
  const core = body.core;
  const fields: ImageFields = {
    ...(body.id ? { id: body.id } : {}),
    name: core.name ?? null,
    visibility: core.visibility ?? 'shared',
    protected: core.protected ?? false,
    os_hidden: core.os_hidden ?? false,
    disk_format: core.disk_format ?? null,
    container_format: core.container_format ?? null,
    min_disk: core.min_disk ?? 0,
    min_ram: core.min_ram ?? 0,
    tags: [...new Set(core.tags ?? [])],
    properties: body.properties,
  };
  requirePublicizer(req, fields.visibility);
  return fields;
}

/** One op on a core attribute: replaced (never removed), formats only while queued. */
function patchCore(req: FastifyRequest, image: ImageRecord, f: ImageFields, op: PatchOp) {
  const key = patchKey(op.path) as ImageCoreKey;
  if (op.op === 'remove')
    throw new ApiError('PolicyNotAuthorized', `Cannot remove core attribute '${key}'.`);
  if ((key === 'disk_format' || key === 'container_format') && image.status !== 'queued')
    throw new ApiError(
      'PolicyNotAuthorized',
      `Attribute ${key} can be only replaced for a queued image.`,
    );
  const v = (IMAGE_CORE[key] as Schema<unknown>).parse(op.value, key);
  (f as unknown as Record<string, unknown>)[key] = v;
  if (key === 'visibility') requirePublicizer(req, v as string);
}

/** One op on an extra property: remove and replace need it to exist. */
function patchProperty(f: ImageFields, op: PatchOp) {
  const key = patchKey(op.path);
  const exists = key in f.properties;
  if (op.op !== 'add' && !exists) throw new ApiError('Conflict', `Property ${key} does not exist.`);
  if (op.op === 'remove') delete f.properties[key];
  else f.properties[key] = parseProperty(key, op.value);
}

/** Applies a Glance JSON patch to a copy of the image's fields. */
export function applyPatch(req: FastifyRequest, image: ImageRecord, body: unknown): ImageFields {
  const ops = ImagePatch.parse(body);
  const f = fieldsOf(image);
  for (const [i, op] of ops.entries()) {
    const key = patchKey(op.path);
    if ((IMAGE_READ_ONLY as readonly string[]).includes(key) || key === 'id')
      throw new ReadOnlyAttribute(key);
    if (op.op !== 'remove' && op.value === undefined)
      throw new ValidationError(`[${i}].value`, `is required for ${op.op}`);
    if (key in IMAGE_CORE) patchCore(req, image, f, op);
    else patchProperty(f, op);
  }
  if (Object.keys(f.properties).length > MAX_IMAGE_PROPERTIES)
    throw new ValidationError(
      'properties',
      `must be at most ${MAX_IMAGE_PROPERTIES} extra properties`,
    );
  return f;
}

const SORT_KEYS = ['created_at', 'updated_at', 'name', 'id', 'status', 'size'] as const;
const LIST_PARAMS = [
  'limit',
  'marker',
  'sort_key',
  'sort_dir',
  'member_status',
  'name',
  'status',
  'visibility',
  'os_hidden',
];

/** os_hidden (false unless asked), then every other key as a column or property filter. */
function filterImages(q: Query, images: ImageRecord[]): ImageRecord[] {
  const hidden = values(q.os_hidden)[0];
  if (hidden !== undefined && !['true', 'false'].includes(hidden.toLowerCase()))
    throw new ValidationError('os_hidden', `'${hidden}' is not true or false`);
  const wantHidden = hidden?.toLowerCase() === 'true';
  let list = images.filter((i) => i.os_hidden === wantHidden);
  for (const [key, raw] of Object.entries(q)) {
    if (LIST_PARAMS.includes(key)) continue;
    const want = values(raw);
    const column = ['disk_format', 'container_format', 'owner'].includes(key);
    list = list.filter((i) =>
      want.includes(String(column ? i[key as 'owner'] : (i.properties[key] ?? '\u0000'))),
    );
  }
  return list;
}

function sortImages(q: Query, list: ImageRecord[]): ImageRecord[] {
  const sortKey = values(q.sort_key)[0];
  if (sortKey === undefined) return list;
  if (!(SORT_KEYS as readonly string[]).includes(sortKey))
    throw new ValidationError('sort_key', `must be one of ${SORT_KEYS.join(', ')}`);
  const dir = values(q.sort_dir)[0] ?? 'desc';
  if (dir !== 'asc' && dir !== 'desc') throw new ValidationError('sort_dir', 'must be asc or desc');
  const k = sortKey as (typeof SORT_KEYS)[number];
  return [...list].sort((a, b) => {
    const c = String(a[k] ?? '').localeCompare(String(b[k] ?? ''), 'en', { numeric: true });
    return dir === 'asc' ? c : -c;
  });
}

/** After the marker, at most `limit`; `next` repeats the query with the new marker. */
function pageImages(q: Query, sorted: ImageRecord[]) {
  let list = sorted;
  const marker = values(q.marker)[0];
  if (marker !== undefined) {
    const at = list.findIndex((i) => i.id === marker);
    if (at < 0)
      throw new ApiError('BadRequest', `Invalid marker. Image ${marker} could not be found.`);
    list = list.slice(at + 1);
  }
  const limitRaw = values(q.limit)[0];
  if (limitRaw === undefined) return { list, next: undefined };
  if (!/^\d{1,9}$/.test(limitRaw))
    throw new ValidationError('limit', 'must be a non-negative integer');
  const limit = Number(limitRaw);
  if (list.length <= limit) return { list, next: undefined };
  list = list.slice(0, limit);
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q))
    if (k !== 'marker') for (const one of values(v)) params.append(k, one);
  params.append('marker', list[list.length - 1]?.id ?? '');
  return { list, next: `/v2/images?${params.toString()}` };
}

/** The page of `images` a list query selects, and the next page's link. */
export function listQuery(q: Query, images: ImageRecord[]) {
  return pageImages(q, sortImages(q, filterImages(q, images)));
}
