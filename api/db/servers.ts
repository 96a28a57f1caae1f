/**
 * Instance rows (Nova's instances): create, read, start tasks, hand over, soft-delete.
 * The updates an agent's report makes are in rpc-compute.ts.
 *
 * Invariants: a task starts only through a conditional UPDATE that checks the vm_state
 * and task_state it may start from and bumps task_id in the same statement, so two
 * requests racing on one server cannot both start a task; rows are soft-deleted
 * (deleted_at) and never come back; instances in task `scheduling` are not yet their
 * host's (the API is still attaching their ports), so the agent RPC does not show them.
 */
import type { InstanceImage, SpawnTimings, TaskState, VmState } from '../../contracts/servers.ts';
import type { Param, Queryable, Row } from './index.ts';
import { resourceTime } from './neutron.ts';

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
  | 'updated_at';
type Nullable = 'task_state' | 'fault' | 'timings' | 'launched_at' | 'deleted_at';
type InstanceRow = Row & Record<Text, string> & Record<Nullable, string | null>;

const parsed = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

const toRecord = (r: InstanceRow): InstanceRecord => ({
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
});

export type NewInstance = Pick<
  InstanceRecord,
  | 'id'
  | 'name'
  | 'projectId'
  | 'userId'
  | 'flavor'
  | 'imageMeta'
  | 'metadata'
  | 'keptPorts'
  | 'host'
  | 'vmState'
  | 'taskState'
  | 'fault'
>;

export async function insertInstance(tx: Queryable, seq: number, n: NewInstance, now: Date) {
  const at = resourceTime(now);
  await tx.query(
    `INSERT INTO instances (id, seq, name, project_id, user_id, flavor_id, flavor_name, vcpus,
       memory_mb, root_gb, image_id, image_meta, host, vm_state, task_state, task_id,
       power_state, fault, metadata, timings, kept_ports, port_order, created_at, updated_at,
       launched_at, deleted_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, NULL, ?, '[]', ?, ?, NULL, NULL)`,
    [
      n.id,
      seq,
      n.name,
      n.projectId,
      n.userId,
      n.flavor.id,
      n.flavor.name,
      n.flavor.vcpus,
      n.flavor.ram,
      n.flavor.disk,
      n.imageMeta.image.id,
      JSON.stringify(n.imageMeta),
      n.host,
      n.vmState,
      n.taskState,
      n.fault && JSON.stringify(n.fault),
      JSON.stringify(n.metadata),
      JSON.stringify(n.keptPorts),
      at,
      at,
    ],
  );
}

/** A row, deleted ones included (the agent's late reports still find theirs). */
export async function getInstanceRow(
  db: Queryable,
  id: string,
): Promise<InstanceRecord | undefined> {
  const [row] = await db.query<InstanceRow>('SELECT * FROM instances WHERE id = ?', [id]);
  return row && toRecord(row);
}

/** Live (not deleted) instances, newest first (seq for Nova's integer id); filtered. */
export async function listInstances(
  db: Queryable,
  filter: { hosts?: readonly string[]; ids?: readonly string[] } = {},
): Promise<InstanceRecord[]> {
  const where = ['deleted_at IS NULL'];
  const params: Param[] = [];
  for (const [column, values] of [
    ['host', filter.hosts],
    ['id', filter.ids],
  ] as const) {
    if (values === undefined) continue;
    where.push(values.length ? `${column} IN (${values.map(() => '?').join(', ')})` : 'FALSE');
    params.push(...values);
  }
  const rows = await db.query<InstanceRow>(
    `SELECT * FROM instances WHERE ${where.join(' AND ')} ORDER BY created_at DESC, seq DESC`,
    params,
  );
  return rows.map(toRecord);
}

/** Sorts ports into an instance's NIC order; ports it does not list go last. */
export function inPortOrder<T extends { id: string }>(order: readonly string[], ports: T[]): T[] {
  const rank = (p: T) => {
    const i = order.indexOf(p.id);
    return i < 0 ? order.length : i;
  };
  return [...ports].sort((a, b) => rank(a) - rank(b));
}

/** Which vm_states and task_states a task may start from (`'any'`: no check). */
export interface TaskRule {
  vm: readonly VmState[] | 'any';
  tasks: readonly (TaskState | null)[] | 'any';
}

