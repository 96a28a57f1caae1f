/**
 * Snapshot rows (Cinder's volume_snapshots, migration 17) as the REST API writes them:
 * create, text updates, and the status moves a request starts (delete, reset).
 *
 * Invariants: a snapshot lives on its volume's host and is never without its volume
 * (the volume's delete is refused while any snapshot row remains); a status move is one
 * conditional UPDATE on the statuses it may leave, bumping revision_number (and
 * status_revision) when the storage host must serve it, and returns the new revision.
 */
import type { SnapshotStatus } from '../../contracts/volume.ts';
import { cinderTime, exactWhere } from './cinder-rows.ts';
import type { Queryable, Row } from './index.ts';

export interface SnapshotRecord {
  id: string;
  project_id: string;
  user_id: string;
  volume_id: string;
  name: string | null;
  description: string | null;
  size: number;
  status: SnapshotStatus;
  metadata: Record<string, string>;
  status_reason: string | null;
  revision_number: number;
  created_at: string;
  updated_at: string | null;
}

const COLUMNS = `id, project_id, user_id, volume_id, name, description, size, status, metadata,
  status_reason, revision_number, created_at, updated_at`;

const toRecord = (r: Row): SnapshotRecord => ({
  id: String(r.id),
  project_id: String(r.project_id),
  user_id: String(r.user_id),
  volume_id: String(r.volume_id),
  name: (r.name as string | null) ?? null,
  description: (r.description as string | null) ?? null,
  size: Number(r.size),
  status: r.status as SnapshotStatus,
  metadata: JSON.parse(String(r.metadata)) as Record<string, string>,
  status_reason: (r.status_reason as string | null) ?? null,
  revision_number: Number(r.revision_number),
  created_at: String(r.created_at),
  updated_at: (r.updated_at as string | null) ?? null,
});

export async function getSnapshot(q: Queryable, id: string): Promise<SnapshotRecord | undefined> {
  const rows = await q.query(`SELECT ${COLUMNS} FROM volume_snapshots WHERE id = ?`, [id]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/** The snapshots of `projectId` (all when undefined), filtered by exact columns. */
export async function listSnapshots(
  q: Queryable,
  projectId: string | undefined,
  where: Readonly<Record<string, string>>,
): Promise<SnapshotRecord[]> {
  const w = exactWhere('', projectId, where);
  return (await q.query(`SELECT ${COLUMNS} FROM volume_snapshots${w.sql}`, w.params)).map(toRecord);
}

export interface NewSnapshot {
  id: string;
  project_id: string;
  user_id: string;
  volume_id: string;
  name: string | null;
  description: string | null;
  size: number;
  metadata: Record<string, string>;
}

/** Inserts a `creating` snapshot at revision 1 (status_revision 1). */
export async function insertSnapshot(q: Queryable, s: NewSnapshot, now: Date): Promise<void> {
  await q.query(
    `INSERT INTO volume_snapshots (id, project_id, user_id, volume_id, name, description, size,
      status, metadata, status_reason, status_revision, revision_number, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, 'creating', ?, NULL, 1, 1, ?, NULL)`,
    [
      s.id,
      s.project_id,
      s.user_id,
      s.volume_id,
      s.name,
      s.description,
      s.size,
      JSON.stringify(s.metadata),
      cinderTime(now),
    ],
  );
}

/**
 * Moves a snapshot from one of `from` to `to` in one conditional UPDATE (bumping its
 * revision when `serve`): the new revision_number, or undefined when it is gone or moved.
 * A move to `deleting` (DELETE) sets delete_requested: the storage host removes the data.
 */
export async function moveSnapshot(
  q: Queryable,
  id: string,
  from: readonly SnapshotStatus[],
  to: SnapshotStatus,
  serve: boolean,
  now: Date,
): Promise<number | undefined> {
  const bump = serve
    ? ', revision_number = revision_number + 1, status_revision = revision_number + 1'
    : '';
  const remove = to === 'deleting' ? ', delete_requested = TRUE' : '';
  const rows = await q.query<{ revision_number: unknown }>(
    `UPDATE volume_snapshots SET status = ?, status_reason = NULL, updated_at = ?${remove}${bump}
      WHERE id = ? AND status IN (${from.map(() => '?').join(', ')}) RETURNING revision_number`,
    [to, cinderTime(now), id, ...from],
  );
  return rows[0] ? Number(rows[0].revision_number) : undefined;
}

/** The project's snapshot count and total size (Cinder's snapshots and gigabytes usage). */
export async function snapshotUsage(
  q: Queryable,
  projectId: string,
): Promise<{ snapshots: number; gigabytes: number }> {
  const rows = await q.query<{ n: unknown; gb: unknown }>(
    'SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS gb FROM volume_snapshots WHERE project_id = ?',
    [projectId],
  );
  return { snapshots: Number(rows[0]?.n ?? 0), gigabytes: Number(rows[0]?.gb ?? 0) };
}

/** How many snapshots a volume has (any status). */
export async function countSnapshotsOf(q: Queryable, volumeId: string): Promise<number> {
  const rows = await q.query<{ n: unknown }>(
    'SELECT COUNT(*) AS n FROM volume_snapshots WHERE volume_id = ?',
    [volumeId],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Sets a snapshot's status as an admin's reset does: no revision, nothing asked of a host. */
export async function resetSnapshotStatus(
  q: Queryable,
  id: string,
  status: SnapshotStatus,
  now: Date,
) {
  const rows = await q.query(
    'UPDATE volume_snapshots SET status = ?, updated_at = ? WHERE id = ? RETURNING id',
    [status, cinderTime(now), id],
  );
  return rows.length === 1;
}
