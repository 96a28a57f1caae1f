/**
 * Reads of the volume rows (migration 17) as the agents are told them: what a storage
 * host holds (ids, one VolumeSpec / SnapshotSpec), what a compute host attaches
 * (InstanceVolume with its IscsiConnection), and the volume ids a server view lists.
 *
 * Invariants:
 * - a storage host is told only about volumes whose `host` is it (and their snapshots):
 *   for any other id the spec is null, so the agent removes what it holds of it;
 * - a volume's initiators are those of all its attachment rows: attaching and attached
 *   ones, and detaching ones whose compute host has not yet reported the unplug (the
 *   guest still holds the device); a row goes only once that host has, so the ACL goes
 *   with it and the detached host can no longer log in;
 * - connection info (with the CHAP secret) goes only to the attachment's own compute
 *   host, and only once the storage host has served the ACL admitting it (exported) or
 *   the attachment is attached; a detaching attachment carries no connection; the portal
 *   is the one stored when the storage host exported it (else the one it reports now):
 *   an attach with neither waits, an attached one is still listed (connection null, so
 *   its compute host keeps the disk and reports the problem, never unplugs it);
 * - the size is an extend's extend_size while it has one (the size asked for), else size;
 * - `deleting` is delete_requested (set by a DELETE or force-delete only), never the
 *   status: an admin's reset to deleting or error_deleting removes no data.
 */
import { agentTypeByKind } from '../../contracts/agents.ts';
import {
  type InstanceVolume,
  PORTAL,
  type SnapshotSpec,
  TARGET_LUN,
  targetIqn,
  VOLUME_BACKENDS,
  type VolumeBackend,
  type VolumeSpec,
} from '../../contracts/volume.ts';
import { queryIn } from './chunks.ts';
import type { Queryable } from './index.ts';
import { bool } from './neutron.ts';

export const VOLUME_AGENT_TYPE = agentTypeByKind('volume').agentType;

const backendOf = (b: string): VolumeBackend =>
  (VOLUME_BACKENDS as readonly string[]).includes(b) ? (b as VolumeBackend) : 'file';

/** The volumes whose storage host is `host`, and the snapshots of those volumes. */
export async function hostVolumeIds(db: Queryable, host: string) {
  const volumes = await db.query<{ id: string }>(
    'SELECT id FROM volumes WHERE host = ? ORDER BY id',
    [host],
  );
  const snapshots = await db.query<{ id: string }>(
    `SELECT s.id FROM volume_snapshots s JOIN volumes v ON v.id = s.volume_id
      WHERE v.host = ? ORDER BY s.id`,
    [host],
  );
  return { volumes: volumes.map((r) => r.id), snapshots: snapshots.map((r) => r.id) };
}

type VolumeRow = {
  id: string;
  size: number;
  status: string;
  backend: string;
  snapshot_id: string | null;
  source_volid: string | null;
  auth_username: string;
  auth_secret: string;
  revision_number: number;
  delete_requested: unknown;
  extend_size: number | null;
};

function sourceOf(v: VolumeRow): VolumeSpec['source'] {
  if (v.status !== 'creating') return null;
  if (v.snapshot_id) return { kind: 'snapshot', id: v.snapshot_id };
  if (v.source_volid) return { kind: 'volume', id: v.source_volid };
  return null;
}

/** The volume as `host` must hold and export it, or null when it is not `host`'s. */
export async function readVolumeSpec(
  tx: Queryable,
  host: string,
  id: string,
): Promise<VolumeSpec | null> {
  const [v] = await tx.query<VolumeRow>(
    `SELECT v.id, v.size, v.status, t.backend, v.snapshot_id, v.source_volid,
            v.auth_username, v.auth_secret, v.revision_number, v.delete_requested,
            v.extend_size
       FROM volumes v JOIN volume_types t ON t.id = v.volume_type_id
      WHERE v.id = ? AND v.host = ?`,
    [id, host],
  );
  if (!v) return null;
  const initiators = await tx.query<{ initiator: string }>(
    'SELECT initiator FROM volume_attachments WHERE volume_id = ? ORDER BY initiator',
    [id],
  );
  return {
    id: v.id,
    size_gb: Number(v.extend_size ?? v.size),
    backend: backendOf(v.backend),
    source: sourceOf(v),
    auth: { username: v.auth_username, secret: v.auth_secret },
    initiators: [...new Set(initiators.map((r) => r.initiator))],
    create: v.status === 'creating',
    deleting: bool(v.delete_requested),
    revision: Number(v.revision_number),
  };
}

