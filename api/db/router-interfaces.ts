/**
 * A router's interfaces (Neutron's add_router_interface / remove_router_interface): by
 * subnet, a new port holding the subnet's gateway address; by port, an unused port the
 * router takes over (device_id, device_owner network:router_interface).
 *
 * Invariants: one transaction per request, after touchRouter locked the router's row, so a
 * refused request changes nothing; a router has one port per subnet and no two
 * interfaces with overlapping cidrs (router-ports.ts); an interface a floating IP or a
 * route depends on is never removed (409); a removed interface's port is deleted, as
 * Neutron does whether it was added by subnet or by port.
 */
import { ApiError } from '../../contracts/errors.ts';
import { ROUTER_INTERFACE_OWNER, type Subnet } from '../../contracts/network.ts';
import type { RouterInterfaceInfo, RouterInterfaceRequest } from '../../contracts/router.ts';
import { contains, parseCidr, parseIp } from '../ipam.ts';
import type { Db, Queryable } from './index.ts';
import { resourceTime } from './neutron.ts';
import { getPort, insertPort, portNotFound, removePort } from './ports.ts';
import { attachedAddresses, badRouter, checkDupSubnets } from './router-ports.ts';
import { routeThrough } from './router-routes.ts';
import { type RouterRow, touchRouter } from './routers.ts';
import { getSubnet, subnetNotFound } from './subnets.ts';

interface Attached {
  port: { id: string; project_id: string; network_id: string };
  subnets: Pick<Subnet, 'id' | 'cidr'>[];
}

const info = (routerId: string, a: Attached): RouterInterfaceInfo => ({
  id: routerId,
  tenant_id: a.port.project_id,
  project_id: a.port.project_id,
  port_id: a.port.id,
  subnet_id: a.subnets.at(-1)?.id ?? '',
  subnet_ids: a.subnets.map((s) => s.id),
  network_id: a.port.network_id,
});

/** Neutron's _validate_interface_info. */
function interfaceKind(req: RouterInterfaceRequest, removal: boolean): 'port' | 'subnet' {
  if (req.port_id === undefined && req.subnet_id === undefined)
    throw badRouter('Either subnet_id or port_id must be specified');
  if (!removal && req.port_id !== undefined && req.subnet_id !== undefined)
    throw badRouter('Cannot specify both subnet-id and port-id');
  return req.port_id !== undefined ? 'port' : 'subnet';
}

async function mustSubnet(tx: Queryable, id: string): Promise<Subnet> {
  const subnet = await getSubnet(tx, id);
  if (!subnet) throw subnetNotFound(id);
  return subnet;
}

async function bySubnet(tx: Queryable, row: RouterRow, subnetId: string, now: Date) {
  const subnet = await mustSubnet(tx, subnetId);
  if (!subnet.gateway_ip) throw badRouter('Subnet for router interface must have a gateway IP');
  checkDupSubnets(await attachedAddresses(tx, row.id), [subnet]);
  const portId = await insertPort(
    tx,
    {
      network_id: subnet.network_id,
      project_id: row.project_id,
      name: '',
      admin_state_up: true,
      device_id: row.id,
      device_owner: ROUTER_INTERFACE_OWNER,
      fixed_ips: [{ subnet_id: subnet.id, ip_address: subnet.gateway_ip }],
    },
    now,
  );
  return { portId, subnets: [subnet] };
}

const portInUse = (port: { id: string; network_id: string }, deviceId: string) =>
  new ApiError(
    'PortInUse',
    `Unable to complete operation on port ${port.id} for network ${port.network_id}. Port already has an attached device ${deviceId}.`,
  );

/**
 * _check_router_port + _validate_router_port_info, then the port becomes the router's.
 * The takeover only writes a port that is still free: another router taking the same port
 * concurrently holds its row, and this one then finds it taken (PortInUse, not a
 * constraint error from router_ports).
 */
async function byPort(tx: Queryable, row: RouterRow, portId: string, now: Date) {
  const port = await getPort(tx, portId);
  if (!port) throw portNotFound(portId);
  if (port.device_id !== '') throw portInUse(port, port.device_id);
  if (port.fixed_ips.length === 0) throw badRouter('Router port must have at least one fixed IP');
  const subnets: Subnet[] = [];
  for (const f of port.fixed_ips) subnets.push(await mustSubnet(tx, f.subnet_id));
  checkDupSubnets(await attachedAddresses(tx, row.id), subnets);
  if (subnets.filter((s) => s.ip_version === 4).length > 1)
    throw badRouter('Cannot have multiple IPv4 subnets on router port');
  const taken = await tx.query(
    `UPDATE ports SET device_id = ?, device_owner = ?, revision_number = revision_number + 1,
        updated_at = ? WHERE id = ? AND device_id = '' RETURNING id`,
    [row.id, ROUTER_INTERFACE_OWNER, resourceTime(now), port.id],
  );
  if (taken.length === 0) {
    const [current] = await tx.query<{ device_id: string }>(
      'SELECT device_id FROM ports WHERE id = ?',
      [port.id],
    );
    if (!current) throw portNotFound(portId);
    throw portInUse(port, current.device_id);
  }
  return { portId: port.id, subnets };
}

