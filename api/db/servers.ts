/**
 * Instance rows (Nova's instances): create, read, list, update, the host's ids and port
 * claims (the record and its row mapping are in instance-record.ts). The updates that start, hand over and end tasks are in
 * server-tasks.ts.
 *
 * Invariants: rows are soft-deleted (deleted_at) and never come back; instances in task
 * `scheduling` are not yet their host's (the API is still attaching their ports), so the
 * agent RPC does not show them; a port is claimed only while no device has it.
 */

import type { Param, Queryable } from './index.ts';
import { type InstanceRecord, type InstanceRow, toRecord } from './instance-record.ts';
import { resourceTime } from './neutron.ts';

export type {
  Fault,
  FlavorSnapshot,
  ImageMeta,
  InstanceRecord,
  InstanceRow,
} from './instance-record.ts';
export { toRecord } from './instance-record.ts';

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
  | 'accessIPv4'
  | 'accessIPv6'
  | 'adminPass'
  | 'reservationId'
  | 'launchIndex'
  | 'securityGroups'
> &
  /** Absent: no key pair, no user data, no config drive. */
  Partial<Pick<InstanceRecord, 'keyName' | 'keyData' | 'userData' | 'configDrive'>>;

export async function insertInstance(tx: Queryable, seq: number, n: NewInstance, now: Date) {
  const at = resourceTime(now);
  await tx.query(
    `INSERT INTO instances (id, seq, name, project_id, user_id, flavor_id, flavor_name, vcpus,
       memory_mb, root_gb, image_id, image_meta, host, vm_state, task_state, task_id,
       power_state, fault, metadata, timings, kept_ports, port_order, created_at, updated_at,
       launched_at, deleted_at, access_ipv4, access_ipv6, admin_pass, reservation_id,
       launch_index, security_groups, key_name, key_data, user_data, config_drive)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, NULL, ?, '[]', ?, ?, NULL, NULL,
       ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
      n.accessIPv4,
      n.accessIPv6,
      n.adminPass,
      n.reservationId,
      n.launchIndex,
      JSON.stringify(n.securityGroups),
      n.keyName ?? null,
      n.keyData ?? null,
      n.userData ?? null,
      n.configDrive ?? false,
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
  filter: {
    hosts?: readonly string[];
    ids?: readonly string[];
    projects?: readonly string[];
  } = {},
): Promise<InstanceRecord[]> {
  const where = ['deleted_at IS NULL'];
  const params: Param[] = [];
  for (const [column, values] of [
    ['host', filter.hosts],
    ['id', filter.ids],
    ['project_id', filter.projects],
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

/** What a project's live servers take: Nova's counted quota usage (instances, cores, ram). */
export async function projectUsage(
  q: Queryable,
  projectId: string,
): Promise<{ instances: number; cores: number; ram: number }> {
  const [row] = await q.query<{ n: unknown; cores: unknown; ram: unknown }>(
    `SELECT COUNT(*) AS n, COALESCE(SUM(vcpus), 0) AS cores, COALESCE(SUM(memory_mb), 0) AS ram
       FROM instances WHERE project_id = ? AND deleted_at IS NULL`,
    [projectId],
  );
  return {
    instances: Number(row?.n ?? 0),
    cores: Number(row?.cores ?? 0),
    ram: Number(row?.ram ?? 0),
  };
}

/** Sorts ports into an instance's NIC order; ports it does not list go last. */
export function inPortOrder<T extends { id: string }>(order: readonly string[], ports: T[]): T[] {
  const rank = (p: T) => {
    const i = order.indexOf(p.id);
    return i < 0 ? order.length : i;
  };
  return [...ports].sort((a, b) => rank(a) - rank(b));
}

/** What PUT /servers/{id} may change; an absent key is left as it is. */
export interface InstanceChanges {
  name?: string;
  accessIPv4?: string;
  accessIPv6?: string;
}

const CHANGE_COLUMNS = {
  name: 'name',
  accessIPv4: 'access_ipv4',
  accessIPv6: 'access_ipv6',
} as const satisfies Record<keyof InstanceChanges, string>;

/** Applies `changes` to a live instance (updated_at moves); false when it is gone. */
export async function updateInstance(
  db: Queryable,
  id: string,
  changes: InstanceChanges,
  now: Date,
): Promise<boolean> {
  const sets = ['updated_at = ?'];
  const params: Param[] = [resourceTime(now)];
  for (const [key, column] of Object.entries(CHANGE_COLUMNS)) {
    const value = changes[key as keyof InstanceChanges];
    if (value === undefined) continue;
    sets.push(`${column} = ?`);
    params.push(value);
  }
  const rows = await db.query(
    `UPDATE instances SET ${sets.join(', ')} WHERE id = ? AND deleted_at IS NULL RETURNING id`,
    [...params, id],
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

/**
 * Bumps and returns the instance sequence. On PostgreSQL the row stays locked until the
 * transaction ends, which serialises placements (scheduler/compute.ts).
 */
export async function nextInstanceSeq(tx: Queryable): Promise<number> {
  const [bumped] = await tx.query<{ last_seq: unknown }>(
    'UPDATE instance_sequence SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq',
  );
  if (!bumped) throw new Error('instance_sequence has no row: the database is not migrated');
  return Number(bumped.last_seq);
}

/** Per host: the vcpus, RAM (MiB) and disk (GiB) its live instances take. */
export async function hostUsage(
  tx: Queryable,
): Promise<Map<string, { vcpus: number; ramMb: number; diskGb: number }>> {
  const rows = await tx.query<{ host: string; vcpus: unknown; ram: unknown; disk: unknown }>(
    `SELECT host, SUM(vcpus) AS vcpus, SUM(memory_mb) AS ram, SUM(root_gb) AS disk
       FROM instances WHERE deleted_at IS NULL AND host <> '' GROUP BY host`,
  );
  return new Map(
    rows.map((u) => [
      u.host,
      { vcpus: Number(u.vcpus), ramMb: Number(u.ram), diskGb: Number(u.disk) },
    ]),
  );
}
