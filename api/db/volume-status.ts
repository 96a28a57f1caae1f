/**
 * What the agents report of volumes, snapshots and attachments (report_status kinds
 * volume, snapshot from the Volume agent; attachment from the Compute agent), applied to
 * the migration 17 rows as the common flow has it.
 *
 * Invariants:
 * - a volume or snapshot report is applied only from the volume's storage host, an
 *   attachment report only from the attachment's compute host (anything else: ignored);
 * - a status waiting on a revision moves only on a report of at least status_revision
 *   (attach_revision for an attachment): a late report (another replica, a requeue)
 *   never undoes a newer change; ACTIVE at r marks exported every attachment whose
 *   export_revision <= r, whatever the volume's status;
 * - the data is gone (the row deleted) only when a delete was requested (delete_requested),
 *   whatever an admin's reset made of the status since;
 * - size takes an extend's extend_size only when the storage host served it; a failed
 *   extend drops extend_size (the size stays the old one, which the host holds);
 * - every error leaves status_reason and a Cinder user message (volume_messages, event
 *   `VOLUME_<resource type>_<action>_<detail>`, expiring after 30 days);
 * - a report locks the volume row before any other row of the volume, as every API
 *   write does (volume-attachments.ts), so the two never deadlock; each report is one
 *   transaction;
 * - what the report changed that an agent must hear (a compute host handed a connection,
 *   a storage host that must drop an ACL) is returned as hints, sent after the commit.
 */
import type { ResourceStatus } from '../../contracts/status.ts';
import { cinderTime } from './cinder-rows.ts';
import type { Db, Queryable } from './index.ts';
import { bool } from './neutron.ts';
import { type Bumped, bumpVolume } from './volume-attachments.ts';
import { targetPortals } from './volume-info.ts';
import { type Failure, recordMessage } from './volume-messages.ts';

/** Hints a report's changes call for, sent once its transaction committed. */
export interface VolumeHints {
  volumes: Bumped[];
  instances: { host: string; id: string; taskId: number }[];
}

export type LockedVolume = {
  id: string;
  project_id: string;
  host: string | null;
  status: string;
  status_revision: number;
  delete_requested: unknown;
  extend_size: number | null;
};

export async function lockVolume(tx: Queryable, id: string): Promise<LockedVolume | undefined> {
  const [v] = await tx.query<LockedVolume>(
    `UPDATE volumes SET revision_number = revision_number WHERE id = ?
      RETURNING id, project_id, host, status, status_revision, delete_requested,
                extend_size`,
    [id],
  );
  return v;
}

export const setStatus = (tx: Queryable, table: string, id: string, status: string, now: Date) =>
  tx.query(`UPDATE ${table} SET status = ?, status_reason = NULL, updated_at = ? WHERE id = ?`, [
    status,
    cinderTime(now),
    id,
  ]);

/**
 * ACTIVE at `r` from `host`: attachments it exports, each keeping the portal `host`
 * reports now (their compute hosts hinted).
 */
async function markExported(tx: Queryable, v: LockedVolume, r: number, hints: VolumeHints) {
  const portal = v.host === null ? undefined : (await targetPortals(tx)).get(v.host);
  const rows = await tx.query<{ instance_uuid: string }>(
    `UPDATE volume_attachments SET exported = TRUE, target_portal = COALESCE(target_portal, ?)
      WHERE volume_id = ? AND exported = FALSE AND export_revision <= ? RETURNING instance_uuid`,
    [portal ?? null, v.id, r],
  );
  for (const { instance_uuid } of rows) {
    const [inst] = await tx.query<{ host: string; task_id: number }>(
      'SELECT host, task_id FROM instances WHERE id = ? AND deleted_at IS NULL',
      [instance_uuid],
    );
    if (inst?.host)
      hints.instances.push({ host: inst.host, id: instance_uuid, taskId: Number(inst.task_id) });
  }
}

async function attachmentCount(tx: Queryable, volumeId: string): Promise<number> {
  const [row] = await tx.query<{ n: unknown }>(
    'SELECT COUNT(*) AS n FROM volume_attachments WHERE volume_id = ?',
    [volumeId],
  );
  return Number(row?.n ?? 0);
}

/** The volume is gone from its host: the row goes (unless snapshots still name it). */
async function dropVolume(tx: Queryable, id: string) {
  const [snap] = await tx.query('SELECT id FROM volume_snapshots WHERE volume_id = ?', [id]);
  if (snap || (await attachmentCount(tx, id)) > 0) return;
  await tx.query('DELETE FROM volumes WHERE id = ?', [id]);
}

async function volumeActive(tx: Queryable, v: LockedVolume, now: Date) {
  if (v.extend_size !== null)
    await tx.query('UPDATE volumes SET size = extend_size, extend_size = NULL WHERE id = ?', [
      v.id,
    ]);
  if (v.status === 'creating' || v.status === 'extending')
    return setStatus(tx, 'volumes', v.id, 'available', now);
  if (bool(v.delete_requested)) return dropVolume(tx, v.id);
  if (v.status === 'detaching' && (await attachmentCount(tx, v.id)) === 0)
    return setStatus(tx, 'volumes', v.id, 'available', now);
}

const VOLUME_ERRORS: Record<string, [string, Failure]> = {
  creating: ['error', 'create'],
  extending: ['error_extending', 'extend'],
  deleting: ['error_deleting', 'delete'],
};

export async function setError(
  tx: Queryable,
  table: string,
  id: string,
  status: string,
  why: string,
) {
  await tx.query(`UPDATE ${table} SET status = ?, status_reason = ? WHERE id = ?`, [
    status,
    why,
    id,
  ]);
}

