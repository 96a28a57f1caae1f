/**
 * The L2 RPC contract between kumo-ovs-agent and kumo-api (Neutron's plugin RPC, trimmed
 * to what the agent needs): device details, device status, tunnel peers.
 *
 * Invariant: an agent asks only about ports it sees on its integration bridge and is told
 * only about ports bound (or now bound) to its own host; anything else is `unknown` and
 * sits on the dead VLAN.
 */
import { NETWORK_TYPES, physnet, TUNNEL_TYPES } from './network.ts';
import { arr, bool, hostname, type Infer, int, nullable, obj, oneOf, str, uuid } from './schema.ts';

const ipv4 = () =>
  str({
    pattern: /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/,
    patternName: 'an IPv4 address',
  });
const mac = () =>
  str({ pattern: /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, patternName: 'a lowercase MAC address' });

export const DeviceDetails = obj({
  device: uuid(),
  network_id: uuid(),
  network_type: oneOf(NETWORK_TYPES),
  /** Flat and VLAN networks: the physical network ([ovs] bridge_mappings); else null. */
  physical_network: nullable(physnet()),
  /** The VNI, GRE key or VLAN id; null for flat networks. */
  segmentation_id: nullable(int({ min: 1, max: 2 ** 32 - 1 })),
  mac_address: mac(),
  admin_state_up: bool(),
});
export type DeviceDetails = Infer<typeof DeviceDetails>;

export const GetDevicesDetailsArgs = obj({ host: hostname(), devices: arr(uuid(), { max: 5000 }) });
export const GetDevicesDetailsResult = obj({
  devices: arr(DeviceDetails, { max: 5000 }),
  unknown: arr(uuid(), { max: 5000 }),
});
export type GetDevicesDetailsResult = Infer<typeof GetDevicesDetailsResult>;

export const UpdateDeviceListArgs = obj({
  host: hostname(),
  up: arr(uuid(), { max: 5000 }),
  down: arr(uuid(), { max: 5000 }),
});

export const TunnelSyncArgs = obj({
  host: hostname(),
  tunnel_ip: ipv4(),
  tunnel_types: arr(oneOf(TUNNEL_TYPES), { max: 2 }),
});
export const TunnelPeer = obj({
  host: hostname(),
  tunnel_ip: ipv4(),
  tunnel_types: arr(oneOf(TUNNEL_TYPES), { max: 2 }),
});
export type TunnelPeer = Infer<typeof TunnelPeer>;
export const TunnelSyncResult = obj({ peers: arr(TunnelPeer, { max: 10_000 }) });
