/**
 * Cinder's volume and snapshot views at 3.0–3.3 (cinder/api/v2/views/volumes.py and
 * snapshots.py, with the os-vol-host-attr, os-vol-mig-status-attr, os-vol-tenant-attr
 * and os-extended-snapshot-attributes extensions), exactly the keys of the published
 * reference and tempest's schemas.
 *
 * Invariants: create and update answers carry the base view; show and detail lists add
 * the extension attributes, the admin-only ones (host, migration) only for an admin,
 * the tenant one for its owner too (Cinder's admin_or_owner rule); `bootable` is
 * Cinder's "true"/"false" string; a volume's attachments list only attached records
 * (Cinder's _get_attachments); CHAP credentials never appear.
 */
import type { FastifyRequest } from 'fastify';
import type { Row } from '../db/index.ts';
import type { SnapshotRecord } from '../db/snapshots.ts';
import type { VolumeRecord } from '../db/volumes.ts';
import { cinderLinks } from './cinder-common.ts';

export interface ViewOpts {
  /** The path's project (links). */
  project: string;
  /** Show/detail: add the extension attributes. */
  extended: boolean;
  /** Attached records of this volume (db/volumes.ts attachedOf). */
  attachments?: Row[];
}

const attachmentView = (volumeId: string, a: Row) => ({
  server_id: String(a.instance_uuid),
  attachment_id: String(a.id),
  attached_at: (a.attached_at as string | null) ?? null,
  host_name: String(a.attached_host),
  volume_id: volumeId,
  device: `/dev/${String(a.device)}`,
  id: volumeId,
});

/** Cinder's `host@backend#pool` of the volume's storage host. */
const hostAttr = (v: VolumeRecord) => (v.host ? `${v.host}@${v.backend}#${v.backend}` : null);

export function volumeView(req: FastifyRequest, v: VolumeRecord, o: ViewOpts) {
  const admin = req.caller.isAdmin;
  return {
    id: v.id,
    status: v.status,
    size: v.size,
    availability_zone: v.availability_zone,
    created_at: v.created_at,
    updated_at: v.updated_at,
    attachments: (o.attachments ?? []).map((a) => attachmentView(v.id, a)),
    name: v.name,
    description: v.description,
    volume_type: v.type_name,
    snapshot_id: v.snapshot_id,
    source_volid: v.source_volid,
    metadata: v.metadata,
    links: cinderLinks(req, o.project, 'volumes', v.id),
    user_id: v.user_id,
    bootable: v.bootable ? 'true' : 'false',
    encrypted: false,
    replication_status: null,
    consistencygroup_id: null,
    multiattach: false,
    ...(admin ? { migration_status: null } : {}),
    ...(o.extended && admin
      ? {
          'os-vol-host-attr:host': hostAttr(v),
          'os-vol-mig-status-attr:migstat': null,
          'os-vol-mig-status-attr:name_id': null,
        }
      : {}),
    ...(o.extended ? { 'os-vol-tenant-attr:tenant_id': v.project_id } : {}),
  };
}

/** A volume list entry without detail: id, name, links. */
export const volumeBrief = (req: FastifyRequest, project: string, v: VolumeRecord) => ({
  id: v.id,
  name: v.name,
  links: cinderLinks(req, project, 'volumes', v.id),
});

export function snapshotView(s: SnapshotRecord, extended: boolean) {
  return {
    id: s.id,
    created_at: s.created_at,
    updated_at: s.updated_at,
    name: s.name,
    description: s.description,
    volume_id: s.volume_id,
    status: s.status,
    size: s.size,
    metadata: s.metadata,
    ...(extended
      ? {
          'os-extended-snapshot-attributes:progress': s.status === 'available' ? '100%' : '0%',
          'os-extended-snapshot-attributes:project_id': s.project_id,
        }
      : {}),
  };
}
