/**
 * The L3 RPC contract between kumo-l3-agent and kumo-api: which routers a host's L3 agent
 * serves, everything one qrouter namespace needs, and the floating IP statuses the agent
 * reports back (Neutron's sync_routers / update_floatingip_statuses, trimmed).
 *
 * Invariants: the agent puts nothing into a device, an address, a route or an iptables
 * rule that did not pass these schemas on arrival (and its own stricter checks after);
 * one bad interface, route or floating IP is that item's problem, not its router's:
 * `parseRouterInfo` leaves it out and names it with the reason, so the router's other
 * parts keep being served. `router: null` means this host must serve nothing for the
 * router (moved away, deleted, admin-down): every host object it owned is removed.
 */
import { cidrText, MAC } from './network.ts';
import { anyItem, parseParts } from './parts.ts';
import { arr, bool, hostname, type Infer, int, nullable, obj, oneOf, str, uuid } from './schema.ts';
import type { RejectedPart } from './status.ts';

const mac = () => str({ pattern: MAC, patternName: 'a MAC address' });
/** Checked value by value by the agent (agents/l3/desired.ts); here size and shape only. */
const addressText = () =>
  str({ min: 2, max: 45, pattern: /^[0-9A-Fa-f.:]+$/, patternName: 'an IP address' });

export const FLOATINGIP_STATUSES = ['ACTIVE', 'DOWN', 'ERROR'] as const;
export type FloatingIpStatus = (typeof FLOATINGIP_STATUSES)[number];

/** One address of a router port, with its subnet's CIDR and gateway. */
export const L3FixedIp = obj({
  subnet_id: uuid(),
  ip_address: addressText(),
  cidr: cidrText(),
  gateway_ip: nullable(addressText()),
});
export type L3FixedIp = Infer<typeof L3FixedIp>;

/** A router port: `qr-` (an interface) or `qg-` (the gateway), bound to the asking host. */
export const L3Port = obj({
  id: uuid(),
  network_id: uuid(),
  mac_address: mac(),
  mtu: int({ min: 68, max: 65535 }),
  fixed_ips: arr(L3FixedIp, { min: 1, max: 16 }),
});
export type L3Port = Infer<typeof L3Port>;

/** An extra route (extraroute): its nexthop is on one of the router's subnets. */
export const L3Route = obj({ destination: cidrText(), nexthop: addressText() });
export type L3Route = Infer<typeof L3Route>;

/** An associated floating IP: DNAT/SNAT between it and the fixed address. */
export const L3FloatingIp = obj({
  id: uuid(),
  floating_ip_address: addressText(),
  fixed_ip_address: addressText(),
  port_id: uuid(),
  status: oneOf(FLOATINGIP_STATUSES),
});
export type L3FloatingIp = Infer<typeof L3FloatingIp>;

/** One router as this host's L3 agent must serve it. */
export const L3Router = obj({
  id: uuid(),
  revision_number: int({ min: 0 }),
  /** The gateway port on the external network; null without a gateway. */
  gw_port: nullable(L3Port),
  enable_snat: bool(),
  interfaces: arr(L3Port, { max: 1024 }),
  routes: arr(L3Route, { max: 1024 }),
  floating_ips: arr(L3FloatingIp, { max: 65536 }),
});
export type L3Router = Infer<typeof L3Router>;

export const GetActiveRoutersArgs = obj({ host: hostname() });
export const GetActiveRoutersResult = obj({ routers: arr(uuid(), { max: 100_000 }) });

export const GetRouterInfoArgs = obj({ host: hostname(), router_id: uuid() });
export const GetRouterInfoResult = obj({ router: nullable(L3Router) });

export const FloatingIpStatusUpdate = obj({ id: uuid(), status: oneOf(FLOATINGIP_STATUSES) });
/** Applied only to floating IPs of `router_id`, and only while `host` hosts it. */
export const UpdateFloatingIpStatusesArgs = obj({
  host: hostname(),
  router_id: uuid(),
  statuses: arr(FloatingIpStatusUpdate, { max: 65536 }),
});
export const UpdateFloatingIpStatusesResult = obj({ updated: int({ min: 0 }) });

const RouterEnvelope = obj({
  router: nullable(
    obj({
      ...L3Router.shape,
      interfaces: arr(anyItem(), { max: 1024 }),
      routes: arr(anyItem(), { max: 1024 }),
      floating_ips: arr(anyItem(), { max: 65536 }),
    }),
  ),
});

const INTERFACES = { list: 'interfaces', resource: 'port' } as const;
const ROUTES = { list: 'routes', resource: 'route', ownIds: false } as const;
const FLOATING_IPS = {
  list: 'floating_ips',
  resource: 'floatingip',
  label: 'floating-ips',
} as const;

/** A get_router_info answer, and the interfaces, routes and floating IPs left out. */
export interface RouterInfo {
  router: L3Router | null;
  rejected: RejectedPart[];
}

/**
 * Parses get_router_info's answer item by item: the router's own attributes and its
 * gateway port must be valid (else it throws, naming the field); an interface, route or
 * floating IP that is not is left out and listed in `rejected` with the reason.
 */
export function parseRouterInfo(reply: unknown): RouterInfo {
  const r = RouterEnvelope.parse(reply).router;
  if (r === null) return { router: null, rejected: [] };
  const rejected: RejectedPart[] = [];
  const interfaces = parseParts(r.interfaces, L3Port, INTERFACES, rejected);
  const routes = parseParts(r.routes, L3Route, ROUTES, rejected);
  const floating_ips = parseParts(r.floating_ips, L3FloatingIp, FLOATING_IPS, rejected);
  return { router: { ...r, interfaces, routes, floating_ips }, rejected };
}