/** The snapshot as `host` (its volume's host) must hold it, or null. */
export async function readSnapshotSpec(
  tx: Queryable,
  host: string,
  id: string,
): Promise<SnapshotSpec | null> {
  const [s] = await tx.query<{
    id: string;
    volume_id: string;
    size: number;
    status: string;
    backend: string;
    revision_number: number;
    delete_requested: unknown;
  }>(
    `SELECT s.id, s.volume_id, s.size, s.status, t.backend, s.revision_number,
            s.delete_requested
       FROM volume_snapshots s JOIN volumes v ON v.id = s.volume_id
       JOIN volume_types t ON t.id = v.volume_type_id
      WHERE s.id = ? AND v.host = ?`,
    [id, host],
  );
  if (!s) return null;
  return {
    id: s.id,
    volume_id: s.volume_id,
    size_gb: Number(s.size),
    backend: backendOf(s.backend),
    create: s.status === 'creating',
    deleting: bool(s.delete_requested),
    revision: Number(s.revision_number),
  };
}

/** `target_portal` each volume agent reports (only well-formed ones), by host. */
export async function targetPortals(db: Queryable): Promise<Map<string, string>> {
  const rows = await db.query<{ host: string; configurations: string }>(
    'SELECT host, configurations FROM agents WHERE agent_type = ?',
    [VOLUME_AGENT_TYPE],
  );
  const out = new Map<string, string>();
  for (const r of rows) {
    const portal = (JSON.parse(r.configurations) as { target_portal?: unknown }).target_portal;
    if (typeof portal === 'string' && PORTAL.test(portal)) out.set(r.host, portal);
  }
  return out;
}

type AttachmentJoin = {
  id: string;
  volume_id: string;
  device: string;
  attach_status: string;
  exported: unknown;
  attach_revision: number;
  target_portal: string | null;
  host: string | null;
  auth_username: string;
  auth_secret: string;
};

/** One attachment as its compute host must make it; undefined: nothing to do yet. */
function instanceVolume(
  a: AttachmentJoin,
  portals: Map<string, string>,
): InstanceVolume | undefined {
  const base = {
    attachment_id: a.id,
    volume_id: a.volume_id,
    device: a.device,
    revision: Number(a.attach_revision),
  };
  if (a.attach_status === 'detaching') return { ...base, action: 'detach', connection: null };
  if (a.attach_status === 'attaching' && !bool(a.exported)) return undefined;
  const portal = a.target_portal ?? (a.host === null ? undefined : portals.get(a.host));
  if (portal === undefined)
    return a.attach_status === 'attached'
      ? { ...base, action: 'attach', connection: null }
      : undefined;
  return {
    ...base,
    action: 'attach',
    connection: {
      driver_volume_type: 'iscsi',
      target_iqn: targetIqn(a.volume_id),
      target_portal: portal,
      target_lun: TARGET_LUN,
      auth_method: 'CHAP',
      auth_username: a.auth_username,
      auth_password: a.auth_secret,
    },
  };
}

/**
 * The attachments of instance `instanceId` that its compute host `host` must make or
 * unmake, in device order (see the module invariants for what carries a connection).
 */
export async function instanceVolumes(
  tx: Queryable,
  instanceId: string,
  host: string | null,
): Promise<InstanceVolume[]> {
  if (!host) return [];
  const rows = await tx.query<AttachmentJoin>(
    `SELECT a.id, a.volume_id, a.device, a.attach_status, a.exported, a.attach_revision,
            a.target_portal, v.host, v.auth_username, v.auth_secret
       FROM volume_attachments a JOIN volumes v ON v.id = a.volume_id
      WHERE a.instance_uuid = ? AND a.attached_host = ? ORDER BY a.device`,
    [instanceId, host],
  );
  if (rows.length === 0) return [];
  const portals = await targetPortals(tx);
  return rows.flatMap((a) => instanceVolume(a, portals) ?? []);
}

/** The ids of the volumes attached to each of `instanceIds` (any attach status), by device. */
export async function volumesAttached(
  db: Queryable,
  instanceIds: readonly string[],
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(instanceIds.map((id) => [id, []]));
  const rows = await queryIn<{ instance_uuid: string; volume_id: string }>(
    db,
    instanceIds,
    (list) =>
      `SELECT instance_uuid, volume_id FROM volume_attachments
        WHERE instance_uuid IN ${list} ORDER BY device`,
  );
  for (const r of rows) out.get(r.instance_uuid)?.push(r.volume_id);
  return out;
}
