/**
 * LBaaS v1 pool and member writes, and the revision rule every LBaaS write follows.
 *
 * Invariants: one transaction per request, so a refused request changes nothing; every
 * change of a pool or of something of it bumps the pool's revision_number (the row is
 * locked by that UPDATE until commit); a created object is PENDING_CREATE and an updated
 * one PENDING_UPDATE (a PENDING_CREATE stays so), either with status_revision = the pool's
 * new revision, so the agent's acknowledgement of that revision turns it ACTIVE; a pool
 * with a VIP is never deleted (PoolInUse), and deleting one removes its members and
 * monitor associations with it. A create (pool, member, VIP, monitor) is held to its
 * project's quota inside its own transaction (guardQuota), so racing creates cannot exceed it.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import type {
  MemberCreate,
  MemberUpdate,
  PoolCreate,
  PoolUpdate,
} from '../../contracts/lbaas-api.ts';
import type { Db, Param, Queryable } from './index.ts';
import { getRow, memberNotFound, poolNotFound } from './lbaas.ts';
import { constraintKind, guardQuota, type QuotaGuard, resourceTime } from './neutron.ts';

/** The SET clause that marks an updated object pending at `?` (the pool's new revision). */
export const PENDING_SET = `status = CASE WHEN status = 'PENDING_CREATE' THEN 'PENDING_CREATE'
  ELSE 'PENDING_UPDATE' END, status_description = NULL, status_revision = ?`;

/** Bumps `poolId`'s revision_number (locking its row); the new revision. */
export async function bumpPool(tx: Queryable, poolId: string, at: string): Promise<number> {
  const [row] = await tx.query<{ revision_number: unknown }>(
    `UPDATE lb_pools SET revision_number = revision_number + 1, updated_at = ?
      WHERE id = ? RETURNING revision_number`,
    [at, poolId],
  );
  if (!row) throw poolNotFound(poolId);
  return Number(row.revision_number);
}

/**
 * Bumps `to` and `from` once each, in id order, so two requests naming the same pools (a
 * member or VIP moved A → B while another moves B → A) take their row locks in one order
 * and never deadlock; `to`'s new revision.
 */
export async function bumpPools(
  tx: Queryable,
  to: string,
  from: string,
  at: string,
): Promise<number> {
  if (from === to) return bumpPool(tx, to, at);
  if (to < from) {
    const rev = await bumpPool(tx, to, at);
    await bumpPool(tx, from, at);
    return rev;
  }
  await bumpPool(tx, from, at);
  return bumpPool(tx, to, at);
}

/** `SET a = ?, b = ?` of the named values only (undefined leaves a column). */
export function setsOf(values: Record<string, Param | undefined>) {
  const named = Object.entries(values).filter(([, v]) => v !== undefined);
  return {
    sql: named.map(([k]) => `${k} = ?`).join(', '),
    params: named.map(([, v]) => v as Param),
  };
}

export async function createPool(
  db: Db,
  req: PoolCreate & { project_id: string },
  now: Date,
  quota?: QuotaGuard,
): Promise<string> {
  const id = randomUUID();
  const at = resourceTime(now);
  await db.transaction(async (tx) => {
    await guardQuota(tx, quota, req.project_id, 'pool');
    await tx.query(
      `INSERT INTO lb_pools (id, project_id, name, description, subnet_id, protocol, lb_method,
       admin_state_up, status, status_description, status_revision, revision_number,
       created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PENDING_CREATE', NULL, 1, 1, ?, ?)`,
      [
        id,
        req.project_id,
        req.name ?? '',
        req.description ?? '',
        req.subnet_id,
        req.protocol,
        req.lb_method,
        req.admin_state_up ?? true,
        at,
        at,
      ],
    );
  });
  return id;
}

/** Applies `changes` (nothing named: nothing changes, no revision). */
export async function updatePool(db: Db, id: string, changes: PoolUpdate, now: Date) {
  const sets = setsOf(changes);
  if (sets.sql === '') return;
  await db.transaction(async (tx) => {
    const at = resourceTime(now);
    const rev = await bumpPool(tx, id, at);
    await tx.query(`UPDATE lb_pools SET ${sets.sql}, ${PENDING_SET} WHERE id = ?`, [
      ...sets.params,
      rev,
      id,
    ]);
  });
}

