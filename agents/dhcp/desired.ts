/**
 * What one network's DHCP service must look like on this host, from the API's
 * DhcpNetwork: namespace, tap, addresses, dnsmasq files and argv. Pure.
 *
 * Invariants: `null` means "this host must serve nothing for the network" (moved away,
 * deleted, no DHCP port or no DHCP-enabled subnet), and every host object it owned is
 * removed; anything non-null passed the dnsmasq renderer's strict validation, and what
 * failed it (or the contract, on arrival) is left out and listed in `rejected`.
 *
 * Isolated metadata (Neutron's should_enable_metadata, for IPv4): with the relay's socket
 * set ([dhcp] enable_isolated_metadata and the shared secret), a network with an isolated
 * DHCP-enabled IPv4 subnet the DHCP port has an address on gets a metadata proxy (haproxy
 * on 169.254.169.254:80 in the namespace, X-Kumo-Network-ID = the network) and
 * 169.254.169.254/32 on its tap; dnsmasq routes guests there (host/dnsmasq/metadata.ts).
 * A network whose subnets are all routed, or with the option off, has neither.
 */
import { createHash } from 'node:crypto';
import type { DhcpNetwork, DhcpPort } from '../../contracts/dhcp.ts';
import { formatIp, parseIp } from '../../contracts/inet.ts';
import { METADATA_IP } from '../../contracts/metadata.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { MAX_REJECTED, type RejectedPart } from '../../contracts/status.ts';
import { dnsmasqArgvOf } from '../../host/dnsmasq/argv.ts';
import { type CheckedNetwork, checkNetwork } from '../../host/dnsmasq/check.ts';
import { type DnsmasqFiles, renderChecked } from '../../host/dnsmasq/render.ts';
import { dhcpNamespace, portDevice } from '../../host/ip/names.ts';
import type { ProxySpec } from '../lib/metadata-proxy.ts';

export interface DhcpSettings {
  /** /var/lib/kumo/dhcp: one directory per network, named by its id. */
  stateRoot: string;
  leaseSeconds: number;
  intBridge: string;
  /** Where ovs-vswitchd runs, when not in this process's namespace (the test lab). */
  vswitchdNetns?: string;
  /** `[DEFAULT] netns_prefix`: '' in production. */
  netnsPrefix: string;
  /** The metadata relay's socket when isolated metadata is on; absent: off. */
  metadataSocket?: string;
}

export interface DesiredDhcp {
  networkId: string;
  portId: string;
  netns: string;
  device: string;
  mac: string;
  mtu: number;
  /** CIDRs dnsmasq serves on the tap: the DHCP port's addresses with their subnets' prefixes. */
  addresses: string[];
  /** The network's metadata proxy (its tap then holds 169.254.169.254/32 too); null: none. */
  metadata: ProxySpec | null;
  /** Those on DHCP-enabled subnets: where dnsmasq has a range, so leases and releases. */
  dhcpAddresses: string[];
  stateDir: string;
  files: DnsmasqFiles;
  /** Digest of the files, recorded once dnsmasq was signalled to serve them. */
  digest: string;
  argv: string[];
  /** Subnets and ports served without (in whole or part), with the reasons; sorted, capped. */
  rejected: RejectedPart[];
}

export const filesDigest = (f: DnsmasqFiles) =>
  createHash('sha256').update(`${f.hosts}\0${f.addnHosts}\0${f.opts}`).digest('hex');
export const servedMarkerOf = (stateDir: string) => `${stateDir}/served`;

export const stateDirOf = (s: DhcpSettings, networkId: string) => `${s.stateRoot}/${networkId}`;
/** The metadata proxy's own directory (haproxy.cfg, haproxy.pid) in the network's. */
export const proxyDirOf = (stateDir: string) => `${stateDir}/metadata-proxy`;
export const netnsOf = (s: DhcpSettings, networkId: string) =>
  `${s.netnsPrefix}${dhcpNamespace(networkId)}`;

/** The tap's addresses: the DHCP port's, on the subnets that are served. */
function tapAddresses(port: DhcpPort, checked: CheckedNetwork) {
  const served = new Map(checked.subnets.map((sub) => [sub.id, sub]));
  return port.fixed_ips.flatMap((ip, j) => {
    const subnet = served.get(ip.subnet_id);
    if (!subnet) return [];
    const address = parseIp(ip.ip_address);
    if (address?.version !== subnet.version)
      throw new ValidationError(`dhcp_port.fixed_ips[${j}].ip_address`, 'is not on its subnet');
    const cidr = `${formatIp(address.version, address.value)}/${subnet.cidr.prefix}`;
    return [{ cidr, dhcp: subnet.enableDhcp }];
  });
}

/** The proxy, when metadata is on and dnsmasq routes some subnet's guests to it. */
function metadataProxy(checked: CheckedNetwork, s: DhcpSettings, stateDir: string) {
  const socket = s.metadataSocket;
  if (socket === undefined || !checked.dhcpSubnets.some((x) => x.metadataVia !== null)) return null;
  return {
    netns: netnsOf(s, checked.id),
    dir: proxyDirOf(stateDir),
    bind: { address: METADATA_IP, port: 80 },
    header: { name: 'X-Kumo-Network-ID' as const, value: checked.id },
    socket,
  };
}

/** The parts left out, sorted by kind and id, at most MAX_REJECTED. */
const capped = (parts: RejectedPart[]) =>
  parts.sort((a, b) => (a.resource + a.id < b.resource + b.id ? -1 : 1)).slice(0, MAX_REJECTED);

/**
 * `arrived`: the items the contract already left out (parseNetworkInfo). Throws when a
 * subnet that may have DHCP was left out and none with DHCP remains: nothing can be
 * served, and "nothing to serve here" would tear the network down as if it were healthy.
 */
export function desiredDhcp(
  net: DhcpNetwork | null,
  s: DhcpSettings,
  arrived: readonly RejectedPart[] = [],
): DesiredDhcp | null {
  if (!net?.dhcp_port) return null;
  const checked = checkNetwork(net, { isolatedMetadata: s.metadataSocket !== undefined });
  const rejected = capped([...arrived, ...checked.rejected]);
  if (checked.dhcpSubnets.length === 0) {
    const withoutDhcp = new Set(
      net.subnets.filter((x) => x.enable_dhcp === false).map((x) => x.id),
    );
    if (!rejected.some((r) => r.resource === 'subnet' && !withoutDhcp.has(r.id))) return null;
    const why = rejected.map((r) => `${r.resource} ${r.id}: ${r.reason}`).join('; ');
    throw new ValidationError('subnets', `no DHCP-enabled subnet can be served: ${why}`);
  }
  const port = net.dhcp_port;
  const device = portDevice('tap', port.id);
  const stateDir = stateDirOf(s, net.id);
  const files = renderChecked(checked);
  const onSubnets = tapAddresses(port, checked);
  return {
    networkId: net.id,
    portId: port.id,
    netns: netnsOf(s, net.id),
    device,
    mac: port.mac_address.toLowerCase(),
    mtu: net.mtu,
    addresses: onSubnets.map((a) => a.cidr).sort(),
    dhcpAddresses: onSubnets.filter((a) => a.dhcp).map((a) => a.cidr),
    metadata: metadataProxy(checked, s, stateDir),
    stateDir,
    files,
    digest: filesDigest(files),
    argv: dnsmasqArgvOf(checked, { stateDir, interfaceName: device, leaseSeconds: s.leaseSeconds }),
    rejected,
  };
}
