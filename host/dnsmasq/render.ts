/**
 * Neutron-style dnsmasq files for one network, rendered from the DHCP contract:
 *
 * - hosts (`--dhcp-hostsfile`): `<mac>,host-<ip-with-dashes>.<domain>,<ip>` per fixed IP
 *   of every port on a DHCP-enabled subnet, IPv6 in brackets;
 * - addn_hosts (`--addn-hosts`): `<ip>\t<fqdn> <name>` for DNS;
 * - opts (`--dhcp-optsfile`): per subnet tag `tag:subnet-<id>,option:...`: dns-server,
 *   classless-static-route and 249 (host routes plus the default route), router; for
 *   IPv6 option6:dns-server and option6:domain-search. The MTU (option 26) is not here
 *   but `--dhcp-option-force` in the argv: a tagged, unforced `option:mtu` line in this
 *   file would override the forced one and then go out only to clients that ask for it
 *   (udhcpc does not), which is how the MTU silently disappeared in the real test.
 *
 * Invariants: pure and deterministic (ports and subnets sorted by id, addresses in
 * canonical text), so equal inputs give byte-equal files and a diff means a real change.
 * Every value is checked against a strict pattern before any text exists; the first bad
 * one throws a ValidationError naming its field (`ports[1].mac_address`), so a newline,
 * quote, comma or `#` can never reach a file and nothing partial is ever produced.
 */
import type { DhcpNetwork } from '../../contracts/dhcp.ts';
import { ValidationError } from '../../contracts/schema.ts';
import {
  type Cidr,
  canonicalIp,
  type IpVersion,
  ipVersion,
  networkAddress,
  parseCidr,
} from '../ip/inet.ts';

export const DEFAULT_DOMAIN = 'openstacklocal';

/** The three files dnsmasq re-reads on SIGHUP. */
export interface DnsmasqFiles {
  hosts: string;
  addnHosts: string;
  opts: string;
}

