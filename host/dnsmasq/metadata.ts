/**
 * Isolated metadata in dnsmasq's options: on an IPv4 subnet no router serves, the route to
 * 169.254.169.254/32 goes through the DHCP port's own address on that subnet, where the
 * DHCP namespace holds the metadata address and its proxy (Neutron's
 * `_generate_opts_per_subnet` with enable_isolated_metadata). Pure.
 *
 * Invariants: a nexthop is only ever the DHCP port's canonical IPv4 address inside the
 * subnet, so nothing else the API sends can become a metadata route; a routed subnet, an
 * IPv6 one, one without DHCP, or one the DHCP port has no (valid) address on gets none.
 */
import type { DhcpNetwork } from '../../contracts/dhcp.ts';
import { type Cidr, canonicalIp, ipVersion, networkAddress } from '../ip/inet.ts';

/** The subnet as the check sees it. */
export interface MetadataSubnet {
  id: string;
  cidr: Cidr;
  enableDhcp: boolean;
}

/** Whether the API says a router serves subnet `id` (a missing or odd flag: it does not). */
const routed = (net: DhcpNetwork, id: string) =>
  net.subnets.some((s) => s.id === id && s.routed === true);

/** The DHCP port's canonical IPv4 address on `subnet`, when it has a valid one. */
function dhcpAddressOn(net: DhcpNetwork, subnet: MetadataSubnet): string | null {
  const fixed = net.dhcp_port?.fixed_ips.find((ip) => ip.subnet_id === subnet.id);
  const text = fixed?.ip_address;
  if (typeof text !== 'string' || ipVersion(text) !== 4) return null;
  const address = canonicalIp(text);
  const inside = networkAddress({ ...subnet.cidr, address }) === networkAddress(subnet.cidr);
  return inside ? address : null;
}

/**
 * The nexthop of the metadata route for `subnet`: the DHCP port's address when the subnet
 * is an isolated, DHCP-enabled IPv4 subnet and isolated metadata is on; else null.
 */
export function isolatedMetadataVia(
  net: DhcpNetwork,
  subnet: MetadataSubnet,
  enabled: boolean,
): string | null {
  if (!enabled || subnet.cidr.version !== 4 || !subnet.enableDhcp) return null;
  if (routed(net, subnet.id)) return null;
  return dhcpAddressOn(net, subnet);
}
