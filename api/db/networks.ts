/**
 * Network rows: list, read, create (with a segment from segments.ts), update, delete.
 *
 * Invariants: every change bumps revision_number; provider attributes never change after
 * create; a network with ports other than DHCP ports is never deleted.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import {
  DEFAULT_PROJECT_ID,
  DHCP_OWNER,
  IPV6_MIN_MTU,
  type Network,
  type NetworkCreate,
  type NetworkType,
  type NetworkUpdate,
  ROUTER_GATEWAY_OWNER,
} from '../../contracts/network.ts';
import { checkIpv6Mtu } from '../subnet-rules.ts';
import { forgetResourceStatuses } from './agent-status.ts';
import { queryIn } from './chunks.ts';
import type { Db, Queryable, Row } from './index.ts';
import {
  bool,
  type ColumnFilter,
  columnUpdates,
  guardQuota,
  numOrNull,
  type QuotaGuard,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
  writeUpdates,
} from './neutron.ts';
import { allocateSegment, maxMtu, type NetworkSettings } from './segments.ts';

interface NetworkRow extends Row {
  id: string;
  project_id: string;
  name: string;
  description: string;
  admin_state_up: unknown;
  shared: unknown;
  external: unknown;
  port_security_enabled: unknown;
  status: string;
  mtu: unknown;
  network_type: string;
  physical_network: string | null;
  segmentation_id: unknown;
  revision_number: unknown;
  created_at: string;
  updated_at: string;
}

function toNetwork(row: NetworkRow, subnets: string[]): Network {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    admin_state_up: bool(row.admin_state_up),
    shared: bool(row.shared),
    status: 'ACTIVE',
    subnets,
    mtu: Number(row.mtu),
    'provider:network_type': row.network_type as NetworkType,
    'provider:physical_network': row.physical_network,
    'provider:segmentation_id': numOrNull(row.segmentation_id),
    'router:external': bool(row.external),
    port_security_enabled: bool(row.port_security_enabled),
    availability_zone_hints: [],
    availability_zones: [],
    ipv4_address_scope: null,
    ipv6_address_scope: null,
    l2_adjacency: true,
    ...standardAttributes(row),
  };
}

/** Filterable attribute → column, with the parser for its query-string values. */
export const NETWORK_FILTERS = {
  ...STANDARD_FILTERS,
  status: { column: 'status', type: 'text' },
  shared: { column: 'shared', type: 'bool' },
  admin_state_up: { column: 'admin_state_up', type: 'bool' },
  'router:external': { column: 'external', type: 'bool' },
  port_security_enabled: { column: 'port_security_enabled', type: 'bool' },
  mtu: { column: 'mtu', type: 'int' },
  'provider:network_type': { column: 'network_type', type: 'text' },
  'provider:physical_network': { column: 'physical_network', type: 'text' },
  'provider:segmentation_id': { column: 'segmentation_id', type: 'int' },
} as const;

async function subnetIds(db: Queryable, networkIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(networkIds.map((id) => [id, []]));
  const rows = await queryIn<{ id: string; network_id: string }>(
    db,
    networkIds,
    (ids) =>
      `SELECT id, network_id FROM subnets WHERE network_id IN ${ids} ORDER BY created_at, id`,
  );
  for (const r of rows) out.get(r.network_id)?.push(r.id);
  return out;
}

