/**
 * kumo-api's RPC server (queue `q-plugin`): what agents ask of the API. The L2 agent's
 * calls, Neutron's plugin RPC trimmed: device details (binding the port to the asking
 * host), device status, and the tunnel endpoint list; and the DHCP agent's
 * get_active_networks / get_network_info (api/rpc-dhcp.ts); and the compute agent's
 * get_instance / get_host_instances / update_instance (api/rpc-compute.ts).
 *
 * Invariants: a port is bound to the first host whose L2 agent asks for it and is never
 * described to another host; a tunnel endpoint is recorded per host, and any change to the
 * set is fanned out to every L2 agent as a `tunnels` hint (an unchanged endpoint is not,
 * so periodic resyncs never start a hint storm).
 */
import { agentTypeByKind } from '../contracts/agents.ts';
import type { DeviceDetails, TunnelPeer } from '../contracts/l2.ts';
import { type ArgsOf, fanoutExchange, type Message } from '../contracts/messages.ts';
import type { Broker } from '../core/amqp.ts';
import type { Logger } from '../core/log.ts';
import type { Db, Queryable } from './db/index.ts';
import { bool } from './db/neutron.ts';
import { setPortStatus } from './db/ports.ts';
import type { Clock } from './liveness.ts';
import { getHostInstances, getInstance, updateInstance } from './rpc-compute.ts';
import { getActiveNetworks, getNetworkInfo } from './rpc-dhcp.ts';

export const OVS_FANOUT = fanoutExchange(agentTypeByKind('ovs').topic);
const CHUNK = 500;

export interface RpcDeps {
  db: Db;
  broker: Pick<Broker, 'fanout' | 'cast'>;
  log: Logger;
  /** The system clock when absent. */
  clock?: Clock;
}

interface DeviceRow {
  id: string;
  network_id: string;
  mac_address: string;
  admin_state_up: unknown;
  host_id: string;
  network_type: string;
  segmentation_id: unknown;
}

async function deviceRows(tx: Queryable, ids: readonly string[]): Promise<DeviceRow[]> {
  const out: DeviceRow[] = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const chunk = ids.slice(i, i + CHUNK);
    out.push(
      ...(await tx.query<DeviceRow & Record<string, unknown>>(
        `SELECT p.id, p.network_id, p.mac_address, p.admin_state_up, p.host_id, n.network_type, n.segmentation_id
           FROM ports p JOIN networks n ON n.id = p.network_id WHERE p.id IN (${chunk.map(() => '?').join(', ')})`,
        chunk,
      )),
    );
  }
  return out;
}

export async function getDevicesDetails(db: Db, args: ArgsOf<'get_devices_details'>) {
  return db.transaction(async (tx) => {
    const rows = await deviceRows(tx, args.devices);
    const devices: DeviceDetails[] = [];
    for (const r of rows) {
      if (r.host_id === '') {
        await tx.query(
          "UPDATE ports SET host_id = ?, revision_number = revision_number + 1 WHERE id = ? AND host_id = ''",
          [args.host, r.id],
        );
      } else if (r.host_id !== args.host) continue;
      devices.push({
        device: r.id,
        network_id: r.network_id,
        network_type: r.network_type as DeviceDetails['network_type'],
        segmentation_id:
          r.segmentation_id === null || Number(r.segmentation_id) === 0
            ? null
            : Number(r.segmentation_id),
        mac_address: r.mac_address,
        admin_state_up: bool(r.admin_state_up),
      });
    }
    const found = new Set(devices.map((d) => d.device));
    return { devices, unknown: args.devices.filter((id) => !found.has(id)) };
  });
}

export async function updateDeviceList(db: Db, args: ArgsOf<'update_device_list'>) {
  return db.transaction(async (tx) => {
    const rows = await deviceRows(tx, [...args.up, ...args.down]);
    const mine = new Set(rows.filter((r) => r.host_id === args.host).map((r) => r.id));
    let changed = 0;
    for (const id of args.up)
      if (mine.has(id) && (await setPortStatus(tx, id, 'ACTIVE'))) changed++;
    for (const id of args.down)
      if (mine.has(id) && (await setPortStatus(tx, id, 'DOWN'))) changed++;
    return { updated: changed };
  });
}

export async function tunnelSync(
  deps: RpcDeps,
  args: ArgsOf<'tunnel_sync'>,
): Promise<{ peers: TunnelPeer[] }> {
  const types = [...args.tunnel_types].sort().join(',');
  const changed = await deps.db.transaction(async (tx) => {
    const [old] = await tx.query<{ ip: string; types: string }>(
      'SELECT ip, types FROM tunnel_endpoints WHERE host = ?',
      [args.host],
    );
    if (old && old.ip === args.tunnel_ip && old.types === types) return false;
    await tx.query(
      'INSERT INTO tunnel_endpoints (host, ip, types) VALUES (?, ?, ?) ON CONFLICT (host) DO UPDATE SET ip = excluded.ip, types = excluded.types',
      [args.host, args.tunnel_ip, types],
    );
    return true;
  });
  if (changed) await announceTunnels(deps, `endpoint of ${args.host} is ${args.tunnel_ip}`);
  const rows = await deps.db.query<{ host: string; ip: string; types: string }>(
    'SELECT host, ip, types FROM tunnel_endpoints WHERE host <> ? ORDER BY host',
    [args.host],
  );
  return {
    peers: rows.map((r) => ({
      host: r.host,
      tunnel_ip: r.ip,
      tunnel_types: r.types.split(',') as TunnelPeer['tunnel_types'],
    })),
  };
}

/** Removes a host's tunnel endpoint (its L2 agent was deleted) and tells the others. */
export async function removeTunnelEndpoint(deps: RpcDeps, host: string) {
  const gone = await deps.db.query('DELETE FROM tunnel_endpoints WHERE host = ? RETURNING host', [
    host,
  ]);
  if (gone.length > 0) await announceTunnels(deps, `endpoint of ${host} removed`);
}

async function announceTunnels(deps: RpcDeps, why: string) {
  deps.log.info({ why }, 'tunnel endpoints changed');
  await deps.broker
    .fanout(OVS_FANOUT, 'hint', { resource: 'tunnels', id: 'all' })
    .catch((e: Error) => deps.log.warn({ err: e.message }, 'tunnel hint not sent'));
}

/** The `q-plugin` handler: one method per RPC call; replies are the call's result. */
export function createRpcHandler(deps: RpcDeps) {
  return async (message: Message): Promise<unknown> => {
    switch (message.method) {
      case 'get_devices_details':
        return getDevicesDetails(deps.db, message.args);
      case 'update_device_list':
        return updateDeviceList(deps.db, message.args);
      case 'tunnel_sync':
        return tunnelSync(deps, message.args);
      case 'get_active_networks':
        return getActiveNetworks(deps.db, message.args);
      case 'get_network_info':
        return getNetworkInfo(deps.db, message.args);
      case 'get_instance':
        return getInstance(deps.db, message.args);
      case 'get_host_instances':
        return getHostInstances(deps.db, message.args);
      case 'update_instance':
        return updateInstance(deps, message.args);
      default:
        throw new Error(`kumo-api does not serve ${message.method} on q-plugin`);
    }
  };
}
