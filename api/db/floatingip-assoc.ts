/**
 * Which (port, fixed address, router) a floating IP association resolves to, with
 * Neutron's rules and messages (l3_db's _internal_fip_assoc_data, get_router_for_floatingip
 * and _check_and_get_fip_assoc).
 *
 * Invariants: read-only, run inside the transaction that writes the association; a port
 * the caller may not see is PortNotFound exactly as a missing one; only an IPv4 address
 * of the port itself is ever associated; the router found has an interface on that
 * address's subnet AND its gateway on the floating IP's network (the interface holding
 * the subnet's gateway_ip wins, as in Neutron), else ExternalGatewayForFloatingIPNotFound;
 * one fixed address has at most one floating IP per external network (checked here, and
 * the table's UNIQUE constraint decides races); the router found is locked, so its gateway
 * or interface cannot go from under the association concurrently.
 */
import { ApiError } from '../../contracts/errors.ts';
import {
  type Port,
  ROUTER_GATEWAY_OWNER,
  ROUTER_INTERFACE_OWNERS,
} from '../../contracts/network.ts';
import { parseIp } from '../ipam.ts';
import type { Queryable } from './index.ts';
import { networkOwner } from './networks.ts';
import { getPort, portNotFound } from './ports.ts';

/** Neutron's BadRequest for the floatingip resource. */
export const badFloatingIp = (msg: string) =>
  new ApiError('BadRequest', `Bad floatingip request: ${msg}.`);

/** Who asks: an admin associates any port, others only ports of the floating IP's project. */
export interface Caller {
  admin: boolean;
  projectId: string;
}

/** The floating IP side of an association. */
export interface FipSide {
  id: string;
  project_id: string;
  floating_network_id: string;
  floating_ip_address: string;
}

export interface Association {
  fixed_port_id: string;
  fixed_ip_address: string;
  router_id: string;
}

/** get_port as the caller: admin, the port's owner or its network's owner. */
async function visiblePort(tx: Queryable, portId: string, caller: Caller): Promise<Port> {
  const port = await getPort(tx, portId);
  if (!port) throw portNotFound(portId);
  if (caller.admin || port.project_id === caller.projectId) return port;
  if ((await networkOwner(tx, port.network_id)) === caller.projectId) return port;
  throw portNotFound(portId);
}

/** The port's address to translate to, and its subnet (Neutron's checks, in its order). */
function internalAddress(port: Port, wanted: string | undefined) {
  if (wanted !== undefined) {
    if (parseIp(wanted)?.version !== 4)
      throw badFloatingIp(
        `Cannot process floating IP association with ${wanted}, since that is not an IPv4 address`,
      );
    const held = port.fixed_ips.find((f) => f.ip_address === wanted);
    if (!held) throw badFloatingIp(`Port ${port.id} does not have fixed ip ${wanted}`);
    return held;
  }
  const v4 = port.fixed_ips.filter((f) => parseIp(f.ip_address)?.version === 4);
  const [only] = v4;
  if (!only)
    throw badFloatingIp(
      `Cannot add floating IP to port ${port.id} that has no fixed IPv4 addresses`,
    );
  if (v4.length > 1)
    throw badFloatingIp(
      `Port ${port.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP`,
    );
  return only;
}

/**
 * The router between subnet `subnetId` and external network `externalId`: one with an
 * interface on the subnet and its gateway port on the external network.
 */
export async function routerForFloatingIp(
  tx: Queryable,
  port: Pick<Port, 'id' | 'network_id'>,
  subnetId: string,
  externalId: string,
): Promise<string> {
  const owners = ROUTER_INTERFACE_OWNERS;
  const rows = await tx.query<{ router_id: string; ip_address: string; gateway_ip: unknown }>(
    `SELECT DISTINCT rp.router_id, a.ip_address, s.gateway_ip
       FROM router_ports rp
       JOIN ports p ON p.id = rp.port_id
       JOIN ipallocations a ON a.port_id = p.id
       JOIN subnets s ON s.id = a.subnet_id
       JOIN ports gw ON gw.device_id = rp.router_id
      WHERE p.network_id = ? AND a.subnet_id = ?
        AND rp.port_type IN (${owners.map(() => '?').join(', ')})
        AND gw.network_id = ? AND gw.device_owner = ?
      ORDER BY rp.router_id, a.ip_address`,
    [port.network_id, subnetId, ...owners, externalId, ROUTER_GATEWAY_OWNER],
  );
  const best = rows.find((r) => r.ip_address === r.gateway_ip) ?? rows[0];
  if (best) return best.router_id;
  throw new ApiError(
    'ExternalGatewayForFloatingIPNotFound',
    `External network ${externalId} is not reachable from subnet ${subnetId}.  Therefore, cannot associate Port ${port.id} with a Floating IP.`,
  );
}

/**
 * routerForFloatingIp with the router's row locked (a same-value update) and the answer
 * read again after the lock: a concurrent removal of that router's gateway or interface
 * (which locks the row too, touchRouter) either commits first and is seen here, or waits
 * and then sees this floating IP (RouterExternalGatewayInUseByFloatingIp and the like).
 */
async function lockedRouterFor(
  tx: Queryable,
  port: Pick<Port, 'id' | 'network_id'>,
  subnetId: string,
  externalId: string,
): Promise<string> {
  const lock = (id: string) => tx.query('UPDATE routers SET status = status WHERE id = ?', [id]);
  const first = await routerForFloatingIp(tx, port, subnetId, externalId);
  await lock(first);
  const routerId = await routerForFloatingIp(tx, port, subnetId, externalId);
  if (routerId !== first) await lock(routerId);
  return routerId;
}

/** FloatingIPPortAlreadyAssociated for `fip` and the fixed address it wanted. */
export const alreadyAssociated = (fip: FipSide, portId: string, fixedIp: string) =>
  new ApiError(
    'FloatingIPPortAlreadyAssociated',
    `Cannot associate floating IP ${fip.floating_ip_address} (${fip.id}) with port ${portId} using fixed IP ${fixedIp}, as that fixed IP already has a floating IP on external network ${fip.floating_network_id}.`,
  );

/**
 * Resolves `fip`'s association with `portId` (and `fixedIp`, else the port's one IPv4
 * address), or throws Neutron's error; changes nothing.
 */
export async function resolveAssociation(
  tx: Queryable,
  fip: FipSide,
  want: { port_id: string; fixed_ip_address?: string | null | undefined },
  caller: Caller,
): Promise<Association> {
  const port = await visiblePort(tx, want.port_id, caller);
  if (port.project_id !== fip.project_id && !caller.admin)
    throw badFloatingIp(
      `Cannot process floating IP association with Port ${port.id}, since that port is owned by a different tenant`,
    );
  if (port.device_owner.startsWith('network:'))
    throw badFloatingIp(`Port ${port.id} is unable to be assigned a floating IP`);
  const fixed = internalAddress(port, want.fixed_ip_address ?? undefined);
  const routerId = await lockedRouterFor(tx, port, fixed.subnet_id, fip.floating_network_id);
  const [other] = await tx.query(
    `SELECT id FROM floatingips
      WHERE fixed_port_id = ? AND floating_network_id = ? AND fixed_ip_address = ? AND id <> ?`,
    [port.id, fip.floating_network_id, fixed.ip_address, fip.id],
  );
  if (other) throw alreadyAssociated(fip, port.id, fixed.ip_address);
  return { fixed_port_id: port.id, fixed_ip_address: fixed.ip_address, router_id: routerId };
}
