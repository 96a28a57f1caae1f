/**
 * The core networking vocabulary (Neutron v2.0 networks, subnets, ports) shared by
 * kumo-api, the CLI and the agents: request schemas and the objects the API returns.
 *
 * Invariants: every request attribute passes one of these schemas before anything else
 * looks at it (names and descriptions never carry control characters, unknown attributes
 * are refused naming them); integers and booleans are also accepted in the string forms
 * Neutron's converters accept, because the openstack client sends some of them as text.
 */
import {
  arr,
  isPlainObject,
  json,
  nullable,
  obj,
  oneOf,
  optional,
  projectId,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';

/** Resources are owned by this project until the API learns about projects. */
export const DEFAULT_PROJECT_ID = '2a6a3b7c9d1e4f5081a2b3c4d5e6f708';

export const NETWORK_TYPES = ['vxlan', 'gre', 'flat', 'vlan'] as const;
export type NetworkType = (typeof NETWORK_TYPES)[number];
export const TUNNEL_TYPES = ['vxlan', 'gre'] as const;
export type TunnelType = (typeof TUNNEL_TYPES)[number];
/** Bytes of encapsulation (IPv4 outer header) a network type costs against the physnet MTU. */
export const ENCAP_OVERHEAD: Record<NetworkType, number> = { vxlan: 50, gre: 42, flat: 0, vlan: 0 };
/** Provider network types: carried on a physical network through [ovs] bridge_mappings. */
export const PROVIDER_TYPES = ['flat', 'vlan'] as const;
/** Largest segmentation id each tunnel type can carry. */
export const MAX_SEGMENTATION_ID: Record<TunnelType, number> = {
  vxlan: 2 ** 24 - 1,
  gre: 2 ** 32 - 1,
};

export const DHCP_OWNER = 'network:dhcp';
/** A router's port on one of its internal subnets (a `qr-` device). */
export const ROUTER_INTERFACE_OWNER = 'network:router_interface';
/** A router's port on its external network (a `qg-` device). */
export const ROUTER_GATEWAY_OWNER = 'network:router_gateway';
/** The port holding a floating IP's address on the external network (no device). */
export const FLOATINGIP_OWNER = 'network:floatingip';
/** Neutron's ROUTER_INTERFACE_OWNERS_SNAT: the only ports that may hold a subnet's gateway. */
export const ROUTER_INTERFACE_OWNERS: readonly string[] = [
  'network:router_interface',
  'network:router_interface_distributed',
  'network:ha_router_replicated_interface',
  'network:router_centralized_snat',
];
export const MAC_PREFIX = 'fa:16:3e';
export const PORT_STATUSES = ['ACTIVE', 'DOWN', 'BUILD', 'ERROR'] as const;
export type PortStatus = (typeof PORT_STATUSES)[number];
export const VNIC_TYPES = ['normal'] as const;
export const MAX_DNS_NAMESERVERS = 5;
export const MAX_HOST_ROUTES = 20;
export const MAX_FIXED_IPS = 16;
/** Below it the kernel refuses IPv6 addresses on a device (RFC 8200). */
export const IPV6_MIN_MTU = 1280;

const fail = (path: string, reason: string): never => {
  throw new ValidationError(path, reason);
};

/** Neutron's convert_to_int: an integer, or a string of digits. */
export function intLike(opts: { min: number; max: number }): Schema<number> {
  return {
    kind: 'integer',
    parse(value, path = '') {
      const n =
        typeof value === 'string' && /^-?\d{1,12}$/.test(value.trim())
          ? Number(value.trim())
          : value;
      if (typeof n !== 'number' || !Number.isInteger(n))
        return fail(path, `'${String(value).slice(0, 40)}' is not an integer`);
      if (n < opts.min || n > opts.max)
        return fail(path, `must be between ${opts.min} and ${opts.max}`);
      return n;
    },
  };
}

/** Neutron's convert_to_boolean: true/false, or their string forms. */
export function boolLike(): Schema<boolean> {
  return {
    kind: 'boolean',
    parse(value, path = '') {
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string') {
        const v = value.toLowerCase();
        if (v === 'true' || v === '1') return true;
        if (v === 'false' || v === '0') return false;
      }
      return fail(path, `'${String(value).slice(0, 40)}' cannot be converted to boolean`);
    },
  };
}

