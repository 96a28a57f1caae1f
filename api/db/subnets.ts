/**
 * Subnet rows: CIDR, gateway, allocation pools, DNS servers and host routes, validated
 * the way Neutron validates them, and stored in canonical form.
 *
 * Invariants: subnets of one network never overlap (checked while the network row is
 * locked by the revision bump, so two concurrent creates cannot both pass); the gateway
 * never lies inside a pool; pools lie inside the usable range and never overlap; a subnet
 * with IPs allocated to non-DHCP ports is never deleted.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import {
  DEFAULT_PROJECT_ID,
  DHCP_OWNER,
  type Subnet,
  type SubnetCreate,
  type SubnetUpdate,
} from '../../contracts/network.ts';
import {
  type Cidr,
  canonicalIp,
  cidrsOverlap,
  defaultPools,
  formatCidr,
  type IpVersion,
  lastAddress,
  type Pool,
  parseCidr,
  parseIp,
  type Range,
  toPools,
  usableRange,
} from '../ipam.ts';
import type { Db, Param, Queryable, Row } from './index.ts';
import { networkNotFound } from './networks.ts';
import {
  bool,
  type ColumnFilter,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
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

const badInput = (field: string, reason: string) =>
  new ApiError('BadRequest', `Invalid input for ${field}. Reason: ${reason}.`);

/** A parsed subnet: what IPAM needs to hand out addresses. */
export interface SubnetPlan {
  cidr: Cidr;
  gateway: bigint | null;
  pools: Range[];
}

export function planOf(
  subnet: Pick<Subnet, 'cidr' | 'gateway_ip' | 'allocation_pools'>,
): SubnetPlan {
  const parsed = parseCidr(subnet.cidr);
  if (!('cidr' in parsed)) throw new Error(`stored cidr ${subnet.cidr} is invalid`);
  const ip = (s: string) => parseIp(s)?.value ?? 0n;
  return {
    cidr: parsed.cidr,
    gateway: subnet.gateway_ip === null ? null : ip(subnet.gateway_ip),
    pools: subnet.allocation_pools.map((p) => ({ start: ip(p.start), end: ip(p.end) })),
  };
}

function parseGateway(cidr: Cidr, raw: string | null | undefined): bigint | null {
  if (raw === undefined) return usableRange(cidr).start;
  if (raw === null) return null;
  const ip = parseIp(raw);
  if (!ip) throw badInput('gateway_ip', `'${raw}' is not a valid IP address`);
  if (ip.version !== cidr.version)
    throw badInput('gateway_ip', `'${raw}' is not an IPv${cidr.version} address`);
  if (ip.value === cidr.network || (cidr.version === 4 && ip.value === lastAddress(cidr)))
    throw new ApiError(
      'InvalidInput',
      `Invalid input for operation: Gateway is not valid on subnet: ${raw} is the ${ip.value === cidr.network ? 'network' : 'broadcast'} address of ${formatCidr(cidr)}.`,
    );
  return ip.value;
}

function parsePools(cidr: Cidr, raw: readonly Pool[]): Range[] {
  const usable = usableRange(cidr);
  const ranges = raw.map((p) => {
    const start = parseIp(p.start);
    const end = parseIp(p.end);
    if (!start || !end || start.version !== cidr.version || end.version !== cidr.version)
      throw new ApiError(
        'InvalidAllocationPool',
        `The allocation pool ${p.start}-${p.end} is not valid.`,
      );
    if (start.value > end.value)
      throw new ApiError(
        'InvalidAllocationPool',
        `The allocation pool ${p.start}-${p.end} is not valid: its start is after its end.`,
      );
    if (start.value < usable.start || end.value > usable.end)
      throw new ApiError(
        'OutOfBoundsAllocationPool',
        `The allocation pool ${p.start}-${p.end} spans beyond the subnet cidr ${formatCidr(cidr)}.`,
      );
    return { start: start.value, end: end.value };
  });
  ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1] as Range;
    const cur = ranges[i] as Range;
    if (cur.start <= prev.end) {
      const [a, b] = toPools(cidr.version, [prev, cur]);
      throw new ApiError(
        'OverlappingAllocationPools',
        `Found overlapping allocation pools: ${a?.start}-${a?.end} and ${b?.start}-${b?.end} for subnet ${formatCidr(cidr)}.`,
      );
    }
  }
  return ranges;
}

function checkGatewayOutsidePools(cidr: Cidr, gateway: bigint | null, pools: Range[]) {
  if (gateway === null) return;
  const hit = pools.find((r) => gateway >= r.start && gateway <= r.end);
  if (hit) {
    const [p] = toPools(cidr.version, [hit]);
    throw new ApiError(
      'GatewayConflictWithAllocationPools',
      `Gateway ip ${toPools(cidr.version, [{ start: gateway, end: gateway }])[0]?.start} conflicts with allocation pool ${p?.start}-${p?.end}.`,
    );
  }
}

function parseNameservers(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of raw) {
    const ip = canonicalIp(s);
    if (!ip) throw badInput('dns_nameservers', `'${s}' is not a valid nameserver`);
    if (out.includes(ip)) throw badInput('dns_nameservers', `Duplicate nameserver '${s}'`);
    out.push(ip);
  }
  return out;
}

