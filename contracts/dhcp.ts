/**
 * The DHCP RPC contract between kumo-dhcp-agent and kumo-api: which networks a host's
 * DHCP agent serves, and everything its dnsmasq needs for one network.
 *
 * Invariants: the agent writes nothing into a dnsmasq file that did not pass these
 * schemas on arrival; the renderer (host/dnsmasq) checks values again against the
 * stricter patterns of its own file format. One bad subnet or port is that item's
 * problem, not its network's: `parseNetworkInfo` leaves it out and names it with the
 * reason, so the network's other clients keep being served.
 */
import { cidrText, MAC } from './network.ts';
import { anyItem, parseParts } from './parts.ts';
import { arr, bool, hostname, type Infer, int, nullable, obj, oneOf, str, uuid } from './schema.ts';
import type { RejectedPart } from './status.ts';

const mac = () => str({ pattern: MAC, patternName: 'a MAC address' });
/**
 * Address text checked value by value by the renderer (host/dnsmasq/check.ts), which
 * leaves one bad value out; here only its size and the absence of control characters.
 */
const addressText = () => str({ max: 64 });

export const DhcpFixedIp = obj({ subnet_id: uuid(), ip_address: addressText() });

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
  gateway_ip: nullable(addressText()),
  enable_dhcp: bool(),
  dns_nameservers: arr(addressText(), { max: 5 }),
  host_routes: arr(obj({ destination: addressText(), nexthop: addressText() }), { max: 20 }),
  /**
   * A router serves the subnet: one of its interface ports holds the subnet's gateway IP
   * (Neutron's get_isolated_subnets), so guests reach 169.254.169.254 through that router's
   * namespace. False: the subnet is isolated, and the DHCP namespace may serve metadata.
   */
  routed: bool(),
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

const NetworkEnvelope = obj({
  network: nullable(
    obj({
      ...DhcpNetwork.shape,
      subnets: arr(anyItem(), { max: 64 }),
      ports: arr(anyItem(), { max: 65536 }),
    }),
  ),
});

/** A get_network_info answer, and the subnets and ports it holds that were left out. */
export interface NetworkInfo {
  network: DhcpNetwork | null;
  rejected: RejectedPart[];
}

/**
 * Parses get_network_info's answer item by item: the network's own attributes and its
 * DHCP port must be valid (else it throws, naming the field); a subnet or port that is
 * not is left out and listed in `rejected` with the reason.
 */
export function parseNetworkInfo(reply: unknown): NetworkInfo {
  const net = NetworkEnvelope.parse(reply).network;
  if (net === null) return { network: null, rejected: [] };
  const rejected: RejectedPart[] = [];
  const subnets = parseParts(
    net.subnets,
    DhcpSubnet,
    { list: 'subnets', resource: 'subnet' },
    rejected,
  );
  const ports = parseParts(net.ports, DhcpPort, { list: 'ports', resource: 'port' }, rejected);
  return { network: { ...net, subnets, ports }, rejected };
}

/** A part's id for its report (host/dnsmasq names the hosts it leaves out the same way). */
export { partId } from './parts.ts';