const name = () => str({ max: 255 });
const description = () => str({ max: 255 });
/** A physical network name: it reaches OVS flows and config unquoted (also contracts/l2). */
export const physnet = () =>
  str({
    min: 1,
    max: 64,
    pattern: /^[A-Za-z0-9_.-]+$/,
    patternName: 'a physical network name (letters, digits, _ . -)',
  });
/** Text that IPAM parses and normalises; the shape check here is only a first filter. */
export const ipText = () =>
  str({ min: 2, max: 45, pattern: /^[0-9A-Fa-f.:]+$/, patternName: 'an IP address' });
export const cidrText = () =>
  str({ min: 4, max: 49, pattern: /^[0-9A-Fa-f.:]+\/\d+$/, patternName: 'a CIDR' });
export const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;
const mac = () => str({ pattern: MAC, patternName: 'a MAC address like fa:16:3e:12:34:56' });
const deviceText = () => str({ max: 255 });
const hostId = () =>
  str({ max: 255, pattern: /^[A-Za-z0-9_.-]*$/, patternName: 'a host name or empty' });
const emptyList = (): Schema<never[]> => {
  const inner = arr(uuid(), { max: 0 });
  return {
    kind: 'array',
    parse(value, path = '') {
      if (Array.isArray(value) && value.length > 0)
        return fail(path, 'is not supported yet (only an empty list)');
      return inner.parse(value, path) as never[];
    },
  };
};

const networkCommon = {
  name: optional(name()),
  description: optional(description()),
  admin_state_up: optional(boolLike()),
  shared: optional(boolLike()),
  'router:external': optional(boolLike()),
  mtu: optional(intLike({ min: 68, max: 65535 })),
  port_security_enabled: optional(boolLike()),
};

export const NetworkCreate = obj({
  network: obj({
    ...networkCommon,
    'provider:network_type': optional(oneOf(NETWORK_TYPES)),
    'provider:physical_network': optional(nullable(physnet())),
    'provider:segmentation_id': optional(nullable(intLike({ min: 0, max: 2 ** 32 - 1 }))),
    project_id: optional(projectId()),
    tenant_id: optional(projectId()),
    tags: optional(emptyList()),
  }),
});
export type NetworkCreate = ReturnType<typeof NetworkCreate.parse>['network'];

/** Provider attributes may be repeated unchanged (the client echoes them); see routes. */
export const NetworkUpdate = obj({
  network: obj({
    ...networkCommon,
    'provider:network_type': optional(oneOf(NETWORK_TYPES)),
    'provider:physical_network': optional(nullable(physnet())),
    'provider:segmentation_id': optional(nullable(intLike({ min: 0, max: 2 ** 32 - 1 }))),
  }),
});
export type NetworkUpdate = ReturnType<typeof NetworkUpdate.parse>['network'];

export const AllocationPool = obj({ start: ipText(), end: ipText() });
export const HostRoute = obj({ destination: cidrText(), nexthop: ipText() });

const subnetCommon = {
  name: optional(name()),
  description: optional(description()),
  gateway_ip: optional(nullable(ipText())),
  allocation_pools: optional(arr(AllocationPool, { max: 64 })),
  enable_dhcp: optional(boolLike()),
  dns_nameservers: optional(arr(ipText(), { max: MAX_DNS_NAMESERVERS })),
  host_routes: optional(arr(HostRoute, { max: MAX_HOST_ROUTES })),
};

export const SubnetCreate = obj({
  subnet: obj({
    ...subnetCommon,
    network_id: uuid(),
    cidr: cidrText(),
    ip_version: optional(intLike({ min: 4, max: 6 })),
    project_id: optional(projectId()),
    tenant_id: optional(projectId()),
    tags: optional(emptyList()),
  }),
});
export type SubnetCreate = ReturnType<typeof SubnetCreate.parse>['subnet'];

export const SubnetUpdate = obj({ subnet: obj(subnetCommon) });
export type SubnetUpdate = ReturnType<typeof SubnetUpdate.parse>['subnet'];

export const FixedIpRequest = obj({
  subnet_id: optional(uuid()),
  ip_address: optional(ipText()),
});
export type FixedIpRequest = ReturnType<typeof FixedIpRequest.parse>;

/** Neutron's max_allowed_address_pair (a larger list is AllowedAddressPairExhausted). */
export const MAX_ADDRESS_PAIRS = 10;

/**
 * An allowed address pair as sent: its shape only. ip_address is optional here so that a
 * missing one is Neutron's AllowedAddressPairsMissingIP (api/db/port-security.ts checks
 * it, duplicates, the count and the address or CIDR, before anything is written).
 */
