/**
 * Subnet attributes validated the way Neutron validates them (db_base_plugin_v2's
 * _validate_subnet, ipam_backend_mixin's _validate_subnet_cidr), pure: the CIDR, the
 * gateway, allocation pools, DNS servers and host routes, and a stored subnet's plan.
 *
 * Invariants: every address of a subnet is of the subnet's IP version, on create and on
 * update (checked against the stored subnet); no CIDR is a /0 or touches ::ffff:0:0/96; a
 * subnet with DHCP enabled is never loopback, multicast, link-local, 0.0.0.0/x or too
 * long a prefix for dnsmasq to serve; the gateway is never the network or broadcast
 * address and never lies inside a pool; pools lie inside the usable range, start before
 * they end and never overlap; nameservers are addresses a client can query (not `::`, not
 * IPv4-mapped); everything is stored canonical and without duplicates.
 */
import { ApiError } from '../contracts/errors.ts';
import { IPV6_MIN_MTU, type Subnet, type SubnetCreate } from '../contracts/network.ts';
import {
  type Cidr,
  cidrsOverlap,
  defaultPools,
  formatCidr,
  formatIp,
  type Ip,
  type IpVersion,
  isV4Mapped,
  lastAddress,
  type Pool,
  parseCidr,
  parseIp,
  type Range,
  toPools,
  usableRange,
  V4_MAPPED,
  within,
} from './ipam.ts';

export const badInput = (field: string, reason: string) =>
  new ApiError('BadRequest', `Invalid input for ${field}. Reason: ${reason}.`);

/** Neutron's InvalidInput: "Invalid input for operation: <message>." */
export const invalidInput = (message: string) =>
  new ApiError(
    'InvalidInput',
    `Invalid input for operation: ${message}${message.endsWith('.') ? '' : '.'}`,
  );

/** Neutron's _validate_ip_version: `raw` (the `name` attribute) is of the other family. */
function checkVersion(version: IpVersion, ip: { version: IpVersion }, name: string, raw: string) {
  if (ip.version !== version)
    throw invalidInput(`${name} '${raw}' does not match the ip_version '${version}'`);
}

const block = (text: string): Cidr => {
  const parsed = parseCidr(text);
  if (!('cidr' in parsed)) throw new Error(parsed.reason);
  return parsed.cidr;
};

/** Ranges dnsmasq cannot serve: Neutron refuses the first two, Kumo link-local as well. */
const NO_DHCP_BLOCKS = [
  { kind: 'Multicast', blocks: [block('224.0.0.0/4'), block('ff00::/8')] },
  { kind: 'Loopback', blocks: [block('127.0.0.0/8'), block('::1/128')] },
  { kind: 'Link-local', blocks: [block('169.254.0.0/16'), block('fe80::/10')] },
] as const;

/**
 * A CIDR that is to have DHCP enabled: refused as Neutron's _validate_subnet does, and
 * an IPv6 prefix shorter than /64, which dnsmasq refuses to serve (Neutron's agent
 * skips such a subnet silently; Kumo says so when it is created).
 */
export function checkDhcpCidr(cidr: Cidr): void {
  if (cidr.prefix > (cidr.version === 4 ? 30 : 126))
    throw invalidInput('Subnet has a prefix length that is incompatible with DHCP service enabled');
  for (const { kind, blocks } of NO_DHCP_BLOCKS)
    if (blocks.some((b) => within(cidr, b)))
      throw invalidInput(`${kind} IP subnet is not supported if enable_dhcp is True`);
  if (cidr.version === 4 && cidr.network === 0n)
    throw invalidInput("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.");
  // A /0 is refused for any subnet (checkCidr).
  if (cidr.version === 6 && cidr.prefix > 0 && cidr.prefix < 64)
    throw invalidInput(
      `IPv6 subnets with DHCP enabled need a prefix length of at least 64 (dnsmasq serves DHCPv6 on no shorter prefix), got /${cidr.prefix}`,
    );
}

