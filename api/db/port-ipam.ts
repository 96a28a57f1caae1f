/**
 * A port's addresses: its MAC (one per network) and its fixed IPs (IPAM), chosen inside
 * the transaction that writes the port.
 *
 * Invariants: one address is held by one port at a time — the ipallocations primary key
 * (subnet_id, ip_address) decides races on both engines: an automatic allocation inserts
 * the lowest free address with ON CONFLICT DO NOTHING and, if another transaction got it
 * first, reads again and takes the next; a requested address that is taken is refused
 * (IpAddressAlreadyAllocated). One MAC per network (UNIQUE(network_id, mac_address)).
 * A subnet's gateway address is held only by a router interface port: automatic allocation
 * never reaches it (it lies outside the pools) and any other port asking for it is refused.
 */
import { randomBytes } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';
import {
  type FixedIpRequest,
  MAC_PREFIX,
  ROUTER_INTERFACE_OWNERS,
  type Subnet,
} from '../../contracts/network.ts';
import { contains, firstFree, formatIp, type Ip, lastAddress, parseIp } from '../ipam.ts';
import { planOf } from '../subnet-rules.ts';
import type { Queryable } from './index.ts';
import { listSubnets } from './subnets.ts';

export const badInput = (field: string, reason: string) =>
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

export async function macTaken(tx: Queryable, networkId: string, mac: string): Promise<boolean> {
  const rows = await tx.query('SELECT id FROM ports WHERE network_id = ? AND mac_address = ?', [
    networkId,
    mac,
  ]);
  return rows.length > 0;
}

export const macInUse = (networkId: string, mac: string) =>
  new ApiError(
    'MacAddressInUse',
    `Unable to complete operation for network ${networkId}. The mac address ${mac} is in use.`,
  );

/** The requested MAC if it is free on the network, else a random free one. */
export async function chooseMac(
  tx: Queryable,
  networkId: string,
  requested?: string,
): Promise<string> {
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

/** Takes the lowest free pool address of `subnet`; undefined when its pools are full. */
async function allocateFromPools(
  tx: Queryable,
  subnet: Subnet,
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

/** No fixed_ips asked for: one address from the first IPv4 and IPv6 subnets with room. */
async function allocateDefault(
  tx: Queryable,
  subnets: Subnet[],
  networkId: string,
  portId: string,
) {
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
}

function namedSubnet(subnets: Subnet[], networkId: string, subnetId: string): Subnet {
  const subnet = subnets.find((s) => s.id === subnetId);
  if (!subnet)
    throw new ApiError(
      'InvalidInput',
      `Invalid input for operation: Failed to create port on network ${networkId}, because fixed_ips included invalid subnet ${subnetId}.`,
    );
  return subnet;
}

function subnetHolding(subnets: Subnet[], ip: Ip, raw: string): Subnet {
  const subnet = subnets.find((s) => contains(planOf(s).cidr, ip));
  if (!subnet)
    throw new ApiError(
      'InvalidIpForNetwork',
      `IP address ${raw} is not a valid IP for any of the subnets on the specified network.`,
    );
  return subnet;
}

/** A requested address: inside its subnet, not its network or broadcast address, free. */
async function allocateRequested(
  tx: Queryable,
  subnet: Subnet,
  portId: string,
  ip: Ip,
  raw: string,
) {
  const { cidr } = planOf(subnet);
  if (
    !contains(cidr, ip) ||
    ip.value === cidr.network ||
    (cidr.version === 4 && ip.value === lastAddress(cidr))
  )
    throw new ApiError(
      'InvalidIpForSubnet',
      `IP address ${raw} is not a valid IP for the specified subnet.`,
    );
  const text = formatIp(ip.version, ip.value);
  if (!(await insertAllocation(tx, subnet.id, text, portId, subnet.network_id)))
    throw new ApiError(
      'IpAddressAlreadyAllocated',
      `IP address ${text} already allocated in subnet ${subnet.id}`,
    );
}

/**
 * Allocates `requests` (Neutron's fixed_ips semantics) for a port, or — when undefined —
 * one address from the first IPv4 subnet with room and one from the first IPv6 subnet.
 */
export async function allocateFixedIps(
  tx: Queryable,
  networkId: string,
  portId: string,
  requests: readonly FixedIpRequest[] | undefined,
): Promise<void> {
  const subnets = await listSubnets(tx, { columns: { network_id: [networkId] }, clauses: [] });
  if (requests === undefined) return allocateDefault(tx, subnets, networkId, portId);
  for (const req of requests) {
    const named =
      req.subnet_id === undefined ? undefined : namedSubnet(subnets, networkId, req.subnet_id);
    if (req.ip_address === undefined) {
      if (!named)
        throw badInput('fixed_ips', 'each entry needs a subnet_id, an ip_address or both');
      if (!(await allocateFromPools(tx, named, portId))) throw exhausted(networkId);
      continue;
    }
    const ip = parseIp(req.ip_address);
    if (!ip) throw badInput('fixed_ips', `'${req.ip_address}' is not a valid IP address`);
    const subnet = named ?? subnetHolding(subnets, ip, req.ip_address);
    await allocateRequested(tx, subnet, portId, ip, req.ip_address);
  }
}

/**
 * Refuses a port that is not a router interface yet holds a subnet's gateway address: the
 * router owns it, and DHCP would hand it to a VM while naming it the router. Run after a
 * port's addresses or device_owner changed, inside the same transaction.
 */
export async function refuseGatewayHolder(
  tx: Queryable,
  portId: string,
  deviceOwner: string,
): Promise<void> {
  if (ROUTER_INTERFACE_OWNERS.includes(deviceOwner)) return;
  const [held] = await tx.query<{ ip_address: string; subnet_id: string }>(
    `SELECT a.ip_address, a.subnet_id FROM ipallocations a JOIN subnets s ON s.id = a.subnet_id
      WHERE a.port_id = ? AND a.ip_address = s.gateway_ip`,
    [portId],
  );
  if (held)
    throw new ApiError(
      'InvalidIpForSubnet',
      `IP address ${held.ip_address} is not a valid IP for the specified subnet: it is the gateway of subnet ${held.subnet_id}, which only a router interface port (device_owner ${ROUTER_INTERFACE_OWNERS.join(', ')}) may hold.`,
    );
}
