/**
 * Block storage vocabulary (Cinder's), shared by kumo-api, the volume agent and the
 * compute agent: statuses, names on the host, the iSCSI target and CHAP shapes, and the
 * agent RPC (what a storage host serves, what a compute host attaches).
 *
 * Invariants:
 * - every name that reaches a host tool is derived here from a validated uuid: LVs and
 *   files `volume-<id>` / `snapshot-<id>` (a snapshot's LV is `_snapshot-<id>`, as
 *   Cinder's: LVM refuses LV names starting with "snapshot"), targets
 *   `iqn.2010-10.org.openstack:volume-<id>`;
 *   CHAP users and secrets are [A-Za-z0-9] of a fixed length, initiator names match
 *   INITIATOR_IQN — nothing else reaches tgtadm, lvcreate or a libvirt secret;
 * - a storage host learns a volume's CHAP secret (to export it) and the initiators it
 *   must admit; connection info (`IscsiConnection`) goes only to the compute host an
 *   attachment names, inside its instance (contracts/instances.ts `volumes`);
 * - the API's statuses are the API's: agents report ACTIVE/ERROR with the volume's
 *   revision (contracts/status.ts), and the API moves creating → available and so on.
 */
import { arr, bool, hostname, type Infer, int, nullable, obj, oneOf, str, uuid } from './schema.ts';

export const VOLUME_STATUSES = [
  'creating',
  'available',
  'reserved',
  'attaching',
  'in-use',
  'detaching',
  'extending',
  'deleting',
  'error',
  'error_deleting',
  'error_extending',
] as const;
export type VolumeStatus = (typeof VOLUME_STATUSES)[number];

export const SNAPSHOT_STATUSES = [
  'creating',
  'available',
  'deleting',
  'error',
  'error_deleting',
] as const;
export type SnapshotStatus = (typeof SNAPSHOT_STATUSES)[number];

/** Cinder's attachment records (attach_status). */
export const ATTACH_STATUSES = ['attaching', 'attached', 'detaching'] as const;
export type AttachStatus = (typeof ATTACH_STATUSES)[number];

/** The two backends a volume agent can host; a volume type names one (volume_backend_name). */
export const VOLUME_BACKENDS = ['lvm', 'file'] as const;
export type VolumeBackend = (typeof VOLUME_BACKENDS)[number];

/** Largest volume, in GiB (Cinder has no fixed limit; this keeps sizes sane integers). */
export const MAX_VOLUME_GB = 16_384;

export const IQN_PREFIX = 'iqn.2010-10.org.openstack:';
export const volumeName = (id: string) => `volume-${id}`;
export const snapshotName = (id: string) => `snapshot-${id}`;
export const targetIqn = (volumeId: string) => `${IQN_PREFIX}${volumeName(volumeId)}`;
/** LUN 1 carries the volume (LUN 0 is tgt's controller). */
export const TARGET_LUN = 1;

/** CHAP credentials as Cinder's LVM/tgt driver generates them. */
export const CHAP_USER_LENGTH = 20;
export const CHAP_SECRET_LENGTH = 16;
const CHAP = /^[A-Za-z0-9]+$/;
export const chapUser = () =>
  str({
    min: CHAP_USER_LENGTH,
    max: CHAP_USER_LENGTH,
    pattern: CHAP,
    patternName: 'a CHAP user name',
  });
export const chapSecret = () =>
  str({
    min: CHAP_SECRET_LENGTH,
    max: CHAP_SECRET_LENGTH,
    pattern: CHAP,
    patternName: 'a CHAP secret',
  });

/** An iSCSI qualified name (RFC 3720 §3.2.6.3.1), as an initiator ACL may name it. */
export const INITIATOR_IQN =
  /^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.-]{0,100}(:[A-Za-z0-9.:_-]{1,100})?$/;
export const initiatorIqn = () =>
  str({ max: 223, pattern: INITIATOR_IQN, patternName: 'an iSCSI qualified name' });