/**
 * ERROR while detaching (the storage host could not drop the ACL): the volume stays
 * detaching (the host retries) with the reason, and a user message the first time.
 */
async function detachError(tx: Queryable, v: LockedVolume, why: string, now: Date) {
  const changed = await tx.query(
    `UPDATE volumes SET status_reason = ?
      WHERE id = ? AND (status_reason IS NULL OR status_reason <> ?) RETURNING id`,
    [why, v.id, why],
  );
  if (changed.length === 0) return undefined;
  await recordMessage(
    tx,
    { projectId: v.project_id, id: v.id, action: 'detach', reason: why },
    now,
  );
  return undefined;
}

/** ERROR at `r`: the waiting status fails; a failed export drops its attachment. */
async function volumeError(tx: Queryable, v: LockedVolume, r: number, why: string, now: Date) {
  const failed = bool(v.delete_requested) ? VOLUME_ERRORS.deleting : VOLUME_ERRORS[v.status];
  const note = { projectId: v.project_id, id: v.id, reason: why };
  if (failed) {
    await setError(tx, 'volumes', v.id, failed[0], why);
    if (failed[0] === 'error_extending')
      await tx.query('UPDATE volumes SET extend_size = NULL WHERE id = ?', [v.id]);
    await recordMessage(tx, { ...note, action: failed[1] }, now);
    return undefined;
  }
  if (v.status === 'detaching') return detachError(tx, v, why, now);
  if (v.status !== 'attaching') return;
  const dropped = await tx.query(
    `DELETE FROM volume_attachments
      WHERE volume_id = ? AND exported = FALSE AND export_revision <= ? RETURNING id`,
    [v.id, r],
  );
  if (dropped.length === 0) return undefined;
  await recordMessage(tx, { ...note, action: 'attach' }, now);
  return bumpVolume(tx, v.id, 'detaching', now, why);
}

async function applyVolume(
  tx: Queryable,
  host: string,
  s: ResourceStatus,
  now: Date,
  hints: VolumeHints,
) {
  const v = await lockVolume(tx, s.id);
  if (!v || v.host !== host) return false;
  const r = s.revision ?? Number.MAX_SAFE_INTEGER;
  if (s.status === 'ACTIVE') await markExported(tx, v, r, hints);
  if (r < Number(v.status_revision)) return true;
  if (s.status === 'ACTIVE') await volumeActive(tx, v, now);
  else {
    const why = s.reason ?? 'The volume agent could not serve the volume.';
    const bumped = await volumeError(tx, v, r, why, now);
    if (bumped) hints.volumes.push(bumped);
  }
  return true;
}

async function applySnapshot(tx: Queryable, host: string, s: ResourceStatus, now: Date) {
  const [snap] = await tx.query<{
    status: string;
    status_revision: number;
    project_id: string;
    delete_requested: unknown;
  }>(
    `UPDATE volume_snapshots SET revision_number = revision_number WHERE id = ?
      RETURNING status, status_revision, project_id, volume_id, delete_requested`,
    [s.id],
  );
  const [owner] = await tx.query<{ host: string | null }>(
    'SELECT v.host FROM volume_snapshots s JOIN volumes v ON v.id = s.volume_id WHERE s.id = ?',
    [s.id],
  );
  if (!snap || owner?.host !== host) return false;
  if ((s.revision ?? Number.MAX_SAFE_INTEGER) < Number(snap.status_revision)) return true;
  const gone = bool(snap.delete_requested);
  if (s.status === 'ACTIVE') {
    if (gone) await tx.query('DELETE FROM volume_snapshots WHERE id = ?', [s.id]);
    else if (snap.status === 'creating')
      await setStatus(tx, 'volume_snapshots', s.id, 'available', now);
    return true;
  }
  if (snap.status !== 'creating' && !gone) return true;
  const why = s.reason ?? 'The volume agent could not serve the snapshot.';
  await setError(tx, 'volume_snapshots', s.id, gone ? 'error_deleting' : 'error', why);
  const action = gone ? 'snapshotDelete' : 'snapshotCreate';
  await recordMessage(
    tx,
    { projectId: snap.project_id, snapshot: true, id: s.id, action, reason: why },
    now,
  );
  return true;
}

export type ReportOf = (
  tx: Queryable,
  host: string,
  s: ResourceStatus,
  now: Date,
  hints: VolumeHints,
) => Promise<boolean>;

/**
 * Applies, in order, the statuses one agent of `host` reported, each by `applyOne` in a
 * transaction of its own; the ids ignored (not that host's) and the hints to send.
 */
export async function applyEach(
  db: Db,
  host: string,
  statuses: readonly ResourceStatus[],
  now: Date,
  applyOne: ReportOf,
): Promise<{ ignored: string[]; hints: VolumeHints }> {
  const hints: VolumeHints = { volumes: [], instances: [] };
  const ignored: string[] = [];
  for (const s of statuses) {
    const own: VolumeHints = { volumes: [], instances: [] };
    const applied = await db.transaction((tx) => applyOne(tx, host, s, now, own));
    if (!applied) ignored.push(s.id);
    hints.volumes.push(...own.volumes);
    hints.instances.push(...own.instances);
  }
  return { ignored, hints };
}

/** A Volume agent's report: volumes and snapshots (other kinds: ignored). */
export const applyStorageReport: ReportOf = (tx, host, s, now, hints) => {
  if (s.resource === 'volume') return applyVolume(tx, host, s, now, hints);
  if (s.resource === 'snapshot') return applySnapshot(tx, host, s, now);
  return Promise.resolve(false);
};
