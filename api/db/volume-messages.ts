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

/** Cinder's event ids (cinder/message/message_field.py): resource, action, detail. */
export const VOLUME_EVENTS = {
  /** schedule allocate volume: no valid backend. */
  scheduleFailed: 'VOLUME_VOLUME_001_002',
  /** create volume from backend storage: the driver failed. */
  createFailed: 'VOLUME_VOLUME_002_001',
} as const;

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

export async function insertVolumeMessage(
  q: Queryable,
  m: {
    project_id: string;
    resource_type: 'VOLUME' | 'SNAPSHOT';
    resource_uuid: string;
    event_id: string;
    message: string;
  },
  now: Date,
): Promise<string> {
  const id = randomUUID();
  const expires = new Date(now.getTime() + MESSAGE_TTL_S * 1000);
  await q.query(
    `INSERT INTO volume_messages (id, project_id, resource_type, resource_uuid, event_id,
      message, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      id,
      m.project_id,
      m.resource_type,
      m.resource_uuid,
      m.event_id,
      oneLine(m.message, 1000),
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
