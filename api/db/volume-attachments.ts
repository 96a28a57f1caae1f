/**
 * The attachment writes the API makes itself (Nova's os-volume_attachments, a server's
 * delete): attach, start a detach, drop every attachment of a deleted server; and the
 * one revision bump every change a storage host must serve goes through.
 *
 * Invariants:
 * - a volume has at most one attachment (no multiattach: the UNIQUE volume_id), and an
 *   attach starts only from `available` in the conditional UPDATE that moves the volume
 *   to `attaching`, so two attaches of one volume never both pass;
 * - every change of a volume's initiator list bumps its revision_number, and the status
 *   waiting on it records that revision as status_revision (`bumpVolume`);
 * - every attach replaces the volume's CHAP credentials in the transaction of its
 *   revision bump, so the storage host serves the new account with the new ACL;
 * - the devices of one instance are distinct: an attach locks the instance row before it
 *   reads the devices in use, so two attaches to one server never pick the same one;
 * - an attach is written only while the instance is on its host with no task, in that
 *   same lock, so a racing delete either refuses it or detaches it when it finishes;
 * - an admin's reset to attach_status detached drops every attachment (the way out of a
 *   stuck attach), a delete the ones not attached, each with a revision bump;
 * - every write locks the volume row before any attachment row, as the report path does
 *   (volume-status.ts), so the two never deadlock.
 */
import { randomUUID } from 'node:crypto';
import { cinderTime } from './cinder-rows.ts';
import type { Db, Queryable } from './index.ts';
import { newChap } from './volumes.ts';

/** The guest devices an attachment may take, in the order Nova hands them out. */
export const DEVICES = [...'bcdefghijklmnopqrstuvwxyz'].map((c) => `vd${c}`);

/** A volume whose host must serve a new revision: the host (null: none) and the revision. */
export interface Bumped {
  id: string;
  host: string | null;
  revision: number;
}

/**
 * Bumps the volume's revision, moves it to `status` waiting on that revision; undefined
 * when the row is gone. `reason` replaces status_reason (null clears it).
 */
export async function bumpVolume(
  tx: Queryable,
  id: string,
  status: string,
  now: Date,
  reason: string | null = null,
): Promise<Bumped | undefined> {
  const [row] = await tx.query<{ host: string | null; revision_number: number }>(
    `UPDATE volumes SET status = ?, status_reason = ?, revision_number = revision_number + 1,
        status_revision = revision_number + 1, updated_at = ?
      WHERE id = ? RETURNING host, revision_number`,
    [status, reason, cinderTime(now), id],
  );
  return row && { id, host: row.host, revision: Number(row.revision_number) };
}

/** The free device for a new attachment: `wanted` if free, else the first free one. */
export function pickDevice(
  used: readonly string[],
  wanted: string | undefined,
): { device: string } | { error: 'in_use' | 'none_free' } {
  if (wanted !== undefined) return used.includes(wanted) ? { error: 'in_use' } : { device: wanted };
  const free = DEVICES.find((d) => !used.includes(d));
  return free === undefined ? { error: 'none_free' } : { device: free };
}

export interface AttachRequest {
  volumeId: string;
  instanceId: string;
  /** The instance's compute host and its agent's iSCSI initiator name. */
  host: string;
  initiator: string;
  /** `vdb`…`vdz`, or undefined for the next free one. */
  device?: string;
}

export type AttachResult =
  | { attachmentId: string; device: string; volume: Bumped }
  | { error: 'in_use' | 'none_free'; device?: string }
  | { error: 'volume_status'; status: string | null }
  | { error: 'server_state' };

/**
 * Locks the instance row (still on `host`, not deleted, no task: a delete that started
 * meanwhile has its task set, so it finishes after this attach and detaches it) and
 * reads the devices in use; undefined when the instance moved on.
 */
async function devicesOf(
  tx: Queryable,
  instanceId: string,
  host: string,
): Promise<string[] | undefined> {
  const [held] = await tx.query(
    `UPDATE instances SET id = id
      WHERE id = ? AND host = ? AND deleted_at IS NULL AND task_state IS NULL RETURNING id`,
    [instanceId, host],
  );
  if (!held) return undefined;
  const rows = await tx.query<{ device: string }>(
    'SELECT device FROM volume_attachments WHERE instance_uuid = ?',
    [instanceId],
  );
  return rows.map((r) => r.device);
}

/**
 * Moves an `available` volume to `attaching`, bumps it and gives it new CHAP
 * credentials (a host it was attached to before can no longer log in); undefined otherwise.
 */
async function reserve(tx: Queryable, volumeId: string, now: Date) {
  const [row] = await tx.query<{ id: string }>(
    "SELECT id FROM volumes WHERE id = ? AND status = 'available' AND host IS NOT NULL",
    [volumeId],
  );
  if (!row) return undefined;
  const chap = newChap();
  await tx.query('UPDATE volumes SET auth_username = ?, auth_secret = ? WHERE id = ?', [
    chap.username,
    chap.secret,
    volumeId,
  ]);
  return bumpVolume(tx, volumeId, 'attaching', now);
}

