/**
 * Every value of one network that dnsmasq's files and command line will contain, checked
 * against the strict patterns of those formats and made canonical. Pure.
 *
 * Invariants:
 * - nothing unchecked reaches a file: a newline, quote, comma or `#` fails its pattern;
 * - one bad value is that item's problem, not its network's: a bad nameserver, route or
 *   gateway is left out of its subnet's options; a subnet that cannot be served (its id,
 *   cidr or version, or IPv6 the kernel or dnsmasq would refuse: an MTU under 1280,
 *   DHCPv6 on a prefix shorter than /64) is left out with its hosts — one such subnet
 *   must not stop dnsmasq or the tap's addresses for all; a bad port, or one bad fixed IP of a
 *   port, is left out of the hosts files. Each is listed in `rejected` (the port or
 *   subnet, with the fields at fault), so the agent reports it and serves everything
 *   else. Only the network's own attributes (id, MTU, domain) throw;
 * - host names are valid DNS labels for every address dnsmasq can serve, and unique.
 */
import { type DhcpNetwork, type DhcpPort, type DhcpSubnet, partId } from '../../contracts/dhcp.ts';
import { IPV6_MIN_MTU, ROUTER_INTERFACE_OWNERS } from '../../contracts/network.ts';
import { ValidationError } from '../../contracts/schema.ts';
import type { RejectedPart } from '../../contracts/status.ts';
import {
  type Cidr,
  canonicalIp,
  type IpVersion,
  ipVersion,
  networkAddress,
  parseCidr,
} from '../ip/inet.ts';
import { isolatedMetadataVia } from './metadata.ts';

export const DEFAULT_DOMAIN = 'openstacklocal';

