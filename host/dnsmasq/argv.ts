/**
 * The dnsmasq command line for one network, in the shape of Neutron's DHCP agent, and the
 * paths of its files in the network's state directory (`host`, `addn_hosts`, `opts`,
 * `leases`, `pid`, as Neutron names them).
 *
 * Invariants: pure; everything in the argv is checked (check.ts for the network,
 * a strict path pattern for the state directory, a device-name pattern for the interface).
 * `--conf-file=/dev/null` keeps /etc/dnsmasq.conf out; `--bind-interfaces` plus
 * `--interface` keeps it on the network's tap only. The process is identified by its
 * `--pid-file=` argument (`dnsmasqIdentity`), unique per state directory.
 */
import type { DhcpNetwork } from '../../contracts/dhcp.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { cidrSize, netmaskV4, networkAddress } from '../ip/inet.ts';
import { type CheckedNetwork, checkNetwork, type RenderOptions } from './check.ts';

export interface DnsmasqPaths {
  dir: string;
  pid: string;
  hosts: string;
  addnHosts: string;
  opts: string;
  leases: string;
}

export interface ArgvOptions extends RenderOptions {
  /** Absolute directory holding this network's files, e.g. /var/lib/kumo/dhcp/<network id>. */
  stateDir: string;
  /** The device dnsmasq serves (the DHCP port's tap inside the namespace). */
  interfaceName: string;
  /** Lease time in seconds (Neutron's dhcp_lease_duration); default 86400. */
  leaseSeconds?: number;
  /** Upper bound for --dhcp-lease-max (Neutron's dnsmasq_lease_max); default 2^24. */
  leaseMax?: number;
  /** The dnsmasq binary; default `dnsmasq`. */
  binary?: string;
}

const PATH = /^\/[A-Za-z0-9_.+-]+(\/[A-Za-z0-9_.+-]+)*$/;
const DEVICE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export function dnsmasqPaths(stateDir: string): DnsmasqPaths {
  if (
    typeof stateDir !== 'string' ||
    !PATH.test(stateDir) ||
    stateDir.split('/').some((p) => p === '.' || p === '..')
  )
    throw new ValidationError(
      'stateDir',
      `must be a plain absolute path, got ${JSON.stringify(stateDir)}`,
    );
  return {
    dir: stateDir,
    pid: `${stateDir}/pid`,
    hosts: `${stateDir}/host`,
    addnHosts: `${stateDir}/addn_hosts`,
    opts: `${stateDir}/opts`,
    leases: `${stateDir}/leases`,
  };
}

/** The cmdline substring that names this network's dnsmasq (for isRunning). */
export function dnsmasqIdentity(paths: DnsmasqPaths): string {
  return `--pid-file=${paths.pid}`;
}

/** `--dhcp-range` values: `set:subnet-<id>,<network>,static,<netmask|prefix>,<lease>s`. */
export function dhcpRanges(n: CheckedNetwork, leaseSeconds: number): string[] {
  return n.dhcpSubnets.map((s) => {
    const mask = s.version === 4 ? netmaskV4(s.cidr.prefix) : String(s.cidr.prefix);
    return `set:${s.tag},${networkAddress(s.cidr)},static,${mask},${leaseSeconds}s`;
  });
}

export function dnsmasqArgv(net: DhcpNetwork, opts: ArgvOptions): string[] {
  return dnsmasqArgvOf(checkNetwork(net, opts), opts);
}

/** The argv of a checked network (its domain is the one it was checked with). */
export function dnsmasqArgvOf(n: CheckedNetwork, opts: ArgvOptions): string[] {
  const paths = dnsmasqPaths(opts.stateDir);
  if (typeof opts.interfaceName !== 'string' || !DEVICE.test(opts.interfaceName))
    throw new ValidationError(
      'interfaceName',
      `must be a device name, got ${JSON.stringify(opts.interfaceName)}`,
    );
  const lease = opts.leaseSeconds ?? 86400;
  if (!Number.isInteger(lease) || lease < 120 || lease > 2 ** 31)
    throw new ValidationError('leaseSeconds', 'must be an integer of at least 120');
  const cap = opts.leaseMax ?? 2 ** 24;
  if (!Number.isInteger(cap) || cap < 1)
    throw new ValidationError('leaseMax', 'must be a positive integer');
  if (n.dhcpSubnets.length === 0)
    throw new ValidationError('subnets', 'the network has no DHCP-enabled subnet');
  const binary = opts.binary ?? 'dnsmasq';
  if (!/^[A-Za-z0-9_./-]+$/.test(binary)) throw new ValidationError('binary', 'invalid');

  const possible = n.dhcpSubnets.reduce((sum, s) => sum + cidrSize(s.cidr), 0n);
  const leaseMax = possible < BigInt(cap) ? Number(possible) : cap;
  const hasV4 = n.dhcpSubnets.some((s) => s.version === 4);
  return [
    binary,
    '--no-hosts',
    '--no-resolv',
    `--pid-file=${paths.pid}`,
    `--dhcp-hostsfile=${paths.hosts}`,
    `--addn-hosts=${paths.addnHosts}`,
    `--dhcp-optsfile=${paths.opts}`,
    `--dhcp-leasefile=${paths.leases}`,
    '--dhcp-match=set:ipxe,175',
    '--local-service',
    '--bind-interfaces',
    `--interface=${opts.interfaceName}`,
    '--except-interface=lo',
    ...dhcpRanges(n, lease).map((r) => `--dhcp-range=${r}`),
    ...(hasV4 ? [`--dhcp-option-force=option:mtu,${n.mtu}`] : []),
    `--dhcp-lease-max=${leaseMax}`,
    '--conf-file=/dev/null',
    `--domain=${n.domain}`,
  ];
}
