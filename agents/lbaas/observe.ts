/**
 * What the host has for one pool: whether its state directory is ours (the ownership
 * marker names this host), its qlbaas namespace, the tap inside and its OVS port (also the
 * recorded VIP device's, found with the namespace gone), the
 * `proto static` routes, and the pool's haproxy (files, pid file, namespace). Read-only.
 *
 * Invariants: a pool whose state directory is not ours and that must not be served is
 * observed as empty, so the plan never touches a namespace someone else made; inside a
 * served pool's namespace one `ip -j -batch` (links with addresses, static routes) is all
 * that runs (a namespace torn down needs only `ip -j addr`); haproxy is read from its pid
 * file and /proc, no command, except for a pool to tear down: `ip netns pids` of its
 * namespace, to find old haproxy processes of its config still finishing connections; OVSDB
 * is asked only when there is a port to look for.
 */
import { readFile, stat } from 'node:fs/promises';
import { UUID } from '../../contracts/schema.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { haproxysInNetns } from '../../host/haproxy/daemon.ts';
import { listLinks } from '../../host/ip/link.ts';
import { netnsExists } from '../../host/ip/netns.ts';
import { listLinksAndStaticRoutes, type StaticRoute } from '../../host/ip/route.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { findPorts } from '../../host/ovs/ports.ts';
import {
  haproxyPaths,
  noHaproxy,
  type ObservedHaproxy,
  observeHaproxy,
} from '../lib/haproxy-instance.ts';
import type { NsObserved } from '../lib/ns-port.ts';
import { listOwned, readOwner } from '../lib/ownership.ts';
import {
  type DesiredPool,
  deviceFileOf,
  type LbSettings,
  MARKER,
  netnsOf,
  stateDirOf,
} from './desired.ts';

export interface ObservedPool extends NsObserved {
  stateDirExists: boolean;
  /** Its permission bits (null: no directory). */
  stateDirMode: number | null;
  /** …and its marker names this host. */
  owned: boolean;
  routes: StaticRoute[];
  haproxy: ObservedHaproxy;
  /**
   * For a pool to tear down: every haproxy of its config still in its namespace (the
   * running one and old ones finishing connections after a reload); empty otherwise.
   */
  haproxys?: number[];
  /** The VIP device recorded in the state directory (null: none, or not a device name). */
  device: string | null;
}

export interface ObserveDeps {
  runner: CommandRunner;
  ovsdb(): Promise<OvsdbClient>;
  /** Whether a named namespace exists (default: host/ip/netns). */
  netnsExists?(name: string): Promise<boolean>;
}

const modeOf = (path: string) =>
  stat(path).then(
    (st) => st.mode & 0o777,
    () => null,
  );

const DEVICE = /^tap[0-9a-f-]{11}$/;

/** The recorded VIP device, when it is one. */
async function recordedDevice(dir: string): Promise<string | null> {
  const text = await readFile(deviceFileOf(dir), 'utf8').catch(() => '');
  const name = text.trim();
  return DEVICE.test(name) ? name : null;
}

async function observeNs(
  deps: ObserveDeps,
  netns: string,
  desired: DesiredPool | null,
  device: string | null,
) {
  const present = await (deps.netnsExists ?? netnsExists)(netns);
  const listed = !present
    ? { links: [], routes: [] }
    : desired
      ? await listLinksAndStaticRoutes(deps.runner, netns)
      : { links: await listLinks(deps.runner, netns), routes: [] };
  const links = listed.links.filter((l) => l.name.startsWith('tap'));
  const names = [
    ...new Set([
      ...(desired ? [desired.port.device] : []),
      ...(device ? [device] : []),
      ...links.map((l) => l.name),
    ]),
  ];
  const ovsPorts = names.length ? await findPorts(await deps.ovsdb(), { names }) : [];
  return { netnsExists: present, links, ovsPorts, routes: listed.routes };
}

export async function observePool(
  deps: ObserveDeps,
  s: LbSettings,
  poolId: string,
  desired: DesiredPool | null,
): Promise<ObservedPool> {
  const dir = stateDirOf(s, poolId);
  const stateDirMode = await modeOf(dir);
  const stateDirExists = stateDirMode !== null;
  const owned = stateDirExists && (await readOwner(dir, MARKER)) === s.host;
  if (!desired && !owned)
    return {
      stateDirExists,
      stateDirMode,
      owned,
      netnsExists: false,
      links: [],
      ovsPorts: [],
      routes: [],
      haproxy: noHaproxy(dir),
      haproxys: [],
      device: null,
    };
  const device = owned ? await recordedDevice(dir) : null;
  const ns = await observeNs(deps, netnsOf(s, poolId), desired, device);
  const haproxy = await observeHaproxy(dir, desired?.netns ?? null, desired?.haproxy.statsSocket);
  const haproxys =
    !desired && ns.netnsExists
      ? await haproxysInNetns(deps.runner, netnsOf(s, poolId), haproxyPaths(dir))
      : [];
  return { stateDirExists, stateDirMode, owned, ...ns, haproxy, haproxys, device };
}

/**
 * Every pool this agent has anything for: its state directories marked with this host. A
 * qlbaas namespace without one is not ours (another deployment, a test): left alone.
 */
export async function ownedPoolIds(s: LbSettings): Promise<Set<string>> {
  return new Set(await listOwned(s.stateRoot, { idPattern: UUID, marker: MARKER, owner: s.host }));
}
