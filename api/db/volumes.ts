/**
 * Volume rows (Cinder's volumes, migration 17) as the REST API writes them: create,
 * name/description/metadata updates, and the status moves a request starts (extend,
 * delete, reset, force-delete). Moves driven by agent reports and attachments are
 * volume-status.ts's and volume-attachments.ts's.
 *
 * Invariants: a status move is one conditional UPDATE on the statuses it may leave
 * (`moveVolume`), so a racing request or report never has its move overwritten; every
 * move the storage host must serve bumps revision_number and sets status_revision to the
 * new revision in the same statement, and returns it for the hint; only a move to
 * `deleting` (DELETE, os-force_delete) sets delete_requested, the one thing that has the
 * storage host remove the data (a reset writes the status alone); an extend writes
 * extend_size, and size takes it only once the storage host served it; the CHAP credentials
 * never leave this module's callers except towards the storage host (rpc-volume.ts).
 */
import { randomBytes } from 'node:crypto';
import {
  CHAP_SECRET_LENGTH,
  CHAP_USER_LENGTH,
  type VolumeBackend,
  type VolumeStatus,
} from '../../contracts/volume.ts';
import { queryIn } from './chunks.ts';
import { cinderTime, exactWhere } from './cinder-rows.ts';
import type { Param, Queryable, Row } from './index.ts';
import { bool } from './neutron.ts';

export interface VolumeRecord {
  id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  size: number;
  status: VolumeStatus;
  volume_type_id: string;
  type_name: string;
  backend: VolumeBackend;
  availability_zone: string;
  host: string | null;
  snapshot_id: string | null;
  source_volid: string | null;
  bootable: boolean;
  metadata: Record<string, string>;
  status_reason: string | null;
  status_revision: number;
  revision_number: number;
  created_at: string;
  updated_at: string | null;
}

const ALPHANUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** `length` characters of [A-Za-z0-9] from node:crypto (rejection sampling: no bias). */
export function randomAlnum(length: number): string {
  let out = '';
  while (out.length < length)
    for (const b of randomBytes(length * 2)) {
      if (b < 248 && out.length < length) out += ALPHANUM[b % 62];
    }
  return out;
}

/** New CHAP credentials, as Cinder's LVM/tgt driver makes them. */
export const newChap = () => ({
  username: randomAlnum(CHAP_USER_LENGTH),
  secret: randomAlnum(CHAP_SECRET_LENGTH),
});

const SELECT = `SELECT v.id, v.project_id, v.user_id, v.name, v.description, v.size, v.status,
  v.volume_type_id, t.name AS type_name, t.backend, v.availability_zone, v.host,
  v.snapshot_id, v.source_volid, v.bootable, v.metadata, v.status_reason,
  v.status_revision, v.revision_number, v.created_at, v.updated_at
  FROM volumes v JOIN volume_types t ON t.id = v.volume_type_id`;

const toRecord = (r: Row): VolumeRecord => ({
  id: String(r.id),
  project_id: String(r.project_id),
  user_id: String(r.user_id),
  name: (r.name as string | null) ?? null,
  description: (r.description as string | null) ?? null,
  size: Number(r.size),
  status: r.status as VolumeStatus,
  volume_type_id: String(r.volume_type_id),
  type_name: String(r.type_name),
  backend: r.backend as VolumeBackend,
  availability_zone: String(r.availability_zone),
  host: (r.host as string | null) ?? null,
  snapshot_id: (r.snapshot_id as string | null) ?? null,
  source_volid: (r.source_volid as string | null) ?? null,
  bootable: bool(r.bootable),
  metadata: JSON.parse(String(r.metadata)) as Record<string, string>,
  status_reason: (r.status_reason as string | null) ?? null,
  status_revision: Number(r.status_revision),
  revision_number: Number(r.revision_number),
  created_at: String(r.created_at),
  updated_at: (r.updated_at as string | null) ?? null,
});

