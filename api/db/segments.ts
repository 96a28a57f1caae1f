/**
 * Network segments (Neutron's provider attributes): the [ml2] settings that bound them,
 * and the network_segments table that hands them out.
 *
 * Invariants: a segment — (type, physical network, segmentation id) — belongs to at most
 * one network, enforced by the network_segments primary key, so concurrent creates on
 * either engine never share a VNI/GRE key, a (physical network, VLAN id) or a flat
 * physical network; a free id is the lowest one in the configured ranges, so a deleted
 * network's id is reused.
 */
import { ApiError } from '../../contracts/errors.ts';
import {
  ENCAP_OVERHEAD,
  MAX_SEGMENTATION_ID,
  type NetworkCreate,
  type NetworkType,
  type TunnelType,
} from '../../contracts/network.ts';
import type { Queryable } from './index.ts';

export interface NetworkSettings {
  /** The type a network gets when the request names none (the first entry). */
  tenantNetworkTypes: readonly TunnelType[];
  vniRanges: readonly (readonly [number, number])[];
  greIdRanges: readonly (readonly [number, number])[];
  /** Physical networks flat networks may use; `*` allows any. */
  flatNetworks: readonly string[];
  globalPhysnetMtu: number;
  /** [ml2] network_vlan_ranges: physical networks VLAN networks may use; absent: none. */
  vlanRanges?: readonly VlanRange[];
}

