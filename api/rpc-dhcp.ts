/**
 * The DHCP agent's q-plugin calls (contracts/dhcp.ts): which networks a host's DHCP agent
 * serves, and one network as that host's dnsmasq must serve it.
 *
 * Invariants: a host is told only about networks bound to its DHCP agent; for any other
 * network get_network_info answers `{network: null}` so the agent tears it down (fencing
 * after a move); answers are shaped exactly as the contract's schemas.
 */
import type { DhcpNetwork, DhcpPort, DhcpSubnet } from '../contracts/dhcp.ts';
import { canonicalIp } from '../contracts/inet.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import {
  DHCP_OWNER,
  type Network,
  type Port,
  ROUTER_INTERFACE_OWNERS,
  type Subnet,
} from '../contracts/network.ts';
import { dhcpNetworksOfHost, servesNetwork } from './db/dhcp-bindings.ts';
import type { Db } from './db/index.ts';
import { getNetwork } from './db/networks.ts';
import { listPorts } from './db/ports.ts';
import { listSubnets } from './db/subnets.ts';
import { dhcpDeviceId } from './scheduler/dhcp-plan.ts';

export async function getActiveNetworks(
  db: Db,
  args: ArgsOf<'get_active_networks'>,
): Promise<{ networks: string[] }> {
  return { networks: await dhcpNetworksOfHost(db, args.host) };
}

const dhcpPort = (p: Port): DhcpPort => ({
  id: p.id,
  mac_address: p.mac_address,
  device_owner: p.device_owner,
  fixed_ips: p.fixed_ips.map((ip) => ({ subnet_id: ip.subnet_id, ip_address: ip.ip_address })),
});

/**
 * The subnets a router serves: those whose gateway IP a router interface port holds, as
 * Neutron's get_isolated_subnets (a router port on another address is not the guests' way out).
 */
function routedSubnets(subnets: readonly Subnet[], ports: readonly Port[]): Set<string> {
  const gateways = new Map(
    subnets.flatMap((s) => (s.gateway_ip ? [[s.id, canonicalIp(s.gateway_ip)]] : [])),
  );
  const routed = new Set<string>();
  for (const p of ports) {
    if (!ROUTER_INTERFACE_OWNERS.includes(p.device_owner)) continue;
    for (const ip of p.fixed_ips)
      if (canonicalIp(ip.ip_address) === gateways.get(ip.subnet_id)) routed.add(ip.subnet_id);
  }
  return routed;
}

const dhcpSubnet = (s: Subnet, routed: boolean): DhcpSubnet => ({
  id: s.id,
  cidr: s.cidr,
  ip_version: s.ip_version === 6 ? '6' : '4',
  gateway_ip: s.gateway_ip,
  enable_dhcp: s.enable_dhcp,
  dns_nameservers: [...s.dns_nameservers],
  host_routes: s.host_routes.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
  routed,
});

/** One network as `host`'s dnsmasq must serve it, from what the API stores. Pure. */
export function dhcpNetworkOf(
  network: Pick<Network, 'id' | 'revision_number' | 'mtu'>,
  subnets: readonly Subnet[],
  ports: readonly Port[],
  host: string,
): DhcpNetwork {
  const deviceId = dhcpDeviceId(host, network.id);
  const mine = (p: Port) => p.device_owner === DHCP_OWNER && p['binding:host_id'] === host;
  const own = ports.find((p) => mine(p) && p.device_id === deviceId) ?? ports.find(mine);
  const routed = routedSubnets(subnets, ports);
  return {
    id: network.id,
    revision_number: network.revision_number,
    mtu: network.mtu,
    subnets: subnets.map((s) => dhcpSubnet(s, routed.has(s.id))),
    ports: ports.map(dhcpPort),
    dhcp_port: own ? dhcpPort(own) : null,
  };
}

export async function getNetworkInfo(
  db: Db,
  args: ArgsOf<'get_network_info'>,
): Promise<{ network: DhcpNetwork | null }> {
  // One transaction: the network, its subnets and ports are read as of one moment.
  return db.transaction(async (tx) => {
    if (!(await servesNetwork(tx, args.network_id, args.host))) return { network: null };
    const network = await getNetwork(tx, args.network_id);
    if (!network) return { network: null };
    const filter = { columns: { network_id: [network.id] }, clauses: [] };
    const subnets = await listSubnets(tx, filter);
    const ports = await listPorts(tx, filter);
    return { network: dhcpNetworkOf(network, subnets, ports, args.host) };
  });
}
