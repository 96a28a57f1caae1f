/**
 * What a router is attached to: the subnets and addresses of its ports (router_ports ⋈
 * ipallocations ⋈ subnets), and Neutron's _check_for_dup_router_subnets over them.
 *
 * Invariant: one router has at most one port per subnet, and its interface subnets never
 * overlap one another (the agent could not route between them); checked inside the
 * transaction that attaches, after the router's row is locked (touchRouter).
 */
import { ApiError } from '../../contracts/errors.ts';
import { ROUTER_GATEWAY_OWNER, type Subnet } from '../../contracts/network.ts';
import { cidrsOverlap, parseCidr } from '../ipam.ts';
import type { Queryable, Row } from './index.ts';

/** One address of one of a router's ports. */
export interface AttachedAddress extends Row {
  port_id: string;
  port_type: string;
  network_id: string;
  subnet_id: string;
  cidr: string;
  ip_address: string;
}

/** Neutron's BadRequest(resource='router', msg). */
export const badRouter = (msg: string) => new ApiError('BadRequest', `Bad router request: ${msg}.`);

/** Every address of router `routerId`'s ports, gateway included, in subnet order. */
export async function attachedAddresses(
  q: Queryable,
  routerId: string,
): Promise<AttachedAddress[]> {
  return q.query<AttachedAddress>(
    `SELECT r.port_id, r.port_type, s.network_id, a.subnet_id, s.cidr, a.ip_address
       FROM router_ports r
       JOIN ipallocations a ON a.port_id = r.port_id
       JOIN subnets s ON s.id = a.subnet_id
      WHERE r.router_id = ?
      ORDER BY s.created_at, s.id, a.ip_address`,
    [routerId],
  );
}

const overlaps = (a: string, b: string) => {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return 'cidr' in x && 'cidr' in y && cidrsOverlap(x.cidr, y.cidr);
};

/**
 * Refuses attaching `subnets` to a router with ports `attached`: a subnet it already has
 * a port on, or a cidr overlapping one of its interfaces (`gateway`: of its gateway).
 */
export function checkDupSubnets(
  attached: readonly AttachedAddress[],
  subnets: readonly Pick<Subnet, 'id' | 'cidr'>[],
  gateway = false,
): void {
  const ids = new Set(subnets.map((s) => s.id));
  const same = attached.find((a) => ids.has(a.subnet_id));
  if (same) throw badRouter(`Router already has a port on subnet ${same.subnet_id}`);
  const compared = attached.filter((a) => (a.port_type === ROUTER_GATEWAY_OWNER) === gateway);
  for (const a of compared)
    for (const s of subnets)
      if (overlaps(s.cidr, a.cidr))
        throw badRouter(
          `Cidr ${s.cidr} of subnet ${s.id} overlaps with cidr ${a.cidr} of subnet ${a.subnet_id}`,
        );
}