/** Any CIDR: never a /0 (Neutron's _validate_subnet_cidr) nor IPv4-mapped addresses. */
export function checkCidr(cidr: Cidr): void {
  if (cidr.prefix === 0) throw invalidInput('0 is not allowed as CIDR prefix length');
  if (cidrsOverlap(cidr, V4_MAPPED))
    throw badInput(
      'cidr',
      `${formatCidr(cidr)} overlaps ::ffff:0:0/96, the IPv4-mapped addresses, which are not addresses on a wire`,
    );
}

/** A parsed subnet: what IPAM needs to hand out addresses. */
export interface SubnetPlan {
  cidr: Cidr;
  gateway: bigint | null;
  pools: Range[];
}

export function planOf(
  subnet: Pick<Subnet, 'cidr' | 'gateway_ip' | 'allocation_pools'>,
): SubnetPlan {
  const parsed = parseCidr(subnet.cidr);
  if (!('cidr' in parsed)) throw new Error(`stored cidr ${subnet.cidr} is invalid`);
  const ip = (s: string) => parseIp(s)?.value ?? 0n;
  return {
    cidr: parsed.cidr,
    gateway: subnet.gateway_ip === null ? null : ip(subnet.gateway_ip),
    pools: subnet.allocation_pools.map((p) => ({ start: ip(p.start), end: ip(p.end) })),
  };
}

export function parseGateway(cidr: Cidr, raw: string | null | undefined): bigint | null {
  if (raw === undefined) return usableRange(cidr).start;
  if (raw === null) return null;
  const ip = parseIp(raw);
  if (!ip) throw badInput('gateway_ip', `'${raw}' is not a valid IP address`);
  checkVersion(cidr.version, ip, 'gateway_ip', raw);
  if (ip.value === cidr.network || (cidr.version === 4 && ip.value === lastAddress(cidr)))
    throw new ApiError(
      'InvalidInput',
      `Invalid input for operation: Gateway is not valid on subnet: ${raw} is the ${ip.value === cidr.network ? 'network' : 'broadcast'} address of ${formatCidr(cidr)}.`,
    );
  return ip.value;
}

export function parsePools(cidr: Cidr, raw: readonly Pool[]): Range[] {
  const usable = usableRange(cidr);
  const ranges = raw.map((p) => {
    const start = parseIp(p.start);
    const end = parseIp(p.end);
    if (!start || !end || start.version !== cidr.version || end.version !== cidr.version)
      throw new ApiError(
        'InvalidAllocationPool',
        `The allocation pool ${p.start}-${p.end} is not valid.`,
      );
    if (start.value > end.value)
      throw new ApiError(
        'InvalidAllocationPool',
        `The allocation pool ${p.start}-${p.end} is not valid: its start is after its end.`,
      );
    if (start.value < usable.start || end.value > usable.end)
      throw new ApiError(
        'OutOfBoundsAllocationPool',
        `The allocation pool ${p.start}-${p.end} spans beyond the subnet cidr ${formatCidr(cidr)}.`,
      );
    return { start: start.value, end: end.value };
  });
  ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1] as Range;
    const cur = ranges[i] as Range;
    if (cur.start <= prev.end) {
      const [a, b] = toPools(cidr.version, [prev, cur]);
      throw new ApiError(
        'OverlappingAllocationPools',
        `Found overlapping allocation pools: ${a?.start}-${a?.end} and ${b?.start}-${b?.end} for subnet ${formatCidr(cidr)}.`,
      );
    }
  }
  return ranges;
}

export function checkGatewayOutsidePools(cidr: Cidr, gateway: bigint | null, pools: Range[]) {
  if (gateway === null) return;
  const hit = pools.find((r) => gateway >= r.start && gateway <= r.end);
  if (hit) {
    const [p] = toPools(cidr.version, [hit]);
    throw new ApiError(
      'GatewayConflictWithAllocationPools',
      `Gateway ip ${toPools(cidr.version, [{ start: gateway, end: gateway }])[0]?.start} conflicts with allocation pool ${p?.start}-${p?.end}.`,
    );
  }
}

