/**
 * Image rows (Glance v2 images): metadata, extra properties, and the status transitions
 * of an upload (queued → saving → active, or back to queued when the upload fails).
 *
 * Invariants: only one upload runs per image — `beginUpload` moves queued → saving with a
 * conditional UPDATE, so a second upload (or one racing on another replica) gets false;
 * `finishUpload` only activates an image still saving, so an image deleted mid-upload is
 * never resurrected; (de|re)activation moves only an active or deactivated image
 * (`setImageStatus` is conditional on the status it was read in); a PATCH is written only
 * over the fields it was computed from (`updateImageFields`), and a format change only
 * while the image is queued, so a racing patch or upload is never overwritten; a
 * protected image is never deleted (the DELETE is conditional on it).
 */
import { randomUUID } from 'node:crypto';
import type { Image, ImageCore, ImageStatus } from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import type { Db, Param, Queryable, Row } from './index.ts';
import { bool, numOrNull, resourceTime } from './neutron.ts';

interface ImageRow extends Row {
  id: string;
  name: string | null;
  status: string;
  visibility: string;
  protected: unknown;
  os_hidden: unknown;
  disk_format: string | null;
  container_format: string | null;
  min_disk: unknown;
  min_ram: unknown;
  size: unknown;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  tags: string;
  properties: string;
  owner: string;
  created_at: string;
  updated_at: string;
}

/** The stored part of an image: everything but the links. */
export type ImageRecord = ImageCore & {
  properties: Record<string, string>;
};

const toRecord = (r: ImageRow): ImageRecord => ({
  id: r.id,
  name: r.name,
  status: r.status as ImageStatus,
  visibility: r.visibility as Image['visibility'],
  protected: bool(r.protected),
  os_hidden: bool(r.os_hidden),
  checksum: r.checksum,
  os_hash_algo: r.os_hash_algo,
  os_hash_value: r.os_hash_value,
  size: numOrNull(r.size),
  virtual_size: null,
  min_disk: Number(r.min_disk),
  min_ram: Number(r.min_ram),
  disk_format: r.disk_format as Image['disk_format'],
  container_format: r.container_format as Image['container_format'],
  owner: r.owner,
  created_at: r.created_at,
  updated_at: r.updated_at,
  tags: JSON.parse(r.tags) as string[],
  properties: JSON.parse(r.properties) as Record<string, string>,
});

/** The Glance representation: core attributes, extra properties flat, links. */
export function imageView(r: ImageRecord): Image {
  const { properties, ...core } = r;
  return {
    ...properties,
    ...core,
    self: `/v2/images/${r.id}`,
    file: `/v2/images/${r.id}/file`,
    schema: '/v2/schemas/image',
  };
}

export function imageNotFound(id: string): ApiError {
  return new ApiError('NotFound', `No image found with ID ${id}`);
}

export async function listImages(
  db: Db,
  filter: { name?: string[]; status?: string[]; visibility?: string[] },
): Promise<ImageRecord[]> {
  const where: string[] = [];
  const params: Param[] = [];
  for (const [column, values] of Object.entries(filter)) {
    if (!values?.length) continue;
    where.push(`${column} IN (${values.map(() => '?').join(', ')})`);
    params.push(...values);
  }
  const sql = `SELECT * FROM images${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC`;
  return (await db.query<ImageRow>(sql, params)).map(toRecord);
}

export async function getImage(db: Queryable, id: string): Promise<ImageRecord | undefined> {
  const rows = await db.query<ImageRow>('SELECT * FROM images WHERE id = ?', [id]);
  return rows[0] && toRecord(rows[0]);
}

export interface ImageFields {
  id?: string;
  name: string | null;
  visibility: Image['visibility'];
  protected: boolean;
  os_hidden: boolean;
  disk_format: Image['disk_format'];
  container_format: Image['container_format'];
  min_disk: number;
  min_ram: number;
  tags: string[];
  owner: string;
  properties: Record<string, string>;
}

