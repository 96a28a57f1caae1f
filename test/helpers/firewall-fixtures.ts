/**
 * Fixtures of the OVS firewall's tests (unit and real-OVS): ids, a device's details as
 * get_devices_details answers them, and a security group rule as security_group_info
 * does, each with the fields a test does not care about at a neutral value.
 *
 * Invariant: every fixture passes its contract's parser (DeviceDetails, FirewallRule),
 * so a test exercises the firewall, never a malformed answer it did not mean to send.
 */
import type { DeviceDetails, FirewallRule } from '../../contracts/l2.ts';

export const NET = 'aaaaaaaa-0000-4000-8000-000000000001';
export const SEED = 'cccccccc-0000-4000-8000-000000000001';
export const DEF = 'dddddddd-0000-4000-8000-000000000001';
export const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** Rule `n` (id uuid(100 + n)): ingress IPv4, any protocol, from anywhere, unless `r` says. */
export const fwRule = (n: number, r: Partial<FirewallRule> = {}): FirewallRule => ({
  id: uuid(100 + n),
  direction: 'ingress',
  ethertype: 'IPv4',
  protocol: null,
  port_range_min: null,
  port_range_max: null,
  remote_ip_prefix: null,
  remote_group_id: null,
  ...r,
});

/** Port `n` (MAC fa:16:3e:00:00:0n, 10.0.0.n) on NET, filtered, in the DEF group. */
export const fwDetail = (n: number, extra: Partial<DeviceDetails> = {}): DeviceDetails => ({
  device: uuid(n),
  network_id: NET,
  network_type: 'vxlan',
  physical_network: null,
  segmentation_id: 100,
  mac_address: `fa:16:3e:00:00:0${n}`,
  admin_state_up: true,
  device_owner: 'compute:nova',
  fixed_ips: [`10.0.0.${n}`],
  port_security_enabled: true,
  security_groups: [DEF],
  allowed_address_pairs: [],
  ...extra,
});
