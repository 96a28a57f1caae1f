/**
 * Port rows: list, read, create, update, delete, and the L2 agent's status; a port's MAC
 * and fixed IPs are chosen by port-ipam.ts inside the same transaction.
 *
 * Invariants: a refused create or update changes nothing (MAC, addresses and row are one
 * transaction, and a constraint race maps to Neutron's error); a MAC changes only while
 * the port is unbound; a binding change resets the status to DOWN; deleting a port frees
 * its addresses and MAC and disassociates its floating IPs; only a router interface port
 * holds a subnet's gateway address. Every change bumps revision_number.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import type {
  AddressPair,
  FixedIp,
  FixedIpRequest,
  Port,
  PortCreate,
  PortStatus,
  PortUpdate,
} from '../../contracts/network.ts';
import { formatIp, parseIp } from '../ipam.ts';
import { queryIn } from './chunks.ts';
import {
  disassociatePort,
  refuseFixedIpChangeForFip,
  refuseFloatingPortDelete,
} from './floatingips.ts';
import type { Db, Queryable, Row } from './index.ts';
import { networkNotFound } from './networks.ts';
import {
  bool,
  type ColumnFilter,
  columnUpdates,
  constraintKind,
  guardQuota,
  type QuotaGuard,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
  writeUpdates,
} from './neutron.ts';
import {
  allocateFixedIps,
  chooseMac,
  macInUse,
  macTaken,
  normaliseMac,
  refuseGatewayHolder,
} from './port-ipam.ts';
import {
  networkDefaults,
  portSecurityOf,
  portSecurityOnCreate,
  portSecurityOnUpdate,
  writeGroups,
  writePairs,
  writePortSecurity,
} from './port-security.ts';

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
  port_security_enabled: unknown;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

type Firewall = { groups: string[]; pairs: AddressPair[] };

function toPort(row: PortRow, fixedIps: FixedIp[], fw: Firewall | undefined): Port {
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
    port_security_enabled: bool(row.port_security_enabled),
    security_groups: fw?.groups ?? [],
    allowed_address_pairs: fw?.pairs ?? [],
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
  port_security_enabled: { column: 'port_security_enabled', type: 'bool' },
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
  const rows = await queryIn<{ port_id: string; subnet_id: string; ip_address: string }>(
    db,
    portIds,
    (ids) => `SELECT a.port_id, a.subnet_id, a.ip_address FROM ipallocations a
         JOIN subnets s ON s.id = a.subnet_id
        WHERE a.port_id IN ${ids}
        ORDER BY s.created_at, s.id, a.ip_address`,
  );
  for (const r of rows)
    out.get(r.port_id)?.push({ subnet_id: r.subnet_id, ip_address: r.ip_address });
  return out;
}

export async function listPorts(db: Queryable, filter: ColumnFilter): Promise<Port[]> {
  const where = whereSql(filter);
  const rows = await db.query<PortRow>(
    `SELECT * FROM ports${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  const ids = rows.map((r) => r.id);
  const ips = await fixedIpsOf(db, ids);
  const fw = await portSecurityOf(db, ids);
  return rows.map((r) => toPort(r, ips.get(r.id) ?? [], fw.get(r.id)));
}

export async function getPort(db: Queryable, id: string): Promise<Port | undefined> {
  const [row] = await db.query<PortRow>('SELECT * FROM ports WHERE id = ?', [id]);
  if (!row) return undefined;
  const fw = (await portSecurityOf(db, [id])).get(id);
  return toPort(row, (await fixedIpsOf(db, [id])).get(id) ?? [], fw);
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

/** Ports `projectId` may see (Neutron's get_port): its own, and those on its networks. */
export function visiblePorts(projectId: string): ColumnFilter['clauses'][number] {
  return {
    sql: '(project_id = ? OR network_id IN (SELECT id FROM networks WHERE project_id = ?))',
    params: [projectId, projectId],
  };
}

/**
 * Writes a new port owned by `req.project_id` (else the network's owner: DHCP ports, made
 * by the API itself, count against the network owner's quota but are never refused by
 * it) inside `tx`, the caller's transaction; returns its id. Router ports are made this
 * way within the router's own transaction.
 */
