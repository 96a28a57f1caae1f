/**
 * Network rows and their segments (provider attributes).
 *
 * Invariants: a segment — (type, physical network, segmentation id) — belongs to at most
 * one network, enforced by the network_segments primary key, so concurrent creates on
 * either engine never share a VNI/GRE key or a flat physical network; a free id is the
 * lowest one in the configured ranges, so a deleted network's id is reused. Every change
 * bumps revision_number.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import {
  DEFAULT_PROJECT_ID,
  DHCP_OWNER,
  ENCAP_OVERHEAD,
  MAX_SEGMENTATION_ID,
  type Network,
  type NetworkCreate,
  type NetworkType,
  type NetworkUpdate,
  type TunnelType,
} from '../../contracts/network.ts';
import type { Db, Param, Queryable, Row } from './index.ts';
import {
  bool,
  type ColumnFilter,
  numOrNull,
  resourceTime,
  STANDARD_FILTERS,
  standardAttributes,
  whereSql,
} from './neutron.ts';

export interface NetworkSettings {
  /** The type a network gets when the request names none (the first entry). */
  tenantNetworkTypes: readonly TunnelType[];
  vniRanges: readonly (readonly [number, number])[];
  greIdRanges: readonly (readonly [number, number])[];
  /** Physical networks flat networks may use; `*` allows any. */
  flatNetworks: readonly string[];
  globalPhysnetMtu: number;
}

export const DEFAULT_NETWORK_SETTINGS: NetworkSettings = {
  tenantNetworkTypes: ['vxlan'],
  vniRanges: [[1, 65535]],
  greIdRanges: [[1, 65535]],
  flatNetworks: ['*'],
  globalPhysnetMtu: 1500,
};

export const maxMtu = (s: NetworkSettings, type: NetworkType) =>
  s.globalPhysnetMtu - ENCAP_OVERHEAD[type];

const rangesOf = (s: NetworkSettings, type: TunnelType) =>
  type === 'vxlan' ? s.vniRanges : s.greIdRanges;

interface NetworkRow extends Row {
  id: string;
  project_id: string;
  name: string;
  description: string;
  admin_state_up: unknown;
  shared: unknown;
  external: unknown;
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
  mtu: { column: 'mtu', type: 'int' },
  'provider:network_type': { column: 'network_type', type: 'text' },
  'provider:physical_network': { column: 'physical_network', type: 'text' },
  'provider:segmentation_id': { column: 'segmentation_id', type: 'int' },
} as const;

