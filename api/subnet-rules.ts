/**
 * Subnet attributes validated the way Neutron validates them, pure: the CIDR's gateway,
 * allocation pools, DNS servers and host routes, and a stored subnet's parsed plan.
 *
 * Invariants: the gateway is never the network or broadcast address and never lies inside
 * a pool; pools lie inside the usable range, start before they end and never overlap;
 * nameservers and routes are stored canonical and without duplicates.
 */
import { ApiError } from '../contracts/errors.ts';
import type { Subnet } from '../contracts/network.ts';
import {
  type Cidr,
  canonicalIp,
  formatCidr,
  type IpVersion,
  lastAddress,
  type Pool,
  parseCidr,
  parseIp,
  type Range,
  toPools,
  usableRange,
} from './ipam.ts';

export const badInput = (field: string, reason: string) =>
  new ApiError('BadRequest', `Invalid input for ${field}. Reason: ${reason}.`);

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
  if (ip.version !== cidr.version)
    throw badInput('gateway_ip', `'${raw}' is not an IPv${cidr.version} address`);
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

export function parseNameservers(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of raw) {
    const ip = canonicalIp(s);
    if (!ip) throw badInput('dns_nameservers', `'${s}' is not a valid nameserver`);
    if (out.includes(ip)) throw badInput('dns_nameservers', `Duplicate nameserver '${s}'`);
    out.push(ip);
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
    if (dest.cidr.version !== version || hop.version !== version)
      throw badInput('host_routes', `route ${r.destination} via ${r.nexthop} is not IPv${version}`);
    const route = {
      destination: formatCidr(dest.cidr),
      nexthop: canonicalIp(r.nexthop) as string,
    };
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
