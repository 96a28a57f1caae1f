/**
 * Loading a volume as the caller may see it, and starting its delete (DELETE and the
 * admin's os-force_delete).
 *
 * Invariants: a delete moves the volume to `deleting` (revision bumped, for its host's
 * hint) only from a status the caller's rule allows, with no snapshot left and no
 * attachment attached (whatever an admin reset its status to), in one
 * conditional UPDATE under the project's quota lock (the lock a snapshot create also
 * takes), so a racing snapshot create never leaves a snapshot without its volume; a
 * volume no host holds (scheduling failed) is deleted at once, as Cinder deletes a
 * volume that has no host; nor is a volume a `creating` volume copies from deleted
 * (volume-sources.ts).
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { VolumeStatus } from '../../contracts/volume.ts';
import { lockQuota } from '../db/quotas.ts';
import { countSnapshotsOf } from '../db/snapshots.ts';
import { dropAttachments } from '../db/volume-attachments.ts';
import { creatingFrom } from '../db/volume-sources.ts';
import { deleteUnplacedVolume, getVolume, moveVolume, type VolumeRecord } from '../db/volumes.ts';
import type { AppDeps } from '../deps.ts';
import { hintInstance } from '../hints.ts';
import { visible, volumeNotFound } from './cinder-common.ts';

/** Statuses Cinder deletes from (volume/api.py delete, not forced). */
export const DELETABLE: readonly VolumeStatus[] = [
  'available',
  'error',
  'error_extending',
  'error_deleting',
];
/**
 * Statuses a forced delete leaves: any but in-use (Cinder's force_delete refuses only an
 * attached volume); an attach or detach in flight loses its attachment.
 */
export const FORCE_DELETABLE: readonly VolumeStatus[] = [
  'creating',
  'available',
  'attaching',
  'detaching',
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

/** Cinder's VolumeIsBusy / SnapshotIsBusy for a source a `creating` volume copies. */
export const busySource = (what: 'Volume' | 'Snapshot', id: string, copy: string) =>
  new ApiError(
    'BadRequest',
    `Invalid ${what.toLowerCase()}: ${what} ${id} is busy: volume ${copy} is being created from it.`,
  );

const refusedDelete = (v: VolumeRecord, why: string) =>
  new ApiError('BadRequest', `Invalid volume: Volume ${v.id} cannot be deleted: ${why}`);

/**
 * Moves `v` to `deleting` from one of `from` (no snapshot may remain, no attachment be
 * attached; one attaching or detaching goes, its compute host hinted); the new revision,
 * or undefined when its row went (no host held it). Refusals name why.
 */
export async function startDelete(deps: AppDeps, v: VolumeRecord, from: readonly VolumeStatus[]) {
  if (!from.includes(v.status))
    throw refusedDelete(
      v,
      `its status is ${v.status}; it must be ${from.join(' or ')}, and not attached.`,
    );
  const moved = await deps.db.transaction(async (tx) => {
    await lockQuota(tx, deps.db.engine, v.project_id, 'gigabytes');
    const copy = await creatingFrom(tx, 'volume', v.id);
    if (copy) throw busySource('Volume', v.id, copy);
    const snaps = await countSnapshotsOf(tx, v.id);
    if (snaps > 0)
      throw new ApiError(
        'BadRequest',
        `Invalid volume: Volume ${v.id} still has ${snaps} dependent snapshots (VolumeIsBusy); delete them first.`,
      );
    if (v.host === null && (await deleteUnplacedVolume(tx, v.id, from))) return undefined;
    const rev = await moveVolume(tx, v.id, from, { to: 'deleting', serve: true }, deps.clock.now());
    if (rev === undefined) throw refusedDelete(v, 'its status changed; try again.');
    const [attached] = await tx.query(
      "SELECT id FROM volume_attachments WHERE volume_id = ? AND attach_status = 'attached'",
      [v.id],
    );
    if (attached)
      throw new ApiError(
        'BadRequest',
        `Invalid volume: Volume ${v.id} is still attached, detach volume first (VolumeAttached).`,
      );
    return { rev, instances: await dropAttachments(tx, v.id, ['attaching', 'detaching']) };
  });
  for (const i of moved?.instances ?? []) await hintInstance(deps, i.host, i.id, i.taskId);
  return moved?.rev;
}