/** Why a client cannot query `ip` as its nameserver, or undefined when it can. */
function nameserverProblem(ip: Ip, raw: string): string | undefined {
  if (ip.value === 0n) return `'${raw}' is the unspecified address, which no client can query`;
  if (isV4Mapped(ip))
    return `'${raw}' is an IPv4-mapped IPv6 address, which a DHCPv6 client cannot use as a nameserver; give ${formatIp(4, ip.value & 0xffffffffn)} to an IPv4 subnet instead`;
  return undefined;
}

/** A subnet's nameservers: of its IP version, queryable, canonical, no duplicates. */
export function parseNameservers(version: IpVersion, raw: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of raw) {
    const ip = parseIp(s);
    if (!ip) throw badInput('dns_nameservers', `'${s}' is not a valid nameserver`);
    checkVersion(version, ip, 'dns_nameserver', s);
    const problem = nameserverProblem(ip, s);
    if (problem) throw badInput('dns_nameservers', problem);
    const text = formatIp(ip.version, ip.value);
    if (out.includes(text)) throw badInput('dns_nameservers', `Duplicate nameserver '${s}'`);
    out.push(text);
  }
  return out;
}

export function parseRoutes(
  version: IpVersion,
  raw: readonly { destination: string; nexthop: string }[],
): Subnet['host_routes'] {
  const out: Subnet['host_routes'] = [];
  for (const r of raw) {
    const dest = parseCidr(r.destination);
    if (!('cidr' in dest)) throw badInput('host_routes', dest.reason);
    const hop = parseIp(r.nexthop);
    if (!hop) throw badInput('host_routes', `'${r.nexthop}' is not a valid IP address`);
    checkVersion(version, hop, 'nexthop', r.nexthop);
    checkVersion(version, dest.cidr, 'destination', r.destination);
    const route = { destination: formatCidr(dest.cidr), nexthop: formatIp(hop.version, hop.value) };
    if (out.some((o) => o.destination === route.destination && o.nexthop === route.nexthop))
      throw badInput('host_routes', `Duplicate hostroute '${r.destination} ${r.nexthop}'`);
    out.push(route);
  }
  return out;
}

/** A gateway address as stored (canonical text), or null. */
export const gatewayText = (cidr: Cidr, gateway: bigint | null): string | null =>
  gateway === null
    ? null
    : (toPools(cidr.version, [{ start: gateway, end: gateway }])[0]?.start ?? null);

/** A create request checked whole, in canonical form, before anything is written. */
export function parseSubnetCreate(req: SubnetCreate) {
  const parsed = parseCidr(req.cidr);
  if (!('cidr' in parsed)) throw badInput('cidr', parsed.reason);
  const { cidr } = parsed;
  if (req.ip_version !== undefined && req.ip_version !== cidr.version)
    throw invalidInput(`ip_version ${req.ip_version} does not match cidr ${req.cidr}`);
  if (req.enable_dhcp ?? true) checkDhcpCidr(cidr);
  checkCidr(cidr);
  const usable = usableRange(cidr);
  if (usable.start > usable.end)
    throw badInput('cidr', `'${req.cidr}' has no usable addresses for a subnet`);
  const gateway = parseGateway(cidr, req.gateway_ip);
  const pools =
    req.allocation_pools === undefined
      ? defaultPools(cidr, gateway)
      : parsePools(cidr, req.allocation_pools);
  checkGatewayOutsidePools(cidr, gateway, pools);
  return {
    cidr,
    gateway: gatewayText(cidr, gateway),
    pools: toPools(cidr.version, pools),
    dns: parseNameservers(cidr.version, req.dns_nameservers ?? []),
    routes: parseRoutes(cidr.version, req.host_routes ?? []),
  };
}

/** An IPv6 subnet needs its network's MTU to be at least 1280. */
export function checkIpv6Mtu(version: IpVersion, mtu: number): void {
  if (version === 6 && mtu < IPV6_MIN_MTU)
    throw invalidInput(
      `IPv6 protocol requires a minimum MTU of ${IPV6_MIN_MTU}, while the configured value is ${mtu}`,
    );
}

/** An update turning DHCP on is checked against the stored CIDR, as on create. */
export function checkDhcpUpdate(current: Subnet, enable: boolean | undefined): void {
  if (enable === true && !current.enable_dhcp) checkDhcpCidr(planOf(current).cidr);
}
