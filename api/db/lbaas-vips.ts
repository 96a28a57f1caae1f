/**
 * LBaaS v1 VIP writes. A VIP holds its address through a port of its own on its subnet
 * (device_owner neutron:LOADBALANCER, device_id its pool, name `vip-<vip id>`, the
 * project's default security group as any port gets), made and removed with it.
 *
 * Invariants: one transaction per request — the pool checks, the port, its address and
 * the row — so a refused request changes nothing, a VIP never exists without its port nor
 * its port without it; one VIP per pool (VipExists), of the pool's protocol
 * (ProtocolMismatch) and project (NotAuthorized); every change bumps the pool's revision
 * (both pools' when the VIP moves, its port's device_id following it); a deleted VIP's
 * port leaves its floating IPs disassociated, never dangling.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import { VIP_PORT_OWNER } from '../../contracts/lbaas.ts';
import type { PersistenceRequest, VipCreate, VipUpdate } from '../../contracts/lbaas-api.ts';
import { disassociatePort } from './floatingips.ts';
import type { Db, Queryable, Row } from './index.ts';
import { getRow, poolNotFound, vipNotFound } from './lbaas.ts';
import { bumpPool, bumpPools, PENDING_SET, setsOf } from './lbaas-writes.ts';
import { constraintKind, guardQuota, type QuotaGuard, resourceTime } from './neutron.ts';
import { insertPort, removePort } from './ports.ts';
import { subnetNotFound } from './subnets.ts';

const vipExists = (poolId: string) =>
  new ApiError('VipExists', `Another Vip already exists for pool ${poolId}`);

/** The checks Neutron's create_vip and update_vip make of the VIP's (new) pool. */
async function checkPool(tx: Queryable, poolId: string, projectId: string, protocol: string) {
  const pool = await getRow(tx, 'lb_pools', poolId);
  if (!pool) throw poolNotFound(poolId);
  if (pool.project_id !== projectId) throw new ApiError('NotAuthorized', 'Not authorized.');
  if (pool.protocol !== protocol)
    throw new ApiError(
      'ProtocolMismatch',
      `Protocol ${protocol} does not match pool protocol ${pool.protocol}`,
    );
  const [vip] = await tx.query('SELECT id FROM lb_vips WHERE pool_id = ?', [poolId]);
  if (vip) throw vipExists(poolId);
}

/**
 * The VIP's port with its one address on its subnet; its id and address. The subnet's
 * gateway is Neutron's IpAddressInUse (its _create_port_for_vip), before any port exists.
 */
async function vipPort(
  tx: Queryable,
  vipId: string,
  req: VipCreate & { project_id: string },
  now: Date,
) {
  const [subnet] = await tx.query<{ network_id: string; gateway_ip: string | null }>(
    'SELECT network_id, gateway_ip FROM subnets WHERE id = ?',
    [req.subnet_id],
  );
  if (!subnet) throw subnetNotFound(req.subnet_id);
  if (req.address && req.address === subnet.gateway_ip)
    throw new ApiError(
      'IpAddressInUse',
      `Unable to complete operation for network ${subnet.network_id}. The IP address ${req.address} is in use.`,
    );
  const fixed = { subnet_id: req.subnet_id, ...(req.address ? { ip_address: req.address } : {}) };
  const portId = await insertPort(
    tx,
    {
      network_id: subnet.network_id,
      project_id: req.project_id,
      name: `vip-${vipId}`,
      device_id: req.pool_id,
      device_owner: VIP_PORT_OWNER,
      fixed_ips: [fixed],
    },
    now,
  );
  const [ip] = await tx.query<{ ip_address: string }>(
    'SELECT ip_address FROM ipallocations WHERE port_id = ?',
    [portId],
  );
  return { portId, address: ip?.ip_address ?? '' };
}

const persistenceColumns = (sp: PersistenceRequest | null | undefined) =>
  sp === undefined
    ? {}
    : { persistence_type: sp?.type ?? null, cookie_name: sp?.cookie_name ?? null };