async function attachedPort(tx: Queryable, portId: string) {
  const port = await getPort(tx, portId);
  if (!port) throw portNotFound(portId);
  return port;
}

/** Attaches a subnet or port to router `routerId`; the body Neutron answers with. */
export async function addRouterInterface(
  db: Db,
  routerId: string,
  req: RouterInterfaceRequest,
  now: Date,
): Promise<RouterInterfaceInfo> {
  const kind = interfaceKind(req, false);
  return db.transaction(async (tx) => {
    const row = await touchRouter(tx, routerId, now);
    const made =
      kind === 'port'
        ? await byPort(tx, row, req.port_id as string, now)
        : await bySubnet(tx, row, req.subnet_id as string, now);
    await tx.query('INSERT INTO router_ports (router_id, port_id, port_type) VALUES (?, ?, ?)', [
      row.id,
      made.portId,
      ROUTER_INTERFACE_OWNER,
    ]);
    return info(row.id, { port: await attachedPort(tx, made.portId), subnets: made.subnets });
  });
}

/** _confirm_router_interface_not_in_use: no floating IP nor route goes through the subnet. */
async function confirmNotInUse(tx: Queryable, routerId: string, subnet: Subnet) {
  const fips = await tx.query<{ fixed_ip_address: string | null }>(
    'SELECT fixed_ip_address FROM floatingips WHERE router_id = ?',
    [routerId],
  );
  const cidr = parseCidr(subnet.cidr);
  const inSubnet = (ip: string | null) => {
    const parsed = ip === null ? undefined : parseIp(ip);
    return 'cidr' in cidr && parsed !== undefined && contains(cidr.cidr, parsed);
  };
  if (fips.some((f) => inSubnet(f.fixed_ip_address)))
    throw new ApiError(
      'RouterInterfaceInUseByFloatingIP',
      `Router interface for subnet ${subnet.id} on router ${routerId} cannot be deleted, as it is required by one or more floating IPs.`,
    );
  if (await routeThrough(tx, routerId, subnet.cidr))
    throw new ApiError(
      'RouterInterfaceInUseByRoute',
      `Router interface for subnet ${subnet.id} on router ${routerId} cannot be deleted, as it is required by one or more routes.`,
    );
}

/** The router's interface port `portId` (RouterInterfaceNotFound unless it is one). */
async function interfacePort(tx: Queryable, routerId: string, portId: string) {
  const [owned] = await tx.query(
    'SELECT port_id FROM router_ports WHERE router_id = ? AND port_id = ? AND port_type = ?',
    [routerId, portId, ROUTER_INTERFACE_OWNER],
  );
  const port = owned ? await getPort(tx, portId) : undefined;
  if (!port)
    throw new ApiError(
      'RouterInterfaceNotFound',
      `Router ${routerId} does not have an interface with id ${portId}`,
    );
  return port;
}

async function removeByPort(tx: Queryable, routerId: string, req: RouterInterfaceRequest) {
  const port = await interfacePort(tx, routerId, req.port_id as string);
  const ids = port.fixed_ips.map((f) => f.subnet_id);
  if (req.subnet_id !== undefined && !ids.includes(req.subnet_id))
    throw new ApiError(
      'SubnetMismatchForPort',
      `Subnet on port ${port.id} does not match the requested subnet ${req.subnet_id}.`,
    );
  const subnets: Subnet[] = [];
  for (const id of ids) subnets.push(await mustSubnet(tx, id));
  for (const s of subnets) await confirmNotInUse(tx, routerId, s);
  await removePort(tx, port.id);
  return { port, subnets };
}

async function removeBySubnet(tx: Queryable, routerId: string, subnetId: string, now: Date) {
  const subnet = await mustSubnet(tx, subnetId);
  await confirmNotInUse(tx, routerId, subnet);
  const attached = await attachedAddresses(tx, routerId);
  const hit = attached.find(
    (a) => a.subnet_id === subnetId && a.port_type === ROUTER_INTERFACE_OWNER,
  );
  if (!hit)
    throw new ApiError(
      'RouterInterfaceNotFoundForSubnet',
      `Router ${routerId} has no interface on subnet ${subnetId}`,
    );
  const port = await attachedPort(tx, hit.port_id);
  if (port.fixed_ips.length > 1) {
    await tx.query('DELETE FROM ipallocations WHERE port_id = ? AND subnet_id = ?', [
      port.id,
      subnetId,
    ]);
    await tx.query(
      'UPDATE ports SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?',
      [resourceTime(now), port.id],
    );
  } else await removePort(tx, port.id);
  return { port, subnets: [subnet] };
}

/** Detaches a port or subnet from router `routerId`; the body Neutron answers with. */
export async function removeRouterInterface(
  db: Db,
  routerId: string,
  req: RouterInterfaceRequest,
  now: Date,
): Promise<RouterInterfaceInfo> {
  const kind = interfaceKind(req, true);
  return db.transaction(async (tx) => {
    const row = await touchRouter(tx, routerId, now);
    const gone =
      kind === 'port'
        ? await removeByPort(tx, row.id, req)
        : await removeBySubnet(tx, row.id, req.subnet_id as string, now);
    return info(row.id, gone);
  });
}