export async function insertPort(
  tx: Queryable,
  req: PortCreate,
  now: Date,
  quota?: QuotaGuard,
  anyGroup = false,
): Promise<string> {
  const id = randomUUID();
  const at = resourceTime(now);
  const net = await networkDefaults(tx, req.network_id);
  if (net === undefined) throw networkNotFound(req.network_id);
  const owner = req.project_id ?? req.tenant_id ?? net.owner;
  const fw = await portSecurityOnCreate(
    tx,
    req,
    {
      projectId: owner,
      deviceOwner: req.device_owner ?? '',
      networkPortSecurity: net.portSecurity,
      groupScope: anyGroup ? undefined : owner,
    },
    now,
  );
  await guardQuota(tx, quota, owner, 'port');
  const mac = await chooseMac(tx, req.network_id, req.mac_address);
  try {
    await tx.query(
      `INSERT INTO ports (id, network_id, project_id, name, description, mac_address,
         admin_state_up, status, device_id, device_owner, host_id, vnic_type, profile,
         port_security_enabled, revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'DOWN', ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
      [
        id,
        req.network_id,
        owner,
        req.name ?? '',
        req.description ?? '',
        mac,
        req.admin_state_up ?? true,
        req.device_id ?? '',
        req.device_owner ?? '',
        req['binding:host_id'] ?? '',
        req['binding:vnic_type'] ?? 'normal',
        JSON.stringify(req['binding:profile'] ?? {}),
        fw.enabled,
        at,
        at,
      ],
    );
    await writeGroups(tx, id, fw.groups);
    await writePairs(tx, id, fw.pairs, mac);
    await allocateFixedIps(tx, req.network_id, id, req.fixed_ips);
    await refuseGatewayHolder(tx, id, req.device_owner ?? '');
  } catch (e) {
    throw raced(e, req.network_id, mac);
  }
  return id;
}

/** Creates a port in a transaction of its own (insertPort). */
export async function createPort(
  db: Db,
  req: PortCreate,
  now: Date,
  quota?: QuotaGuard,
  anyGroup = false,
): Promise<Port> {
  let id = '';
  try {
    id = await db.transaction((tx) => insertPort(tx, req, now, quota, anyGroup));
  } catch (e) {
    throw raced(e, req.network_id, undefined);
  }
  const created = await getPort(db, id);
  if (!created) throw portNotFound(id);
  return created;
}

/** A MAC change: only while unbound, only to a MAC free on the network. */
async function macUpdate(tx: Queryable, current: Port, raw: string): Promise<string | undefined> {
  const wanted = normaliseMac(raw);
  if (wanted === current.mac_address) return undefined;
  if (current['binding:host_id'] !== '')
    throw new ApiError(
      'PortBound',
      `Unable to complete operation on port ${current.id}, port is already bound, port type: ovs, old_mac ${current.mac_address}, new_mac ${wanted}.`,
    );
  if (await macTaken(tx, current.network_id, wanted)) throw macInUse(current.network_id, wanted);
  return wanted;
}

/** New fixed IPs; an entry naming only a subnet keeps the address the port has there. */
async function reallocate(tx: Queryable, current: Port, wanted: readonly FixedIpRequest[]) {
  const kept = [...current.fixed_ips];
  const requests = wanted.map((r) => {
    if (r.ip_address !== undefined || r.subnet_id === undefined) return r;
    const i = kept.findIndex((k) => k.subnet_id === r.subnet_id);
    if (i < 0) return r;
    const [k] = kept.splice(i, 1);
    return { subnet_id: r.subnet_id, ip_address: k?.ip_address };
  });
  await tx.query('DELETE FROM ipallocations WHERE port_id = ?', [current.id]);
  await allocateFixedIps(tx, current.network_id, current.id, requests);
}

/** The column changes of a port update (addresses reallocated on the way). */
async function portUpdates(tx: Queryable, current: Port, changes: PortUpdate) {
  const u = columnUpdates();
  const mac =
    changes.mac_address === undefined
      ? undefined
      : await macUpdate(tx, current, changes.mac_address);
  u.set('mac_address', mac);
  const host = changes['binding:host_id'];
  if (host !== undefined && host !== current['binding:host_id']) {
    u.set('host_id', host);
    u.set('status', 'DOWN');
  }
  u.set('name', changes.name);
  u.set('description', changes.description);
  u.set('admin_state_up', changes.admin_state_up);
  u.set('device_id', changes.device_id);
  u.set('device_owner', changes.device_owner);
  u.set('vnic_type', changes['binding:vnic_type']);
  if (changes['binding:profile'] !== undefined)
    u.set('profile', JSON.stringify(changes['binding:profile']));
  if (changes.fixed_ips !== undefined) {
    await reallocate(tx, current, changes.fixed_ips);
    u.sets.push('status = status');
  }
  return { u, mac };
}

export async function updatePort(
  db: Db,
  id: string,
  changes: PortUpdate,
  now: Date,
  anyGroup = false,
): Promise<Port> {
  let networkId = '';
  let mac: string | undefined;
  try {
    await db.transaction(async (tx) => {
      const current = await getPort(tx, id);
      if (!current) throw portNotFound(id);
      networkId = current.network_id;
      const fw = await portSecurityOnUpdate(tx, changes, current, anyGroup);
      const result = await portUpdates(tx, current, changes);
      mac = result.mac;
      result.u.set('port_security_enabled', changes.port_security_enabled);
      const rewritten = await writePortSecurity(tx, id, fw, mac ?? current.mac_address);
      if (rewritten && result.u.sets.length === 0) result.u.sets.push('status = status');
      if (changes.fixed_ips !== undefined || changes.device_owner !== undefined)
        await refuseGatewayHolder(tx, id, changes.device_owner ?? current.device_owner);
      if (changes.fixed_ips !== undefined) await refuseFixedIpChangeForFip(tx, id);
      await writeUpdates(tx, 'ports', id, result.u, now);
    });
  } catch (e) {
    throw raced(e, networkId, mac);
  }
  const after = await getPort(db, id);
  if (!after) throw portNotFound(id);
  return after;
}

/** Deletes port `id` and frees its addresses inside `tx`; false when there was none. */
export async function removePort(tx: Queryable, id: string): Promise<boolean> {
  await tx.query('DELETE FROM ipallocations WHERE port_id = ?', [id]);
  const rows = await tx.query('DELETE FROM ports WHERE id = ? RETURNING id', [id]);
  return rows.length > 0;
}

/** A router's own port (router_ports) is refused: the router API removes it (prevent_l3_port_deletion). */
async function refuseRouterPortDelete(tx: Queryable, id: string) {
  const [owned] = await tx.query<{ device_owner: string }>(
    `SELECT p.device_owner FROM router_ports r JOIN ports p ON p.id = r.port_id
      WHERE r.port_id = ?`,
    [id],
  );
  if (owned)
    throw new ApiError(
      'L3PortInUse',
      `Port ${id} has owner ${owned.device_owner} and therefore cannot be deleted directly via the port API.`,
    );
}

/** A VIP's port is refused: the VIP API removes it (neutron-lbaas's prevent_lbaas_port_deletion). */
async function refuseVipPortDelete(tx: Queryable, id: string) {
  const [vip] = await tx.query<{ device_owner: string }>(
    'SELECT p.device_owner FROM lb_vips v JOIN ports p ON p.id = v.port_id WHERE v.port_id = ?',
    [id],
  );
  if (vip)
    throw new ApiError(
      'ServicePortInUse',
      `Port ${id} cannot be deleted directly via the port API: has device owner ${vip.device_owner}`,
    );
}

/**
 * Deletes a port and frees its addresses; its floating IPs are disassociated in the same
 * transaction (a router's, a floating IP's or a VIP's own port is refused). Returns
 * the routers that served those floating IPs, to be told after commit.
 */
export async function deletePort(db: Db, id: string, now: Date = new Date()): Promise<string[]> {
  const { found, routers } = await db.transaction(async (tx) => {
    await refuseRouterPortDelete(tx, id);
    await refuseFloatingPortDelete(tx, id);
    await refuseVipPortDelete(tx, id);
    const routers = await disassociatePort(tx, id, now);
    return { found: await removePort(tx, id), routers };
  });
  if (!found) throw portNotFound(id);
  return routers;
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
