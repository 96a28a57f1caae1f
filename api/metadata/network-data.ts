/**
 * network_data.json as Nova's netutils.get_network_metadata builds it from an instance's
 * VIFs: one link per port with a subnet (`tap` + 11 characters of the port id, type `ovs`,
 * the network MTU unless a DHCP server serves a subnet), one network per port for its
 * first IPv4 and first IPv6 subnet (`ipv4_dhcp` / `ipv6_dhcp` when a DHCP port serves the
 * subnet, Nova's dhcp_server meta, whatever enable_dhcp says; else the static address,
 * netmask, default route, host routes and DNS), and the DNS services.
 *
 * Invariant: pure; the order is the instance's NIC order, then IPv4 before IPv6.
 */
import { canonicalIp } from '../../contracts/inet.ts';
import type { MetaPort, MetaSubnet } from './instance-data.ts';

type Json = Record<string, unknown>;

/** The netmask of an IPv4 prefix length, dotted. */
function v4Netmask(prefix: number): string {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.');
}

/** The netmask of an IPv6 prefix length, in canonical form (as netaddr prints it). */
function v6Netmask(prefix: number): string {
  const groups = Array.from({ length: 8 }, (_, i) => {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    return bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
  });
  const text = groups.map((g) => g.toString(16)).join(':');
  return canonicalIp(text) ?? text;
}

const netmaskOf = (s: MetaSubnet) => {
  const prefix = Number(s.cidr.split('/')[1]);
  return s.ipVersion === 4 ? v4Netmask(prefix) : v6Netmask(prefix);
};

const dnsServices = (s: MetaSubnet) =>
  s.dnsNameservers.map((address) => ({ type: 'dns', address }));

function routesOf(s: MetaSubnet): Json[] {
  const any = s.ipVersion === 4 ? '0.0.0.0' : '::';
  const routes: Json[] = s.gatewayIp ? [{ network: any, netmask: any, gateway: s.gatewayIp }] : [];
  for (const r of s.hostRoutes) {
    const [network] = r.destination.split('/');
    const sub = { ...s, cidr: r.destination };
    routes.push({ network, netmask: netmaskOf(sub), gateway: r.nexthop });
  }
  return routes;
}

function netOf(port: MetaPort, s: MetaSubnet, address: string, num: number, link: string): Json {
  const id = `network${num}`;
  if (s.dhcpServer) return { id, type: `ipv${s.ipVersion}_dhcp`, link, network_id: port.networkId };
  return {
    id,
    type: `ipv${s.ipVersion}`,
    link,
    ip_address: address,
    netmask: netmaskOf(s),
    routes: routesOf(s),
    network_id: port.networkId,
    services: dnsServices(s),
  };
}

const linkOf = (p: MetaPort) => ({
  id: `tap${p.id.slice(0, 11)}`,
  vif_id: p.id,
  type: 'ovs',
  mtu: p.fixedIps.some((ip) => ip.subnet.dhcpServer) ? null : p.mtu,
  ethernet_mac_address: p.macAddress,
});

export function networkData(ports: readonly MetaPort[]) {
  const links: Json[] = [];
  const networks: Json[] = [];
  const services: { type: string; address: string }[] = [];
  for (const port of ports) {
    const firsts = ([4, 6] as const)
      .map((v) => port.fixedIps.find((ip) => ip.subnet.ipVersion === v))
      .filter((ip) => ip !== undefined);
    if (firsts.length === 0) continue;
    const link = linkOf(port);
    links.push(link);
    for (const ip of firsts) {
      networks.push(netOf(port, ip.subnet, ip.ipAddress, networks.length, link.id));
      for (const dns of dnsServices(ip.subnet))
        if (!services.some((s) => s.address === dns.address)) services.push(dns);
    }
  }
  return { links, networks, services };
}