/** `host:port` of an iSCSI portal (IPv4 or bracketed IPv6). */
export const PORTAL = /^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9a-fA-F:]{2,39}\]):[0-9]{1,5}$/;

/** One volume as its storage host must hold and export it. */
export const VolumeSpec = obj({
  id: uuid(),
  size_gb: int({ min: 1, max: MAX_VOLUME_GB }),
  backend: oneOf(VOLUME_BACKENDS),
  /** Made from a snapshot's or another volume's data (only on creation). */
  source: nullable(obj({ kind: oneOf(['snapshot', 'volume'] as const), id: uuid() })),
  auth: obj({ username: chapUser(), secret: chapSecret() }),
  /** The initiators the target admits, one per attachment; empty: the target admits nobody. */
  initiators: arr(initiatorIqn(), { max: 64 }),
  /**
   * The data may be made now (the volume is being created). Otherwise a missing LV or
   * file is an ERROR ("data missing"), never silently made anew and empty.
   */
  create: bool(),
  /** The volume is being deleted: wipe and remove it, then report ACTIVE. */
  deleting: bool(),
  revision: int({ min: 0 }),
});
export type VolumeSpec = Infer<typeof VolumeSpec>;

/** One snapshot as its storage host must hold it (on the host of its volume). */
export const SnapshotSpec = obj({
  id: uuid(),
  volume_id: uuid(),
  size_gb: int({ min: 1, max: MAX_VOLUME_GB }),
  backend: oneOf(VOLUME_BACKENDS),
  /** The copy may be made now (the snapshot is being created); see VolumeSpec.create. */
  create: bool(),
  deleting: bool(),
  revision: int({ min: 0 }),
});
export type SnapshotSpec = Infer<typeof SnapshotSpec>;

export const GetHostVolumesArgs = obj({ host: hostname() });
export const GetHostVolumesResult = obj({
  volumes: arr(uuid(), { max: 100_000 }),
  snapshots: arr(uuid(), { max: 100_000 }),
});
export const GetVolumeInfoArgs = obj({ host: hostname(), volume_id: uuid() });
/** `volume: null`: nothing of this id is this host's; remove what is left, unless in use. */
export const GetVolumeInfoResult = obj({ volume: nullable(VolumeSpec) });
export const GetSnapshotInfoArgs = obj({ host: hostname(), snapshot_id: uuid() });
export const GetSnapshotInfoResult = obj({ snapshot: nullable(SnapshotSpec) });

/** Cinder's `connection_info.data` for an iSCSI volume (os-brick's names). */
export const IscsiConnection = obj({
  driver_volume_type: oneOf(['iscsi'] as const),
  target_iqn: str({ max: 223, pattern: /^iqn\.2010-10\.org\.openstack:volume-[0-9a-f-]{36}$/ }),
  target_portal: str({ max: 64, pattern: PORTAL, patternName: 'host:port' }),
  target_lun: int({ min: 0, max: 255 }),
  auth_method: oneOf(['CHAP'] as const),
  auth_username: chapUser(),
  auth_password: chapSecret(),
});
export type IscsiConnection = Infer<typeof IscsiConnection>;

/**
 * One attachment as the compute host of its instance must make it: `attach` hot-plugs
 * the disk (and defines its CHAP secret), `detach` unplugs it and removes the secret;
 * either way the agent reports `attachment` ACTIVE (or ERROR) with `revision`.
 */
export const InstanceVolume = obj({
  attachment_id: uuid(),
  volume_id: uuid(),
  /** The guest device, `vdb`…`vdz`. */
  device: str({ pattern: /^vd[b-z]$/, patternName: 'a virtio disk name' }),
  action: oneOf(['attach', 'detach'] as const),
  connection: nullable(IscsiConnection),
  revision: int({ min: 0 }),
});
export type InstanceVolume = Infer<typeof InstanceVolume>;
