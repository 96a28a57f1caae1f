/**
 * What a Glance v2 request asks of images, checked: a create body's fields, and a JSON
 * patch (either dialect, contracts/images.ts) applied to a copy of an image's fields.
 *
 * Invariants: every operation is checked for form (read-only attributes and `id` are never
 * patched, 403; a value is required but for remove) before any is policed, as Glance's
 * deserializer runs before its controller; then, operation by operation, each value is
 * parsed, then policed (image-access.ts: owner, visibility), then applied — so a caller
 * who does not own the image changes nothing; core attributes are never removed, and
 * disk/container formats change only while the image is queued (the write is conditional
 * on it, db/images.ts); a new image belongs to the caller's project, and only an admin
 * gives one to another project (`owner`); a v2.0 `add` never overwrites (409, as Glance's
 * draft-4 patches); kernel_id / ramdisk_id are checked for form only, as Glance does
 * (Nova checks they exist at boot), and setting one to null removes it; a key is a core
 * attribute or a property only as an own key — names from Object.prototype are plain
 * property names, and `__proto__` is refused (contracts/compute.ts propertyKey).
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
import { normalizePatch, type PatchDraft } from '../../contracts/images.ts';
import { type Schema, ValidationError } from '../../contracts/schema.ts';
import type { ImageFields, ImageRecord } from '../db/images.ts';
import { requireOwner, requireVisibility, viewerProject } from './image-access.ts';

const fieldsOf = (r: ImageRecord): ImageFields => ({
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
  owner: r.owner,
  properties: { ...r.properties },
});

/** Glance's add_image: a non-admin creates images only for its own project. */
function requireOwnProject(req: FastifyRequest, owner: string) {
  if (req.role !== 'admin' && owner !== viewerProject(req))
    throw new ApiError(
      'PolicyNotAuthorized',
      `You are not permitted to create images owned by '${owner}'`,
    );
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
    owner: core.owner ?? viewerProject(req) ?? '',
    properties: body.properties,
  };
  requireOwnProject(req, fields.owner);
  requireVisibility(req, fields.owner, fields.visibility);
  return fields;
}

const alreadyPresent = (key: string) =>
  new ApiError('Conflict', `Property ${key} already present.`);

const FORMATS: readonly string[] = ['disk_format', 'container_format'];

/** One op on a core attribute: policed, never removed, formats replaced only while queued. */
function patchCore(
  req: FastifyRequest,
  image: ImageRecord,
  f: ImageFields,
  op: PatchOp,
  draft: PatchDraft,
) {
  const key = patchKey(op.path) as ImageCoreKey;
  if (key === 'owner' && req.role !== 'admin')
    throw new ApiError('PolicyNotAuthorized', "Owner can't be updated by non admin.");
  const v =
    op.op === 'remove' ? undefined : (IMAGE_CORE[key] as Schema<unknown>).parse(op.value, key);
  if (key === 'visibility' && v !== undefined) requireVisibility(req, image.owner, v as string);
  requireOwner(req, image, 'modify_image');
  if (op.op === 'remove')
    throw new ApiError('PolicyNotAuthorized', `Property ${key} may not be removed.`);
  if (op.op === 'add' && draft === 4) throw alreadyPresent(key);
  if (FORMATS.includes(key) && image.status !== 'queued')
    throw new ApiError(
      'PolicyNotAuthorized',
      `Attribute ${key} can be only replaced for a queued image.`,
    );
  (f as unknown as Record<string, unknown>)[key] = v;
}

/** Whether an add or replace sets the property to nothing (a null kernel_id/ramdisk_id). */
const clears = (key: string, value: unknown) =>
  value === null && (IMAGE_REF_PROPERTIES as readonly string[]).includes(key);

/** One op on an extra property: policed; remove and replace need it to exist, a v2.0 add not. */
function patchProperty(
  req: FastifyRequest,
  image: ImageRecord,
  f: ImageFields,
  op: PatchOp,
  draft: PatchDraft,
) {
  const key = patchKey(op.path);
  const cleared = op.op === 'remove' || clears(key, op.value);
  const value = cleared ? undefined : parseProperty(key, op.value);
  requireOwner(req, image, 'modify_image');
  const exists = Object.hasOwn(f.properties, key);
  if (op.op === 'add' && exists && draft === 4) throw alreadyPresent(key);
  if (op.op !== 'add' && !exists) throw new ApiError('Conflict', `Property ${key} does not exist.`);
  if (value === undefined) delete f.properties[key];
  else f.properties[key] = value;
}

/** Glance's deserializer: read-only attributes and `id` are refused, add and replace need a value. */
function checkForm(ops: PatchOp[]) {
  for (const [i, op] of ops.entries()) {
    const key = patchKey(op.path);
    if ((IMAGE_READ_ONLY as readonly string[]).includes(key) || key === 'id')
      throw new ReadOnlyAttribute(key);
    if (op.op !== 'remove' && op.value === undefined)
      throw new ValidationError(`[${i}].value`, `is required for ${op.op}`);
  }
}

/**
 * Applies a Glance JSON patch of either dialect to a copy of the image's fields; whether
 * it touched a format (then it may be written only while the image is still queued), and
 * whether it has any operation at all (Glance writes nothing for an empty patch).
 */
export function applyPatch(
  req: FastifyRequest,
  image: ImageRecord,
  body: unknown,
  draft: PatchDraft,
): { fields: ImageFields; queuedOnly: boolean; changed: boolean } {
  const ops = ImagePatch.parse(normalizePatch(body, draft));
  checkForm(ops);
  const f = fieldsOf(image);
  let queuedOnly = false;
  for (const op of ops) {
    const key = patchKey(op.path);
    if (Object.hasOwn(IMAGE_CORE, key)) patchCore(req, image, f, op, draft);
    else patchProperty(req, image, f, op, draft);
    queuedOnly ||= FORMATS.includes(key);
  }
  if (Object.keys(f.properties).length > MAX_IMAGE_PROPERTIES)
    throw new ValidationError(
      'properties',
      `must be at most ${MAX_IMAGE_PROPERTIES} extra properties`,
    );
  return { fields: f, queuedOnly, changed: ops.length > 0 };
}