export interface VlanRange {
  physnet: string;
  /** The ids handed out when a request names none; null: the admin names each one. */
  range: readonly [number, number] | null;
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

export interface Segment {
  physnet: string | null;
  segmentationId: number | null;
}

const invalid = (why: string) =>
  new ApiError('InvalidInput', `Invalid input for operation: ${why}`);

/** The lowest id in [lo, hi] that no network of this type on `physnet` holds. */
async function lowestFreeSegment(
  tx: Queryable,
  type: NetworkType,
  physnet: string,
  lo: number,
  hi: number,
): Promise<number | undefined> {
  const [row] = await tx.query<{ id: unknown }>(
    `SELECT c.id FROM (
       SELECT CAST(? AS BIGINT) AS id
       UNION ALL
       SELECT segmentation_id + 1 FROM network_segments
        WHERE network_type = ? AND physical_network = ? AND segmentation_id >= ? AND segmentation_id < ?
     ) c
     WHERE NOT EXISTS (SELECT 1 FROM network_segments s
        WHERE s.network_type = ? AND s.physical_network = ? AND s.segmentation_id = c.id)
     ORDER BY c.id LIMIT 1`,
    [lo, type, physnet, lo, hi, type, physnet],
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

/** A flat network: a permitted physical network nobody else has, no segmentation id. */
async function flatSegment(
  tx: Queryable,
  networkId: string,
  req: NetworkCreate,
  s: NetworkSettings,
): Promise<Segment> {
  const physnet = req['provider:physical_network'] ?? null;
  if (physnet === null)
    throw invalid('provider:physical_network required for flat provider network.');
  if ((req['provider:segmentation_id'] ?? null) !== null)
    throw invalid('provider:segmentation_id specified for flat provider network.');
  if (!s.flatNetworks.includes('*') && !s.flatNetworks.includes(physnet))
    throw invalid(`physical_network '${physnet}' unknown for flat provider network.`);
  if (!(await claimSegment(tx, networkId, 'flat', physnet, 0)))
    throw new ApiError(
      'FlatNetworkInUse',
      `Unable to create the flat network. Physical network ${physnet} is in use.`,
    );
  return { physnet, segmentationId: null };
}

/** A tunnel id the request names: in range, configured, and free. */
async function requestedTunnel(
  tx: Queryable,
  networkId: string,
  type: TunnelType,
  requested: number,
  s: NetworkSettings,
): Promise<Segment> {
  const ranges = rangesOf(s, type);
  if (requested < 1 || requested > MAX_SEGMENTATION_ID[type])
    throw invalid(
      `${type} segmentation_id ${requested} out of range (1 through ${MAX_SEGMENTATION_ID[type]}).`,
    );
  if (!ranges.some(([lo, hi]) => requested >= lo && requested <= hi))
    throw invalid(
      `provider:segmentation_id ${requested} is outside the configured ${type} ranges (${ranges.map(([lo, hi]) => `${lo}:${hi}`).join(', ')}).`,
    );
  if (!(await claimSegment(tx, networkId, type, '', requested)))
    throw new ApiError(
      'TunnelIdInUse',
      `Unable to create the network. The tunnel ID ${requested} is in use.`,
    );
  return { physnet: null, segmentationId: requested };
}

/** The lowest free tunnel id of the configured ranges. */
async function freeTunnel(
  tx: Queryable,
  networkId: string,
  type: TunnelType,
  s: NetworkSettings,
): Promise<Segment> {
  for (const [lo, hi] of rangesOf(s, type)) {
    // A concurrent create may take the candidate between the read and the insert; the
    // insert then does nothing (PostgreSQL waits for the other transaction) and we retry.
    for (let attempt = 0; attempt < 100; attempt++) {
      const candidate = await lowestFreeSegment(tx, type, '', lo, hi);
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

const MAX_VLAN_TAG = 4094;

/** Physical networks in [ml2] network_vlan_ranges, each with its allocation ranges. */
function vlanPhysnets(s: NetworkSettings): Map<string, (readonly [number, number])[]> {
  const out = new Map<string, (readonly [number, number])[]>();
  for (const { physnet, range } of s.vlanRanges ?? []) {
    const ranges = out.get(physnet) ?? [];
    if (range) ranges.push(range);
    out.set(physnet, ranges);
  }
  return out;
}

/** The lowest free VLAN id of the physical networks' ranges, in configuration order. */
async function freeVlan(
  tx: Queryable,
  networkId: string,
  physnets: [string, (readonly [number, number])[]][],
): Promise<Segment> {
  for (const [physnet, ranges] of physnets)
    for (const [lo, hi] of ranges)
      for (let attempt = 0; attempt < 100; attempt++) {
        const candidate = await lowestFreeSegment(tx, 'vlan', physnet, lo, hi);
        if (candidate === undefined) break;
        if (await claimSegment(tx, networkId, 'vlan', physnet, candidate))
          return { physnet, segmentationId: candidate };
      }
  throw new ApiError(
    'NoNetworkAvailable',
    'Unable to create the network. No tenant network is available for allocation.',
  );
}

/**
 * A VLAN network, by Neutron's ml2 vlan type driver: the physical network must be listed
 * in network_vlan_ranges; a requested id (1-4094, any, not only the ranges') needs the
 * physical network and is used once per physical network; without one, the lowest free
 * id of the ranges (of the named physical network, or of all of them) is taken.
 */
async function vlanSegment(
  tx: Queryable,
  networkId: string,
  req: NetworkCreate,
  s: NetworkSettings,
): Promise<Segment> {
  const physnet = req['provider:physical_network'] ?? null;
  const requested = req['provider:segmentation_id'] ?? null;
  const physnets = vlanPhysnets(s);
  if (physnet !== null) {
    const ranges = physnets.get(physnet);
    if (!ranges) throw invalid(`physical_network '${physnet}' unknown for VLAN provider network.`);
    if (requested === null) return freeVlan(tx, networkId, [[physnet, ranges]]);
    if (requested < 1 || requested > MAX_VLAN_TAG)
      throw invalid(`segmentation_id out of range (1 through ${MAX_VLAN_TAG}).`);
    if (!(await claimSegment(tx, networkId, 'vlan', physnet, requested)))
      throw new ApiError(
        'VlanIdInUse',
        `Unable to create the network. The VLAN ${requested} on physical network ${physnet} is in use.`,
      );
    return { physnet, segmentationId: requested };
  }
  if (requested !== null)
    throw invalid('segmentation_id requires physical_network for VLAN provider network.');
  return freeVlan(tx, networkId, [...physnets]);
}

/** Validates the provider attributes and claims a segment for the (already inserted) network. */
export async function allocateSegment(
  tx: Queryable,
  networkId: string,
  type: NetworkType,
  req: NetworkCreate,
  s: NetworkSettings,
): Promise<Segment> {
  if (type === 'flat') return flatSegment(tx, networkId, req, s);
  if (type === 'vlan') return vlanSegment(tx, networkId, req, s);
  if ((req['provider:physical_network'] ?? null) !== null)
    throw invalid(`provider:physical_network specified for ${type} network.`);
  const requested = req['provider:segmentation_id'] ?? null;
  return requested === null
    ? freeTunnel(tx, networkId, type, s)
    : requestedTunnel(tx, networkId, type, requested, s);
}
