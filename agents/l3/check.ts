/**
 * Every value of one router that reaches a device, an address, a route or an iptables
 * rule, checked strictly and made canonical (contracts/inet parseIp/formatIp, host/ip
 * parseCidr, names.ts). Pure.
 *
 * Invariants: one bad interface, route or floating IP is that item's problem: it is left
 * out and listed in `rejected` with the reason (as host/dnsmasq/check.ts does for DHCP),
 * and everything else is served; only the gateway port (the router's own attribute) throws
 * a ValidationError naming the field. What passes is canonical text, so desired and
 * observed state compare as strings, and nothing unchecked becomes a command word.
 */
import { formatIp, type IpVersion, parseIp } from '../../contracts/inet.ts';
import type { L3FloatingIp, L3Port, L3Route } from '../../contracts/l3.ts';
import { ValidationError } from '../../contracts/schema.ts';
import type { RejectedPart } from '../../contracts/status.ts';
import { networkAddress, parseCidr } from '../../host/ip/inet.ts';
import { portDevice } from '../../host/ip/names.ts';
import type { StaticRoute } from '../../host/ip/route.ts';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export interface CheckedFixedIp {
  version: IpVersion;
  ip: string;
  /** The subnet, canonical `network/prefix`. */
  cidr: string;
  /** `ip/prefix`, what goes on the device. */
  address: string;
  /** The subnet's gateway when it is a valid address of the family, not this one. */
  gateway: string | null;
  /** The gateway lies outside the subnet (reached `onlink`, as Neutron does). */
  gatewayOffSubnet: boolean;
}

export interface CheckedPort {
  id: string;
  device: string;
  mac: string;
  mtu: number;
  fixedIps: CheckedFixedIp[];
}

export interface CheckedFip {
  id: string;
  floatingIp: string;
  fixedIp: string;
  status: L3FloatingIp['status'];
}

const canonical = (text: string) => {
  const ip = parseIp(text);
  return ip && { version: ip.version, text: formatIp(ip.version, ip.value) };
};

/** Whether `ip` lies in the canonical subnet `cidr`. */
export function onSubnet(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  const version = parseIp(ip)?.version;
  return !!c && version === c.version && networkAddress({ ...c, address: ip }) === c.address;
}

/** Whether two canonical subnets share an address. */
function overlaps(a: string, b: string): boolean {
  const [x, y] = [parseCidr(a), parseCidr(b)];
  if (!x || !y || x.version !== y.version) return false;
  const prefix = Math.min(x.prefix, y.prefix);
  return networkAddress({ ...x, prefix }) === networkAddress({ ...y, prefix });
}

function checkFixedIp(f: L3Port['fixed_ips'][number], field: string): CheckedFixedIp {
  const ip = canonical(f.ip_address);
  const c = parseCidr(f.cidr);
  if (!ip) throw new ValidationError(`${field}.ip_address`, 'is not an IP address');
  if (!c || c.version !== ip.version)
    throw new ValidationError(`${field}.cidr`, `is not an IPv${ip.version} CIDR`);
  const cidr = `${networkAddress(c)}/${c.prefix}`;
  if (!onSubnet(ip.text, cidr))
    throw new ValidationError(`${field}.ip_address`, `is not on ${cidr}`);
  const gw = f.gateway_ip === null ? null : canonical(f.gateway_ip);
  const gateway = gw && gw.version === ip.version && gw.text !== ip.text ? gw.text : null;
  const address = `${ip.text}/${c.prefix}`;
  const gatewayOffSubnet = gateway !== null && !onSubnet(gateway, cidr);
  return { version: ip.version, ip: ip.text, cidr, address, gateway, gatewayOffSubnet };
}

/** One router port's values; throws a ValidationError naming the field. */
export function checkPort(port: L3Port, prefix: 'qr-' | 'qg-', field: string): CheckedPort {
  const mac = port.mac_address.toLowerCase();
  if (!MAC.test(mac)) throw new ValidationError(`${field}.mac_address`, 'is not a MAC address');
  const fixedIps = port.fixed_ips.map((f, j) => checkFixedIp(f, `${field}.fixed_ips[${j}]`));
  const seen = new Set<string>();
  for (const [j, f] of fixedIps.entries()) {
    if (seen.has(f.cidr))
      throw new ValidationError(`${field}.fixed_ips[${j}]`, `second address on ${f.cidr}`);
    seen.add(f.cidr);
  }
  return { id: port.id, device: portDevice(prefix, port.id), mac, mtu: port.mtu, fixedIps };
}

const reason = (e: unknown) => {
  if (e instanceof ValidationError) return e.message.slice(0, 1024);
  throw e;
};

