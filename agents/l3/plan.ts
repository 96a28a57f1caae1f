/**
 * diff(desired, observed) → the steps that make one router's qrouter namespace match. Pure.
 *
 * Order for a router served here: the state directory and its ownership marker (before
 * the namespace exists, so a namespace of ours is always findable); the namespace and its
 * ports (agents/lib/ns-port) with ONE `ip -batch` carrying stale routes' deletions, every
 * link's MAC/MTU/up/addresses and the missing routes; forwarding (IPv4, and IPv6 when
 * the router has an IPv6 address); ONE
 * `iptables-restore --noflush`; `conntrack -D` for floating IPs that left qg- (after the
 * restore removed their DNAT, so no new entry is made behind it); gratuitous ARPs for
 * addresses that appeared on qg- (in the background: arping takes a second per packet);
 * then the floating IP statuses the API has wrong; then the metadata proxy (agents/lib/
 * metadata-proxy.ts: started, reloaded, or stopped with its files when metadata is off).
 *
 * Invariants: a router that is already right plans nothing; only `proto static` routes
 * are added or removed (never the kernel's connected ones); a router no longer served
 * here loses its metadata proxy's haproxy, OVS ports, namespace (with its rules and
 * conntrack) and state directory (with the proxy's files), the directory last, so an interrupted teardown is finished by the next resync.
 */
import type { CommandSpec } from '../../core/exec.ts';
import { garpCommand } from '../../host/arping/arping.ts';
import { conntrackDeleteCommands } from '../../host/conntrack/conntrack.ts';
import { sameRoute, staticRouteDel, staticRouteReplace } from '../../host/ip/route.ts';
import { planIptables } from '../../host/iptables/apply.ts';
import { ipForwardCommand } from '../../host/sysctl/sysctl.ts';
import { proxySteps } from '../lib/metadata-proxy.ts';
import { planNsPorts, teardownNsPort } from '../lib/ns-port.ts';
import type { Step } from '../lib/steps.ts';
import { type DesiredRouter, type FipStatusUpdate, type L3Settings, MARKER } from './desired.ts';
import type { ObservedRouter } from './observe.ts';

/** The L3 agent's own step kinds (run by agent.ts's handler). */
export type L3OwnStep =
  | { kind: 'background'; spec: CommandSpec; why: string }
  | { kind: 'fip-status'; statuses: FipStatusUpdate[]; why: string };
export type L3Step = Step | L3OwnStep;

/**
 * Stale routes to delete (before the links change) and missing ones to add (after). A
 * route through a device that is being unplugged goes with the device: deleting it too
 * would fail the batch once the kernel has.
 */
function routeLines(d: DesiredRouter, o: ObservedRouter) {
  const devices = new Set(d.ports.map((p) => p.device));
  const stale = o.routes.filter(
    (r) => !d.routes.some((w) => sameRoute(w, r)) && (!r.dev || devices.has(r.dev)),
  );
  const missing = d.routes.filter((w) => !o.routes.some((r) => sameRoute(w, r)));
  return { before: stale.map(staticRouteDel), after: missing.map(staticRouteReplace) };
}

/** The IPv4 addresses on qg- now (observed). */
function qgAddresses(d: DesiredRouter, o: ObservedRouter): Set<string> {
  const link = d.gateway && o.links.find((l) => l.name === d.gateway?.device);
  return new Set((link?.addrs ?? []).filter((a) => a.version === 4).map((a) => a.address));
}

/** Floating IPs that leave qg-: observed IPv4 /32s no longer desired there. */
function leavingFips(d: DesiredRouter, o: ObservedRouter): string[] {
  const wanted = new Set(d.ports.find((p) => p.device === d.gateway?.device)?.addresses);
  return o.links
    .filter((l) => l.name.startsWith('qg-'))
    .flatMap((l) => l.addrs)
    .filter((a) => a.version === 4 && a.prefix === 32 && a.scope === 'global')
    .filter((a) => !wanted.has(a.cidr))
    .map((a) => a.address);
}

function ownerSteps(d: DesiredRouter, o: ObservedRouter, s: L3Settings): Step[] {
  if (o.owned) return [];
  const marker = `${d.stateDir}/${MARKER.file}`;
  return [
    { kind: 'mkdir', path: d.stateDir, why: 'state directory' },
    { kind: 'file', path: marker, content: `${s.host}\n`, why: 'ownership marker' },
  ];
}

function afterLinks(d: DesiredRouter, o: ObservedRouter, s: L3Settings): L3Step[] {
  const have = qgAddresses(d, o);
  const dev = d.gateway?.device;
  const appearing = dev && s.sendArpCount > 0 ? d.announce.filter((ip) => !have.has(ip)) : [];
  return [
    ...(o.ipForward === true
      ? []
      : [
          {
            kind: 'command' as const,
            spec: ipForwardCommand(d.netns, d.families),
            why: `forwarding (IPv${d.families.join(', IPv')})`,
          },
        ]),
    ...planIptables(d.iptables, o.iptables, d.netns).map(({ why, ...spec }) => ({
      kind: 'command' as const,
      spec,
      why: `iptables ${why}`,
    })),
    ...leavingFips(d, o).flatMap((ip) =>
      conntrackDeleteCommands(ip, d.netns).map((spec) => ({
        kind: 'command' as const,
        spec,
        why: `forget connections of floating IP ${ip}`,
      })),
    ),
    ...appearing.map((ip) => ({
      kind: 'background' as const,
      spec: garpCommand({ device: dev as string, ip, count: s.sendArpCount, netns: d.netns }),
      why: `announce ${ip}`,
    })),
    ...(d.fipStatuses.length
      ? [{ kind: 'fip-status' as const, statuses: d.fipStatuses, why: 'floating IP statuses' }]
      : []),
  ];
}

/** The proxy's haproxy stops first (it lives in the namespace); its files go with the state. */
function teardown(o: ObservedRouter, netns: string, stateDir: string): Step[] {
  if (!o.owned) return [];
  const proxy = proxySteps(null, o.metadataProxy).filter((s) => s.kind !== 'remove');
  return [
    ...proxy,
    ...teardownNsPort(netns, o),
    { kind: 'remove', path: stateDir, why: 'remove state' },
  ];
}

export function planRouter(
  d: DesiredRouter | null,
  o: ObservedRouter,
  s: L3Settings,
  ids: { netns: string; stateDir: string },
): L3Step[] {
  if (!d) return teardown(o, ids.netns, ids.stateDir);
  const routes = routeLines(d, o);
  return [
    ...ownerSteps(d, o, s),
    ...planNsPorts(d.netns, d.ports, o, {
      before: routes.before,
      lines: routes.after,
      why: 'links, addresses and routes',
    }),
    ...afterLinks(d, o, s),
    ...proxySteps(d.metadataProxy, o.metadataProxy),
  ];
}
