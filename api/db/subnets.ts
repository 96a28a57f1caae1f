/**
 * Subnet rows: CIDR, gateway, allocation pools, DNS servers and host routes, checked by
 * subnet-rules.ts (an update against the stored subnet: its CIDR, IP version and whether
 * DHCP was already on) and stored in canonical form.
 *
 * Invariants: subnets of one network never overlap (checked while the network row is
 * locked by the revision bump, so two concurrent creates cannot both pass); a new gateway
 * is never an address a port holds; a subnet with IPs allocated to non-DHCP ports is
 * never deleted. Every change bumps revision_number.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import {
  DHCP_OWNER,
  type Subnet,
  type SubnetCreate,
  type SubnetUpdate,
} from '../../contracts/network.ts';
import { type Cidr, cidrsOverlap, formatCidr, type Pool, parseCidr, toPools } from '../ipam.ts';
import {
  checkDhcpUpdate,
  checkGatewayOutsidePools,
  checkIpv6Mtu,
  gatewayText,
  parseGateway,
  parseNameservers,
  parsePools,
  parseRoutes,
  parseSubnetCreate,
  planOf,
} from '../subnet-rules.ts';
import type { Db, Queryable, Row } from './index.ts';
import { networkNotFound, networkOwner } from './networks.ts';
import {
  bool,
  type ColumnFilter,
  columnUpdates,
  guardQuota,
  type QuotaGuard,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
  writeUpdates,
} from './neutron.ts';

interface SubnetRow extends Row {
  id: string;
  network_id: string;
  project_id: string;
  name: string;
  description: string;
  ip_version: unknown;
  cidr: string;
  gateway_ip: string | null;
  enable_dhcp: unknown;
  allocation_pools: string;
  dns_nameservers: string;
  host_routes: string;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

export function toSubnet(row: SubnetRow): Subnet {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    network_id: row.network_id,
    ip_version: Number(row.ip_version) === 6 ? 6 : 4,
    cidr: row.cidr,
    gateway_ip: row.gateway_ip,
    allocation_pools: JSON.parse(row.allocation_pools) as Pool[],
    enable_dhcp: bool(row.enable_dhcp),
    dns_nameservers: JSON.parse(row.dns_nameservers) as string[],
    host_routes: JSON.parse(row.host_routes) as Subnet['host_routes'],
    ipv6_ra_mode: null,
    ipv6_address_mode: null,
    subnetpool_id: null,
    segment_id: null,
    service_types: [],
    ...standardAttributes(row),
  };
}

export const SUBNET_FILTERS = {
  ...STANDARD_FILTERS,
  network_id: { column: 'network_id', type: 'text' },
  ip_version: { column: 'ip_version', type: 'int' },
  cidr: { column: 'cidr', type: 'text' },
  gateway_ip: { column: 'gateway_ip', type: 'text' },
  enable_dhcp: { column: 'enable_dhcp', type: 'bool' },
} as const;

export function subnetNotFound(id: string): ApiError {
  return new ApiError('SubnetNotFound', `Subnet ${id} could not be found.`);
}

export async function listSubnets(db: Queryable, filter: ColumnFilter): Promise<Subnet[]> {
  const where = whereSql(filter);
  const rows = await db.query<SubnetRow>(
    `SELECT * FROM subnets${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  return rows.map(toSubnet);
}

export async function getSubnet(db: Queryable, id: string): Promise<Subnet | undefined> {
  const [row] = await db.query<SubnetRow>('SELECT * FROM subnets WHERE id = ?', [id]);
  return row ? toSubnet(row) : undefined;
}

/** Bumps the network's revision (its `subnets` changed) and locks its row until commit. */
async function touchNetwork(tx: Queryable, networkId: string, at: string) {
  const [row] = await tx.query<{ mtu: unknown }>(
    'UPDATE networks SET revision_number = revision_number + 1, updated_at = ? WHERE id = ? RETURNING mtu',
    [at, networkId],
  );
  if (!row) throw networkNotFound(networkId);
  return { mtu: Number(row.mtu) };
}

/** Refuses a CIDR overlapping another subnet of the network. */
async function checkOverlap(tx: Queryable, networkId: string, cidr: Cidr) {
  const others = await tx.query<{ cidr: string }>('SELECT cidr FROM subnets WHERE network_id = ?', [
    networkId,
  ]);
  for (const o of others) {
    const other = parseCidr(o.cidr);
    if ('cidr' in other && cidrsOverlap(other.cidr, cidr))
      throw new ApiError(
        'InvalidInput',
        `Invalid input for operation: Requested subnet with cidr: ${formatCidr(cidr)} for network: ${networkId} overlaps with another subnet.`,
      );
  }
}

/**
 * Subnets `projectId` may see: those of networks it may see (its own, shared, external),
 * and its own.
 */
export function visibleSubnets(projectId: string): ColumnFilter['clauses'][number] {
  return {
    sql: `(project_id = ? OR network_id IN
      (SELECT id FROM networks WHERE project_id = ? OR shared = ? OR external = ?))`,
    params: [projectId, projectId, true, true],
  };
}

