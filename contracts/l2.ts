/**
 * The L2 RPC contract between kumo-ovs-agent and kumo-api (Neutron's plugin RPC, trimmed
 * to what the agent needs): device details (with what the firewall needs: addresses,
 * port security, groups, allowed address pairs), device status, tunnel peers, and the
 * rules and members of security groups (security_group_info).
 *
 * Invariants: an agent asks only about ports it sees on its integration bridge and is told
 * only about ports bound (or now bound) to its own host; anything else is `unknown` and
 * sits on the dead VLAN. Every address, prefix and MAC here reaches OpenFlow flows, so
 * each is checked in full (not by shape) and canonical: `addressOrPrefix` parses it.
 */
import { BITS, formatIp, parseIp } from './inet.ts';
import { NETWORK_TYPES, physnet, TUNNEL_TYPES } from './network.ts';
import {
  arr,
  bool,
  hostname,
  type Infer,
  int,
  nullable,
  obj,
  oneOf,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';

const ipv4 = () =>
  str({
    pattern: /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/,
    patternName: 'an IPv4 address',
  });
const mac = () =>
  str({ pattern: /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, patternName: 'a lowercase MAC address' });

/** An address (`10.0.0.5`) or a prefix (`10.0.0.0/24`, host bits clear), canonical. */
export function addressOrPrefix(): Schema<string> {
  const text = str({ min: 2, max: 49, pattern: /^[0-9a-f.:]+(\/\d{1,3})?$/ });
  return {
    kind: 'string',
    parse(value, path = '') {
      const [addr = '', len] = text.parse(value, path).split('/');
      const ip = parseIp(addr);
      const bits = ip ? BITS[ip.version] : 0;
      const n = len === undefined ? bits : Number(len);
      const host = ip && n <= bits ? ip.value & ((1n << BigInt(bits - n)) - 1n) : 1n;
      if (!ip || host !== 0n || formatIp(ip.version, ip.value) !== addr)
        throw new ValidationError(path, 'must be a canonical IP address or prefix');
      return len === undefined ? addr : `${addr}/${n}`;
    },
  };
}

/** One address (`10.0.0.5`, `fd00::5`), canonical: a prefix is refused. */
export function address(): Schema<string> {
  const inner = addressOrPrefix();
  return {
    kind: 'string',
    parse(value, path = '') {
      const addr = inner.parse(value, path);
      if (addr.includes('/'))
        throw new ValidationError(path, 'must be an IP address, not a prefix');
      return addr;
    },
  };
}

export const SG_DIRECTIONS = ['ingress', 'egress'] as const;
export const ETHERTYPES = ['IPv4', 'IPv6'] as const;
export type Ethertype = (typeof ETHERTYPES)[number];

/** An allowed address pair as the agent needs it: the MAC is always given. */
export const AddressPair = obj({ mac_address: mac(), ip_address: addressOrPrefix() });

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
  device_owner: str({ max: 255 }),
  /** The port's fixed IPs (addresses: what the port may send from, a prefix never). */
  fixed_ips: arr(address(), { max: 16 }),
  /** False (or a `network:*` device_owner): no firewall, no anti-spoofing. */
  port_security_enabled: bool(),
  security_groups: arr(uuid(), { max: 64 }),
  allowed_address_pairs: arr(AddressPair, { max: 64 }),
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

/**
 * One security group rule as the firewall needs it: protocol as a number (null: any);
 * ports (TCP/UDP/SCTP/DCCP...) or ICMP type (min) and code (max); at most one remote.
 */
export const FirewallRule = obj({
  id: uuid(),
  direction: oneOf(SG_DIRECTIONS),
  ethertype: oneOf(ETHERTYPES),
  protocol: nullable(int({ min: 0, max: 255 })),
  port_range_min: nullable(int({ min: 0, max: 65535 })),
  port_range_max: nullable(int({ min: 0, max: 65535 })),
  remote_ip_prefix: nullable(addressOrPrefix()),
  remote_group_id: nullable(uuid()),
});
export type FirewallRule = Infer<typeof FirewallRule>;

export const SecurityGroupInfoArgs = obj({
  host: hostname(),
  security_groups: arr(uuid(), { max: 5000 }),
});
/**
 * The rules of each group asked about (a group that no longer exists is absent), and the
 * members (fixed IPs and allowed-address-pair addresses of the ports in it, on any host)
 * of every group those rules name as remote_group_id. Lists are parsed item by item by
 * the agent (contracts/parts.ts): one bad rule is left out and logged.
 */
export const SecurityGroupInfoResult = obj({
  groups: arr(obj({ id: uuid(), rules: arr(FirewallRule, { max: 10_000 }) }), { max: 5000 }),
  members: arr(obj({ id: uuid(), ips: arr(addressOrPrefix(), { max: 100_000 }) }), { max: 5000 }),
});
export type SecurityGroupInfoResult = Infer<typeof SecurityGroupInfoResult>;
