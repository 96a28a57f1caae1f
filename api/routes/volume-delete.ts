/**
 * Loading a volume as the caller may see it, and starting its delete (DELETE and the
 * admin's os-force_delete).
 *
 * Invariants: a delete moves the volume to `deleting` (revision bumped, for its host's
 * hint) only from a status the caller's rule allows, with no snapshot, no attachment
 * (whatever an admin reset its status to) and no volume being copied from it, in one
 * conditional UPDATE under the project's quota lock (the lock a snapshot create also
 * takes) and the volume's row lock (the one a copy's create takes), so a racing
 * snapshot or copy never loses its source; a volume no host holds is deleted at once,
 * as Cinder deletes a volume that has no host.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { VolumeStatus } from '../../contracts/volume.ts';
import type { Queryable } from '../db/index.ts';
import { lockQuota } from '../db/quotas.ts';
import { countSnapshotsOf } from '../db/snapshots.ts';
import { lockVolume } from '../db/volume-status.ts';
import { deleteUnplacedVolume, getVolume, moveVolume, type VolumeRecord } from '../db/volumes.ts';
import type { AppDeps } from '../deps.ts';
import { visible, volumeNotFound } from './cinder-common.ts';

/** Statuses Cinder deletes from (volume/api.py delete, not forced). */
export const DELETABLE: readonly VolumeStatus[] = [
  'available',
  'error',
  'error_extending',
  'error_deleting',
];
/** Statuses a forced delete leaves: any but those of an attachment in flight or held. */
export const FORCE_DELETABLE: readonly VolumeStatus[] = [
  'creating',
  'available',
  'extending',
  'deleting',
  'error',
  'error_deleting',
  'error_extending',
];

/** The volume `id` as the caller may see it, else Cinder's 404. */
export async function loadVolume(
  deps: AppDeps,
  req: FastifyRequest,
  id: string,
): Promise<VolumeRecord> {
  const v = visible(req, await getVolume(deps.db, id));
  if (!v) throw volumeNotFound(id);
  return v;
}

const refusedDelete = (v: VolumeRecord, why: string) =>
  new ApiError('BadRequest', `Invalid volume: Volume ${v.id} cannot be deleted: ${why}`);

/** Cinder's refusal when something still depends on the volume; undefined when nothing. */
async function busyWith(tx: Queryable, id: string): Promise<ApiError | undefined> {
  const snaps = await countSnapshotsOf(tx, id);
  if (snaps > 0)
    return new ApiError(
      'BadRequest',
      `Invalid volume: Volume ${id} still has ${snaps} dependent snapshots (VolumeIsBusy); delete them first.`,
    );
  const [a] = await tx.query('SELECT id FROM volume_attachments WHERE volume_id = ?', [id]);
  if (a)
    return new ApiError(
      'BadRequest',
      `Invalid volume: Volume ${id} is still attached, detach volume first.`,
    );
  const [clone] = await tx.query(
    "SELECT id FROM volumes WHERE source_volid = ? AND status = 'creating'",
    [id],
  );
  if (clone)
    return new ApiError(
      'BadRequest',
      `Invalid volume: Volume ${id} is the source of volume ${String(clone.id)} being created (VolumeIsBusy).`,
    );
  return undefined;
}

/**
 * Moves `v` to `deleting` from one of `from` (no snapshot, attachment or volume being
 * copied from it may remain); the new revision, or undefined when its row went (no host
 * held it). Refusals name why.
 */
export async function startDelete(deps: AppDeps, v: VolumeRecord, from: readonly VolumeStatus[]) {
  if (!from.includes(v.status))
    throw refusedDelete(
      v,
      `its status is ${v.status}; it must be ${from.join(' or ')}, and not attached.`,
    );
  return deps.db.transaction(async (tx) => {
    await lockQuota(tx, deps.db.engine, v.project_id, 'gigabytes');
    if (!(await lockVolume(tx, v.id))) throw volumeNotFound(v.id);
    const busy = await busyWith(tx, v.id);
    if (busy) throw busy;
    if (v.host === null && (await deleteUnplacedVolume(tx, v.id, from))) return undefined;
    const rev = await moveVolume(tx, v.id, from, { to: 'deleting', serve: true }, deps.clock.now());
    if (rev === undefined) throw refusedDelete(v, 'its status changed; try again.');
    return rev;
  });
}
