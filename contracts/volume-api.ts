/**
 * Cinder v3's request bodies as kumo-api accepts them (cinder/api/schemas/volumes.py,
 * snapshots.py, volume_actions.py, quotas): the volume and snapshot creates and updates,
 * and the os-extend / os-reset_status / os-force_delete actions.
 *
 * Invariants: a body is parsed whole before anything is written, and a refusal names the
 * field (`volume.size`); names, descriptions and metadata never hold control characters
 * (schema.ts), sizes are integers 1..MAX_VOLUME_GB, ids are lowercase uuids; what Kumo does
 * not do (volumes from images or backups, groups, multiattach) is refused by name rather
 * than ignored. Keys Cinder would accept but Kumo does not know are refused too.
 */
import {
  bool,
  isPlainObject,
  nullable,
  oneOf,
  optional,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';
import {
  MAX_VOLUME_GB,
  SNAPSHOT_STATUSES,
  type SnapshotStatus,
  VOLUME_STATUSES,
  type VolumeStatus,
} from './volume.ts';

const fail = (path: string, reason: string): never => {
  throw new ValidationError(path, reason);
};

/** Cinder's parameter_types.name / description: a string of at most 255, or null. */
export const volumeText = () => optional(nullable(str({ max: 255 })));

/** Cinder's volume size: an integer (or a string of digits) from 1 to MAX_VOLUME_GB. */
export function volumeSize(value: unknown, path: string): number {
  const n = typeof value === 'string' && /^\s*[0-9]{1,12}\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n))
    return fail(path, `must be an integer, got ${JSON.stringify(value)?.slice(0, 40)}`);
  if (n < 1 || n > MAX_VOLUME_GB) return fail(path, `must be between 1 and ${MAX_VOLUME_GB}`);
  return n;
}

const META_KEY = str({ min: 1, max: 255 });
const META_VALUE = str({ max: 255 });
/** Most metadata items a volume or snapshot holds (Cinder's metadata_items quota). */
export const MAX_METADATA_ITEMS = 128;

/** Cinder's metadata: string keys (1..255) to string values (0..255); null is none. */
export function volumeMetadata(value: unknown, path: string): Record<string, string> {
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) return fail(path, 'must be an object of strings');
  const entries = Object.entries(value);
  if (entries.length > MAX_METADATA_ITEMS)
    fail(path, `must have at most ${MAX_METADATA_ITEMS} items`);
  const out: Record<string, string> = {};
  for (const [k, v] of entries)
    out[META_KEY.parse(k, `${path} key`)] = META_VALUE.parse(v, `${path}.${k}`);
  return out;
}

/** An optional uuid that may be sent as null (cinderclient sends every key). */
const optionalId = () => optional(nullable(uuid()));

/** The body's one object under `key`, or a 400 naming it. */
export function bodyObject(body: unknown, key: string): Record<string, unknown> {
  const inner = isPlainObject(body) ? body[key] : undefined;
  if (!isPlainObject(inner)) return fail(key, 'is required and must be an object');
  return inner;
}

/** Keys beside the known ones are refused, naming the first. */
function onlyKnown(o: Record<string, unknown>, path: string, known: readonly string[]) {
  for (const key of Object.keys(o))
    if (!known.includes(key)) fail(`${path}.${key}`, 'is not a recognised attribute');
}

/** Keys Cinder takes whose features Kumo lacks: refused unless absent or null. */
const UNSUPPORTED = {
  imageRef: 'creating a volume from an image is not supported',
  backup_id: 'creating a volume from a backup is not supported',
  consistencygroup_id: 'consistency groups are not supported',
  group_id: 'groups are not supported',
} as const;

const CREATE_KEYS = [
  'size',
  'name',
  'description',
  'display_name',
  'display_description',
  'snapshot_id',
  'source_volid',
  'volume_type',
  'availability_zone',
  'metadata',
  'multiattach',
  ...Object.keys(UNSUPPORTED),
];

export interface VolumeCreate {
  /** Absent: the snapshot's or source volume's size. */
  size?: number;
  name: string | null;
  description: string | null;
  snapshot_id?: string;
  source_volid?: string;
  volume_type?: string;
  availability_zone?: string;
  metadata: Record<string, string>;
}

const text = (o: Record<string, unknown>, key: string, alias: string, path: string) =>
  volumeText().parse(o[key] ?? o[alias], `${path}.${o[key] !== undefined ? key : alias}`) ?? null;