export const AddressPairRequest = obj({
  ip_address: optional(str({ max: 64 })),
  mac_address: optional(mac()),
});
export type AddressPairRequest = ReturnType<typeof AddressPairRequest.parse>;

const portCommon = {
  name: optional(name()),
  description: optional(description()),
  admin_state_up: optional(boolLike()),
  device_id: optional(deviceText()),
  device_owner: optional(deviceText()),
  mac_address: optional(mac()),
  fixed_ips: optional(arr(FixedIpRequest, { max: MAX_FIXED_IPS })),
  'binding:host_id': optional(hostId()),
  'binding:vnic_type': optional(oneOf(VNIC_TYPES)),
  'binding:profile': optional(json({ maxDepth: 3, maxBytes: 4096 })),
  security_groups: optional(nullable(arr(uuid(), { max: 64 }))),
  port_security_enabled: optional(boolLike()),
  allowed_address_pairs: optional(nullable(arr(AddressPairRequest, { max: 1000 }))),
};

export const PortCreate = obj({
  port: obj({
    ...portCommon,
    network_id: uuid(),
    project_id: optional(projectId()),
    tenant_id: optional(projectId()),
    tags: optional(emptyList()),
  }),
});
export type PortCreate = ReturnType<typeof PortCreate.parse>['port'];

export const PortUpdate = obj({ port: obj(portCommon) });
export type PortUpdate = ReturnType<typeof PortUpdate.parse>['port'];

/** Attributes the API shows but never lets a client write. */
export const READ_ONLY = [
  'id',
  'status',
  'subnets',
  'created_at',
  'updated_at',
  'revision_number',
  'network_id',
  'cidr',
  'ip_version',
  'project_id',
  'tenant_id',
  'binding:vif_type',
  'binding:vif_details',
] as const;

/** Refuses an update naming a read-only attribute with Neutron's message, before typing. */
export function refuseReadOnly(body: unknown, resource: string): void {
  const inner = isPlainObject(body) ? body[resource] : undefined;
  if (!isPlainObject(inner)) return;
  const bad = Object.keys(inner).filter((k) => (READ_ONLY as readonly string[]).includes(k));
  if (bad.length) throw new ValidationError(`${resource}.${bad[0]}`, 'cannot be updated');
}

/** A network as the API returns it (Neutron v2.0 with provider, external-net, mtu, ...). */
export interface Network {
  id: string;
  name: string;
  description: string;
  admin_state_up: boolean;
  shared: boolean;
  status: 'ACTIVE';
  subnets: string[];
  mtu: number;
  'provider:network_type': NetworkType;
  'provider:physical_network': string | null;
  'provider:segmentation_id': number | null;
  'router:external': boolean;
  port_security_enabled: boolean;
  availability_zone_hints: string[];
  availability_zones: string[];
  ipv4_address_scope: null;
  ipv6_address_scope: null;
  l2_adjacency: boolean;
  project_id: string;
  tenant_id: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
  tags: string[];
}

export interface Subnet {
  id: string;
  name: string;
  description: string;
  network_id: string;
  ip_version: 4 | 6;
  cidr: string;
  gateway_ip: string | null;
  allocation_pools: { start: string; end: string }[];
  enable_dhcp: boolean;
  dns_nameservers: string[];
  host_routes: { destination: string; nexthop: string }[];
  ipv6_ra_mode: null;
  ipv6_address_mode: null;
  subnetpool_id: null;
  segment_id: null;
  service_types: string[];
  project_id: string;
  tenant_id: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
  tags: string[];
}

export interface FixedIp {
  subnet_id: string;
  ip_address: string;
}

export interface AddressPair {
  ip_address: string;
  mac_address: string;
}

export interface Port {
  id: string;
  name: string;
  description: string;
  network_id: string;
  admin_state_up: boolean;
  status: PortStatus;
  mac_address: string;
  fixed_ips: FixedIp[];
  device_id: string;
  device_owner: string;
  'binding:host_id': string;
  'binding:vif_type': 'ovs' | 'unbound';
  'binding:vif_details': Record<string, unknown>;
  'binding:vnic_type': string;
  'binding:profile': Record<string, unknown>;
  port_security_enabled: boolean;
  security_groups: string[];
  allowed_address_pairs: AddressPair[];
  extra_dhcp_opts: never[];
  project_id: string;
  tenant_id: string;
  created_at: string;
  updated_at: string;
  revision_number: number;
  tags: string[];
}
