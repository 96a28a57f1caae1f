/**
 * Flavor rows (Nova's instance_types): list with Nova's filters, create, delete, and
 * os-flavor-access (the projects a private flavor is offered to).
 *
 * Invariants: names and ids are unique (the table's constraints decide races, reported as
 * 409 naming the clash); flavors are ordered by id as Nova's default sort_key=flavorid;
 * a project sees public flavors and the private ones offered to it (Nova's
 * _flavor_get_query_from_db); a deleted flavor takes its access rows with it.
 */
import { randomUUID } from 'node:crypto';
import type { FlavorCreate } from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import type { Db, Param, Queryable, Row } from './index.ts';
import { bool, constraintKind, resourceTime } from './neutron.ts';

export interface FlavorRow extends Row {
  id: string;
  name: string;
  vcpus: unknown;
  ram: unknown;
  disk: unknown;
  is_public: unknown;
  description: string | null;
  created_at: string;
}

export interface FlavorRecord {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
  isPublic: boolean;
  description: string | null;
}

const toRecord = (r: FlavorRow): FlavorRecord => ({
  id: r.id,
  name: r.name,
  vcpus: Number(r.vcpus),
  ram: Number(r.ram),
  disk: Number(r.disk),
  isPublic: bool(r.is_public),
  description: r.description,
});

export function flavorNotFound(id: string): ApiError {
  return new ApiError('NotFound', `Flavor ${id} could not be found.`);
}

export interface FlavorFilter {
  /** undefined: all flavors. */
  isPublic?: boolean;
  /** With isPublic true: also the private flavors this project has access to (Nova). */
  project?: string;
  minRam?: number;
  minDisk?: number;
}

export async function listFlavors(db: Db, f: FlavorFilter = {}): Promise<FlavorRecord[]> {
  const where: string[] = [];
  const params: Param[] = [];
  if (f.isPublic === true && f.project !== undefined) {
    where.push(`(is_public = ? OR ${ACCESSIBLE})`);
    params.push(true, f.project);
  } else if (f.isPublic !== undefined) {
    where.push('is_public = ?');
    params.push(f.isPublic);
  }
  if (f.minRam !== undefined) {
    where.push('ram >= ?');
    params.push(f.minRam);
  }
  if (f.minDisk !== undefined) {
    where.push('disk >= ?');
    params.push(f.minDisk);
  }
  const sql = `SELECT * FROM flavors${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id`;
  return (await db.query<FlavorRow>(sql, params)).map(toRecord);
}

const ACCESSIBLE = 'id IN (SELECT flavor_id FROM flavor_access WHERE project_id = ?)';

/** A flavor; with `project`, only when it is public or that project has access to it. */
export async function getFlavor(
  db: Queryable,
  id: string,
  project?: string,
): Promise<FlavorRecord | undefined> {
  const rows =
    project === undefined
      ? await db.query<FlavorRow>('SELECT * FROM flavors WHERE id = ?', [id])
      : await db.query<FlavorRow>(
          `SELECT * FROM flavors WHERE id = ? AND (is_public = ? OR ${ACCESSIBLE})`,
          [id, true, project],
        );
  return rows[0] && toRecord(rows[0]);
}

/** The projects a flavor is offered to (os-flavor-access), sorted. */
export async function flavorAccess(db: Queryable, flavorId: string): Promise<string[]> {
  const rows = await db.query<{ project_id: string }>(
    'SELECT project_id FROM flavor_access WHERE flavor_id = ? ORDER BY project_id',
    [flavorId],
  );
  return rows.map((r) => r.project_id);
}

/**
 * Offers a flavor to a project: `exists` when it already was (the primary key decides
 * races), `gone` when the flavor was deleted since it was read (the foreign key decides).
 */
export async function addFlavorAccess(
  db: Db,
  flavorId: string,
  project: string,
): Promise<'added' | 'exists' | 'gone'> {
  try {
    const rows = await db.query(
      `INSERT INTO flavor_access (flavor_id, project_id) VALUES (?, ?)
         ON CONFLICT DO NOTHING RETURNING flavor_id`,
      [flavorId, project],
    );
    return rows.length > 0 ? 'added' : 'exists';
  } catch (e) {
    if (constraintKind(e) === 'foreign_key') return 'gone';
    throw e;
  }
}

/** Withdraws a flavor from a project; false when it was not offered. */
export async function removeFlavorAccess(db: Db, flavorId: string, project: string) {
  const rows = await db.query(
    'DELETE FROM flavor_access WHERE flavor_id = ? AND project_id = ? RETURNING flavor_id',
    [flavorId, project],
  );
  return rows.length > 0;
}

export async function createFlavor(db: Db, body: FlavorCreate, now: Date): Promise<FlavorRecord> {
  const record: FlavorRecord = {
    id: body.id ?? randomUUID(),
    name: body.name,
    vcpus: body.vcpus,
    ram: body.ram,
    disk: body.disk,
    isPublic: body['os-flavor-access:is_public'] ?? true,
    description: body.description ?? null,
  };
  return db.transaction(async (tx) => {
    const clash = await tx.query<{ id: string; name: string }>(
      'SELECT id, name FROM flavors WHERE id = ? OR name = ?',
      [record.id, record.name],
    );
    const conflict = (c: { id: string; name: string } | undefined) =>
      c?.id === record.id
        ? new ApiError('Conflict', `Flavor with ID ${record.id} already exists.`)
        : new ApiError('Conflict', `Flavor with name ${record.name} already exists.`);
    if (clash.length) throw conflict(clash[0]);
    try {
      await tx.query(
        `INSERT INTO flavors (id, name, vcpus, ram, disk, is_public, description, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          record.id,
          record.name,
          record.vcpus,
          record.ram,
          record.disk,
          record.isPublic,
          record.description,
          resourceTime(now),
        ],
      );
    } catch (e) {
      if (constraintKind(e) === 'unique') throw conflict(undefined);
      throw e;
    }
    return record;
  });
}

/** True when a row was deleted. */
export async function deleteFlavor(db: Db, id: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    await tx.query('DELETE FROM flavor_access WHERE flavor_id = ?', [id]);
    const rows = await tx.query('DELETE FROM flavors WHERE id = ? RETURNING id', [id]);
    return rows.length > 0;
  });
}