export async function listNetworks(db: Queryable, filter: ColumnFilter): Promise<Network[]> {
  const where = whereSql(filter);
  const rows = await db.query<NetworkRow>(
    `SELECT * FROM networks${where.sql} ORDER BY created_at, id`,
    where.params,
  );
  const subnets = await subnetIds(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((r) => toNetwork(r, subnets.get(r.id) ?? []));
}

export async function getNetwork(db: Queryable, id: string): Promise<Network | undefined> {
  const [row] = await db.query<NetworkRow>('SELECT * FROM networks WHERE id = ?', [id]);
  if (!row) return undefined;
  return toNetwork(row, (await subnetIds(db, [id])).get(id) ?? []);
}

export function networkNotFound(id: string): ApiError {
  return new ApiError('NetworkNotFound', `Network ${id} could not be found.`);
}

/** network id → MTU, for the networks of `ids` that exist. */
export async function networkMtus(db: Queryable, ids: readonly string[]) {
  const rows = await queryIn<{ id: string; mtu: unknown }>(
    db,
    [...new Set(ids)],
    (list) => `SELECT id, mtu FROM networks WHERE id IN ${list}`,
  );
  return new Map(rows.map((n) => [n.id, Number(n.mtu)]));
}

/** The owner of a network (which a subnet or port on it inherits); undefined if none. */
export async function networkOwner(db: Queryable, id: string): Promise<string | undefined> {
  const [row] = await db.query<{ project_id: string }>(
    'SELECT project_id FROM networks WHERE id = ?',
    [id],
  );
  return row?.project_id;
}

/** Networks `projectId` may see (Neutron's get_network): its own, shared and external ones. */
export function visibleNetworks(projectId: string): ColumnFilter['clauses'][number] {
  return { sql: '(project_id = ? OR shared = ? OR external = ?)', params: [projectId, true, true] };
}

export async function createNetwork(
  db: Db,
  req: NetworkCreate,
  s: NetworkSettings,
  now: Date,
  quota?: QuotaGuard,
): Promise<Network> {
  const type: NetworkType = req['provider:network_type'] ?? s.tenantNetworkTypes[0] ?? 'vxlan';
  const max = maxMtu(s, type);
  if (req.mtu !== undefined && req.mtu > max)
    throw new ApiError(
      'InvalidInput',
      `Invalid input for operation: Requested MTU is too big, maximum is ${max}.`,
    );
  if (req.project_id && req.tenant_id && req.project_id !== req.tenant_id)
    throw new ApiError(
      'InvalidInput',
      'Invalid input for operation: project_id and tenant_id differ.',
    );
  const id = randomUUID();
  const at = resourceTime(now);
  const owner = req.project_id ?? req.tenant_id ?? DEFAULT_PROJECT_ID;
  await db.transaction(async (tx) => {
    await guardQuota(tx, quota, owner, 'network');
    await tx.query(
      `INSERT INTO networks (id, project_id, name, description, admin_state_up, shared, external,
         port_security_enabled, status, mtu, network_type, physical_network, segmentation_id,
         revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?, NULL, NULL, 1, ?, ?)`,
      [
        id,
        owner,
        req.name ?? '',
        req.description ?? '',
        req.admin_state_up ?? true,
        req.shared ?? false,
        req['router:external'] ?? false,
        req.port_security_enabled ?? true,
        req.mtu ?? max,
        type,
        at,
        at,
      ],
    );
    const seg = await allocateSegment(tx, id, type, req, s);
    await tx.query('UPDATE networks SET physical_network = ?, segmentation_id = ? WHERE id = ?', [
      seg.physnet,
      seg.segmentationId,
      id,
    ]);
  });
  const created = await getNetwork(db, id);
  if (!created) throw networkNotFound(id);
  return created;
}

/**
 * An MTU under 1280 is refused while the network has an IPv6 subnet. Checked after the
 * network row is updated (so locked): a subnet created meanwhile waits for this update
 * and then sees its MTU.
 */
async function checkMtuForIpv6(tx: Queryable, id: string, mtu: number) {
  if (mtu >= IPV6_MIN_MTU) return;
  const v6 = await tx.query('SELECT id FROM subnets WHERE network_id = ? AND ip_version = 6', [id]);
  if (v6.length) checkIpv6Mtu(6, mtu);
}

/**
 * Neutron's _process_l3_update: a network routers have their gateway on stays external
 * (ExternalNetworkInUse). Checked after the network row is updated (so locked): a gateway
 * being added meanwhile locks that row too (router-gateway.ts) and one of the two waits.
 */
async function refuseGatewaysOn(tx: Queryable, id: string) {
  const [gw] = await tx.query('SELECT id FROM ports WHERE network_id = ? AND device_owner = ?', [
    id,
    ROUTER_GATEWAY_OWNER,
  ]);
  if (gw)
    throw new ApiError(
      'ExternalNetworkInUse',
      `External network ${id} cannot be updated to be made non-external, since it has existing gateway ports.`,
    );
}

export async function updateNetwork(
  db: Db,
  id: string,
  changes: NetworkUpdate,
  s: NetworkSettings,
  now: Date,
): Promise<Network> {
  await db.transaction(async (tx) => {
    const [row] = await tx.query<NetworkRow>('SELECT * FROM networks WHERE id = ?', [id]);
    if (!row) throw networkNotFound(id);
    const current = toNetwork(row, []);
    const provider = (
      ['provider:network_type', 'provider:physical_network', 'provider:segmentation_id'] as const
    ).filter((k) => changes[k] !== undefined && changes[k] !== current[k]);
    if (provider.length)
      throw new ApiError(
        'InvalidInput',
        `Invalid input for operation: Plugin does not support updating the following provider network attributes: ${provider.join(', ')}.`,
      );
    const max = maxMtu(s, current['provider:network_type']);
    if (changes.mtu !== undefined && changes.mtu > max)
      throw new ApiError(
        'InvalidInput',
        `Invalid input for operation: Requested MTU is too big, maximum is ${max}.`,
      );
    const u = columnUpdates();
    u.set('name', changes.name);
    u.set('description', changes.description);
    u.set('admin_state_up', changes.admin_state_up);
    u.set('shared', changes.shared);
    u.set('external', changes['router:external']);
    u.set('port_security_enabled', changes.port_security_enabled);
    u.set('mtu', changes.mtu);
    await writeUpdates(tx, 'networks', id, u, now);
    if (changes.mtu !== undefined) await checkMtuForIpv6(tx, id, changes.mtu);
    if (changes['router:external'] === false) await refuseGatewaysOn(tx, id);
  });
  const after = await getNetwork(db, id);
  if (!after) throw networkNotFound(id);
  return after;
}

/**
 * Deletes a network with its subnets and DHCP ports. Any other port keeps it alive:
 * NetworkInUse (409) and nothing changes.
 */
export async function deleteNetwork(db: Db, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.query('SELECT id FROM networks WHERE id = ?', [id]);
    if (!row) throw networkNotFound(id);
    const [busy] = await tx.query(
      'SELECT id FROM ports WHERE network_id = ? AND device_owner <> ? LIMIT 1',
      [id, DHCP_OWNER],
    );
    if (busy)
      throw new ApiError(
        'NetworkInUse',
        `Unable to complete operation on network ${id}. There are one or more ports still in use on the network.`,
      );
    await tx.query('DELETE FROM ports WHERE network_id = ?', [id]);
    await tx.query('DELETE FROM ipallocations WHERE network_id = ?', [id]);
    await tx.query('DELETE FROM subnets WHERE network_id = ?', [id]);
    await tx.query('DELETE FROM networks WHERE id = ?', [id]);
    await forgetResourceStatuses(tx, 'network', id);
  });
}
