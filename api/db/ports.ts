/**
 * Port rows and IPAM: MAC addresses and fixed IPs.
 *
 * Invariants: one address is held by one port at a time — the ipallocations primary key
 * (subnet_id, ip_address) decides races on both engines: an automatic allocation inserts
 * the lowest free address with ON CONFLICT DO NOTHING and, if another transaction got it
 * first, reads again and takes the next; a requested address that is taken is refused
 * (IpAddressAlreadyAllocated). One MAC per network (UNIQUE(network_id, mac_address)).
 * Deleting a port frees its addresses and MAC. Every change bumps revision_number.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import {
  DEFAULT_PROJECT_ID,
  type FixedIp,
  type FixedIpRequest,
  MAC_PREFIX,
  type Port,
  type PortCreate,
  type PortStatus,
  type PortUpdate,
} from '../../contracts/network.ts';
import { contains, firstFree, formatIp, lastAddress, parseIp } from '../ipam.ts';
import type { Db, Param, Queryable, Row } from './index.ts';
import { networkNotFound } from './networks.ts';
import {
  bool,
  type ColumnFilter,
  constraintKind,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
} from './neutron.ts';
import { listSubnets, planOf } from './subnets.ts';

interface PortRow extends Row {
  id: string;
  network_id: string;
  project_id: string;
  name: string;
  description: string;
  mac_address: string;
  admin_state_up: unknown;
  status: string;
  device_id: string;
  device_owner: string;
  host_id: string;
  vnic_type: string;
  profile: string;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

function toPort(row: PortRow, fixedIps: FixedIp[]): Port {
  const bound = row.host_id !== '';
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    network_id: row.network_id,
    admin_state_up: bool(row.admin_state_up),
    status: row.status as PortStatus,
    mac_address: row.mac_address,
    fixed_ips: fixedIps,
    device_id: row.device_id,
    device_owner: row.device_owner,
    'binding:host_id': row.host_id,
    'binding:vif_type': bound ? 'ovs' : 'unbound',
    'binding:vif_details': bound
      ? {
          port_filter: true,
          ovs_hybrid_plug: false,
          datapath_type: 'system',
          bridge_name: 'br-int',
        }
      : {},
    'binding:vnic_type': row.vnic_type,
    'binding:profile': JSON.parse(row.profile) as Record<string, unknown>,
    security_groups: [],
    allowed_address_pairs: [],
    extra_dhcp_opts: [],
    ...standardAttributes(row),
  };
}

export const PORT_FILTERS = {
  ...STANDARD_FILTERS,
  network_id: { column: 'network_id', type: 'text' },
  device_id: { column: 'device_id', type: 'text' },
  device_owner: { column: 'device_owner', type: 'text' },
  mac_address: { column: 'mac_address', type: 'text' },
  status: { column: 'status', type: 'text' },
  admin_state_up: { column: 'admin_state_up', type: 'bool' },
  'binding:host_id': { column: 'host_id', type: 'text' },
  'binding:vnic_type': { column: 'vnic_type', type: 'text' },
} as const;

/** `fixed_ips=subnet_id=X` / `fixed_ips=ip_address=Y` filters (ANDed, like Neutron). */
export function fixedIpClauses(values: string[]): ColumnFilter['clauses'] {
  return values.map((v) => {
    const m = /^(subnet_id|ip_address)=(.+)$/.exec(v);
    if (!m?.[1] || !m[2])
      throw new ApiError(
        'BadRequest',
        `Invalid filter: fixed_ips must be 'subnet_id=<id>' or 'ip_address=<ip>', got '${v}'.`,
      );
    const value = m[1] === 'ip_address' ? formatCanonical(m[2]) : m[2];
    return {
      sql: `id IN (SELECT port_id FROM ipallocations WHERE ${m[1]} = ?)`,
      params: [value],
    };
  });
}

function formatCanonical(s: string): string {
  const ip = parseIp(s);
  return ip ? formatIp(ip.version, ip.value) : s;
}

export function portNotFound(id: string): ApiError {
  return new ApiError('PortNotFound', `Port ${id} could not be found.`);
}

