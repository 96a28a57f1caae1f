/**
 * Neutron-style dnsmasq files for one network, rendered from the DHCP contract:
 *
 * - hosts (`--dhcp-hostsfile`): `<mac>,host-<ip-with-dashes>.<domain>,<ip>` per fixed IP
 *   of every port on a DHCP-enabled subnet, IPv6 in brackets;
 * - addn_hosts (`--addn-hosts`): `<ip>\t<fqdn> <name>` for DNS;
 * - opts (`--dhcp-optsfile`): per subnet tag `tag:subnet-<id>,option:...`: dns-server,
 *   classless-static-route and 249 (host routes, on an isolated subnet with isolated
 *   metadata on the route to 169.254.169.254/32 through the DHCP port (metadata.ts), and
 *   the default route), router; for
 *   IPv6 option6:dns-server and option6:domain-search. The MTU (option 26) is not here
 *   but `--dhcp-option-force` in the argv: a tagged, unforced `option:mtu` line in this
 *   file would override the forced one and then go out only to clients that ask for it
 *   (udhcpc does not), which is how the MTU silently disappeared in the real test.
 *
 * Invariants: pure and deterministic (ports and subnets sorted by id, addresses in
 * canonical text), so equal inputs give byte-equal files and a diff means a real change.
 * Every value is checked (check.ts) against a strict pattern before any text exists, so
 * a newline, quote, comma or `#` can never reach a file; what fails a check is left out
 * of the files (and listed by checkNetwork), everything else is served.
 */
import type { DhcpNetwork } from '../../contracts/dhcp.ts';
import { METADATA_CIDR } from '../../contracts/metadata.ts';
import {
  type CheckedHost,
  type CheckedNetwork,
  checkNetwork,
  type RenderOptions,
} from './check.ts';

/** The three files dnsmasq re-reads on SIGHUP. */
export interface DnsmasqFiles {
  hosts: string;
  addnHosts: string;
  opts: string;
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
    if (s.metadataVia !== null && !routes.some((r) => r.startsWith(`${METADATA_CIDR},`)))
      routes.push(`${METADATA_CIDR},${s.metadataVia}`);
    if (routes.length > 0) {
      if (gateway !== null) routes.push(`0.0.0.0/0,${gateway}`);
      lines.push(`${tag},option:classless-static-route,${routes.join(',')}`);
      lines.push(`${tag},249,${routes.join(',')}`);
    }
    lines.push(gateway === null ? `${tag},option:router` : `${tag},option:router,${gateway}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** All three files of a checked network. */
export function renderChecked(n: CheckedNetwork): DnsmasqFiles {
  return { hosts: renderHostsFrom(n), addnHosts: renderAddnHostsFrom(n), opts: renderOptsFrom(n) };
}

/** All three files; what checkNetwork leaves out is not in them. */
export function renderFiles(net: DhcpNetwork, opts: RenderOptions = {}): DnsmasqFiles {
  return renderChecked(checkNetwork(net, opts));
}
