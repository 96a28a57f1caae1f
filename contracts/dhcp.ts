/**
 * The DHCP RPC contract between kumo-dhcp-agent and kumo-api: which networks a host's
 * DHCP agent serves, and everything its dnsmasq needs for one network.
 *
 * Invariant: the agent writes nothing into a dnsmasq file that did not pass these
 * schemas on arrival; the renderer (host/dnsmasq) checks values again against the
 * stricter patterns of its own file format.
 */
import { cidrText, ipText, MAC } from './network.ts';
import { arr, bool, hostname, type Infer, int, nullable, obj, oneOf, str, uuid } from './schema.ts';

const mac = () => str({ pattern: MAC, patternName: 'a MAC address' });

export const DhcpFixedIp = obj({ subnet_id: uuid(), ip_address: ipText() });

export const DhcpPort = obj({
  id: uuid(),
  mac_address: mac(),
  device_owner: str({ max: 255 }),
  fixed_ips: arr(DhcpFixedIp, { max: 16 }),
});
export type DhcpPort = Infer<typeof DhcpPort>;

export const DhcpSubnet = obj({
  id: uuid(),
  cidr: cidrText(),
  ip_version: oneOf(['4', '6'] as const),
  gateway_ip: nullable(ipText()),
  enable_dhcp: bool(),
  dns_nameservers: arr(ipText(), { max: 5 }),
  host_routes: arr(obj({ destination: cidrText(), nexthop: ipText() }), { max: 20 }),
});
export type DhcpSubnet = Infer<typeof DhcpSubnet>;

/** One network as this host's DHCP agent must serve it. */
export const DhcpNetwork = obj({
  id: uuid(),
  revision_number: int({ min: 0 }),
  mtu: int({ min: 68, max: 65535 }),
  subnets: arr(DhcpSubnet, { max: 64 }),
  /** Every port of the network (the hosts file), the DHCP ports included. */
  ports: arr(DhcpPort, { max: 65536 }),
  /** The port this host's dnsmasq listens on (device_owner network:dhcp, bound here). */
  dhcp_port: nullable(DhcpPort),
});
export type DhcpNetwork = Infer<typeof DhcpNetwork>;

export const GetActiveNetworksArgs = obj({ host: hostname() });
export const GetActiveNetworksResult = obj({ networks: arr(uuid(), { max: 100_000 }) });

export const GetNetworkInfoArgs = obj({ host: hostname(), network_id: uuid() });
/** `network: null` — this host no longer serves it (moved away, deleted): tear it down. */
export const GetNetworkInfoResult = obj({ network: nullable(DhcpNetwork) });