export interface RenderOptions {
  /** DNS domain of the instances (Neutron's `dns_domain`); default `openstacklocal`. */
  domain?: string;
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

/** `host-10-9-0-11`, `host-2001-db8--5`: Neutron's name for an address. */
export function hostNameFor(address: string): string {
  return `host-${address.replace(/[.:]/g, '-')}`;
}

/** Checks every value of `net` the files will contain; throws naming the first bad field. */
export function checkNetwork(net: DhcpNetwork, opts: RenderOptions = {}): CheckedNetwork {
  const domain = opts.domain ?? DEFAULT_DOMAIN;
  if (typeof domain !== 'string' || !DOMAIN.test(domain))
    bad('domain', `must be a lowercase DNS domain, got ${JSON.stringify(domain)}`);
  const netId = id(net.id, 'id');
  if (!Number.isInteger(net.mtu) || net.mtu < 68 || net.mtu > 65535)
    bad('mtu', 'must be an integer between 68 and 65535');

  const byId = new Map<string, CheckedSubnet>();
  net.subnets.forEach((s, i) => {
    const f = `subnets[${i}]`;
    const sid = id(s.id, `${f}.id`);
    if (byId.has(sid)) bad(`${f}.id`, `duplicate subnet ${sid}`);
    const c = cidr(s.cidr, `${f}.cidr`);
    if (String(c.version) !== s.ip_version) bad(`${f}.ip_version`, `does not match cidr ${s.cidr}`);
    const gateway = s.gateway_ip === null ? null : ip(s.gateway_ip, `${f}.gateway_ip`, c.version);
    const dns = s.dns_nameservers.map((d, j) => ip(d, `${f}.dns_nameservers[${j}]`, c.version));
    const routes = s.host_routes.map((r, j) => {
      const dest = cidr(r.destination, `${f}.host_routes[${j}].destination`, c.version);
      return {
        destination: `${networkAddress(dest)}/${dest.prefix}`,
        nexthop: ip(r.nexthop, `${f}.host_routes[${j}].nexthop`, c.version),
      };
    });
    if (typeof s.enable_dhcp !== 'boolean') bad(`${f}.enable_dhcp`, 'must be true or false');
    byId.set(sid, {
      id: sid,
      tag: `subnet-${sid}`,
      version: c.version,
      cidr: c,
      enableDhcp: s.enable_dhcp,
      gateway,
      dns,
      routes,
    });
  });

  const indexed = net.ports.map((p, i) => ({ p, i }));
  indexed.sort((a, b) => (a.p.id < b.p.id ? -1 : a.p.id > b.p.id ? 1 : a.i - b.i));
  const hosts: CheckedHost[] = [];
  const seen = new Map<string, string>();
  for (const { p, i } of indexed) {
    const f = `ports[${i}]`;
    id(p.id, `${f}.id`);
    const mac = text(p.mac_address, `${f}.mac_address`).toLowerCase();
    if (!MAC.test(mac))
      bad(`${f}.mac_address`, `must be a MAC address, got ${JSON.stringify(p.mac_address)}`);
    p.fixed_ips.forEach((fip, j) => {
      const ff = `${f}.fixed_ips[${j}]`;
      const subnet = byId.get(id(fip.subnet_id, `${ff}.subnet_id`));
      const address = ip(fip.ip_address, `${ff}.ip_address`, subnet?.version);
      if (subnet === undefined || !subnet.enableDhcp) return;
      if (networkAddress({ ...subnet.cidr, address }) !== networkAddress(subnet.cidr))
        bad(`${ff}.ip_address`, `${address} is outside subnet ${subnet.id}`);
      const other = seen.get(address);
      if (other !== undefined)
        bad(`${ff}.ip_address`, `${address} is also the address of ${other}`);
      seen.set(address, ff);
      const name = hostNameFor(address);
      if (!LABEL.test(name)) bad(`${ff}.ip_address`, `gives the invalid host name ${name}`);
      hosts.push({ mac, ip: address, version: subnet.version, name, subnet });
    });
  }
  const subnets = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  return {
    id: netId,
    mtu: net.mtu,
    domain,
    subnets,
    dhcpSubnets: subnets.filter((s) => s.enableDhcp),
    hosts,
  };
}

const bracket = (h: CheckedHost) => (h.version === 6 ? `[${h.ip}]` : h.ip);

export function renderHostsFrom(n: CheckedNetwork): string {
  return n.hosts.map((h) => `${h.mac},${h.name}.${n.domain},${bracket(h)}\n`).join('');
}

export function renderAddnHostsFrom(n: CheckedNetwork): string {
  return n.hosts.map((h) => `${h.ip}\t${h.name}.${n.domain} ${h.name}\n`).join('');
}

export function renderOptsFrom(n: CheckedNetwork): string {
  const lines: string[] = [];
  for (const s of n.dhcpSubnets) {
    const tag = `tag:${s.tag}`;
    if (s.version === 6) {
      if (s.dns.length > 0)
        lines.push(`${tag},option6:dns-server,${s.dns.map((d) => `[${d}]`).join(',')}`);
      lines.push(`${tag},option6:domain-search,${n.domain}`);
      continue;
    }
    if (s.dns.length > 0) lines.push(`${tag},option:dns-server,${s.dns.join(',')}`);
    // As Neutron: a 0.0.0.0/0 host route is the gateway when the subnet has none; clients
    // that get option 121 ignore option 3, so the default route joins the static routes.
    let gateway = s.gateway;
    const routes: string[] = [];
    for (const r of s.routes) {
      if (r.destination === '0.0.0.0/0') gateway ??= r.nexthop;
      else routes.push(`${r.destination},${r.nexthop}`);
    }
    if (routes.length > 0) {
      if (gateway !== null) routes.push(`0.0.0.0/0,${gateway}`);
      lines.push(`${tag},option:classless-static-route,${routes.join(',')}`);
      lines.push(`${tag},249,${routes.join(',')}`);
    }
    lines.push(gateway === null ? `${tag},option:router` : `${tag},option:router,${gateway}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** All three files; throws (naming the field) before producing any of them. */
export function renderFiles(net: DhcpNetwork, opts: RenderOptions = {}): DnsmasqFiles {
  const n = checkNetwork(net, opts);
  return { hosts: renderHostsFrom(n), addnHosts: renderAddnHostsFrom(n), opts: renderOptsFrom(n) };
}

export function renderHosts(net: DhcpNetwork, opts: RenderOptions = {}): string {
  return renderHostsFrom(checkNetwork(net, opts));
}

export function renderAddnHosts(net: DhcpNetwork, opts: RenderOptions = {}): string {
  return renderAddnHostsFrom(checkNetwork(net, opts));
}

export function renderOpts(net: DhcpNetwork, opts: RenderOptions = {}): string {
  return renderOptsFrom(checkNetwork(net, opts));
}