export async function deletePool(db: Db, id: string, now: Date): Promise<void> {
  await db.transaction(async (tx) => {
    await bumpPool(tx, id, resourceTime(now));
    const [vip] = await tx.query('SELECT id FROM lb_vips WHERE pool_id = ?', [id]);
    if (vip) throw new ApiError('PoolInUse', `Pool ${id} is still in use`);
    await tx.query('DELETE FROM lb_members WHERE pool_id = ?', [id]);
    await tx.query('DELETE FROM lb_pool_monitors WHERE pool_id = ?', [id]);
    await tx.query('DELETE FROM lb_pool_stats WHERE pool_id = ?', [id]);
    await tx.query('DELETE FROM pool_loadbalancer_agent_bindings WHERE pool_id = ?', [id]);
    await tx.query('DELETE FROM lb_pools WHERE id = ?', [id]);
  });
}

const memberExists = (address: unknown, port: unknown, pool: string) =>
  new ApiError(
    'MemberExists',
    `Member with address ${address} and port ${port} already present in pool ${pool}`,
  );

async function refuseDuplicate(
  tx: Queryable,
  pool: string,
  address: string,
  port: number,
  self = '',
) {
  const [dup] = await tx.query(
    'SELECT id FROM lb_members WHERE pool_id = ? AND address = ? AND protocol_port = ? AND id <> ?',
    [pool, address, port, self],
  );
  if (dup) throw memberExists(address, port, pool);
}

/** A unique violation that slipped past the check (a race) as Neutron's MemberExists. */
function racedMember(e: unknown, address: unknown, port: unknown, pool: string): unknown {
  return constraintKind(e) === 'unique' ? memberExists(address, port, pool) : e;
}

export async function createMember(
  db: Db,
  req: MemberCreate & { project_id: string },
  now: Date,
  quota?: QuotaGuard,
): Promise<string> {
  const id = randomUUID();
  const at = resourceTime(now);
  try {
    await db.transaction(async (tx) => {
      await guardQuota(tx, quota, req.project_id, 'member');
      const rev = await bumpPool(tx, req.pool_id, at);
      await refuseDuplicate(tx, req.pool_id, req.address, req.protocol_port);
      await tx.query(
        `INSERT INTO lb_members (id, project_id, pool_id, address, protocol_port, weight,
           admin_state_up, status, status_description, status_revision, health,
           health_description, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING_CREATE', NULL, ?, NULL, NULL, ?, ?)`,
        [
          id,
          req.project_id,
          req.pool_id,
          req.address,
          req.protocol_port,
          req.weight ?? 1,
          req.admin_state_up ?? true,
          rev,
          at,
          at,
        ],
      );
    });
  } catch (e) {
    throw racedMember(e, req.address, req.protocol_port, req.pool_id);
  }
  return id;
}

/**
 * Applies `changes`; a new pool_id moves the member (both pools' revisions bump). The
 * pools whose agents must hear of it.
 */
export async function updateMember(
  db: Db,
  id: string,
  changes: MemberUpdate,
  now: Date,
): Promise<string[]> {
  const sets = setsOf(changes);
  if (sets.sql === '') return [];
  const at = resourceTime(now);
  const pools: string[] = [];
  const seen = { address: '' as unknown, port: 0 as unknown, pool: changes.pool_id ?? '' };
  try {
    await db.transaction(async (tx) => {
      const row = await getRow(tx, 'lb_members', id);
      if (!row) throw memberNotFound(id);
      Object.assign(seen, { address: row.address, port: row.protocol_port });
      const from = String(row.pool_id);
      const to = changes.pool_id ?? from;
      pools.push(...new Set([from, to]));
      const rev = await bumpPools(tx, to, from, at);
      await refuseDuplicate(tx, to, String(row.address), Number(row.protocol_port), id);
      await tx.query(
        `UPDATE lb_members SET ${sets.sql}, ${PENDING_SET}, updated_at = ? WHERE id = ?`,
        [...sets.params, rev, at, id],
      );
    });
  } catch (e) {
    throw racedMember(e, seen.address, seen.port, seen.pool);
  }
  return pools;
}

/** Deletes a member; its pool (whose revision bumped). */
export async function deleteMember(db: Db, id: string, now: Date): Promise<string> {
  return db.transaction(async (tx) => {
    const row = await getRow(tx, 'lb_members', id);
    if (!row) throw memberNotFound(id);
    await bumpPool(tx, String(row.pool_id), resourceTime(now));
    await tx.query('DELETE FROM lb_members WHERE id = ?', [id]);
    return String(row.pool_id);
  });
}
