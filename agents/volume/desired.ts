/**
 * What one volume or snapshot must look like on this storage host, from the API's
 * VolumeSpec / SnapshotSpec (get_volume_info / get_snapshot_info). Pure.
 *
 * Invariants:
 * - every host name is derived from the validated uuid (contracts/volume.ts): the data
 *   object `volume-<id>` / `snapshot-<id>`, the target `targetIqn(id)`; the CHAP user and
 *   secret and the initiator names were validated by the contract's schema, so nothing
 *   else reaches tgtadm, lvcreate or a path;
 * - data is made only while the spec says `create` (the API's creating): otherwise a
 *   missing object is an ERROR naming its path, so a volumes_dir not mounted or a lost LV
 *   is never silently replaced by a blank one exported to an attached guest;
 * - a target exists iff the volume is present and the backend can export it (files; LVM
 *   with lvm_activation = true), from creation on, with or without initiators: its ACL is
 *   exactly the spec's initiators (sorted, deduplicated; empty, tgt admits nobody) and its
 *   one account is the spec's CHAP user. Attaching or detaching only changes the ACL;
 * - LVM without activation has no device to export: no target, and a volume with
 *   initiators (an attach) is a PermanentError naming lvm_activation;
 * - `deleted` carries `claimed`: the API asked for the deletion (deleting: the ERROR "in
 *   use" when a session is connected) or answered null (unclaimed: removed only when no
 *   session is connected, else kept and logged) — a volume the API knows and does not
 *   delete is never `deleted`.
 */

import { PermanentError } from '../../contracts/errors.ts';
import type { SnapshotSpec, VolumeBackend, VolumeSpec } from '../../contracts/volume.ts';
import { snapshotName, TARGET_LUN, targetIqn, volumeName } from '../../contracts/volume.ts';
import { lvName } from '../../host/lvm/names.ts';
import type { VolumeSettings } from './settings.ts';

export interface DesiredTarget {
  iqn: string;
  lun: number;
  /** The LUN's backing store: the file's path or the LV's device. */
  backing: string;
  user: string;
  secret: string;
  /** Sorted, without duplicates. */
  initiators: string[];
}

/** A data object a volume is made from on creation. */
export interface DataSource {
  kind: 'snapshot' | 'volume';
  name: string;
}

export interface PresentVolume {
  state: 'present';
  id: string;
  name: string;
  sizeGb: number;
  source: DataSource | null;
  target: DesiredTarget | null;
  /** The data may be made (spec.create); else a missing object is the ERROR "data missing". */
  create: boolean;
  /** Where the data object is, as a "data missing" ERROR names it. */
  path: string;
  revision: number;
}

export interface DeletedObject {
  state: 'deleted';
  id: string;
  name: string;
  /** The iqn a volume's target has (null for a snapshot: it has none). */
  iqn: string | null;
  /** The CHAP user the API gave the volume (null: unclaimed, or a snapshot). */
  user: string | null;
  /** Asked by the API (true) or answered null (false: kept while in use). */
  claimed: boolean;
  /** Overwrite the data with zeros before removing it. */
  clear: boolean;
  revision: number | null;
}

export type DesiredVolume = PresentVolume | DeletedObject;

export interface PresentSnapshot {
  state: 'present';
  id: string;
  name: string;
  /** The volume's data object the snapshot is taken of. */
  origin: string;
  sizeGb: number;
  /** See PresentVolume.create / path. */
  create: boolean;
  path: string;
  revision: number;
}

export type DesiredSnapshot = PresentSnapshot | DeletedObject;

/** Whether a deleted object's data is zeroed first: files, and thick LVs with activation. */
export function clears(s: VolumeSettings): boolean {
  if (s.volumeClear !== 'zero') return false;
  if (s.driver === 'file') return true;
  return s.lvmType === 'default' && s.activation;
}

/** The block device or file a data object is, as tgtd opens it. */
export function backingOf(s: VolumeSettings, name: string): string {
  return s.driver === 'file' ? `${s.volumesDir}/${name}` : `/dev/${s.vg}/${name}`;
}

/** Where a data object is: its file, or its LV as `<vg>/<lv>` (a snapshot's: `_snapshot-<id>`). */
export function dataPath(s: VolumeSettings, name: string): string {
  return s.driver === 'file' ? `${s.volumesDir}/${name}` : `${s.vg}/${lvName(name)}`;
}

/** Whether this host can put a target on a volume (LVM needs device-mapper for a device). */
export function canExport(s: VolumeSettings): boolean {
  return s.driver === 'file' || s.activation;
}

function checkBackend(backend: VolumeBackend, s: VolumeSettings, what: string): void {
  if (backend !== s.driver)
    throw new PermanentError(`${what} is for the ${backend} backend; this host serves ${s.driver}`);
}

function deleted(
  s: VolumeSettings,
  id: string,
  name: string,
  spec: { revision: number; user?: string } | null,
  iqn: string | null,
): DeletedObject {
  return {
    state: 'deleted',
    id,
    name,
    iqn,
    user: spec?.user ?? null,
    claimed: spec !== null,
    clear: clears(s),
    revision: spec?.revision ?? null,
  };
}

export function desiredVolume(
  spec: VolumeSpec | null,
  id: string,
  s: VolumeSettings,
): DesiredVolume {
  const name = volumeName(id);
  if (spec === null) return deleted(s, id, name, null, targetIqn(id));
  checkBackend(spec.backend, s, `volume ${id}`);
  if (spec.deleting)
    return deleted(
      s,
      id,
      name,
      { revision: spec.revision, user: spec.auth.username },
      targetIqn(id),
    );
  const initiators = [...new Set(spec.initiators)].sort();
  if (initiators.length && !canExport(s))
    throw new PermanentError('cannot export a volume with lvm_activation = false (no device)');
  const target: DesiredTarget | null = canExport(s)
    ? {
        iqn: targetIqn(id),
        lun: TARGET_LUN,
        backing: backingOf(s, name),
        user: spec.auth.username,
        secret: spec.auth.secret,
        initiators,
      }
    : null;
  const source = spec.source
    ? {
        kind: spec.source.kind,
        name:
          spec.source.kind === 'snapshot'
            ? snapshotName(spec.source.id)
            : volumeName(spec.source.id),
      }
    : null;
  return {
    state: 'present',
    id,
    name,
    sizeGb: spec.size_gb,
    source,
    target,
    create: spec.create,
    path: dataPath(s, name),
    revision: spec.revision,
  };
}

export function desiredSnapshot(
  spec: SnapshotSpec | null,
  id: string,
  s: VolumeSettings,
): DesiredSnapshot {
  const name = snapshotName(id);
  if (spec === null) return deleted(s, id, name, null, null);
  checkBackend(spec.backend, s, `snapshot ${id}`);
  if (spec.deleting) return deleted(s, id, name, { revision: spec.revision }, null);
  return {
    state: 'present',
    id,
    name,
    origin: volumeName(spec.volume_id),
    sizeGb: spec.size_gb,
    create: spec.create,
    path: dataPath(s, name),
    revision: spec.revision,
  };
}