/** POST /volumes' `volume`. */
export function parseVolumeCreate(body: unknown): VolumeCreate {
  const v = bodyObject(body, 'volume');
  onlyKnown(v, 'volume', CREATE_KEYS);
  for (const [key, why] of Object.entries(UNSUPPORTED))
    if (v[key] !== undefined && v[key] !== null) fail(`volume.${key}`, why);
  if (optional(nullable(bool())).parse(v.multiattach, 'volume.multiattach'))
    fail('volume.multiattach', 'multiattach volumes are not supported');
  const out: VolumeCreate = {
    name: text(v, 'name', 'display_name', 'volume'),
    description: text(v, 'description', 'display_description', 'volume'),
    metadata: volumeMetadata(v.metadata, 'volume.metadata'),
  };
  if (v.size !== undefined && v.size !== null) out.size = volumeSize(v.size, 'volume.size');
  const snap = optionalId().parse(v.snapshot_id, 'volume.snapshot_id');
  const src = optionalId().parse(v.source_volid, 'volume.source_volid');
  if (snap) out.snapshot_id = snap;
  if (src) out.source_volid = src;
  if (snap && src) fail('volume.source_volid', 'cannot be given with snapshot_id');
  const type = optional(nullable(str({ min: 1, max: 255 }))).parse(
    v.volume_type,
    'volume.volume_type',
  );
  if (type) out.volume_type = type;
  const zone = optional(nullable(str({ min: 1, max: 255 }))).parse(
    v.availability_zone,
    'volume.availability_zone',
  );
  if (zone) out.availability_zone = zone;
  if (out.size === undefined && !snap && !src) fail('volume.size', 'is required');
  return out;
}

export interface TextUpdate {
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, string>;
}

/** PUT /volumes/{id}'s `volume` or /snapshots/{id}'s `snapshot`: name, description, metadata. */
export function parseTextUpdate(body: unknown, key: 'volume' | 'snapshot'): TextUpdate {
  const v = bodyObject(body, key);
  onlyKnown(v, key, ['name', 'description', 'display_name', 'display_description', 'metadata']);
  if (Object.keys(v).length === 0)
    fail(key, 'must name at least one of name, description, metadata');
  const out: TextUpdate = {};
  if (v.name !== undefined || v.display_name !== undefined)
    out.name = text(v, 'name', 'display_name', key);
  if (v.description !== undefined || v.display_description !== undefined)
    out.description = text(v, 'description', 'display_description', key);
  if (v.metadata !== undefined) out.metadata = volumeMetadata(v.metadata, `${key}.metadata`);
  return out;
}

/** Cinder's strict boolean for `force` (a boolean or its spelling). */
export function boolish(value: unknown, path: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  const v = typeof value === 'string' ? value.toLowerCase() : '';
  if (['true', '1', 't', 'yes', 'y', 'on'].includes(v)) return true;
  if (['false', '0', 'f', 'no', 'n', 'off'].includes(v)) return false;
  return fail(path, 'must be a boolean');
}

export interface SnapshotCreate {
  volume_id: string;
  name: string | null;
  description: string | null;
  force: boolean;
  metadata: Record<string, string>;
}

/** POST /snapshots' `snapshot`. */
export function parseSnapshotCreate(body: unknown): SnapshotCreate {
  const s = bodyObject(body, 'snapshot');
  onlyKnown(s, 'snapshot', [
    'volume_id',
    'name',
    'description',
    'display_name',
    'display_description',
    'force',
    'metadata',
  ]);
  return {
    volume_id: uuid().parse(s.volume_id, 'snapshot.volume_id'),
    name: text(s, 'name', 'display_name', 'snapshot'),
    description: text(s, 'description', 'display_description', 'snapshot'),
    force: boolish(s.force, 'snapshot.force'),
    metadata: volumeMetadata(s.metadata, 'snapshot.metadata'),
  };
}

/** The one action a POST /volumes/{id}/action body names. */
export type VolumeAction =
  | { action: 'os-extend'; newSize: number }
  | { action: 'os-reset_status'; status?: VolumeStatus; attachStatus?: string }
  | { action: 'os-force_delete' };

export const VOLUME_ACTIONS = ['os-extend', 'os-reset_status', 'os-force_delete'] as const;

const statusOf = <T extends readonly string[]>(values: T): Schema<T[number] | undefined> =>
  optional(oneOf(values));

/** POST /volumes/{id}/action: exactly one known action. */
export function parseVolumeAction(body: unknown): VolumeAction {
  if (!isPlainObject(body) || Object.keys(body).length !== 1)
    return fail(
      '',
      `The request body must name exactly one action of ${VOLUME_ACTIONS.join(', ')}`,
    );
  const name = Object.keys(body)[0] as string;
  if (name === 'os-extend')
    return {
      action: name,
      newSize: volumeSize(bodyObject(body, name).new_size, 'os-extend.new_size'),
    };
  if (name === 'os-force_delete') return { action: name };
  if (name === 'os-reset_status') {
    const a = bodyObject(body, name);
    onlyKnown(a, name, ['status', 'attach_status', 'migration_status']);
    const status = statusOf(VOLUME_STATUSES).parse(a.status, `${name}.status`);
    const attachStatus = statusOf(['attached', 'detached'] as const).parse(
      a.attach_status,
      `${name}.attach_status`,
    );
    if (!status && !attachStatus) fail(`${name}.status`, 'is required');
    return {
      action: name,
      ...(status ? { status } : {}),
      ...(attachStatus ? { attachStatus } : {}),
    };
  }
  return fail(name, `is not a volume action Kumo serves (${VOLUME_ACTIONS.join(', ')})`);
}

/** POST /snapshots/{id}/action: os-reset_status (admin). */
export function parseSnapshotReset(body: unknown): SnapshotStatus {
  const a = bodyObject(body, 'os-reset_status');
  onlyKnown(a, 'os-reset_status', ['status']);
  return oneOf(SNAPSHOT_STATUSES).parse(a.status, 'os-reset_status.status');
}
