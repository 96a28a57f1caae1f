/**
 * What one router must look like on this host, from the API's L3Router: the qrouter
 * namespace, its qr-/qg- ports with their addresses (floating IPs as /32 on qg-), the
 * routes it owns, the families it forwards, its NAT (and, with metadata on, the metadata
 * redirect / mark / INPUT rules of metadata.ts) as a validated iptables state, its metadata
 * proxy (null when metadata is off), the addresses to announce and the floating IP
 * statuses to report. Pure.
 *
 * Invariants: `null` means "this host must serve nothing for the router" and every host
 * object it owned is removed; everything non-null passed check.ts, and what failed it (or
 * the contract, on arrival) is left out and listed in `rejected`; the iptables state went
 * through host/iptables validateModel, so no token can break an iptables-restore line.
 */
import type { IpVersion } from '../../contracts/inet.ts';
import type { L3Router } from '../../contracts/l3.ts';
import { MAX_REJECTED, type RejectedPart } from '../../contracts/status.ts';
import { routerNamespace } from '../../host/ip/names.ts';
import type { StaticRoute } from '../../host/ip/route.ts';
import { type OwnedState, validateModel } from '../../host/iptables/model.ts';
import type { ProxySpec } from '../lib/metadata-proxy.ts';
import type { NsPort } from '../lib/ns-port.ts';
import {
  type CheckedFip,
  type CheckedPort,
  checkFloatingIps,
  checkInterfaces,
  checkPort,
  checkRoutes,
} from './check.ts';
import { routerProxy, withMetadataRules } from './metadata.ts';
import { L3_CHAIN_PREFIX, natModel } from './nat.ts';

export interface L3Settings {
  /** <state_path>/l3: one directory per router, named by its id, marked with the host. */
  stateRoot: string;
  /** This host's name: what the ownership markers say. */
  host: string;
  intBridge: string;
  /** Where ovs-vswitchd runs, when not in this process's namespace (the test lab). */
  vswitchdNetns?: string;
  /** `[DEFAULT] netns_prefix`: '' in production. */
  netnsPrefix: string;
  /** `[l3] send_arp_for_ha`: gratuitous ARPs per appearing address (0: none). */
  sendArpCount: number;
  /** Instance metadata: the agent's relay socket; absent when metadata is off (no secret). */
  metadataSocket?: string;
}

export type FipStatusUpdate = { id: string; status: 'ACTIVE' | 'ERROR' };

export interface DesiredRouter {
  routerId: string;
  netns: string;
  stateDir: string;
  /** The interfaces' ports, then the gateway's. */
  ports: NsPort[];
  /** The qg- device and its IPv4 address, when the router has a gateway. */
  gateway: { device: string; ip: string | null } | null;
  routes: StaticRoute[];
  /** The IP families it forwards: 4 always (as Neutron), 6 when a port has IPv6. */
  families: IpVersion[];
  iptables: OwnedState;
  /** The router's metadata proxy (null: metadata off). */
  metadataProxy: ProxySpec | null;
  /** IPv4 addresses on qg- announced by gratuitous ARP when they appear. */
  announce: string[];
  floatingIps: CheckedFip[];
  /** Floating IPs whose status the API has wrong: served ACTIVE, rejected ERROR. */
  fipStatuses: FipStatusUpdate[];
  rejected: RejectedPart[];
}

export const MARKER = { file: 'host' };
export const stateDirOf = (s: L3Settings, routerId: string) => `${s.stateRoot}/${routerId}`;
export const netnsOf = (s: L3Settings, routerId: string) =>
  `${s.netnsPrefix}${routerNamespace(routerId)}`;

const capped = (parts: RejectedPart[]) =>
  parts.sort((a, b) => (a.resource + a.id < b.resource + b.id ? -1 : 1)).slice(0, MAX_REJECTED);

function nsPort(s: L3Settings, netns: string, p: CheckedPort, extra: string[] = []): NsPort {
  return {
    netns,
    device: p.device,
    portId: p.id,
    mac: p.mac,
    mtu: p.mtu,
    addresses: [...p.fixedIps.map((f) => f.address), ...extra].sort(),
    bridge: s.intBridge,
    ...(s.vswitchdNetns ? { vswitchdNetns: s.vswitchdNetns } : {}),
  };
}