async function subnetIds(db: Queryable, networkIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(networkIds.map((id) => [id, []]));
  if (networkIds.length === 0) return out;
  for (let i = 0; i < networkIds.length; i += 500) {
    const chunk = networkIds.slice(i, i + 500);
    const rows = await db.query<{ id: string; network_id: string }>(
      `SELECT id, network_id FROM subnets WHERE network_id IN (${chunk.map(() => '?').join(', ')}) ORDER BY created_at, id`,
      chunk,
    );
    for (const r of rows) out.get(r.network_id)?.push(r.id);
  }
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

/** The lowest id in [lo, hi] that no network of this tunnel type holds. */
async function lowestFreeSegment(
  tx: Queryable,
  type: TunnelType,
  lo: number,
  hi: number,
): Promise<number | undefined> {
  const [row] = await tx.query<{ id: unknown }>(
    `SELECT c.id FROM (
       SELECT CAST(? AS BIGINT) AS id
       UNION ALL
       SELECT segmentation_id + 1 FROM network_segments
        WHERE network_type = ? AND physical_network = '' AND segmentation_id >= ? AND segmentation_id < ?
     ) c
     WHERE NOT EXISTS (SELECT 1 FROM network_segments s
        WHERE s.network_type = ? AND s.physical_network = '' AND s.segmentation_id = c.id)
     ORDER BY c.id LIMIT 1`,
    [lo, type, lo, hi, type],
  );
  return row ? Number(row.id) : undefined;
}

async function claimSegment(
  tx: Queryable,
  networkId: string,
  type: NetworkType,
  physnet: string,
  segmentationId: number,
): Promise<boolean> {
  const rows = await tx.query(
    `INSERT INTO network_segments (network_type, physical_network, segmentation_id, network_id)
     VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING network_id`,
    [type, physnet, segmentationId, networkId],
  );
  return rows.length > 0;
}

/** Validates the provider attributes and claims a segment for the (already inserted) network. */
async function allocateSegment(
  tx: Queryable,
  networkId: string,
  type: NetworkType,
  req: NetworkCreate,
  s: NetworkSettings,
): Promise<{ physnet: string | null; segmentationId: number | null }> {
  const physnet = req['provider:physical_network'] ?? null;
  const requested = req['provider:segmentation_id'] ?? null;
  if (type === 'flat') {
    if (physnet === null)
      throw new ApiError(
        'InvalidInput',
        'Invalid input for operation: provider:physical_network required for flat provider network.',
      );
    if (requested !== null)
      throw new ApiError(
        'InvalidInput',
        'Invalid input for operation: provider:segmentation_id specified for flat provider network.',
      );
    if (!s.flatNetworks.includes('*') && !s.flatNetworks.includes(physnet))
      throw new ApiError(
        'InvalidInput',
        `Invalid input for operation: physical_network '${physnet}' unknown for flat provider network.`,
      );
    if (!(await claimSegment(tx, networkId, 'flat', physnet, 0)))
      throw new ApiError(
        'FlatNetworkInUse',
        `Unable to create the flat network. Physical network ${physnet} is in use.`,
      );
    return { physnet, segmentationId: null };
  }
  if (physnet !== null)
    throw new ApiError(
      'InvalidInput',
      `Invalid input for operation: provider:physical_network specified for ${type} network.`,
    );
  const ranges = rangesOf(s, type);
  if (requested !== null) {
    if (requested < 1 || requested > MAX_SEGMENTATION_ID[type])
      throw new ApiError(
        'InvalidInput',
        `Invalid input for operation: ${type} segmentation_id ${requested} out of range (1 through ${MAX_SEGMENTATION_ID[type]}).`,
      );
    if (!ranges.some(([lo, hi]) => requested >= lo && requested <= hi))
      throw new ApiError(
        'InvalidInput',
        `Invalid input for operation: provider:segmentation_id ${requested} is outside the configured ${type} ranges (${ranges.map(([lo, hi]) => `${lo}:${hi}`).join(', ')}).`,
      );
    if (!(await claimSegment(tx, networkId, type, '', requested)))
      throw new ApiError(
        'TunnelIdInUse',
        `Unable to create the network. The tunnel ID ${requested} is in use.`,
      );
    return { physnet: null, segmentationId: requested };
  }
  for (const [lo, hi] of ranges) {
    // A concurrent create may take the candidate between the read and the insert; the
    // insert then does nothing (PostgreSQL waits for the other transaction) and we retry.
    for (let attempt = 0; attempt < 100; attempt++) {
      const candidate = await lowestFreeSegment(tx, type, lo, hi);
      if (candidate === undefined) break;
      if (await claimSegment(tx, networkId, type, '', candidate))
        return { physnet: null, segmentationId: candidate };
    }
  }
  throw new ApiError(
    'NoNetworkAvailable',
    `Unable to create the network. No ${type} segmentation id is available for allocation.`,
  );
}

export async function createNetwork(
  db: Db,
  req: NetworkCreate,
  s: NetworkSettings,
  now: Date,
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
  await db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO networks (id, project_id, name, description, admin_state_up, shared, external,
         status, mtu, network_type, physical_network, segmentation_id, revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?, NULL, NULL, 1, ?, ?)`,
      [
        id,
        req.project_id ?? req.tenant_id ?? DEFAULT_PROJECT_ID,
        req.name ?? '',
        req.description ?? '',
        req.admin_state_up ?? true,
        req.shared ?? false,
        req['router:external'] ?? false,
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
    const sets: string[] = [];
    const params: Param[] = [];
    const set = (column: string, value: Param | undefined) => {
      if (value === undefined) return;
      sets.push(`${column} = ?`);
      params.push(value);
    };
    set('name', changes.name);
    set('description', changes.description);
    set('admin_state_up', changes.admin_state_up);
    set('shared', changes.shared);
    set('external', changes['router:external']);
    set('mtu', changes.mtu);
    if (sets.length === 0) return;
    await tx.query(
      `UPDATE networks SET ${sets.join(', ')}, revision_number = revision_number + 1, updated_at = ? WHERE id = ?`,
      [...params, resourceTime(now), id],
    );
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
  });
}