function ruleSql(rule: TaskRule): { sql: string; params: Param[] } {
  const parts: string[] = [];
  const params: Param[] = [];
  if (rule.vm !== 'any') {
    parts.push(`vm_state IN (${rule.vm.map(() => '?').join(', ')})`);
    params.push(...rule.vm);
  }
  if (rule.tasks !== 'any') {
    const named = rule.tasks.filter((t): t is TaskState => t !== null);
    const alts = rule.tasks.includes(null) ? ['task_state IS NULL'] : [];
    if (named.length) alts.push(`task_state IN (${named.map(() => '?').join(', ')})`);
    parts.push(alts.length ? `(${alts.join(' OR ')})` : 'FALSE');
    params.push(...named);
  }
  return { sql: parts.map((p) => ` AND ${p}`).join(''), params };
}

/**
 * Starts `task` (a new task_id) if the live row satisfies `rule`; the updated row, or
 * undefined when the row is missing, deleted or in a state the rule refuses.
 */
export async function startTask(
  db: Queryable,
  id: string,
  task: TaskState,
  rule: TaskRule,
  now: Date,
): Promise<InstanceRecord | undefined> {
  const cond = ruleSql(rule);
  const [row] = await db.query<InstanceRow>(
    `UPDATE instances SET task_state = ?, task_id = task_id + 1, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL${cond.sql} RETURNING *`,
    [task, resourceTime(now), id, ...cond.params],
  );
  return row && toRecord(row);
}

/** scheduling → spawning once the ports are attached; false when the row moved on. */
export async function handOver(
  db: Queryable,
  id: string,
  portOrder: readonly string[],
  now: Date,
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE instances SET task_state = 'spawning', port_order = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL AND task_state = 'scheduling' RETURNING id`,
    [JSON.stringify(portOrder), resourceTime(now), id],
  );
  return rows.length > 0;
}

/** A build the API itself gave up on: ERROR with the fault, no host, no task. */
export async function failBuild(db: Queryable, id: string, fault: Fault, now: Date) {
  await db.query(
    `UPDATE instances SET vm_state = 'error', task_state = NULL, host = '', fault = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL`,
    [JSON.stringify(fault), resourceTime(now), id],
  );
}

/** A build that failed on its host leaves it (Nova nils out host and node): the
 * capacity is free again and later reports from that host are ignored. */
export async function releaseHost(db: Queryable, id: string, now: Date) {
  await db.query(
    `UPDATE instances SET host = '', updated_at = ? WHERE id = ? AND deleted_at IS NULL`,
    [resourceTime(now), id],
  );
}

/** Soft-deletes; false when the row was already deleted (or never existed). */
export async function markDeleted(db: Queryable, id: string, now: Date): Promise<boolean> {
  const at = resourceTime(now);
  const rows = await db.query(
    `UPDATE instances SET vm_state = 'deleted', task_state = NULL, deleted_at = ?, updated_at = ?
      WHERE id = ? AND deleted_at IS NULL RETURNING id`,
    [at, at, id],
  );
  return rows.length > 0;
}

export async function renameInstance(db: Queryable, id: string, name: string, now: Date) {
  const rows = await db.query(
    'UPDATE instances SET name = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING id',
    [name, resourceTime(now), id],
  );
  return rows.length > 0;
}

/** Ids of the live instances handed over to `host` (being deleted included). */
export async function hostInstanceIds(db: Queryable, host: string): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM instances WHERE host = ? AND deleted_at IS NULL
        AND (task_state IS NULL OR task_state <> 'scheduling') ORDER BY id`,
    [host],
  );
  return rows.map((r) => r.id);
}

/**
 * Takes an unused port (device_id '') for an instance; false when another device has it.
 * The conditional UPDATE decides between two boots racing for one port.
 */
export async function claimPort(db: Queryable, portId: string, instanceId: string) {
  const rows = await db.query(
    `UPDATE ports SET device_id = ?, revision_number = revision_number + 1
      WHERE id = ? AND device_id = '' RETURNING id`,
    [instanceId, portId],
  );
  return rows.length > 0;
}
