/**
 * diff(desired, observed) → the kit Steps that make one pool's qlbaas namespace match. Pure.
 *
 * Order for a pool served here: the state directory (0750, also when made looser before:
 * it holds the admin stats socket) and its ownership marker (before anything else, so whatever follows is known to
 * be ours) with the VIP's device recorded (a teardown finds its OVS port by it even with
 * the namespace gone), the namespace and the VIP's port (agents/lib/ns-port) with ONE
 * `ip -batch` carrying stale routes' deletions, the link's MAC/MTU/up/address and the
 * missing default route; then the haproxy (agents/lib/haproxy-instance: config written,
 * `haproxy -c`, start or hitless reload), which binds the VIP's address and so comes after
 * it.
 *
 * Invariants: a pool that is already right plans nothing; only `proto static` routes are
 * added or removed; a pool no longer served here loses its haproxy, OVS port, namespace
 * and state directory, in that order — and only when its state directory is ours; no
 * haproxy of its config (an old one finishing connections included) outlives its namespace.
 */

import { haproxyExpected } from '../../host/haproxy/daemon.ts';
import { sameRoute, staticRouteDel, staticRouteReplace } from '../../host/ip/route.ts';
import { haproxyPaths, haproxySteps, haproxyStop } from '../lib/haproxy-instance.ts';
import { planNsPorts, teardownNsPort } from '../lib/ns-port.ts';
import type { Step } from '../lib/steps.ts';
import { type DesiredPool, deviceFileOf, type LbSettings, MARKER } from './desired.ts';
import type { ObservedPool } from './observe.ts';

/** Stale routes to delete (before the link changes) and the missing one to add (after). */
function routeLines(d: DesiredPool, o: ObservedPool) {
  const wanted = d.route ? [d.route] : [];
  const stale = o.routes.filter((r) => !wanted.some((w) => sameRoute(w, r)));
  const missing = wanted.filter((w) => !o.routes.some((r) => sameRoute(w, r)));
  return { before: stale.map(staticRouteDel), after: missing.map(staticRouteReplace) };
}

function ownerSteps(d: DesiredPool, o: ObservedPool, s: LbSettings): Step[] {
  const device: Step[] =
    o.device === d.port.device
      ? []
      : [
          {
            kind: 'file',
            path: deviceFileOf(d.stateDir),
            content: `${d.port.device}\n`,
            why: 'the VIP device',
          },
        ];
  const mode: Step[] =
    o.stateDirMode === null || o.stateDirMode === 0o750
      ? []
      : [{ kind: 'command', spec: { argv: ['chmod', '0750', d.stateDir] }, why: 'state 0750' }];
  if (o.owned) return [...mode, ...device];
  return [
    { kind: 'mkdir', path: d.stateDir, mode: 0o750, why: 'state directory' },
    {
      kind: 'file',
      path: `${d.stateDir}/${MARKER.file}`,
      content: `${s.host}\n`,
      why: 'ownership marker',
    },
    ...mode,
    ...device,
  ];
}

/**
 * An old haproxy of the pool (by pid) stopped, unless that pid no longer runs with the
 * pool's `-f <config>` (agent.ts runs it with host/process/daemon.ts stop).
 */
export interface StopPidStep {
  kind: 'stop-pid';
  pid: number;
  expected: string;
  why: string;
}

export type PoolStep = Step | StopPidStep;

/**
 * haproxy stops first (it lives in the namespace), then every old one of its config still
 * finishing connections there, so none is left running in a deleted namespace; its files go
 * with the state.
 */
function teardown(o: ObservedPool, ids: { netns: string; stateDir: string }): PoolStep[] {
  if (!o.owned) return [];
  const expected = haproxyExpected(haproxyPaths(ids.stateDir));
  const old = (o.haproxys ?? []).filter((pid) => pid !== o.haproxy.pid);
  return [
    ...haproxyStop(o.haproxy, 'pool haproxy'),
    ...old.map((pid) => ({ kind: 'stop-pid' as const, pid, expected, why: 'stop an old haproxy' })),
    ...teardownNsPort(ids.netns, o),
    { kind: 'remove', path: ids.stateDir, why: 'remove state' },
  ];
}

export function planPool(
  d: DesiredPool | null,
  o: ObservedPool,
  s: LbSettings,
  ids: { netns: string; stateDir: string },
): PoolStep[] {
  if (!d) return teardown(o, ids);
  const routes = routeLines(d, o);
  return [
    ...ownerSteps(d, o, s),
    ...planNsPorts(d.netns, [d.port], o, {
      before: routes.before,
      lines: routes.after,
      why: 'link, address and route',
    }),
    // The state directory is the haproxy's: made (if missing) by ownerSteps.
    ...haproxySteps(d.haproxy, { ...o.haproxy, dirExists: true }),
  ];
}
