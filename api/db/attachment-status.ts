/**
 * What a Compute agent reports of the attachments it makes (report_status kind
 * attachment), applied to volume_attachments and the volume: attaching → attached and
 * the volume in-use; detaching done → the row goes and the volume's revision is bumped
 * (its storage host drops the ACL, then the volume is available); a failed attach drops
 * the attachment the same way, a failed detach leaves it attached and the volume in-use.
 * An attached row keeps a target_portal (the one stored at export, else the storage
 * host's now), so its compute host is never left without the connection it plugged.
 *
 * Invariants: a report is applied only from the attachment's own compute host and only
 * at a revision of at least its attach_revision (a late report undoes nothing newer);
 * the volume row is locked before the attachment row is read for good, as every other
 * writer of them does (volume-attachments.ts, volume-status.ts).
 */
import type { ResourceStatus } from '../../contracts/status.ts';
import { cinderTime } from './cinder-rows.ts';
import type { Queryable } from './index.ts';
import { bumpVolume } from './volume-attachments.ts';
import { targetPortals } from './volume-info.ts';
import { recordMessage } from './volume-messages.ts';
import {
  type LockedVolume,
  lockVolume,
  type ReportOf,
  setError,
  setStatus,
  type VolumeHints,
} from './volume-status.ts';

type AttachmentState = {
  volume_id: string;
  attached_host: string;
  attach_status: string;
  attach_revision: number;
};

/** The compute host made the attach (in-use) or could not (the attachment goes). */
async function attachDone(
  tx: Queryable,
  a: AttachmentState,
  s: ResourceStatus,
  now: Date,
  v: LockedVolume,
) {
  if (s.status === 'ACTIVE') {
    const portal = v.host === null ? undefined : (await targetPortals(tx)).get(v.host);
    await tx.query(
      `UPDATE volume_attachments SET attach_status = 'attached', attached_at = ?, updated_at = ?,
          target_portal = COALESCE(target_portal, ?) WHERE id = ?`,
      [cinderTime(now), cinderTime(now), portal ?? null, s.id],
    );
    if (v.status === 'attaching') await setStatus(tx, 'volumes', v.id, 'in-use', now);
    return undefined;
  }
  const why = s.reason ?? 'The compute agent could not attach the volume.';
  await tx.query('DELETE FROM volume_attachments WHERE id = ?', [s.id]);
  await recordMessage(
    tx,
    { projectId: v.project_id, id: v.id, action: 'attach', reason: why },
    now,
  );
  return bumpVolume(tx, a.volume_id, 'detaching', now, why);
}

/** The compute host unplugged (the attachment goes, the ACL after it) or could not. */
async function detachDone(tx: Queryable, s: ResourceStatus, now: Date, v: LockedVolume) {
  if (s.status === 'ACTIVE') {
    await tx.query('DELETE FROM volume_attachments WHERE id = ?', [s.id]);
    return bumpVolume(tx, v.id, 'detaching', now);
  }
  const why = s.reason ?? 'The compute agent could not detach the volume.';
  await tx.query("UPDATE volume_attachments SET attach_status = 'attached' WHERE id = ?", [s.id]);
  await setError(tx, 'volumes', v.id, 'in-use', why);
  return undefined;
}

async function applyAttachment(
  tx: Queryable,
  host: string,
  s: ResourceStatus,
  now: Date,
  hints: VolumeHints,
) {
  const read = () =>
    tx.query<AttachmentState>(
      'SELECT volume_id, attached_host, attach_status, attach_revision FROM volume_attachments WHERE id = ?',
      [s.id],
    );
  const [first] = await read();
  const v = first && (await lockVolume(tx, first.volume_id));
  const [a] = await read();
  if (!v || !a || a.volume_id !== v.id || a.attached_host !== host) return false;
  if ((s.revision ?? Number.MAX_SAFE_INTEGER) < Number(a.attach_revision)) return true;
  const bumped =
    a.attach_status === 'attaching'
      ? await attachDone(tx, a, s, now, v)
      : a.attach_status === 'detaching'
        ? await detachDone(tx, s, now, v)
        : undefined;
  if (bumped) hints.volumes.push(bumped);
  return true;
}

/** A Compute agent's report of its attachments (other kinds: ignored). */
export const applyAttachmentReport: ReportOf = (tx, host, s, now, hints) =>
  s.resource === 'attachment' ? applyAttachment(tx, host, s, now, hints) : Promise.resolve(false);