/** The attach of POST os-volume_attachments: one transaction, nothing written on refusal. */
export async function attachVolume(db: Db, req: AttachRequest, now: Date): Promise<AttachResult> {
  return db.transaction(async (tx) => {
    const [locked] = await tx.query<{ status: string }>(
      'UPDATE volumes SET revision_number = revision_number WHERE id = ? RETURNING status',
      [req.volumeId],
    );
    const used = await devicesOf(tx, req.instanceId, req.host);
    if (!used) return { error: 'server_state' };
    const picked = pickDevice(used, req.device);
    if ('error' in picked) return { error: picked.error, device: req.device };
    const volume = await reserve(tx, req.volumeId, now);
    if (!volume) return { error: 'volume_status', status: locked?.status ?? null };
    const attachmentId = randomUUID();
    await tx.query(
      `INSERT INTO volume_attachments (id, volume_id, instance_uuid, attached_host, initiator,
         device, attach_status, export_revision, exported, attach_revision, attached_at,
         created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, 'attaching', ?, FALSE, 1, NULL, ?, NULL)`,
      [
        attachmentId,
        req.volumeId,
        req.instanceId,
        req.host,
        req.initiator,
        picked.device,
        volume.revision,
        cinderTime(now),
      ],
    );
    return { attachmentId, device: picked.device, volume };
  });
}

export type AttachmentRow = {
  id: string;
  volume_id: string;
  instance_uuid: string;
  attached_host: string;
  device: string;
  attach_status: string;
  attach_revision: number;
};

/** The attachments of `instanceId`, by device. */
export async function instanceAttachments(db: Queryable, instanceId: string) {
  return db.query<AttachmentRow>(
    `SELECT id, volume_id, instance_uuid, attached_host, device, attach_status, attach_revision
       FROM volume_attachments WHERE instance_uuid = ? ORDER BY device`,
    [instanceId],
  );
}

export type DetachResult =
  | { detaching: AttachmentRow }
  | { error: 'not_attached' }
  | { error: 'attach_status'; status: string };

/** Starts the detach of the volume from the instance (only an `attached` one). */
export async function startDetach(
  db: Db,
  instanceId: string,
  volumeId: string,
  now: Date,
): Promise<DetachResult> {
  return db.transaction(async (tx) => {
    await tx.query('UPDATE volumes SET revision_number = revision_number WHERE id = ?', [volumeId]);
    const [row] = await tx.query<AttachmentRow>(
      `UPDATE volume_attachments
          SET attach_status = 'detaching', attach_revision = attach_revision + 1, updated_at = ?
        WHERE volume_id = ? AND instance_uuid = ? AND attach_status = 'attached'
        RETURNING id, volume_id, instance_uuid, attached_host, device, attach_status,
                  attach_revision`,
      [cinderTime(now), volumeId, instanceId],
    );
    if (row) {
      await tx.query("UPDATE volumes SET status = 'detaching', updated_at = ? WHERE id = ?", [
        cinderTime(now),
        volumeId,
      ]);
      return { detaching: row };
    }
    const [other] = await tx.query<{ attach_status: string }>(
      'SELECT attach_status FROM volume_attachments WHERE volume_id = ? AND instance_uuid = ?',
      [volumeId, instanceId],
    );
    return other
      ? { error: 'attach_status', status: other.attach_status }
      : { error: 'not_attached' };
  });
}

/**
 * A server is gone: its attachments go, each volume goes `detaching` with a revision
 * bump (its storage host drops the ACL, then the volume is available). The bumped
 * volumes, for their hints.
 */
export async function detachInstance(db: Db, instanceId: string, now: Date): Promise<Bumped[]> {
  return db.transaction(async (tx) => {
    const rows = await tx.query<{ volume_id: string }>(
      'SELECT volume_id FROM volume_attachments WHERE instance_uuid = ? ORDER BY volume_id',
      [instanceId],
    );
    const bumped: Bumped[] = [];
    for (const { volume_id } of rows) {
      await tx.query('UPDATE volumes SET revision_number = revision_number WHERE id = ?', [
        volume_id,
      ]);
      await tx.query('DELETE FROM volume_attachments WHERE volume_id = ? AND instance_uuid = ?', [
        volume_id,
        instanceId,
      ]);
      const b = await bumpVolume(tx, volume_id, 'detaching', now);
      if (b) bumped.push(b);
    }
    return bumped;
  });
}

/** A compute host to hint about an instance whose attachments changed. */
export interface InstanceHint {
  host: string;
  id: string;
  taskId: number;
}

/**
 * Drops the volume's attachments in `which` (the volume row locked first); the compute
 * hosts of their instances, to hint: the spec no longer lists them, so the host unplugs
 * whatever it plugged and removes the secret. The caller bumps the volume (the ACL goes).
 */
export async function dropAttachments(
  tx: Queryable,
  volumeId: string,
  which: readonly string[],
): Promise<InstanceHint[]> {
  await tx.query('UPDATE volumes SET revision_number = revision_number WHERE id = ?', [volumeId]);
  const rows = await tx.query<{ instance_uuid: string }>(
    `DELETE FROM volume_attachments
      WHERE volume_id = ? AND attach_status IN (${which.map(() => '?').join(', ')})
      RETURNING instance_uuid`,
    [volumeId, ...which],
  );
  const out: InstanceHint[] = [];
  for (const { instance_uuid } of rows) {
    const [inst] = await tx.query<{ host: string | null; task_id: number }>(
      'SELECT host, task_id FROM instances WHERE id = ? AND deleted_at IS NULL',
      [instance_uuid],
    );
    if (inst?.host) out.push({ host: inst.host, id: instance_uuid, taskId: Number(inst.task_id) });
  }
  return out;
}

/**
 * An admin's os-reset_status with attach_status detached: every attachment goes, the
 * volume is bumped (its storage host drops the ACL) to `status`; undefined when it is gone.
 */
export async function detachAll(db: Db, volumeId: string, status: string, now: Date) {
  return db.transaction(async (tx) => {
    const instances = await dropAttachments(tx, volumeId, ['attaching', 'attached', 'detaching']);
    const volume = await bumpVolume(tx, volumeId, status, now);
    return volume && { volume, instances };
  });
}
