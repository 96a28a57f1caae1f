/**
 * One pool as its LBaaS agent serves it (contracts/lbaas.ts LbPool), read from the lb_*
 * rows: the VIP with its port (MAC, the network's MTU, the fixed IP on the VIP's subnet
 * with that subnet's CIDR and gateway), the admin-up members, the first admin-up
 * associated monitor (by seq), and whether any object of the pool awaits the agent's
 * acknowledgement (PENDING_* or ERROR).
 *
 * Invariant: only ids, addresses, ports, numbers, enumerations and the strictly validated
 * monitor fields are read: no name or description of any object travels to the agent.
 */
import type {
  LbMember,
  LbMonitor,
  LbPool,
  LbVip,
  LbVipPort,
  SessionPersistence,
} from '../../contracts/lbaas.ts';
import type { Queryable } from './index.ts';
import { bool } from './neutron.ts';

type Row = Record<string, unknown>;

/** The VIP port: its network's MTU, its address on `subnetId` and that subnet. */
async function vipPort(tx: Queryable, portId: string, subnetId: string): Promise<LbVipPort> {
  const [p] = await tx.query<Row>(
    `SELECT p.id, p.network_id, p.mac_address, n.mtu, a.ip_address, a.subnet_id, s.cidr,
        s.gateway_ip
       FROM ports p JOIN networks n ON n.id = p.network_id
       JOIN ipallocations a ON a.port_id = p.id JOIN subnets s ON s.id = a.subnet_id
      WHERE p.id = ? ORDER BY CASE WHEN a.subnet_id = ? THEN 0 ELSE 1 END, a.ip_address`,
    [portId, subnetId],
  );
  if (!p) throw new Error(`VIP port ${portId} has no address`);
  return {
    id: String(p.id),
    network_id: String(p.network_id),
    mac_address: String(p.mac_address),
    mtu: Number(p.mtu),
    ip_address: String(p.ip_address),
    subnet_id: String(p.subnet_id),
    cidr: String(p.cidr),
    gateway_ip: p.gateway_ip == null ? null : String(p.gateway_ip),
  };
}

async function poolVip(tx: Queryable, poolId: string): Promise<LbVip | null> {
  const [v] = await tx.query<Row>(
    `SELECT id, address, protocol_port, protocol, connection_limit, persistence_type,
        cookie_name, admin_state_up, port_id, subnet_id FROM lb_vips WHERE pool_id = ?`,
    [poolId],
  );
  if (!v) return null;
  const persistence: SessionPersistence | null =
    v.persistence_type == null
      ? null
      : {
          type: v.persistence_type as SessionPersistence['type'],
          cookie_name: v.cookie_name == null ? null : String(v.cookie_name),
        };
  return {
    id: String(v.id),
    address: String(v.address),
    protocol_port: Number(v.protocol_port),
    protocol: v.protocol as LbVip['protocol'],
    connection_limit: Number(v.connection_limit),
    session_persistence: persistence,
    admin_state_up: bool(v.admin_state_up),
    port: await vipPort(tx, String(v.port_id), String(v.subnet_id)),
  };
}

async function poolMembers(tx: Queryable, poolId: string): Promise<LbMember[]> {
  const rows = await tx.query<Row>(
    `SELECT id, address, protocol_port, weight FROM lb_members
      WHERE pool_id = ? AND admin_state_up = ? ORDER BY id`,
    [poolId, true],
  );
  return rows.map((m) => ({
    id: String(m.id),
    address: String(m.address),
    protocol_port: Number(m.protocol_port),
    weight: Number(m.weight),
    admin_state_up: true,
  }));
}

async function poolMonitor(tx: Queryable, poolId: string): Promise<LbMonitor | null> {
  const [m] = await tx.query<Row>(
    `SELECT m.id, m.type, m.delay, m.timeout, m.max_retries, m.http_method, m.url_path,
        m.expected_codes
       FROM lb_pool_monitors pm JOIN lb_health_monitors m ON m.id = pm.monitor_id
      WHERE pm.pool_id = ? AND m.admin_state_up = ? ORDER BY pm.seq, m.id`,
    [poolId, true],
  );
  if (!m) return null;
  return {
    id: String(m.id),
    type: m.type as LbMonitor['type'],
    delay: Number(m.delay),
    timeout: Number(m.timeout),
    max_retries: Number(m.max_retries),
    http_method: m.http_method as LbMonitor['http_method'],
    url_path: String(m.url_path),
    expected_codes: String(m.expected_codes),
  };
}

/** Whether an object of the pool (pool, VIP, member, association) is PENDING_* or ERROR. */
async function ackWanted(tx: Queryable, poolId: string): Promise<boolean> {
  const waiting = "(status LIKE 'PENDING_%' OR status = 'ERROR')";
  const [row] = await tx.query<{ n: unknown }>(
    `SELECT (SELECT COUNT(*) FROM lb_pools WHERE id = ? AND ${waiting})
        + (SELECT COUNT(*) FROM lb_vips WHERE pool_id = ? AND ${waiting})
        + (SELECT COUNT(*) FROM lb_members WHERE pool_id = ? AND ${waiting})
        + (SELECT COUNT(*) FROM lb_pool_monitors WHERE pool_id = ? AND ${waiting}) AS n`,
    [poolId, poolId, poolId, poolId],
  );
  return Number(row?.n ?? 0) > 0;
}

/** The pool as its agent serves it, or null when it does not exist. */
export async function readLbPool(tx: Queryable, poolId: string): Promise<LbPool | null> {
  const [p] = await tx.query<Row>(
    `SELECT id, revision_number, admin_state_up, protocol, lb_method FROM lb_pools
      WHERE id = ?`,
    [poolId],
  );
  if (!p) return null;
  return {
    id: String(p.id),
    revision_number: Number(p.revision_number),
    admin_state_up: bool(p.admin_state_up),
    protocol: p.protocol as LbPool['protocol'],
    lb_method: p.lb_method as LbPool['lb_method'],
    vip: await poolVip(tx, poolId),
    members: await poolMembers(tx, poolId),
    health_monitor: await poolMonitor(tx, poolId),
    ack_wanted: await ackWanted(tx, poolId),
  };
}