export async function insertImage(db: Queryable, f: ImageFields, now: Date): Promise<string> {
  const id = f.id ?? randomUUID();
  const t = resourceTime(now);
  await db.query(
    `INSERT INTO images (id, name, status, visibility, protected, os_hidden, disk_format,
       container_format, min_disk, min_ram, size, checksum, os_hash_algo, os_hash_value, tags,
       properties, owner, created_at, updated_at)
     VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, ?, ?, ?, ?)`,
    [
      id,
      f.name,
      f.visibility,
      f.protected,
      f.os_hidden,
      f.disk_format,
      f.container_format,
      f.min_disk,
      f.min_ram,
      JSON.stringify(f.tags),
      JSON.stringify(f.properties),
      f.owner,
      t,
      t,
    ],
  );
  return id;
}

/** The columns a PATCH writes, in order, and the values `f` gives them. */
const PATCHED = [
  'name',
  'visibility',
  'protected',
  'os_hidden',
  'disk_format',
  'container_format',
  'min_disk',
  'min_ram',
  'tags',
  'properties',
  'owner',
] as const;
const patchedValues = (f: ImageFields): Param[] =>
  PATCHED.map((c) => (c === 'tags' || c === 'properties' ? JSON.stringify(f[c]) : f[c]));

/**
 * Writes a PATCH's fields only over the state they were computed from (`before`, and a
 * queued status when `queuedOnly`); false when the image moved meanwhile (or is gone).
 */
export async function updateImageFields(
  db: Queryable,
  before: ImageRecord,
  f: ImageFields,
  queuedOnly: boolean,
  now: Date,
): Promise<boolean> {
  const set = PATCHED.map((c) => `${c} = ?`).join(', ');
  const same = PATCHED.map((c) => `${c} IS NOT DISTINCT FROM ?`).join(' AND ');
  const rows = await db.query(
    `UPDATE images SET ${set}, updated_at = ? WHERE id = ? AND ${same}${queuedOnly ? " AND status = 'queued'" : ''} RETURNING id`,
    [...patchedValues(f), resourceTime(now), before.id, ...patchedValues(before)],
  );
  return rows.length > 0;
}

/** queued → saving; false when the image is not queued (already uploaded or uploading). */
export async function beginUpload(db: Db, id: string, now: Date): Promise<boolean> {
  const rows = await db.query(
    `UPDATE images SET status = 'saving', updated_at = ? WHERE id = ? AND status = 'queued' RETURNING id`,
    [resourceTime(now), id],
  );
  return rows.length > 0;
}

/** saving → queued after a failed upload. */
export async function abortUpload(db: Db, id: string, now: Date): Promise<void> {
  await db.query(
    `UPDATE images SET status = 'queued', updated_at = ? WHERE id = ? AND status = 'saving'`,
    [resourceTime(now), id],
  );
}

/** saving → active with the data's size and hashes; false when the image is gone. */
export async function finishUpload(
  db: Db,
  id: string,
  data: { size: number; md5: string; sha512: string },
  now: Date,
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE images SET status = 'active', size = ?, checksum = ?, os_hash_algo = 'sha512',
       os_hash_value = ?, updated_at = ? WHERE id = ? AND status = 'saving' RETURNING id`,
    [data.size, data.md5, data.sha512, resourceTime(now), id],
  );
  return rows.length > 0;
}

/** `from` → `to`; false when the image is no longer `from` (it moved meanwhile). */
export async function setImageStatus(
  db: Db,
  id: string,
  from: ImageStatus,
  to: ImageStatus,
  now: Date,
): Promise<boolean> {
  const rows = await db.query(
    'UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ? RETURNING id',
    [to, resourceTime(now), id, from],
  );
  return rows.length > 0;
}

/** Deletes the image unless it is protected (now); its members go with it (ON DELETE CASCADE). */
export async function deleteImage(db: Db, id: string): Promise<boolean> {
  const rows = await db.query('DELETE FROM images WHERE id = ? AND protected = ? RETURNING id', [
    id,
    false,
  ]);
  return rows.length > 0;
}
