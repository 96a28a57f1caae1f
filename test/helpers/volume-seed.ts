/**
 * Volume rows for the volume integration tests, written with SQL as the Cinder API
 * (v17-capi) writes them at create — revision 1, status_revision 1, CHAP credentials of
 * Cinder's lengths — until that API can make them; and volume agents' heartbeats stored
 * through the report consumer's own write path (api/db/reports.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../../api/db/index.ts';
import { storeReports } from '../../api/db/reports.ts';
import type { AgentState } from '../../contracts/agents.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';

export const TYPE_IDS = {
  lvm: '6f1ab9f4-4c3e-5b8e-9a51-1d2c7a0b3e01',
  file: '6f1ab9f4-4c3e-5b8e-9a51-1d2c7a0b3e02',
} as const;

export const CHAP_USER = 'AbCdEfGhIjKlMnOpQrSt';
export const CHAP_SECRET = 'Secret0123456789';

export interface VolumeSeed {
  host?: string | null;
  size?: number;
  backend?: 'lvm' | 'file';
  status?: string;
  projectId?: string;
  snapshotId?: string;
  sourceVolid?: string;
  createdAt?: Date;
}

/** A volume row as the Cinder API's create leaves it (status `creating` by default). */
export async function seedVolume(db: Db, o: VolumeSeed = {}): Promise<string> {
  const id = randomUUID();
  const created = (o.createdAt ?? new Date('2026-11-22T09:00:00.000Z')).toISOString();
  await db.query(
    `INSERT INTO volumes (id, project_id, user_id, name, description, size, status,
       volume_type_id, availability_zone, host, snapshot_id, source_volid, bootable, metadata,
       auth_username, auth_secret, status_reason, status_revision, revision_number,
       created_at, updated_at)
     VALUES (?, ?, 'admin', 'vol', NULL, ?, ?, ?, 'nova', ?, ?, ?, FALSE, '{}', ?, ?, NULL, 1, 1,
       ?, NULL)`,
    [
      id,
      o.projectId ?? DEFAULT_PROJECT_ID,
      o.size ?? 1,
      o.status ?? 'creating',
      TYPE_IDS[o.backend ?? 'file'],
      o.host === undefined ? 's1' : o.host,
      o.snapshotId ?? null,
      o.sourceVolid ?? null,
      CHAP_USER,
      CHAP_SECRET,
      `${created.slice(0, 23)}000`,
    ],
  );
  return id;
}

/** A snapshot row of `volumeId` (status `creating` by default). */
export async function seedSnapshot(db: Db, volumeId: string, status = 'creating'): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO volume_snapshots (id, project_id, user_id, volume_id, name, description, size,
       status, metadata, status_reason, status_revision, revision_number, created_at, updated_at)
     SELECT ?, project_id, 'admin', id, 'snap', NULL, size, ?, '{}', NULL, 1, 1, created_at, NULL
       FROM volumes WHERE id = ?`,
    [id, status, volumeId],
  );
  return id;
}

/**
 * Sets a row's status (and the revision it waits on), as the Cinder API's actions do: a
 * move to `deleting` is a delete request (delete_requested), as DELETE's is.
 */
export async function setVolume(
  db: Db,
  id: string,
  status: string,
  opts: { bump?: boolean; table?: 'volumes' | 'volume_snapshots' } = {},
): Promise<void> {
  const bump = opts.bump
    ? ', revision_number = revision_number + 1, status_revision = revision_number + 1'
    : '';
  const remove = status === 'deleting' ? ', delete_requested = TRUE' : '';
  await db.query(`UPDATE ${opts.table ?? 'volumes'} SET status = ?${remove}${bump} WHERE id = ?`, [
    status,
    id,
  ]);
}

export const volumeState = (host: string, conf: Record<string, unknown> = {}, az?: string) =>
  ({
    agent_type: 'Volume agent',
    binary: 'kumo-volume-agent',
    topic: 'volume_agent',
    host,
    start_flag: true,
    ...(az ? { availability_zone: az } : {}),
    configurations: {
      volume_backend_name: 'file',
      total_capacity_gb: 100,
      free_capacity_gb: 100,
      volumes: 0,
      target_portal: '127.0.0.1:3260',
      ...conf,
    },
  }) as AgentState;

/** Stores a volume agent's heartbeat at `now`, as the report consumer does. */
export async function volumeHeartbeat(db: Db, state: AgentState, now: Date): Promise<void> {
  await db.transaction((tx) => storeReports(tx, [state], now, 30));
}

export async function volumeRow(db: Db, id: string) {
  const [row] = await db.query<{
    status: string;
    status_reason: string | null;
    revision_number: number;
    status_revision: number;
  }>('SELECT status, status_reason, revision_number, status_revision FROM volumes WHERE id = ?', [
    id,
  ]);
  return (
    row && {
      ...row,
      revision_number: Number(row.revision_number),
      status_revision: Number(row.status_revision),
    }
  );
}

/** The user messages about `id`, oldest first, as plain objects. */
export async function messagesOf(db: Db, id: string) {
  const rows = await db.query<{ event_id: string; message: string; resource_type: string }>(
    'SELECT event_id, message, resource_type FROM volume_messages WHERE resource_uuid = ? ORDER BY created_at, event_id',
    [id],
  );
  return rows.map(({ event_id, message, resource_type }) => ({ event_id, message, resource_type }));
}

/** Empties the volume tables (the servers harness clears the rest). */
export async function clearVolumes(db: Db): Promise<void> {
  for (const t of ['volume_attachments', 'volume_snapshots', 'volume_messages', 'volumes'])
    await db.query(`DELETE FROM ${t}`);
}