/** Creates a subnet owned by `req.project_id` (else the network's owner), within `quota`. */
export async function createSubnet(
  db: Db,
  req: SubnetCreate,
  now: Date,
  quota?: QuotaGuard,
): Promise<Subnet> {
  const v = parseSubnetCreate(req);
  const id = randomUUID();
  const at = resourceTime(now);
  await db.transaction(async (tx) => {
    // The owner is known before any lock: the quota lock is always taken before the
    // network row's, so two creates never wait on each other in opposite orders.
    const owner = req.project_id ?? req.tenant_id ?? (await networkOwner(tx, req.network_id));
    if (owner === undefined) throw networkNotFound(req.network_id);
    await guardQuota(tx, quota, owner, 'subnet');
    const { mtu } = await touchNetwork(tx, req.network_id, at);
    checkIpv6Mtu(v.cidr.version, mtu);
    await checkOverlap(tx, req.network_id, v.cidr);
    await tx.query(
      `INSERT INTO subnets (id, network_id, project_id, name, description, ip_version, cidr,
         gateway_ip, enable_dhcp, allocation_pools, dns_nameservers, host_routes,
         revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
      [
        id,
        req.network_id,
        owner,
        req.name ?? '',
        req.description ?? '',
        v.cidr.version,
        formatCidr(v.cidr),
        v.gateway,
        req.enable_dhcp ?? true,
        JSON.stringify(v.pools),
        JSON.stringify(v.dns),
        JSON.stringify(v.routes),
        at,
        at,
      ],
    );
  });
  const created = await getSubnet(db, id);
  if (!created) throw subnetNotFound(id);
  return created;
}

/** A new gateway must not be an address a port holds. */
async function checkGatewayFree(tx: Queryable, id: string, text: string) {
  const [used] = await tx.query(
    'SELECT port_id FROM ipallocations WHERE subnet_id = ? AND ip_address = ?',
    [id, text],
  );
  if (used)
    throw new ApiError(
      'GatewayIpInUse',
      `Current gateway ip ${text} already in use by port ${String(used.port_id)}. Unable to update.`,
    );
}

/** The gateway and pool columns of an update, checked against each other and the ports. */
async function addressUpdates(
  tx: Queryable,
  current: Subnet,
  changes: SubnetUpdate,
  u: ReturnType<typeof columnUpdates>,
) {
  const { cidr, gateway: oldGateway, pools: oldPools } = planOf(current);
  const gateway =
    changes.gateway_ip === undefined ? oldGateway : parseGateway(cidr, changes.gateway_ip);
  const pools =
    changes.allocation_pools === undefined ? oldPools : parsePools(cidr, changes.allocation_pools);
  if (changes.gateway_ip !== undefined || changes.allocation_pools !== undefined)
    checkGatewayOutsidePools(cidr, gateway, pools);
  if (changes.gateway_ip !== undefined) {
    const text = gatewayText(cidr, gateway);
    if (text !== null && text !== current.gateway_ip) await checkGatewayFree(tx, current.id, text);
    u.set('gateway_ip', text);
  }
  if (changes.allocation_pools !== undefined)
    u.set('allocation_pools', JSON.stringify(toPools(cidr.version, pools)));
  return cidr;
}

export async function updateSubnet(
  db: Db,
  id: string,
  changes: SubnetUpdate,
  now: Date,
): Promise<Subnet> {
  await db.transaction(async (tx) => {
    const current = await getSubnet(tx, id);
    if (!current) throw subnetNotFound(id);
    checkDhcpUpdate(current, changes.enable_dhcp);
    const u = columnUpdates();
    const cidr = await addressUpdates(tx, current, changes, u);
    if (changes.dns_nameservers !== undefined)
      u.set(
        'dns_nameservers',
        JSON.stringify(parseNameservers(cidr.version, changes.dns_nameservers)),
      );
    if (changes.host_routes !== undefined)
      u.set('host_routes', JSON.stringify(parseRoutes(cidr.version, changes.host_routes)));
    u.set('name', changes.name);
    u.set('description', changes.description);
    u.set('enable_dhcp', changes.enable_dhcp);
    await writeUpdates(tx, 'subnets', id, u, now);
  });
  const after = await getSubnet(db, id);
  if (!after) throw subnetNotFound(id);
  return after;
}

/**
 * Deletes a subnet. Addresses held by DHCP ports go with it (those ports' revisions are
 * bumped); any other port's address makes it SubnetInUse (409) and nothing changes.
 */
export async function deleteSubnet(db: Db, id: string, now: Date): Promise<void> {
  const at = resourceTime(now);
  await db.transaction(async (tx) => {
    const [row] = await tx.query<{ network_id: string }>(
      'SELECT network_id FROM subnets WHERE id = ?',
      [id],
    );
    if (!row) throw subnetNotFound(id);
    await touchNetwork(tx, row.network_id, at);
    const [busy] = await tx.query(
      `SELECT a.port_id FROM ipallocations a JOIN ports p ON p.id = a.port_id
        WHERE a.subnet_id = ? AND p.device_owner <> ? LIMIT 1`,
      [id, DHCP_OWNER],
    );
    if (busy)
      throw new ApiError(
        'SubnetInUse',
        `Unable to complete operation on subnet ${id}: One or more ports have an IP allocation from this subnet.`,
      );
    await tx.query(
      `UPDATE ports SET revision_number = revision_number + 1, updated_at = ?
        WHERE id IN (SELECT port_id FROM ipallocations WHERE subnet_id = ?)`,
      [at, id],
    );
    await tx.query('DELETE FROM ipallocations WHERE subnet_id = ?', [id]);
    await tx.query('DELETE FROM subnets WHERE id = ?', [id]);
  });
}
