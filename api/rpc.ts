/**
 * kumo-api's RPC server (queue `q-plugin`): what agents ask of the API. The L2 agent's
 * calls, Neutron's plugin RPC trimmed: device details (binding the port to the asking
 * host), device status, and the tunnel endpoint list (tunnels.ts); the DHCP agent's
 * get_active_networks / get_network_info (rpc-dhcp.ts); the L3 agent's
 * get_active_routers / get_router_info / update_floatingip_statuses (rpc-l3.ts); the compute agent's get_instance
 * / get_host_instances / update_instance (rpc-compute.ts); the metadata relays'
 * get_metadata_instance and the compute agent's get_config_drive (rpc-metadata.ts); and
 * every agent's report_status (status-reports.ts).
 *
 * Invariants: a port is bound to the first host whose L2 agent asks for it and is never
 * described to another host; a device status is set only by the host the port is bound
 * to; messages reach the handler validated (contracts/messages.ts parseMessage).
 */
import type { DeviceDetails } from '../contracts/l2.ts';
import type { ArgsOf, Message } from '../contracts/messages.ts';
import type { Db } from './db/index.ts';
import { bool } from './db/neutron.ts';
import { bindUnbound, type DeviceRow, deviceFilters, deviceRows } from './db/port-devices.ts';
import { setPortStatus } from './db/ports.ts';
import type { HintDeps } from './hints.ts';
import type { Clock } from './liveness.ts';
import { getHostInstances, getInstance, updateInstance } from './rpc-compute.ts';
import { getActiveNetworks, getNetworkInfo } from './rpc-dhcp.ts';
import { getActiveRouters, getRouterInfo, updateFloatingIpStatuses } from './rpc-l3.ts';
import { getActivePools, getPoolInfo, updatePoolStats } from './rpc-lbaas.ts';
import { getConfigDrive, getMetadataInstance } from './rpc-metadata.ts';
import { securityGroupInfo } from './rpc-sg.ts';
import { getHostVolumes, getSnapshotInfo, getVolumeInfo } from './rpc-volume.ts';
import { createStatusHandler } from './status-reports.ts';
import { tunnelSync } from './tunnels.ts';

export interface RpcDeps extends HintDeps {
  db: Db;
  /** The system clock when absent. */
  clock?: Clock;
}

type Filters = Awaited<ReturnType<typeof deviceFilters>>;

const details = (r: DeviceRow, f: Filters): DeviceDetails => ({
  device: r.id,
  network_id: r.network_id,
  network_type: r.network_type as DeviceDetails['network_type'],
  physical_network: r.physical_network || null,
  segmentation_id:
    r.segmentation_id === null || Number(r.segmentation_id) === 0
      ? null
      : Number(r.segmentation_id),
  mac_address: r.mac_address,
  admin_state_up: bool(r.admin_state_up),
  device_owner: r.device_owner,
  fixed_ips: f.get(r.id)?.ips ?? [],
  port_security_enabled: bool(r.port_security_enabled),
  security_groups: f.get(r.id)?.groups ?? [],
  allowed_address_pairs: f.get(r.id)?.pairs ?? [],
});

export async function getDevicesDetails(db: Db, args: ArgsOf<'get_devices_details'>) {
  return db.transaction(async (tx) => {
    const mine: DeviceRow[] = [];
    for (const r of await deviceRows(tx, args.devices)) {
      if (r.host_id === '') await bindUnbound(tx, r.id, args.host);
      else if (r.host_id !== args.host) continue;
      mine.push(r);
    }
    const filters = await deviceFilters(
      tx,
      mine.map((r) => r.id),
    );
    const devices = mine.map((r) => details(r, filters));
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

/** The `q-plugin` handler: one method per RPC call; replies are the call's result. */
export function createRpcHandler(deps: RpcDeps) {
  const reportStatus = createStatusHandler(deps);
  return async (message: Message): Promise<unknown> => {
    deps.log.debug({ method: message.method }, 'rpc served');
    switch (message.method) {
      case 'get_devices_details':
        return getDevicesDetails(deps.db, message.args);
      case 'update_device_list':
        return updateDeviceList(deps.db, message.args);
      case 'tunnel_sync':
        return tunnelSync(deps, message.args);
      case 'security_group_info':
        return securityGroupInfo(deps.db, message.args, deps.log);
      case 'get_active_networks':
        return getActiveNetworks(deps.db, message.args);
      case 'get_network_info':
        return getNetworkInfo(deps.db, message.args);
      case 'get_active_routers':
        return getActiveRouters(deps.db, message.args);
      case 'get_router_info':
        return getRouterInfo(deps.db, message.args);
      case 'update_floatingip_statuses':
        return updateFloatingIpStatuses(deps.db, message.args);
      case 'get_active_pools':
        return getActivePools(deps.db, message.args);
      case 'get_pool_info':
        return getPoolInfo(deps.db, message.args);
      case 'update_pool_stats':
        return updatePoolStats(deps.db, message.args);
      case 'get_host_volumes':
        return getHostVolumes(deps.db, message.args);
      case 'get_volume_info':
        return getVolumeInfo(deps.db, message.args);
      case 'get_snapshot_info':
        return getSnapshotInfo(deps.db, message.args);
      case 'get_instance':
        return getInstance(deps.db, message.args);
      case 'get_host_instances':
        return getHostInstances(deps.db, message.args);
      case 'update_instance':
        return updateInstance(deps, message.args);
      case 'get_metadata_instance':
        return getMetadataInstance(deps.db, message.args);
      case 'get_config_drive':
        return getConfigDrive(deps, message.args);
      case 'report_status':
        return reportStatus(message.args);
      default:
        throw new Error(`kumo-api does not serve ${message.method} on q-plugin`);
    }
  };
}