/** The interfaces that can be served: valid, on subnets no other port of the router has. */
export function checkInterfaces(
  ports: readonly L3Port[],
  gateway: CheckedPort | null,
  rejected: RejectedPart[],
): CheckedPort[] {
  const taken = (gateway?.fixedIps ?? []).map((f) => f.cidr);
  const devices = new Set(gateway ? [gateway.device] : []);
  return ports.flatMap((port, i) => {
    try {
      const p = checkPort(port, 'qr-', `interfaces[${i}]`);
      const clash = p.fixedIps.find((f) => taken.some((t) => overlaps(t, f.cidr)));
      if (clash)
        throw new ValidationError(
          `interfaces[${i}]`,
          `${clash.cidr} overlaps another port's subnet`,
        );
      if (devices.has(p.device))
        throw new ValidationError(`interfaces[${i}].id`, `device ${p.device} is taken`);
      taken.push(...p.fixedIps.map((f) => f.cidr));
      devices.add(p.device);
      return [p];
    } catch (e) {
      rejected.push({ resource: 'port', id: port.id, reason: reason(e) });
      return [];
    }
  });
}

/** A route's id in `rejected`: its destination in the id alphabet. */
const routeId = (r: L3Route) => `route-${r.destination.replace(/[^A-Za-z0-9]/g, '_')}`.slice(0, 64);

/**
 * Extra routes the kernel will take: destination and nexthop of one family, the nexthop on
 * a served subnet and not the router's own address, one route per destination, none
 * replacing the gateway's default route.
 */
export function checkRoutes(
  routes: readonly L3Route[],
  served: { cidrs: readonly string[]; own: ReadonlySet<string>; defaults: readonly string[] },
  rejected: RejectedPart[],
): StaticRoute[] {
  const taken = new Set(served.defaults);
  return routes.flatMap((r, i) => {
    try {
      const field = `routes[${i}]`;
      const c = parseCidr(r.destination);
      const via = canonical(r.nexthop);
      if (!c) throw new ValidationError(`${field}.destination`, 'is not a CIDR');
      if (!via || via.version !== c.version)
        throw new ValidationError(`${field}.nexthop`, `is not an IPv${c.version} address`);
      const destination = `${networkAddress(c)}/${c.prefix}`;
      if (!served.cidrs.some((s) => onSubnet(via.text, s)))
        throw new ValidationError(`${field}.nexthop`, 'is not on a subnet of the router');
      if (served.own.has(via.text))
        throw new ValidationError(`${field}.nexthop`, "is the router's own address");
      if (taken.has(destination))
        throw new ValidationError(`${field}.destination`, `${destination} is routed already`);
      taken.add(destination);
      return [{ destination, via: via.text }];
    } catch (e) {
      rejected.push({ resource: 'route', id: routeId(r), reason: reason(e) });
      return [];
    }
  });
}

/**
 * Floating IPs that can be served: IPv4, the fixed address on an interface's subnet, each
 * floating and fixed address used once, none equal to the gateway's own address.
 */
export function checkFloatingIps(
  fips: readonly L3FloatingIp[],
  ctx: { gateway: CheckedPort | null; internal: readonly string[] },
  rejected: RejectedPart[],
): CheckedFip[] {
  const used = new Set((ctx.gateway?.fixedIps ?? []).map((f) => f.ip));
  const fixedUsed = new Set<string>();
  return fips.flatMap((f, i) => {
    try {
      const field = `floating_ips[${i}]`;
      if (!ctx.gateway) throw new ValidationError(field, 'the router has no external gateway');
      const fip = canonical(f.floating_ip_address);
      const fixed = canonical(f.fixed_ip_address);
      if (fip?.version !== 4)
        throw new ValidationError(`${field}.floating_ip_address`, 'is not an IPv4 address');
      if (fixed?.version !== 4 || !ctx.internal.some((c) => onSubnet(fixed.text, c)))
        throw new ValidationError(`${field}.fixed_ip_address`, "is not on an interface's subnet");
      if (used.has(fip.text))
        throw new ValidationError(`${field}.floating_ip_address`, `${fip.text} is used already`);
      if (fixedUsed.has(fixed.text))
        throw new ValidationError(
          `${field}.fixed_ip_address`,
          `${fixed.text} has a floating IP already`,
        );
      used.add(fip.text);
      fixedUsed.add(fixed.text);
      return [{ id: f.id, floatingIp: fip.text, fixedIp: fixed.text, status: f.status }];
    } catch (e) {
      rejected.push({ resource: 'floatingip', id: f.id, reason: reason(e) });
      return [];
    }
  });
}