function parseRoutes(
  version: IpVersion,
  raw: readonly { destination: string; nexthop: string }[],
): Subnet['host_routes'] {
  const out: Subnet['host_routes'] = [];
  for (const r of raw) {
    const dest = parseCidr(r.destination);
    if (!('cidr' in dest)) throw badInput('host_routes', dest.reason);
    const hop = parseIp(r.nexthop);
    if (!hop) throw badInput('host_routes', `'${r.nexthop}' is not a valid IP address`);
    if (dest.cidr.version !== version || hop.version !== version)
      throw badInput('host_routes', `route ${r.destination} via ${r.nexthop} is not IPv${version}`);
    const route = {
      destination: formatCidr(dest.cidr),
      nexthop: canonicalIp(r.nexthop) as string,
    };
    if (out.some((o) => o.destination === route.destination && o.nexthop === route.nexthop))
      throw badInput('host_routes', `Duplicate hostroute '${r.destination} ${r.nexthop}'`);
    out.push(route);
  }
  return out;
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
async function touchNetwork(tx: Queryable, networkId: string, at: string): Promise<string> {
  const [row] = await tx.query<{ project_id: string }>(
    'UPDATE networks SET revision_number = revision_number + 1, updated_at = ? WHERE id = ? RETURNING project_id',
    [at, networkId],
  );
  if (!row) throw networkNotFound(networkId);
  return row.project_id;
}

export async function createSubnet(db: Db, req: SubnetCreate, now: Date): Promise<Subnet> {
  const parsed = parseCidr(req.cidr);
  if (!('cidr' in parsed)) throw badInput('cidr', parsed.reason);
  const { cidr } = parsed;
  if (req.ip_version !== undefined && req.ip_version !== cidr.version)
    throw new ApiError(
      'InvalidInput',
      `Invalid input for operation: ip_version ${req.ip_version} does not match cidr ${req.cidr}.`,
    );
  const usable = usableRange(cidr);
  if (usable.start > usable.end)
    throw badInput('cidr', `'${req.cidr}' has no usable addresses for a subnet`);
  const gateway = parseGateway(cidr, req.gateway_ip);
  const pools =
    req.allocation_pools === undefined
      ? defaultPools(cidr, gateway)
      : parsePools(cidr, req.allocation_pools);
  checkGatewayOutsidePools(cidr, gateway, pools);
  const dns = parseNameservers(req.dns_nameservers ?? []);
  const routes = parseRoutes(cidr.version, req.host_routes ?? []);
  const id = randomUUID();
  const at = resourceTime(now);
  const cidrText = formatCidr(cidr);
  await db.transaction(async (tx) => {
    const owner = await touchNetwork(tx, req.network_id, at);
    const others = await tx.query<{ cidr: string }>(
      'SELECT cidr FROM subnets WHERE network_id = ?',
      [req.network_id],
    );
    for (const o of others) {
      const other = parseCidr(o.cidr);
      if ('cidr' in other && cidrsOverlap(other.cidr, cidr))
        throw new ApiError(
          'InvalidInput',
          `Invalid input for operation: Requested subnet with cidr: ${cidrText} for network: ${req.network_id} overlaps with another subnet.`,
        );
    }
    await tx.query(
      `INSERT INTO subnets (id, network_id, project_id, name, description, ip_version, cidr,
         gateway_ip, enable_dhcp, allocation_pools, dns_nameservers, host_routes,
         revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
      [
        id,
        req.network_id,
        req.project_id ?? req.tenant_id ?? owner ?? DEFAULT_PROJECT_ID,
        req.name ?? '',
        req.description ?? '',
        cidr.version,
        cidrText,
        gateway === null
          ? null
          : (toPools(cidr.version, [{ start: gateway, end: gateway }])[0]?.start ?? null),
        req.enable_dhcp ?? true,
        JSON.stringify(toPools(cidr.version, pools)),
        JSON.stringify(dns),
        JSON.stringify(routes),
        at,
        at,
      ],
    );
  });
  const created = await getSubnet(db, id);
  if (!created) throw subnetNotFound(id);
  return created;
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
    const { cidr, gateway: oldGateway, pools: oldPools } = planOf(current);
    const sets: string[] = [];
    const params: Param[] = [];
    const set = (column: string, value: Param | undefined) => {
      if (value === undefined) return;
      sets.push(`${column} = ?`);
      params.push(value);
    };
    const gateway =
      changes.gateway_ip === undefined ? oldGateway : parseGateway(cidr, changes.gateway_ip);
    const pools =
      changes.allocation_pools === undefined
        ? oldPools
        : parsePools(cidr, changes.allocation_pools);
    if (changes.gateway_ip !== undefined || changes.allocation_pools !== undefined)
      checkGatewayOutsidePools(cidr, gateway, pools);
    if (changes.gateway_ip !== undefined) {
      const text =
        gateway === null
          ? null
          : (toPools(cidr.version, [{ start: gateway, end: gateway }])[0]?.start ?? null);
      if (text !== null && text !== current.gateway_ip) {
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
      set('gateway_ip', text);
    }
    if (changes.allocation_pools !== undefined)
      set('allocation_pools', JSON.stringify(toPools(cidr.version, pools)));
    if (changes.dns_nameservers !== undefined)
      set('dns_nameservers', JSON.stringify(parseNameservers(changes.dns_nameservers)));
    if (changes.host_routes !== undefined)
      set('host_routes', JSON.stringify(parseRoutes(cidr.version, changes.host_routes)));
    set('name', changes.name);
    set('description', changes.description);
    set('enable_dhcp', changes.enable_dhcp);
    if (sets.length === 0) return;
    await tx.query(
      `UPDATE subnets SET ${sets.join(', ')}, revision_number = revision_number + 1, updated_at = ? WHERE id = ?`,
      [...params, resourceTime(now), id],
    );
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
