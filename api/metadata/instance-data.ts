/**
 * One instance's metadata inputs, loaded from the database in one read: the instance row
 * (with the key pair, user data and config drive columns the record does not carry), its
 * key pair's type, its compute host's availability zone, and its NICs (ports in NIC order
 * with their fixed IPs, subnets, network MTU, whether a DHCP port serves each subnet, and
 * the floating IPs associated with them).
 *
 * Invariant: everything the EC2 and OpenStack trees show comes from one InstanceData, so
 * the listener and the config drive show the same thing; a deleted or unknown instance
 * loads as undefined.
 */

import { DHCP_OWNER } from '../../contracts/network.ts';
import { computeZones } from '../db/agents.ts';
import { queryIn } from '../db/chunks.ts';
import type { Db, Queryable } from '../db/index.ts';
import { bool } from '../db/neutron.ts';
import { getInstanceRow, type InstanceRecord, inPortOrder } from '../db/servers.ts';

export interface MetaSubnet {
  id: string;
  ipVersion: 4 | 6;
  cidr: string;
  gatewayIp: string | null;
  enableDhcp: boolean;
  dnsNameservers: string[];
  hostRoutes: { destination: string; nexthop: string }[];
  /** A DHCP port holds an address on this subnet (Nova's subnet meta dhcp_server). */
  dhcpServer: boolean;
}

export interface MetaPort {
  id: string;
  networkId: string;
  macAddress: string;
  mtu: number;
  fixedIps: { ipAddress: string; subnet: MetaSubnet }[];
  floatingIps: string[];
}

export interface InstanceData {
  record: InstanceRecord;
  key: { name: string; type: string; data: string } | null;
  /** Decoded user data; null when the instance has none. */
  userData: Buffer | null;
  availabilityZone: string;
  ports: MetaPort[];
}

/** The type of a stored public key: an imported or generated ssh line starts with its
 * algorithm (contracts/keypairs.ts), anything else Kumo kept is an x509 certificate. */
const keyTypeOf = (data: string) =>
  /^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)) /.test(data) ? 'ssh' : 'x509';

/** The instance's own key (as copied at create): the pair's type only while the user's key
 * pair of that name still holds the same key, else the type the key itself shows. */
async function keyOf(tx: Queryable, r: InstanceRecord) {
  if (!r.keyName || r.keyData === null) return null;
  const [pair] = await tx.query<{ type: string; public_key: string }>(
    'SELECT type, public_key FROM keypairs WHERE user_id = ? AND name = ?',
    [r.userId, r.keyName],
  );
  const type = pair?.public_key === r.keyData ? pair.type : keyTypeOf(r.keyData);
  return { name: r.keyName, type, data: r.keyData };
}

interface IpRow {
  port_id: string;
  ip_address: string;
  subnet_id: string;
  ip_version: unknown;
  cidr: string;
  gateway_ip: string | null;
  enable_dhcp: unknown;
  dns_nameservers: string;
  host_routes: string;
  dhcp: unknown;
  [k: string]: unknown;
}

const subnetOf = (r: IpRow): MetaSubnet => ({
  id: r.subnet_id,
  ipVersion: Number(r.ip_version) === 6 ? 6 : 4,
  cidr: r.cidr,
  gatewayIp: r.gateway_ip,
  enableDhcp: bool(r.enable_dhcp),
  dnsNameservers: JSON.parse(r.dns_nameservers) as string[],
  hostRoutes: JSON.parse(r.host_routes) as MetaSubnet['hostRoutes'],
  dhcpServer: Number(r.dhcp) > 0,
});

async function fixedIps(tx: Queryable, portIds: readonly string[]) {
  return queryIn<IpRow>(
    tx,
    portIds,
    (list) => `SELECT a.port_id, a.ip_address, s.id AS subnet_id, s.ip_version, s.cidr,
      s.gateway_ip, s.enable_dhcp, s.dns_nameservers, s.host_routes,
      (SELECT COUNT(*) FROM ipallocations d JOIN ports dp ON dp.id = d.port_id
        WHERE d.subnet_id = s.id AND dp.device_owner = ?) AS dhcp
      FROM ipallocations a JOIN subnets s ON s.id = a.subnet_id
      WHERE a.port_id IN ${list} ORDER BY s.created_at, s.id, a.ip_address`,
    [DHCP_OWNER],
  );
}

async function floatingOf(tx: Queryable, portIds: readonly string[]) {
  return queryIn<{ fixed_port_id: string; floating_ip_address: string }>(
    tx,
    portIds,
    (list) => `SELECT fixed_port_id, floating_ip_address FROM floatingips
      WHERE fixed_port_id IN ${list} ORDER BY created_at, id`,
  );
}

async function portsOf(tx: Queryable, order: readonly string[]): Promise<MetaPort[]> {
  if (order.length === 0) return [];
  const rows = await queryIn<{ id: string; network_id: string; mac_address: string; mtu: unknown }>(
    tx,
    order,
    (list) => `SELECT p.id, p.network_id, p.mac_address, n.mtu FROM ports p
      JOIN networks n ON n.id = p.network_id WHERE p.id IN ${list}`,
  );
  const ips = await fixedIps(tx, order);
  const fips = await floatingOf(tx, order);
  return inPortOrder(order, rows).map((p) => ({
    id: p.id,
    networkId: p.network_id,
    macAddress: p.mac_address,
    mtu: Number(p.mtu),
    fixedIps: ips
      .filter((r) => r.port_id === p.id)
      .map((r) => ({ ipAddress: r.ip_address, subnet: subnetOf(r) })),
    floatingIps: fips.filter((f) => f.fixed_port_id === p.id).map((f) => f.floating_ip_address),
  }));
}

/** The instance's metadata inputs; undefined when it does not exist or is deleted. */
export async function loadInstanceData(db: Db, id: string): Promise<InstanceData | undefined> {
  return db.transaction(async (tx) => {
    const record = await getInstanceRow(tx, id);
    if (!record || record.deletedAt !== null) return undefined;
    return {
      record,
      key: await keyOf(tx, record),
      userData: record.userData === null ? null : Buffer.from(record.userData, 'base64'),
      availabilityZone: (await computeZones(tx))(record.host),
      ports: await portsOf(tx, record.portOrder),
    };
  });
}