export async function getVolume(q: Queryable, id: string): Promise<VolumeRecord | undefined> {
  const rows = await q.query(`${SELECT} WHERE v.id = ?`, [id]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/**
 * The volumes of `projectId` (every project's when undefined), filtered by exact columns
 * (`where`'s keys are the routes' fixed filter names, never the request's).
 */
export async function listVolumes(
  q: Queryable,
  projectId: string | undefined,
  where: Readonly<Record<string, string>>,
): Promise<VolumeRecord[]> {
  const bootable = (col: string, value: string): Param =>
    col === 'bootable' ? /^(true|1|t|yes|y|on)$/i.test(value) : value;
  const w = exactWhere('v.', projectId, where, bootable);
  return (await q.query(`${SELECT}${w.sql}`, w.params)).map(toRecord);
}

export interface NewVolume {
  id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  size: number;
  status: VolumeStatus;
  volume_type_id: string;
  availability_zone: string;
  host: string | null;
  snapshot_id: string | null;
  source_volid: string | null;
  bootable: boolean;
  metadata: Record<string, string>;
  status_reason: string | null;
}

/** Inserts a volume at revision 1 (status_revision 1) with new CHAP credentials. */
export async function insertVolume(q: Queryable, v: NewVolume, now: Date): Promise<void> {
  const chap = newChap();
  await q.query(
    `INSERT INTO volumes (id, project_id, user_id, name, description, size, status,
      volume_type_id, availability_zone, host, snapshot_id, source_volid, bootable, metadata,
      auth_username, auth_secret, status_reason, status_revision, revision_number,
      created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, ?, NULL)`,
    [
      v.id,
      v.project_id,
      v.user_id,
      v.name,
      v.description,
      v.size,
      v.status,
      v.volume_type_id,
      v.availability_zone,
      v.host,
      v.snapshot_id,
      v.source_volid,
      v.bootable,
      JSON.stringify(v.metadata),
      chap.username,
      chap.secret,
      v.status_reason,
      cinderTime(now),
    ],
  );
}

export interface VolumeMove {
  to: VolumeStatus;
  /** Bump revision_number and wait on it (status_revision = the new revision). */
  serve: boolean;
  /** An extend's size: extend_size, until the storage host serves it (size stays). */
  extendSize?: number;
  reason?: string | null;
}

/**
 * Moves a volume from one of `from` to `m.to` in one conditional UPDATE: the new
 * revision_number, or undefined when the volume is gone or in another status.
 */
export async function moveVolume(
  q: Queryable,
  id: string,
  from: readonly VolumeStatus[],
  m: VolumeMove,
  now: Date,
): Promise<number | undefined> {
  const bump = m.serve
    ? ', revision_number = revision_number + 1, status_revision = revision_number + 1'
    : '';
  const size = m.extendSize !== undefined ? ', extend_size = ?' : '';
  const remove = m.to === 'deleting' ? ', delete_requested = TRUE' : '';
  const params: Param[] = [m.to, m.reason ?? null, cinderTime(now)];
  if (m.extendSize !== undefined) params.push(m.extendSize);
  const rows = await q.query<{ revision_number: unknown }>(
    `UPDATE volumes SET status = ?, status_reason = ?, updated_at = ?${size}${remove}${bump}
      WHERE id = ? AND status IN (${from.map(() => '?').join(', ')}) RETURNING revision_number`,
    [...params, id, ...from],
  );
  return rows[0] ? Number(rows[0].revision_number) : undefined;
}

/**
 * The project's volume count and total size (Cinder's volumes and gigabytes usage); an
 * extending volume counts the size asked for.
 */
export async function volumeUsage(
  q: Queryable,
  projectId: string,
): Promise<{ volumes: number; gigabytes: number }> {
  const rows = await q.query<{ n: unknown; gb: unknown }>(
    'SELECT COUNT(*) AS n, COALESCE(SUM(COALESCE(extend_size, size)), 0) AS gb FROM volumes WHERE project_id = ?',
    [projectId],
  );
  return { volumes: Number(rows[0]?.n ?? 0), gigabytes: Number(rows[0]?.gb ?? 0) };
}

/** Attachment rows of a volume as the volume view lists them (attached ones only). */
export async function attachedOf(
  q: Queryable,
  volumeIds: readonly string[],
): Promise<Map<string, Row[]>> {
  const out = new Map<string, Row[]>();
  const rows = await queryIn(
    q,
    volumeIds,
    (inList) => `SELECT id, volume_id, instance_uuid, attached_host, device, attached_at
       FROM volume_attachments WHERE attach_status = 'attached' AND volume_id IN ${inList}`,
  );
  for (const r of rows) out.set(String(r.volume_id), [...(out.get(String(r.volume_id)) ?? []), r]);
  return out;
}

export interface VolumeType {
  id: string;
  name: string;
  description: string | null;
  is_public: boolean;
  backend: VolumeBackend;
}

const toType = (r: Row): VolumeType => ({
  id: String(r.id),
  name: String(r.name),
  description: (r.description as string | null) ?? null,
  is_public: bool(r.is_public),
  backend: r.backend as VolumeBackend,
});

export async function volumeTypes(q: Queryable): Promise<VolumeType[]> {
  return (await q.query('SELECT * FROM volume_types ORDER BY name')).map(toType);
}

/** The type a name or id names (Cinder's get_by_name_or_id). */
export async function findVolumeType(
  q: Queryable,
  nameOrId: string,
): Promise<VolumeType | undefined> {
  const rows = await q.query('SELECT * FROM volume_types WHERE id = ? OR name = ?', [
    nameOrId,
    nameOrId,
  ]);
  return rows[0] ? toType(rows[0]) : undefined;
}

/** Deletes a volume row that no host holds, from one of `from`; false when it moved on. */
export async function deleteUnplacedVolume(
  q: Queryable,
  id: string,
  from: readonly VolumeStatus[],
): Promise<boolean> {
  const rows = await q.query(
    `DELETE FROM volumes WHERE id = ? AND host IS NULL
      AND status IN (${from.map(() => '?').join(', ')}) RETURNING id`,
    [id, ...from],
  );
  return rows.length === 1;
}

/** Sets a volume's status as an admin's reset does: no revision, nothing asked of a host. */
export async function resetVolumeStatus(q: Queryable, id: string, status: VolumeStatus, now: Date) {
  const rows = await q.query(
    'UPDATE volumes SET status = ?, updated_at = ? WHERE id = ? RETURNING id',
    [status, cinderTime(now), id],
  );
  return rows.length === 1;
}
