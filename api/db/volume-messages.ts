/**
 * Cinder's user messages (microversion 3.3, migration 17's volume_messages): why a volume
 * or snapshot went to error, readable by its project until they expire.
 *
 * Invariants: a message belongs to the project of the resource it is about; it is kept
 * MESSAGE_TTL_S (Cinder's message_ttl, 30 days) and an expired one is never shown; its
 * text is built by kumo-api (never a raw agent error beyond one line).
 */
import { randomUUID } from 'node:crypto';
import { oneLine } from '../../contracts/schema.ts';
import { cinderTime } from './cinder-rows.ts';
import type { Queryable, Row } from './index.ts';

/** Cinder's default message_ttl. */
export const MESSAGE_TTL_S = 2_592_000;

/**
 * The failures a message records, as Cinder's events (cinder/message/message_field.py):
 * the action's id and words, the detail's id; event_id is
 * `VOLUME_<resource type>_<action>_<detail>`. Cinder records no message for a failed
 * volume delete (it has no such action): `delete` is kumo's 099, outside its table.
 */
const FAILURES = {
  /** SCHEDULE_ALLOCATE_VOLUME, NO_BACKEND_AVAILABLE. */
  schedule: ['001', 'schedule allocate volume', '003'],
  /** CREATE_VOLUME_FROM_BACKEND, DRIVER_FAILED_CREATE. */
  create: ['008', 'create volume from backend storage', '012'],
  /** ATTACH_VOLUME, ATTACH_ERROR. */
  attach: ['002', 'attach volume', '021'],
  /** UPDATE_ATTACHMENT, DETACH_ERROR. */
  detach: ['004', 'update attachment', '022'],
  /** EXTEND_VOLUME, DRIVER_FAILED_EXTEND. */
  extend: ['007', 'extend volume', '010'],
  /** kumo's delete volume, UNKNOWN_ERROR. */
  delete: ['099', 'delete volume', '001'],
  /** SNAPSHOT_CREATE, SNAPSHOT_CREATE_ERROR. */
  snapshotCreate: ['009', 'create snapshot', '013'],
  /** SNAPSHOT_DELETE, SNAPSHOT_DELETE_ERROR. */
  snapshotDelete: ['010', 'delete snapshot', '016'],
} as const;
export type Failure = keyof typeof FAILURES;

export interface VolumeMessage {
  id: string;
  project_id: string;
  resource_type: string;
  resource_uuid: string;
  event_id: string;
  message: string;
  created_at: string;
  expires_at: string;
}

/** Records a user message: `m.action` on the volume (or snapshot) `m.id` failed, why. */
export async function recordMessage(
  q: Queryable,
  m: { projectId: string; snapshot?: boolean; id: string; action: Failure; reason: string },
  now: Date,
): Promise<string> {
  const id = randomUUID();
  const [action, words, detail] = FAILURES[m.action];
  const type = m.snapshot ? 'VOLUME_SNAPSHOT' : 'VOLUME';
  const expires = new Date(now.getTime() + MESSAGE_TTL_S * 1000);
  await q.query(
    `INSERT INTO volume_messages (id, project_id, resource_type, resource_uuid, event_id,
      message, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      id,
      m.projectId,
      type,
      m.id,
      `VOLUME_${type}_${action}_${detail}`,
      oneLine(`${words}: ${m.reason}`, 1000),
      cinderTime(now),
      cinderTime(expires),
    ],
  );
  return id;
}

const toMessage = (r: Row) => ({ ...(r as unknown as VolumeMessage) });

/** The unexpired messages of `projectId` (every project's when undefined), oldest first. */
export async function listVolumeMessages(
  q: Queryable,
  projectId: string | undefined,
  now: Date,
): Promise<VolumeMessage[]> {
  const scope = projectId === undefined ? '' : ' AND project_id = ?';
  const rows = await q.query(
    `SELECT * FROM volume_messages WHERE expires_at > ?${scope} ORDER BY created_at, id`,
    projectId === undefined ? [cinderTime(now)] : [cinderTime(now), projectId],
  );
  return rows.map(toMessage);
}

export async function getVolumeMessage(
  q: Queryable,
  id: string,
  now: Date,
): Promise<VolumeMessage | undefined> {
  const rows = await q.query('SELECT * FROM volume_messages WHERE id = ? AND expires_at > ?', [
    id,
    cinderTime(now),
  ]);
  return rows[0] ? toMessage(rows[0]) : undefined;
}

export async function deleteVolumeMessage(q: Queryable, id: string): Promise<boolean> {
  return (await q.query('DELETE FROM volume_messages WHERE id = ? RETURNING id', [id])).length > 0;
}