/** The gateway's default route per family (the first fixed IP of it with a gateway). */
function defaultRoutes(gw: CheckedPort | null): StaticRoute[] {
  if (!gw) return [];
  return ([4, 6] as const).flatMap((v) => {
    const f = gw.fixedIps.find((x) => x.version === v && x.gateway);
    if (!f?.gateway) return [];
    const destination = v === 4 ? '0.0.0.0/0' : '::/0';
    const onlink = f.gatewayOffSubnet ? { onlink: true } : {};
    return [{ destination, via: f.gateway, dev: gw.device, ...onlink }];
  });
}

function fipStatusesOf(fips: CheckedFip[], fetched: L3Router, rejected: RejectedPart[]) {
  const out: FipStatusUpdate[] = fips
    .filter((f) => f.status !== 'ACTIVE')
    .map((f) => ({ id: f.id, status: 'ACTIVE' }));
  const failed = new Set(rejected.filter((r) => r.resource === 'floatingip').map((r) => r.id));
  for (const f of fetched.floating_ips)
    if (failed.has(f.id) && f.status !== 'ERROR') out.push({ id: f.id, status: 'ERROR' });
  return out;
}

/** The router's checked parts: ports, routes and floating IPs that can be served. */
function checkedParts(router: L3Router, rejected: RejectedPart[]) {
  const gw = router.gw_port && checkPort(router.gw_port, 'qg-', 'gw_port');
  const interfaces = checkInterfaces(router.interfaces, gw, rejected);
  const qr = interfaces.flatMap((p) => p.fixedIps);
  const qg = gw?.fixedIps ?? [];
  const defaults = defaultRoutes(gw);
  const served = {
    cidrs: [...qr, ...qg].map((f) => f.cidr),
    own: new Set([...qr, ...qg].map((f) => f.ip)),
    defaults: defaults.map((r) => r.destination),
  };
  const extra = checkRoutes(router.routes, served, rejected);
  const internal = qr.filter((f) => f.version === 4).map((f) => f.cidr);
  const fips = checkFloatingIps(router.floating_ips, { gateway: gw, internal }, rejected);
  const gatewayIp = qg.find((f) => f.version === 4)?.ip ?? null;
  const families: IpVersion[] = [...qr, ...qg].some((f) => f.version === 6) ? [4, 6] : [4];
  return { gw, interfaces, routes: [...defaults, ...extra], families, internal, fips, gatewayIp };
}

/** The router's NAT (with a gateway) and metadata rules (when on), validated. */
function routerIptables(
  n: {
    gw: CheckedPort | null;
    gatewayIp: string | null;
    internal: string[];
    fips: CheckedFip[];
    enableSnat: boolean;
  },
  metadata: boolean,
): OwnedState {
  const model = n.gw
    ? natModel({
        qgDevice: n.gw.device,
        gatewayIp: n.gatewayIp,
        enableSnat: n.enableSnat,
        internalCidrs: n.internal,
        floatingIps: n.fips.map((f) => ({ floatingIp: f.floatingIp, fixedIp: f.fixedIp })),
      })
    : { family: 4 as const, prefix: L3_CHAIN_PREFIX, tables: {} };
  return validateModel(metadata ? { ...model, tables: withMetadataRules(model.tables) } : model);
}

/** `arrived`: the items the contract already left out (parseRouterInfo). */
export function desiredRouter(
  router: L3Router | null,
  s: L3Settings,
  arrived: readonly RejectedPart[] = [],
): DesiredRouter | null {
  if (!router) return null;
  const netns = netnsOf(s, router.id);
  const mine: RejectedPart[] = [];
  const { gw, interfaces, routes, families, internal, fips, gatewayIp } = checkedParts(
    router,
    mine,
  );
  const stateDir = stateDirOf(s, router.id);
  const metadata = s.metadataSocket;
  const nat = { gw, gatewayIp, internal, fips, enableSnat: router.enable_snat };
  return {
    routerId: router.id,
    netns,
    stateDir,
    ports: [
      ...interfaces.map((p) => nsPort(s, netns, p)),
      ...(gw
        ? [
            nsPort(
              s,
              netns,
              gw,
              fips.map((f) => `${f.floatingIp}/32`),
            ),
          ]
        : []),
    ],
    gateway: gw && { device: gw.device, ip: gatewayIp },
    routes,
    families,
    iptables: routerIptables(nat, metadata !== undefined),
    metadataProxy: metadata ? routerProxy(router.id, netns, stateDir, metadata) : null,
    announce: [...(gatewayIp ? [gatewayIp] : []), ...fips.map((f) => f.floatingIp)],
    floatingIps: fips,
    fipStatuses: fipStatusesOf(fips, router, mine),
    rejected: capped([...arrived, ...mine]),
  };
}