export interface RenderOptions {
  /** DNS domain of the instances (Neutron's `dns_domain`); default `openstacklocal`. */
  domain?: string;
  /** Route 169.254.169.254 through the DHCP port on isolated IPv4 subnets (metadata.ts). */
  isolatedMetadata?: boolean;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DOMAIN =
  /^(?=.{1,200}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A subnet as the renderer uses it: every value checked and canonical. */
export interface CheckedSubnet {
  id: string;
  tag: string;
  version: IpVersion;
  cidr: Cidr;
  enableDhcp: boolean;
  gateway: string | null;
  dns: string[];
  routes: { destination: string; nexthop: string }[];
  /** The metadata route's nexthop (the DHCP port's address) on an isolated subnet. */
  metadataVia: string | null;
}

export interface CheckedHost {
  mac: string;
  ip: string;
  version: IpVersion;
  name: string;
  subnet: CheckedSubnet;
}

export interface CheckedNetwork {
  id: string;
  mtu: number;
  domain: string;
  /** Sorted by id. */
  subnets: CheckedSubnet[];
  /** DHCP-enabled subnets only, sorted by id. */
  dhcpSubnets: CheckedSubnet[];
  /** One per fixed IP on a DHCP-enabled subnet; ports sorted by id. */
  hosts: CheckedHost[];
  /** Subnets and ports left out, in whole or in part, with the reasons; sorted. */
  rejected: RejectedPart[];
}

function bad(field: string, reason: string): never {
  throw new ValidationError(field, reason);
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') bad(field, 'must be a string');
  return value;
}

function ip(value: unknown, field: string, version?: IpVersion): string {
  const v = ipVersion(text(value, field));
  if (v === null) bad(field, `must be an IP address, got ${JSON.stringify(value)}`);
  if (version !== undefined && v !== version) bad(field, `must be an IPv${version} address`);
  return canonicalIp(value as string);
}

function cidr(value: unknown, field: string, version?: IpVersion): Cidr {
  const c = parseCidr(text(value, field));
  if (c === null) bad(field, `must be a CIDR, got ${JSON.stringify(value)}`);
  if (version !== undefined && c.version !== version) bad(field, `must be an IPv${version} CIDR`);
  return { ...c, address: canonicalIp(c.address) };
}

function id(value: unknown, field: string): string {
  if (!ID.test(text(value, field)))
    bad(field, `must be an id of [A-Za-z0-9-], got ${JSON.stringify(value)}`);
  return value as string;
}

/**
 * `host-10-9-0-11`, `host-2001-db8--5`: Neutron's name for an address. An IPv6 address
 * ending in `::` would end the label with a hyphen; it is named as the equal `…::0`.
 */
export function hostNameFor(address: string): string {
  const name = `host-${address.replace(/[.:]/g, '-')}`;
  return name.endsWith('-') ? `${name}0` : name;
}

/** The problems found, per item; `check` runs one check and notes its failure. */
function problems() {
  const found = new Map<string, RejectedPart & { reasons: string[] }>();
  const note = (resource: 'port' | 'subnet', itemId: string, reason: string) => {
    const key = `${resource}:${itemId}`;
    const entry = found.get(key) ?? { resource, id: itemId, reason: '', reasons: [] };
    entry.reasons.push(reason);
    found.set(key, entry);
  };
  return {
    note,
    check<T>(resource: 'port' | 'subnet', itemId: string, run: () => T, after = ''): T | undefined {
      try {
        return run();
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        note(resource, itemId, `${e.message}${after}`);
        return undefined;
      }
    },
    list: (): RejectedPart[] =>
      [...found.values()]
        .map(({ resource, id, reasons }) => ({
          resource,
          id,
          reason: reasons.join('; ').slice(0, 1024),
        }))
        .sort((a, b) => (a.resource + a.id < b.resource + b.id ? -1 : 1)),
  };
}
type Problems = ReturnType<typeof problems>;

/** What the kernel and dnsmasq refuse: an IPv6 address under 1280, DHCPv6 under a /64. */
function checkServable(c: Cidr, dhcp: boolean, mtu: number) {
  if (c.version !== 6) return;
  if (mtu < IPV6_MIN_MTU)
    bad('cidr', `IPv6 needs an MTU of at least ${IPV6_MIN_MTU}; the network's is ${mtu}`);
  if (dhcp && c.prefix < 64)
    bad('cidr', `DHCPv6 needs a prefix length of at least 64; the subnet's is ${c.prefix}`);
}

/** A served subnet's options: each bad gateway, nameserver or route is left out alone. */
function subnetOptions(s: DhcpSubnet, sid: string, version: IpVersion, p: Problems) {
  const each = <T>(run: () => T) => p.check('subnet', sid, run, ' (left out)');
  const gateway =
    s.gateway_ip === null ? null : (each(() => ip(s.gateway_ip, 'gateway_ip', version)) ?? null);
  const dns = s.dns_nameservers.flatMap((d, j) => {
    const v = each(() => ip(d, `dns_nameservers[${j}]`, version));
    return v === undefined ? [] : [v];
  });
  const routes = s.host_routes.flatMap((r, j) => {
    const route = each(() => {
      const dest = cidr(r.destination, `host_routes[${j}].destination`, version);
      const nexthop = ip(r.nexthop, `host_routes[${j}].nexthop`, version);
      return { destination: `${networkAddress(dest)}/${dest.prefix}`, nexthop };
    });
    return route === undefined ? [] : [route];
  });
  return { gateway, dns, routes };
}

function checkSubnet(s: DhcpSubnet, i: number, mtu: number, p: Problems) {
  const whole = () => {
    const sid = id(s.id, 'id');
    const c = cidr(s.cidr, 'cidr');
    if (String(c.version) !== s.ip_version) bad('ip_version', `does not match cidr ${s.cidr}`);
    if (typeof s.enable_dhcp !== 'boolean') bad('enable_dhcp', 'must be true or false');
    checkServable(c, s.enable_dhcp, mtu);
    return { sid, c };
  };
  const ok = p.check('subnet', partId(s.id, 'subnets', i), whole, ' (subnet left out)');
  if (!ok) return undefined;
  const { sid, c } = ok;
  return {
    id: sid,
    tag: `subnet-${sid}`,
    version: c.version,
    cidr: c,
    enableDhcp: s.enable_dhcp,
    ...subnetOptions(s, sid, c.version, p),
  };
}

function checkSubnets(
  net: DhcpNetwork,
  p: Problems,
  opts: RenderOptions,
): Map<string, CheckedSubnet> {
  const byId = new Map<string, CheckedSubnet>();
  net.subnets.forEach((s, i) => {
    if (typeof s.id === 'string' && byId.has(s.id)) {
      p.note('subnet', partId(s.id, 'subnets', i), `id: duplicate subnet ${s.id} (left out)`);
      return;
    }
    const checked = checkSubnet(s, i, net.mtu, p);
    const metadata = opts.isolatedMetadata === true;
    if (checked)
      byId.set(checked.id, {
        ...checked,
        metadataVia: isolatedMetadataVia(net, checked, metadata),
      });
  });
  return byId;
}

/** Addresses and names taken so far: the first port (by id) keeps one. */
interface Taken {
  addresses: Map<string, string>;
  names: Set<string>;
}

function checkFixedIp(
  port: DhcpPort,
  j: number,
  subnet: CheckedSubnet,
  taken: Taken,
): { ip: string; name: string } {
  const field = `fixed_ips[${j}].ip_address`;
  const address = ip(port.fixed_ips[j]?.ip_address, field, subnet.version);
  if (networkAddress({ ...subnet.cidr, address }) !== networkAddress(subnet.cidr))
    bad(field, `${address} is outside subnet ${subnet.id}`);
  if (address === subnet.gateway && !ROUTER_INTERFACE_OWNERS.includes(port.device_owner))
    bad(field, `${address} is the gateway of subnet ${subnet.id}`);
  const other = taken.addresses.get(address);
  if (other !== undefined) bad(field, `${address} is also the address of port ${other}`);
  const name = hostNameFor(address);
  if (!LABEL.test(name) || taken.names.has(name))
    bad(field, `gives an invalid or taken host name ${name}`);
  return { ip: address, name };
}

function checkPort(
  port: DhcpPort,
  i: number,
  subnets: Map<string, CheckedSubnet>,
  taken: Taken,
  p: Problems,
): CheckedHost[] {
  const rid = partId(port.id, 'ports', i);
  const mac = p.check(
    'port',
    rid,
    () => {
      id(port.id, 'id');
      const m = text(port.mac_address, 'mac_address').toLowerCase();
      if (!MAC.test(m))
        bad('mac_address', `must be a MAC address, got ${JSON.stringify(port.mac_address)}`);
      return m;
    },
    ' (port left out)',
  );
  if (mac === undefined) return [];
  return port.fixed_ips.flatMap((fip, j) => {
    const subnet = typeof fip.subnet_id === 'string' ? subnets.get(fip.subnet_id) : undefined;
    if (subnet === undefined || !subnet.enableDhcp) return [];
    const host = p.check('port', rid, () => checkFixedIp(port, j, subnet, taken), ' (left out)');
    if (host === undefined) return [];
    taken.addresses.set(host.ip, rid);
    taken.names.add(host.name);
    return [{ mac, ip: host.ip, version: subnet.version, name: host.name, subnet }];
  });
}

/**
 * Checks every value of `net` the files and argv will contain. Throws (naming the field)
 * only for the network's own attributes; bad subnets and ports are left out, in `rejected`.
 */
export function checkNetwork(net: DhcpNetwork, opts: RenderOptions = {}): CheckedNetwork {
  const domain = opts.domain ?? DEFAULT_DOMAIN;
  if (typeof domain !== 'string' || !DOMAIN.test(domain))
    bad('domain', `must be a lowercase DNS domain, got ${JSON.stringify(domain)}`);
  const netId = id(net.id, 'id');
  if (!Number.isInteger(net.mtu) || net.mtu < 68 || net.mtu > 65535)
    bad('mtu', 'must be an integer between 68 and 65535');
  const p = problems();
  const byId = checkSubnets(net, p, opts);
  const indexed = net.ports.map((port, i) => ({ port, i }));
  indexed.sort((a, b) => (a.port.id < b.port.id ? -1 : a.port.id > b.port.id ? 1 : a.i - b.i));
  const taken: Taken = { addresses: new Map(), names: new Set() };
  const hosts = indexed.flatMap(({ port, i }) => checkPort(port, i, byId, taken, p));
  const subnets = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  return {
    id: netId,
    mtu: net.mtu,
    domain,
    subnets,
    dhcpSubnets: subnets.filter((s) => s.enableDhcp),
    hosts,
    rejected: p.list(),
  };
}
