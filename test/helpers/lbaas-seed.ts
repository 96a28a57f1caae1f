/**
 * LBaaS v1 rows written straight into kumo-api's database, for the scheduling and RPC
 * suites that run before (or without) the lb routes: pools, members, health monitors and
 * their associations as migration 16 defines them, and a VIP whose port is a real port
 * made by POST /v2.0/ports (device_owner neutron:LOADBALANCER).
 *
 * Invariant: what it writes is what the lb routes write — a created object is
 * PENDING_CREATE at status_revision = the pool's revision_number, which each object
 * created bumps.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../../api/db/index.ts';
import type { Port } from '../../contracts/network.ts';

const AT = '2026-11-22T10:00:00Z';

type Status = { status?: string; description?: string | null };

/** Bumps the pool's revision; returns the new one. */
async function bump(db: Db, poolId: string): Promise<number> {
  await db.query('UPDATE lb_pools SET revision_number = revision_number + 1 WHERE id = ?', [
    poolId,
  ]);
  const [row] = await db.query<{ r: unknown }>(
    'SELECT revision_number AS r FROM lb_pools WHERE id = ?',
    [poolId],
  );
  return Number(row?.r);
}

export async function seedPool(
  db: Db,
  subnetId: string,
  opts: { name?: string; adminStateUp?: boolean; method?: string } = {},
): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO lb_pools (id, project_id, name, description, subnet_id, protocol, lb_method,
       admin_state_up, status, status_description, status_revision, revision_number,
       created_at, updated_at)
     VALUES (?, 'p1', ?, 'a pool', ?, 'HTTP', ?, ?, 'PENDING_CREATE', NULL, 1, 1, ?, ?)`,
    [
      id,
      opts.name ?? 'web',
      subnetId,
      opts.method ?? 'ROUND_ROBIN',
      opts.adminStateUp ?? true,
      AT,
      AT,
    ],
  );
  return id;
}

/** A VIP on `port` (made by the caller through the ports API) for the pool. */
export async function seedVip(
  db: Db,
  poolId: string,
  port: Port,
  opts: { persistence?: string; cookie?: string | null } = {},
): Promise<string> {
  const id = randomUUID();
  const rev = await bump(db, poolId);
  const ip = port.fixed_ips[0];
  if (!ip) throw new Error(`port ${port.id} has no address`);
  await db.query(
    `INSERT INTO lb_vips (id, project_id, name, description, pool_id, subnet_id, port_id,
       address, protocol_port, protocol, connection_limit, persistence_type, cookie_name,
       admin_state_up, status, status_description, status_revision, created_at, updated_at)
     VALUES (?, 'p1', 'vip', '', ?, ?, ?, ?, 80, 'HTTP', -1, ?, ?, ?, 'PENDING_CREATE', NULL, ?,
       ?, ?)`,
    [
      id,
      poolId,
      ip.subnet_id,
      port.id,
      ip.ip_address,
      opts.persistence ?? null,
      opts.cookie ?? null,
      true,
      rev,
      AT,
      AT,
    ],
  );
  return id;
}

export async function seedMember(
  db: Db,
  poolId: string,
  address: string,
  opts: { adminStateUp?: boolean; weight?: number } = {},
): Promise<string> {
  const id = randomUUID();
  const rev = await bump(db, poolId);
  await db.query(
    `INSERT INTO lb_members (id, project_id, pool_id, address, protocol_port, weight,
       admin_state_up, status, status_description, status_revision, health, health_description,
       created_at, updated_at)
     VALUES (?, 'p1', ?, ?, 80, ?, ?, 'PENDING_CREATE', NULL, ?, NULL, NULL, ?, ?)`,
    [id, poolId, address, opts.weight ?? 1, opts.adminStateUp ?? true, rev, AT, AT],
  );
  return id;
}

/** A health monitor (HTTP GET /healthz 200) associated with the pool at `seq`. */
export async function seedMonitor(
  db: Db,
  poolId: string,
  opts: { adminStateUp?: boolean; seq?: number; delay?: number } = {},
): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO lb_health_monitors (id, project_id, type, delay, timeout, max_retries,
       http_method, url_path, expected_codes, admin_state_up, created_at, updated_at)
     VALUES (?, 'p1', 'HTTP', ?, 3, 3, 'GET', '/healthz', '200', ?, ?, ?)`,
    [id, opts.delay ?? 3, opts.adminStateUp ?? true, AT, AT],
  );
  const rev = await bump(db, poolId);
  await db.query(
    `INSERT INTO lb_pool_monitors (pool_id, monitor_id, seq, status, status_description,
       status_revision) VALUES (?, ?, ?, 'PENDING_CREATE', NULL, ?)`,
    [poolId, id, opts.seq ?? 1, rev],
  );
  return id;
}

/** An update of a member: PENDING_UPDATE at the pool's new revision (as the lb routes do). */
export async function touchMember(db: Db, poolId: string, memberId: string): Promise<number> {
  const rev = await bump(db, poolId);
  await db.query(
    `UPDATE lb_members SET weight = weight + 1, status_revision = ?,
        status = CASE WHEN status = 'PENDING_CREATE' THEN status ELSE 'PENDING_UPDATE' END
      WHERE id = ?`,
    [rev, memberId],
  );
  return rev;
}

/** Every object's (status, description) of the pool, keyed `pool`, `vip`, member id, `hm:<id>`. */
export async function poolStatuses(db: Db, poolId: string): Promise<Record<string, Status>> {
  const out: Record<string, Status> = {};
  const pick = (r: Record<string, unknown>) => ({
    status: String(r.status),
    description: (r.status_description as string | null) ?? null,
  });
  for (const r of await db.query('SELECT * FROM lb_pools WHERE id = ?', [poolId]))
    out.pool = pick(r);
  for (const r of await db.query('SELECT * FROM lb_vips WHERE pool_id = ?', [poolId]))
    out.vip = pick(r);
  for (const r of await db.query('SELECT * FROM lb_members WHERE pool_id = ?', [poolId]))
    out[String(r.id)] = pick(r);
  for (const r of await db.query('SELECT * FROM lb_pool_monitors WHERE pool_id = ?', [poolId]))
    out[`hm:${String(r.monitor_id)}`] = pick(r);
  return out;
}
