/**
 * What the host has for one router: whether its state directory is ours (the ownership
 * marker names this host), its qrouter namespace, the qr-/qg- links inside and their OVS
 * ports, the `proto static` routes, ip_forward and our iptables chains. Read-only.
 *
 * Invariants: a router whose state directory is not ours and that must not be served is
 * observed as empty, so the plan never touches a namespace someone else made; inside a
 * served router's namespace one `ip -j -batch` (links with addresses, and static routes),
 * one `sysctl -n` (forwarding of its families) and one `iptables-save` are all it runs
 * (a namespace torn down needs only `ip -j addr`; the metadata proxy is read from its pid
 * file and /proc, no command), and OVSDB is asked (one read-only
 * transaction) only when there is a port to look for.
 */
import { stat } from 'node:fs/promises';
import { UUID } from '../../contracts/schema.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { listLinks } from '../../host/ip/link.ts';
import { netnsExists } from '../../host/ip/netns.ts';
import { listLinksAndStaticRoutes, type StaticRoute } from '../../host/ip/route.ts';
import { observeIptables } from '../../host/iptables/apply.ts';
import { type OwnedState, validateModel } from '../../host/iptables/model.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { findPorts } from '../../host/ovs/ports.ts';
import { observeIpForward } from '../../host/sysctl/sysctl.ts';
import { type ObservedProxy, observeProxy } from '../lib/metadata-proxy.ts';
import type { NsObserved } from '../lib/ns-port.ts';
import { listOwned, readOwner } from '../lib/ownership.ts';
import { type DesiredRouter, type L3Settings, MARKER, netnsOf, stateDirOf } from './desired.ts';
import { proxyDirOf } from './metadata.ts';
import { L3_CHAIN_PREFIX } from './nat.ts';

export interface ObservedRouter extends NsObserved {
  /** The state directory exists. */
  stateDirExists: boolean;
  /** …and its marker names this host. */
  owned: boolean;
  routes: StaticRoute[];
  /** Forwarding is on for every family the router routes; null: not looked at (no
   * namespace, or nothing to serve). */
  ipForward: boolean | null;
  iptables: OwnedState;
  /** The router's metadata proxy (its files and haproxy). */
  metadataProxy: ObservedProxy;
}

export interface ObserveDeps {
  runner: CommandRunner;
  ovsdb(): Promise<OvsdbClient>;
  /** Whether a named namespace exists (default: host/ip/netns). */
  netnsExists?(name: string): Promise<boolean>;
}

export const emptyIptables = (): OwnedState =>
  validateModel({ family: 4, prefix: L3_CHAIN_PREFIX, tables: {} });

const isRouterLink = (name: string) => name.startsWith('qr-') || name.startsWith('qg-');

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/**
 * The namespace, its router links and (`inside`: a router served into it) its static
 * routes from the same one `ip -j -batch`; then the OVS ports of those links and of the
 * desired ones.
 */
async function observeNs(deps: ObserveDeps, netns: string, desired: DesiredRouter | null) {
  const present = await (deps.netnsExists ?? netnsExists)(netns);
  const listed = !present
    ? { links: [], routes: [] }
    : desired
      ? await listLinksAndStaticRoutes(deps.runner, netns)
      : { links: await listLinks(deps.runner, netns), routes: [] };
  const links = listed.links.filter((l) => isRouterLink(l.name));
  const wanted = desired?.ports.map((p) => p.device) ?? [];
  const names = [...new Set([...wanted, ...links.map((l) => l.name)])];
  const ovsPorts = names.length ? await findPorts(await deps.ovsdb(), { names }) : [];
  return { netnsExists: present, links, ovsPorts, routes: listed.routes };
}

/** Forwarding and iptables: only for a router served into an existing namespace. */
async function observeInside(deps: ObserveDeps, netns: string, desired: DesiredRouter) {
  const ipForward = await observeIpForward(deps.runner, netns, desired.families);
  const iptables = await observeIptables(deps.runner, {
    family: 4,
    prefix: L3_CHAIN_PREFIX,
    netns,
  });
  return { ipForward, iptables };
}

export async function observeRouter(
  deps: ObserveDeps,
  s: L3Settings,
  routerId: string,
  desired: DesiredRouter | null,
): Promise<ObservedRouter> {
  const dir = stateDirOf(s, routerId);
  const stateDirExists = await exists(dir);
  const owned = stateDirExists && (await readOwner(dir, MARKER)) === s.host;
  const none = { ipForward: null, iptables: emptyIptables() };
  if (!desired && !owned)
    return {
      stateDirExists,
      owned,
      netnsExists: false,
      links: [],
      ovsPorts: [],
      routes: [],
      ...none,
      metadataProxy: {
        dir: proxyDirOf(dir),
        dirExists: false,
        config: null,
        loaded: null,
        pid: null,
        inNetns: false,
      },
    };
  const netns = netnsOf(s, routerId);
  const ns = await observeNs(deps, netns, desired);
  const inside = desired && ns.netnsExists ? await observeInside(deps, netns, desired) : none;
  const metadataProxy = await observeProxy(desired?.metadataProxy ?? proxyDirOf(dir));
  return { stateDirExists, owned, ...ns, ...inside, metadataProxy };
}

/**
 * Every router this agent has anything for: its state directories marked with this host.
 * A qrouter namespace without one is not ours (another deployment, a test): left alone.
 */
export async function ownedRouterIds(s: L3Settings): Promise<Set<string>> {
  return new Set(await listOwned(s.stateRoot, { idPattern: UUID, marker: MARKER, owner: s.host }));
}