export async function createVip(
  db: Db,
  req: VipCreate & { project_id: string },
  now: Date,
  quota?: QuotaGuard,
): Promise<string> {
  const id = randomUUID();
  const at = resourceTime(now);
  try {
    await db.transaction(async (tx) => {
      await guardQuota(tx, quota, req.project_id, 'vip');
      await checkPool(tx, req.pool_id, req.project_id, req.protocol);
      const rev = await bumpPool(tx, req.pool_id, at);
      const port = await vipPort(tx, id, req, now);
      const sp = persistenceColumns(req.session_persistence ?? null);
      await tx.query(
        `INSERT INTO lb_vips (id, project_id, name, description, pool_id, subnet_id, port_id,
           address, protocol_port, protocol, connection_limit, persistence_type, cookie_name,
           admin_state_up, status, status_description, status_revision, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING_CREATE', NULL, ?, ?, ?)`,
        [
          id,
          req.project_id,
          req.name ?? '',
          req.description ?? '',
          req.pool_id,
          req.subnet_id,
          port.portId,
          port.address,
          req.protocol_port,
          req.protocol,
          req.connection_limit ?? -1,
          sp.persistence_type ?? null,
          sp.cookie_name ?? null,
          req.admin_state_up ?? true,
          rev,
          at,
          at,
        ],
      );
    });
  } catch (e) {
    throw constraintKind(e) === 'unique' ? vipExists(req.pool_id) : e;
  }
  return id;
}

/** A move to another pool: that pool's checks, and the port's device_id follows. */
async function moveVip(tx: Queryable, vip: Row, to: string, at: string) {
  await checkPool(tx, to, String(vip.project_id), String(vip.protocol));
  await tx.query('UPDATE ports SET device_id = ?, updated_at = ? WHERE id = ?', [
    to,
    at,
    vip.port_id as string,
  ]);
}

/** Applies `changes`; the pools whose agents must hear of it (old and new). */
export async function updateVip(db: Db, id: string, changes: VipUpdate, now: Date) {
  const { session_persistence, ...plain } = changes;
  const sets = setsOf({ ...plain, ...persistenceColumns(session_persistence) });
  if (sets.sql === '') return [];
  const at = resourceTime(now);
  const pools: string[] = [];
  try {
    await db.transaction(async (tx) => {
      const vip = await getRow(tx, 'lb_vips', id);
      if (!vip) throw vipNotFound(id);
      const to = changes.pool_id ?? String(vip.pool_id);
      pools.push(...new Set([String(vip.pool_id), to]));
      if (to !== vip.pool_id) await moveVip(tx, vip, to, at);
      const rev = await bumpPools(tx, to, String(vip.pool_id), at);
      await tx.query(
        `UPDATE lb_vips SET ${sets.sql}, ${PENDING_SET}, updated_at = ? WHERE id = ?`,
        [...sets.params, rev, at, id],
      );
    });
  } catch (e) {
    throw constraintKind(e) === 'unique' ? vipExists(changes.pool_id ?? '') : e;
  }
  return pools;
}

/**
 * Deletes the VIP and its port together, the port's floating IPs disassociated first (as
 * Neutron's delete_port does); its pool (whose revision bumped) and the routers that
 * served those floating IPs, to be told after commit.
 */
export async function deleteVip(db: Db, id: string, now: Date) {
  return db.transaction(async (tx) => {
    const vip = await getRow(tx, 'lb_vips', id);
    if (!vip) throw vipNotFound(id);
    await bumpPool(tx, String(vip.pool_id), resourceTime(now));
    await tx.query('DELETE FROM lb_vips WHERE id = ?', [id]);
    const routers = await disassociatePort(tx, String(vip.port_id), now);
    await removePort(tx, String(vip.port_id));
    return { pool: String(vip.pool_id), routers };
  });
}
