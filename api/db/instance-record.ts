/**
 * The instance record (Nova's instance as the API keeps it), its mapping from a row of
 * `instances` as either driver returns it, and its hostname as Nova derives it (server
 * views and the metadata service both show it).
 *
 * Invariant: toRecord is the one place row columns become record fields; numbers that
 * PostgreSQL returns as text and JSON columns are parsed here, so nothing else reads a
 * raw instance row.
 */
import type { InstanceImage, SpawnTimings } from '../../contracts/instances.ts';
import type { TaskState, VmState } from '../../contracts/servers.ts';
import type { Row } from './index.ts';
import { bool } from './neutron.ts';

export interface ImageMeta {
  image: InstanceImage;
  kernel: InstanceImage | null;
  ramdisk: InstanceImage | null;
  cmdline: string | null;
}

export interface Fault {
  code: number;
  message: string;
  details: string | null;
  created: string;
}

export interface FlavorSnapshot {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
}

export interface InstanceRecord {
  id: string;
  seq: number;
  name: string;
  projectId: string;
  userId: string;
  flavor: FlavorSnapshot;
  imageId: string;
  imageMeta: ImageMeta;
  /** '' until scheduled (and for an instance no host could take). */
  host: string;
  vmState: VmState;
  taskState: TaskState | null;
  taskId: number;
  powerState: number;
  fault: Fault | null;
  metadata: Record<string, string>;
  timings: SpawnTimings | null;
  /** Ports the user handed in: unbound, not deleted, when the instance goes. */
  keptPorts: string[];
  /** The instance's ports in the order they were requested (NIC order). */
  portOrder: string[];
  createdAt: string;
  updatedAt: string;
  launchedAt: string | null;
  deletedAt: string | null;
  /** As the user set them; '' when not set. */
  accessIPv4: string;
  accessIPv6: string;
  /** The password asked for or generated at create or rebuild (for the metadata service). */
  adminPass: string | null;
  /** A multi-create's batch (`r-xxxxxxxx`) and the server's 0-based place in it. */
  reservationId: string;
  launchIndex: number;
  /** Who locked it (Nova's locked_by); null while unlocked. */
  lockedBy: 'admin' | 'owner' | null;
  /** When a soft delete began; null unless soft-deleted. */
  softDeletedAt: string | null;
  /** The names of the security groups the server is in. */
  securityGroups: string[];
  /** The key pair named at create and its public key as it was then (null: none). */
  keyName: string | null;
  keyData: string | null;
  /** User data as given (base64), null when none. */
  userData: string | null;
  /** Whether the create asked for a config drive. */
  configDrive: boolean;
}

/** Columns as the drivers return them (numbers may come as text from PostgreSQL). */
type Text =
  | 'id'
  | 'name'
  | 'project_id'
  | 'user_id'
  | 'flavor_id'
  | 'flavor_name'
  | 'image_id'
  | 'image_meta'
  | 'host'
  | 'vm_state'
  | 'metadata'
  | 'kept_ports'
  | 'port_order'
  | 'created_at'
  | 'updated_at'
  | 'access_ipv4'
  | 'access_ipv6'
  | 'reservation_id'
  | 'security_groups';
type Nullable =
  | 'task_state'
  | 'fault'
  | 'timings'
  | 'launched_at'
  | 'deleted_at'
  | 'admin_pass'
  | 'locked_by'
  | 'soft_deleted_at'
  | 'key_name'
  | 'key_data'
  | 'user_data';
export type InstanceRow = Row & Record<Text, string> & Record<Nullable, string | null>;

const parsed = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

export const toRecord = (r: InstanceRow): InstanceRecord => ({
  id: r.id,
  seq: Number(r.seq),
  name: r.name,
  projectId: r.project_id,
  userId: r.user_id,
  flavor: {
    id: r.flavor_id,
    name: r.flavor_name,
    vcpus: Number(r.vcpus),
    ram: Number(r.memory_mb),
    disk: Number(r.root_gb),
  },
  imageId: r.image_id,
  imageMeta: JSON.parse(r.image_meta) as ImageMeta,
  host: r.host,
  vmState: r.vm_state as VmState,
  taskState: r.task_state as TaskState | null,
  taskId: Number(r.task_id),
  powerState: Number(r.power_state),
  fault: parsed<Fault>(r.fault),
  metadata: JSON.parse(r.metadata) as Record<string, string>,
  timings: parsed<SpawnTimings>(r.timings),
  keptPorts: JSON.parse(r.kept_ports) as string[],
  portOrder: JSON.parse(r.port_order) as string[],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  launchedAt: r.launched_at,
  deletedAt: r.deleted_at,
  accessIPv4: r.access_ipv4,
  accessIPv6: r.access_ipv6,
  adminPass: r.admin_pass,
  reservationId: r.reservation_id,
  launchIndex: Number(r.launch_index),
  lockedBy: r.locked_by as InstanceRecord['lockedBy'],
  softDeletedAt: r.soft_deleted_at,
  securityGroups: JSON.parse(r.security_groups) as string[],
  keyName: r.key_name,
  keyData: r.key_data,
  userData: r.user_data,
  configDrive: bool(r.config_drive),
});

/** Nova's utils.sanitize_hostname: Latin-1 only, [ _.] to '-', word characters and
 * '-' kept, lower case, no outer '.'/'-', at most 63 characters. */
export function sanitizeHostname(name: string): string {
  return [...name]
    .filter((c) => (c.codePointAt(0) ?? 0) <= 0xff)
    .join('')
    .slice(0, 63)
    .replace(/[ _.]/g, '-')
    .replace(/[^\p{L}\p{N}_-]+/gu, '')
    .toLowerCase()
    .replace(/^[.-]+|[.-]+$/g, '');
}

/** Nova's instance hostname: the sanitized name, or `Server-<id>` when nothing is left. */
export const instanceHostname = (i: Pick<InstanceRecord, 'name' | 'id'>) =>
  sanitizeHostname(i.name) || `Server-${i.id}`;
