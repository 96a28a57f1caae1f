/**
 * A router's external gateway (Neutron's _update_router_gw_info with ext-gw-mode): the
 * port on a `router:external` network (device_owner network:router_gateway, device_id the
 * router, no project, as Neutron hides it from users) and the router's enable_snat.
 *
 * Invariants: runs inside the router's write transaction, after touchRouter; a gateway is
 * only on an external network (its row locked while the gateway is written) and never takes a subnet's gateway address; the gateway a
 * floating IP translates through is never removed or moved (409); the same network with
 * the same addresses keeps its port untouched, new addresses on it are reallocated in
 * place, and another network gets a new port.
 */
import { ApiError } from '../../contracts/errors.ts';
import { ROUTER_GATEWAY_OWNER } from '../../contracts/network.ts';
import type { ExternalFixedIp, GatewayRequest } from '../../contracts/router.ts';
import type { Queryable } from './index.ts';
import { networkNotFound } from './networks.ts';
import { resourceTime } from './neutron.ts';
import { allocateFixedIps } from './port-ipam.ts';
import { insertPort, removePort } from './ports.ts';
import { attachedAddresses, badRouter, checkDupSubnets } from './router-ports.ts';
import { listSubnets } from './subnets.ts';

/** What the gateway code needs of a router's row. */
interface RouterRow {
  id: string;
  gw_port_id: string | null;
}

interface CurrentGateway {
  id: string;
  network_id: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
}

async function currentGateway(tx: Queryable, portId: string | null) {
  if (!portId) return undefined;
  const [port] = await tx.query<{ network_id: string }>(
    'SELECT network_id FROM ports WHERE id = ?',
    [portId],
  );
  if (!port) return undefined;
  const fixed_ips = await tx.query<{ subnet_id: string; ip_address: string }>(
    'SELECT subnet_id, ip_address FROM ipallocations WHERE port_id = ?',
    [portId],
  );
  return { id: portId, network_id: port.network_id, fixed_ips } satisfies CurrentGateway;
}

/**
 * _validate_gw_info: an external network, and no external IP equal to a subnet gateway.
 * The network's row is locked (a same-value update) so that a concurrent PUT making it
 * non-external either waits for this gateway and sees it, or commits first and is seen.
 */
async function validate(tx: Queryable, info: GatewayRequest) {
  const [net] = await tx.query<{ external: unknown }>(
    'UPDATE networks SET external = external WHERE id = ? RETURNING external',
    [info.network_id],
  );
  if (!net) throw networkNotFound(info.network_id);
  if (!(net.external === true || net.external === 1))
    throw badRouter(`Network ${info.network_id} is not an external network`);
  const subnets = await listSubnets(tx, {
    columns: { network_id: [info.network_id] },
    clauses: [],
  });
  for (const ip of info.external_fixed_ips ?? [])
    if (subnets.some((s) => s.gateway_ip !== null && s.gateway_ip === ip.ip_address))
      throw badRouter(`External IP ${ip.ip_address} is the same as the gateway IP`);
  return subnets;
}

/** _check_for_external_ip_change: whether `wanted` differs from the port's addresses. */
function ipsChanged(gw: CurrentGateway, wanted: readonly ExternalFixedIp[]): boolean {
  if (wanted.length === 0) return false;
  const same = (a: Set<string>, b: Set<string>) =>
    a.size === b.size && [...a].every((x) => b.has(x));
  const subnets = new Set(wanted.flatMap((f) => (f.subnet_id ? [f.subnet_id] : [])));
  if (!same(subnets, new Set(gw.fixed_ips.map((f) => f.subnet_id)))) return true;
  const ips = new Set(wanted.flatMap((f) => (f.ip_address ? [f.ip_address] : [])));
  return !same(ips, new Set(gw.fixed_ips.map((f) => f.ip_address)));
}

async function refuseIfFloatingIps(tx: Queryable, row: RouterRow, gw: CurrentGateway) {
  const [fip] = await tx.query('SELECT id FROM floatingips WHERE router_id = ? LIMIT 1', [row.id]);
  if (fip)
    throw new ApiError(
      'RouterExternalGatewayInUseByFloatingIp',
      `Gateway cannot be updated for router ${row.id}, since a gateway to external network ${gw.network_id} is required by one or more floating IPs.`,
    );
}

async function dropGateway(tx: Queryable, row: RouterRow, gw: CurrentGateway) {
  await refuseIfFloatingIps(tx, row, gw);
  await tx.query('UPDATE routers SET gw_port_id = NULL WHERE id = ?', [row.id]);
  await tx.query('DELETE FROM router_ports WHERE port_id = ?', [gw.id]);
  await removePort(tx, gw.id);
}

async function addGateway(tx: Queryable, row: RouterRow, info: GatewayRequest, now: Date) {
  const subnets = await validate(tx, info);
  checkDupSubnets(await attachedAddresses(tx, row.id), subnets, true);
  const fixedIps = info.external_fixed_ips?.length ? info.external_fixed_ips : undefined;
  const portId = await insertPort(
    tx,
    {
      network_id: info.network_id,
      project_id: '',
      name: '',
      admin_state_up: true,
      device_id: row.id,
      device_owner: ROUTER_GATEWAY_OWNER,
      ...(fixedIps ? { fixed_ips: fixedIps } : {}),
    },
    now,
  );
  await tx.query('INSERT INTO router_ports (router_id, port_id, port_type) VALUES (?, ?, ?)', [
    row.id,
    portId,
    ROUTER_GATEWAY_OWNER,
  ]);
  await tx.query('UPDATE routers SET gw_port_id = ? WHERE id = ?', [portId, row.id]);
}

async function readdress(tx: Queryable, gw: CurrentGateway, wanted: ExternalFixedIp[], now: Date) {
  await tx.query('DELETE FROM ipallocations WHERE port_id = ?', [gw.id]);
  await allocateFixedIps(tx, gw.network_id, gw.id, wanted);
  await tx.query(
    'UPDATE ports SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?',
    [resourceTime(now), gw.id],
  );
}

/**
 * Sets router `row`'s gateway to `info` (null: none) inside `tx`, with enable_snat from
 * `info` or Neutron's default (true).
 */
export async function setGateway(
  tx: Queryable,
  row: RouterRow,
  info: GatewayRequest | null,
  now: Date,
): Promise<void> {
  const gw = await currentGateway(tx, row.gw_port_id);
  await tx.query('UPDATE routers SET enable_snat = ? WHERE id = ?', [
    info?.enable_snat ?? true,
    row.id,
  ]);
  const wanted = info?.external_fixed_ips ?? [];
  if (gw && info && gw.network_id === info.network_id) {
    await validate(tx, info);
    if (ipsChanged(gw, wanted)) await readdress(tx, gw, wanted, now);
    return;
  }
  if (gw) await dropGateway(tx, row, gw);
  if (info) await addGateway(tx, row, info, now);
}