async function fixedIpsOf(db: Queryable, portIds: string[]): Promise<Map<string, FixedIp[]>> {
  const out = new Map<string, FixedIp[]>(portIds.map((id) => [id, []]));
  for (let i = 0; i < portIds.length; i += 500) {
    const chunk = portIds.slice(i, i + 500);
    const rows = await db.query<{ port_id: string; subnet_id: string; ip_address: string }>(
      `SELECT a.port_id, a.subnet_id, a.ip_address FROM ipallocations a
         JOIN subnets s ON s.id = a.subnet_id
        WHERE a.port_id IN (${chunk.map(() => '?').join(', ')})
        ORDER BY s.created_at, s.id, a.ip_address`,
      chunk,
    );
    for (const r of rows)
      out.get(r.port_id)?.push({ subnet_id: r.subnet_id, ip_address: r.ip_address });
  }
  return out;
}

export async function listPorts(db: Queryable, filter: ColumnFilter): Promise<Port[]> {
  const where = whereSql(filter);
  const rows = await db.query<PortRow>(
    `SELECT * FROM ports${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  const ips = await fixedIpsOf(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((r) => toPort(r, ips.get(r.id) ?? []));
}

export async function getPort(db: Queryable, id: string): Promise<Port | undefined> {
  const [row] = await db.query<PortRow>('SELECT * FROM ports WHERE id = ?', [id]);
  if (!row) return undefined;
  return toPort(row, (await fixedIpsOf(db, [id])).get(id) ?? []);
}

const badInput = (field: string, reason: string) =>
  new ApiError('BadRequest', `Invalid input for ${field}. Reason: ${reason}.`);

/** A requested MAC, lower-cased; multicast and all-zero addresses are refused. */
export function normaliseMac(raw: string): string {
  const mac = raw.toLowerCase();
  const first = Number.parseInt(mac.slice(0, 2), 16);
  if (mac === '00:00:00:00:00:00' || (first & 1) === 1)
    throw badInput('mac_address', `'${raw}' is not a valid unicast MAC address`);
  return mac;
}

const randomMac = () =>
  `${MAC_PREFIX}:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

async function macTaken(tx: Queryable, networkId: string, mac: string): Promise<boolean> {
  const rows = await tx.query('SELECT id FROM ports WHERE network_id = ? AND mac_address = ?', [
    networkId,
    mac,
  ]);
  return rows.length > 0;
}

const macInUse = (networkId: string, mac: string) =>
  new ApiError(
    'MacAddressInUse',
    `Unable to complete operation for network ${networkId}. The mac address ${mac} is in use.`,
  );

async function chooseMac(tx: Queryable, networkId: string, requested?: string): Promise<string> {
  if (requested !== undefined) {
    const mac = normaliseMac(requested);
    if (await macTaken(tx, networkId, mac)) throw macInUse(networkId, mac);
    return mac;
  }
  for (let i = 0; i < 16; i++) {
    const mac = randomMac();
    if (!(await macTaken(tx, networkId, mac))) return mac;
  }
  throw new ApiError(
    'MacAddressGenerationFailure',
    `Unable to generate unique mac on network ${networkId}.`,
  );
}

async function insertAllocation(
  tx: Queryable,
  subnetId: string,
  ip: string,
  portId: string,
  networkId: string,
): Promise<boolean> {
  const rows = await tx.query(
    `INSERT INTO ipallocations (subnet_id, ip_address, port_id, network_id) VALUES (?, ?, ?, ?)
     ON CONFLICT DO NOTHING RETURNING ip_address`,
    [subnetId, ip, portId, networkId],
  );
  return rows.length > 0;
}

type SubnetInfo = Awaited<ReturnType<typeof listSubnets>>[number];

/** Takes the lowest free pool address of `subnet`; undefined when its pools are full. */
async function allocateFromPools(
  tx: Queryable,
  subnet: SubnetInfo,
  portId: string,
): Promise<string | undefined> {
  const plan = planOf(subnet);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const taken = await tx.query<{ ip_address: string }>(
      'SELECT ip_address FROM ipallocations WHERE subnet_id = ?',
      [subnet.id],
    );
    const free = firstFree(
      plan.pools,
      taken.map((t) => parseIp(t.ip_address)?.value ?? -1n),
    );
    if (free === undefined) return undefined;
    const ip = formatIp(plan.cidr.version, free);
    // Lost a race for this address: another transaction committed it; read again.
    if (await insertAllocation(tx, subnet.id, ip, portId, subnet.network_id)) return ip;
  }
  throw new ApiError('ServiceUnavailable', `IP allocation on subnet ${subnet.id} kept colliding.`);
}

const exhausted = (networkId: string) =>
  new ApiError(
    'IpAddressGenerationFailure',
    `No more IP addresses available on network ${networkId}.`,
  );

/**
 * Allocates `requests` (Neutron's fixed_ips semantics) for a port, or — when undefined —
 * one address from the first IPv4 subnet with room and one from the first IPv6 subnet.
 */
async function allocateFixedIps(
  tx: Queryable,
  networkId: string,
  portId: string,
  requests: readonly FixedIpRequest[] | undefined,
): Promise<void> {
  const subnets = await listSubnets(tx, {
    columns: { network_id: [networkId] },
    clauses: [],
  });
  if (requests === undefined) {
    for (const version of [4, 6] as const) {
      const candidates = subnets.filter((s) => s.ip_version === version);
      if (candidates.length === 0) continue;
      let got: string | undefined;
      for (const s of candidates) {
        got = await allocateFromPools(tx, s, portId);
        if (got) break;
      }
      if (!got) throw exhausted(networkId);
    }
    return;
  }
  for (const req of requests) {
    let subnet: SubnetInfo | undefined;
    if (req.subnet_id !== undefined) {
      subnet = subnets.find((s) => s.id === req.subnet_id);
      if (!subnet)
        throw new ApiError(
          'InvalidInput',
          `Invalid input for operation: Failed to create port on network ${networkId}, because fixed_ips included invalid subnet ${req.subnet_id}.`,
        );
    }
    if (req.ip_address === undefined) {
      if (!subnet)
        throw badInput('fixed_ips', 'each entry needs a subnet_id, an ip_address or both');
      if (!(await allocateFromPools(tx, subnet, portId))) throw exhausted(networkId);
      continue;
    }
    const ip = parseIp(req.ip_address);
    if (!ip) throw badInput('fixed_ips', `'${req.ip_address}' is not a valid IP address`);
    if (!subnet) {
      subnet = subnets.find((s) => contains(planOf(s).cidr, ip));
      if (!subnet)
        throw new ApiError(
          'InvalidIpForNetwork',
          `IP address ${req.ip_address} is not a valid IP for any of the subnets on the specified network.`,
        );
    }
    const { cidr } = planOf(subnet);
    if (
      !contains(cidr, ip) ||
      ip.value === cidr.network ||
      (cidr.version === 4 && ip.value === lastAddress(cidr))
    )
      throw new ApiError(
        'InvalidIpForSubnet',
        `IP address ${req.ip_address} is not a valid IP for the specified subnet.`,
      );
    const text = formatIp(ip.version, ip.value);
    if (!(await insertAllocation(tx, subnet.id, text, portId, networkId)))
      throw new ApiError(
        'IpAddressAlreadyAllocated',
        `IP address ${text} already allocated in subnet ${subnet.id}`,
      );
  }
}

/** Maps a constraint violation that slipped past the checks (a race) to Neutron's error. */
function raced(e: unknown, networkId: string, mac: string | undefined): unknown {
  const kind = constraintKind(e);
  if (kind === 'unique' && mac) return macInUse(networkId, mac);
  if (kind === 'foreign_key')
    return new ApiError(
      'Conflict',
      `The network ${networkId} or one of its subnets changed concurrently; retry the request.`,
    );
  return e;
}

export async function createPort(db: Db, req: PortCreate, now: Date): Promise<Port> {
  const id = randomUUID();
  const at = resourceTime(now);
  let mac: string | undefined;
  try {
    await db.transaction(async (tx) => {
      const [net] = await tx.query<{ project_id: string }>(
        'SELECT project_id FROM networks WHERE id = ?',
        [req.network_id],
      );
      if (!net) throw networkNotFound(req.network_id);
      mac = await chooseMac(tx, req.network_id, req.mac_address);
      await tx.query(
        `INSERT INTO ports (id, network_id, project_id, name, description, mac_address,
           admin_state_up, status, device_id, device_owner, host_id, vnic_type, profile,
           revision_number, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'DOWN', ?, ?, ?, ?, ?, 1, ?, ?)`,
        [
          id,
          req.network_id,
          req.project_id ?? req.tenant_id ?? net.project_id ?? DEFAULT_PROJECT_ID,
          req.name ?? '',
          req.description ?? '',
          mac,
          req.admin_state_up ?? true,
          req.device_id ?? '',
          req.device_owner ?? '',
          req['binding:host_id'] ?? '',
          req['binding:vnic_type'] ?? 'normal',
          JSON.stringify(req['binding:profile'] ?? {}),
          at,
          at,
        ],
      );
      await allocateFixedIps(tx, req.network_id, id, req.fixed_ips);
    });
  } catch (e) {
    throw raced(e, req.network_id, mac);
  }
  const created = await getPort(db, id);
  if (!created) throw portNotFound(id);
  return created;
}

export async function updatePort(
  db: Db,
  id: string,
  changes: PortUpdate,
  now: Date,
): Promise<Port> {
  let networkId = '';
  let mac: string | undefined;
  try {
    await db.transaction(async (tx) => {
      const current = await getPort(tx, id);
      if (!current) throw portNotFound(id);
      networkId = current.network_id;
      const sets: string[] = [];
      const params: Param[] = [];
      const set = (column: string, value: Param | undefined) => {
        if (value === undefined) return;
        sets.push(`${column} = ?`);
        params.push(value);
      };
      if (changes.mac_address !== undefined) {
        const wanted = normaliseMac(changes.mac_address);
        if (wanted !== current.mac_address) {
          if (current['binding:host_id'] !== '')
            throw new ApiError(
              'PortBound',
              `Unable to complete operation on port ${id}, port is already bound, port type: ovs, old_mac ${current.mac_address}, new_mac ${wanted}.`,
            );
          if (await macTaken(tx, current.network_id, wanted))
            throw macInUse(current.network_id, wanted);
          mac = wanted;
          set('mac_address', wanted);
        }
      }
      const host = changes['binding:host_id'];
      if (host !== undefined && host !== current['binding:host_id']) {
        set('host_id', host);
        set('status', 'DOWN');
      }
      set('name', changes.name);
      set('description', changes.description);
      set('admin_state_up', changes.admin_state_up);
      set('device_id', changes.device_id);
      set('device_owner', changes.device_owner);
      set('vnic_type', changes['binding:vnic_type']);
      if (changes['binding:profile'] !== undefined)
        set('profile', JSON.stringify(changes['binding:profile']));
      if (changes.fixed_ips !== undefined) {
        // An entry naming only a subnet keeps the address the port already has there.
        const kept = [...current.fixed_ips];
        const requests = changes.fixed_ips.map((r) => {
          if (r.ip_address !== undefined || r.subnet_id === undefined) return r;
          const i = kept.findIndex((k) => k.subnet_id === r.subnet_id);
          if (i < 0) return r;
          const [k] = kept.splice(i, 1);
          return { subnet_id: r.subnet_id, ip_address: k?.ip_address };
        });
        await tx.query('DELETE FROM ipallocations WHERE port_id = ?', [id]);
        await allocateFixedIps(tx, current.network_id, id, requests);
        sets.push('status = status');
      }
      if (sets.length === 0) return;
      await tx.query(
        `UPDATE ports SET ${sets.join(', ')}, revision_number = revision_number + 1, updated_at = ? WHERE id = ?`,
        [...params, resourceTime(now), id],
      );
    });
  } catch (e) {
    throw raced(e, networkId, mac);
  }
  const after = await getPort(db, id);
  if (!after) throw portNotFound(id);
  return after;
}

export async function deletePort(db: Db, id: string): Promise<void> {
  const rows = await db.transaction(async (tx) => {
    await tx.query('DELETE FROM ipallocations WHERE port_id = ?', [id]);
    return tx.query('DELETE FROM ports WHERE id = ? RETURNING id', [id]);
  });
  if (rows.length === 0) throw portNotFound(id);
}

/**
 * The L2 agent's report: sets a port's status (ACTIVE once wired, DOWN otherwise) and
 * bumps its revision when the status changed. False when the port does not exist.
 */
export async function setPortStatus(
  db: Queryable,
  id: string,
  status: PortStatus,
  now: Date = new Date(),
): Promise<boolean> {
  const rows = await db.query<{ status: string }>(
    `UPDATE ports SET status = ?,
        revision_number = revision_number + CASE WHEN status = ? THEN 0 ELSE 1 END,
        updated_at = CASE WHEN status = ? THEN updated_at ELSE ? END
      WHERE id = ? RETURNING status`,
    [status, status, status, resourceTime(now), id],
  );
  return rows.length > 0;
}
