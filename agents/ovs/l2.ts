/**
 * The ovs agent's one resource kind, `l2:sync`: the whole host's L2 state (VM ports on
 * br-int with their VLANs, both bridges, the tunnel mesh, the flow tables) reconciled as
 * one through core/reconciler.ts, then every port's status reported.
 *
 * - fetch: what the API says about ports not asked about yet (get_devices_details), the
 *   tunnel peers (tunnel_sync) and the security groups of filtered ports
 *   (security_group_info, sg-info.ts), remembered until a `port`/`tunnels`/
 *   `security_group` hint or a resync forgets them (a failed call fails the sync, and
 *   the flows in place stay); plus the monitor replica's snapshot of the ports to bind (OVS is the
 *   agent's work list, as a hint is for other agents);
 * - desired (desired.ts) and plan (plan.ts) are pure; observe reads the monitor replica;
 * - apply is the kit's executor: one applied OVSDB transaction (host/ovs/ports.ts waits
 *   for ovs-vswitchd's cur_cfg), then one replace-flows per bridge, side by side (the
 *   agent's own `flows` step kind); then the conntrack zones of filtered ports that left
 *   since the last apply are flushed (conntrack.ts).
 *
 * Port status goes through core/status.ts (value up/down per port id, sent with
 * update_device_list {host, up, down}, changes only, forgotten on resync) and not through
 * the reconciler's per-resource status: one `l2:sync` yields a status per port. As before,
 * a port is reported down only once it was reported up.
 *
 * Tunnels, as Neutron's agent: only with tunnel types configured does the agent record
 * its endpoint (tunnel_sync); a peer the contract refuses is that peer's problem (left out
 * and logged), never the sync's, so one bad endpoint cannot stop every host's L2.
 *
 * Invariant: a status is reported only after the sync that wired its port was applied;
 * the memory kept between syncs is what the API said and what was sent, never OVS.
 */
import type { DeviceDetails } from '../../contracts/l2.ts';
import { GetDevicesDetailsResult, TunnelPeer, TunnelSyncResult } from '../../contracts/l2.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { isPlainObject, UUID, ValidationError } from '../../contracts/schema.ts';
import type { Broker } from '../../core/amqp.ts';
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import { createReconciler, type ResourceKindSpec } from '../../core/reconciler.ts';
import { createStatusReporter, type StatusChange } from '../../core/status.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { classify } from '../lib/errors.ts';
import { runSteps } from '../lib/steps.ts';
import { flushZones, zonesLeft } from './conntrack.ts';
import {
  type DesiredOvs,
  desiredOvs,
  isFiltered,
  type OvsSettings,
  type PortStatus,
  portStatuses,
  vmPorts,
} from './desired.ts';
import { type OvsState, type Replica, readState } from './observe.ts';
import { type FlowsStep, type OvsStep, planOvs } from './plan.ts';
import type { SgInfo } from './sg-flows.ts';
import { createSgCache } from './sg-info.ts';

export interface L2Deps {
  settings: OvsSettings;
  host: string;
  cookie: string;
  rundir: string;
  broker: Pick<Broker, 'call'>;
  runner: CommandRunner;
  log: Logger;
  replica(): Replica;
  ovsdb(): Promise<OvsdbClient>;
  /** Steps applied by tool (agents/lib/steps.ts); none counted when absent. */
  metrics?: StepMetrics;
}

interface L2Fetched {
  state: OvsState;
  details: ReadonlyMap<string, DeviceDetails>;
  peers: readonly TunnelPeer[];
  sg: SgInfo;
}

/** The security groups of the filtered ports among `present` (what the firewall needs). */
function groupsInUse(present: Iterable<string>, details: ReadonlyMap<string, DeviceDetails>) {
  const groups = new Set<string>();
  for (const id of present) {
    const d = details.get(id);
    if (d && isFiltered(d)) for (const g of d.security_groups) groups.add(g);
  }
  return [...groups];
}

/** A peer the contract refuses, with why. */
export interface RejectedPeer {
  peer: unknown;
  reason: string;
}

/** tunnel_sync's reply, peer by peer: the valid peers, and those the contract refuses. */
export function tunnelPeers(reply: unknown): { peers: TunnelPeer[]; rejected: RejectedPeer[] } {
  const list = isPlainObject(reply) ? reply.peers : undefined;
  if (!Array.isArray(list)) return { peers: TunnelSyncResult.parse(reply).peers, rejected: [] };
  const peers: TunnelPeer[] = [];
  const rejected: RejectedPeer[] = [];
  list.forEach((peer, i) => {
    try {
      peers.push(TunnelPeer.parse(peer, `peers[${i}]`));
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      rejected.push({ peer, reason: e.message });
    }
  });
  return { peers, rejected };
}

/** Wall-clock ms with sub-ms precision, comparable across processes (for the bench). */
const epoch = () => performance.timeOrigin + performance.now();
const round = (ms: number) => Math.round(ms * 10) / 10;

export function createL2(deps: L2Deps) {
  const { settings, host, log } = deps;
  const details = new Map<string, DeviceDetails>();
  const unknown = new Set<string>();
  let peers: TunnelPeer[] = [];
  let peersKnown = false;
  /** Ports whose status was handed to the reporter last time (sent or not). */
  let tracked = new Set<string>();
  /** Set by fetch, promoted by a successful apply: what the next report is about. */
  let fetched: L2Fetched | undefined;
  let applied: L2Fetched | undefined;
  /** When the first OVSDB update since the last sync started arrived. */
  let wokeAt: number | undefined;
  /** This sync's figures for its log line: OVSDB ops, ports reported, RPC times in ms. */
  let stats: Record<string, number> = {};
  /** Physical networks already logged as served on br-int only (logged once each). */
  const unmappedLogged = new Set<string>();
  /** Security group rules already logged as left out (again once the groups are re-read). */
  const rulesLogged = new Set<string>();
  /** Conntrack zones (ofport → port id) of the last applied sync, and of the one planned. */
  let zones = new Map<number, string>();
  let plannedZones = zones;

  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await f();
    } finally {
      stats[what] = round(performance.now() - t);
    }
  };

  const ports = createStatusReporter<PortStatus>({
    async send(changes: StatusChange<PortStatus>[]) {
      const up = changes.filter((c) => c.value === 'up').map((c) => c.key);
      const down = changes.filter((c) => c.value === 'down').map((c) => c.key);
      await timed('updateDeviceListMs', () =>
        deps.broker.call(PLUGIN_TOPIC, 'update_device_list', { host, up, down }),
      );
      stats.up = up.length;
      stats.down = down.length;
      log.info({ up: up.length, down: down.length }, 'port status reported');
    },
  });

  const fetchDetails = async (ids: string[]) => {
    for (const id of ids.filter((i) => !UUID.test(i))) unknown.add(id);
    const ask = ids.filter((i) => UUID.test(i));
    if (ask.length === 0) return;
    const res = GetDevicesDetailsResult.parse(
      await timed('detailsMs', () =>
        deps.broker.call(PLUGIN_TOPIC, 'get_devices_details', { host, devices: ask }),
      ),
    );
    for (const d of res.devices) details.set(d.device, d);
    for (const id of res.unknown) unknown.add(id);
  };

  const groups = createSgCache(
    (ids) =>
      timed('sgInfoMs', () =>
        deps.broker.call(PLUGIN_TOPIC, 'security_group_info', { host, security_groups: ids }),
      ),
    (rejected) => {
      for (const r of rejected) log.warn(r, 'security group item left out');
    },
  );

  const syncPeers = async () => {
    if (!settings.localIp || settings.tunnelTypes.length === 0) return;
    const args = { host, tunnel_ip: settings.localIp, tunnel_types: [...settings.tunnelTypes] };
    const res = await timed('tunnelSyncMs', () =>
      deps.broker.call(PLUGIN_TOPIC, 'tunnel_sync', args),
    );
    const synced = tunnelPeers(res);
    for (const r of synced.rejected) log.warn(r, 'tunnel peer left out');
    peers = synced.peers;
    peersKnown = true;
  };

  /** Every bridge's replace-flows at once; the first failure is raised once all ended. */
  const runFlows = async (step: FlowsStep) => {
    const ran = await Promise.allSettled(step.commands.map((c) => deps.runner.run(c)));
    const failed = ran.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };

  const kind: ResourceKindSpec<L2Fetched, DesiredOvs, OvsState, OvsStep> = {
    async fetch() {
      fetched = undefined;
      applied = undefined;
      if (!peersKnown) await syncPeers();
      const present = vmPorts(readState(deps.replica()), settings.intBridge);
      await fetchDetails(
        [...new Set(present.values())].filter((id) => !details.has(id) && !unknown.has(id)),
      );
      const state = readState(deps.replica());
      const inUse = groupsInUse(vmPorts(state, settings.intBridge).values(), details);
      fetched = { state, details, peers, sg: await groups.get(inUse) };
      return fetched;
    },
    desired: (f) => {
      const d = desiredOvs(settings, f.state, f.details, f.peers, f.sg);
      plannedZones = d.zones;
      for (const r of d.rejectedRules.filter((x) => !rulesLogged.has(x.rule))) {
        rulesLogged.add(r.rule);
        log.warn(r, 'security group rule left out');
      }
      for (const physnet of d.unmapped.filter((p) => !unmappedLogged.has(p))) {
        unmappedLogged.add(physnet);
        log.warn(
          { physnet },
          'no bridge mapping for this physical network here; its ports stay local to br-int',
        );
      }
      return d;
    },
    observe: async () => readState(deps.replica()),
    plan: (desired, observed) =>
      planOvs(settings, desired, observed, { cookie: deps.cookie, rundir: deps.rundir }),
    async apply(steps, id) {
      stats.ops = steps.reduce((n, s) => n + (s.kind === 'ovsdb' ? s.ops.length : 0), 0);
      const exec = { runner: deps.runner, log, ovsdb: deps.ovsdb, metrics: deps.metrics };
      await runSteps(exec, steps, { resource: 'l2', id }, runFlows);
      applied = fetched;
      const left = zonesLeft(zones, plannedZones);
      zones = plannedZones;
      await flushZones(deps.runner, log, deps.rundir, left);
    },
  };
  const reconciler = createReconciler({ log, kinds: { l2: kind }, classify });

  /** Hands every port's status to the reporter (down only after up) and flushes. */
  const reportPorts = async (f: L2Fetched) => {
    const want = portStatuses(f.state, settings.intBridge, f.details);
    const next = new Set<string>();
    for (const [id, status] of want) {
      if (status === 'down' && ports.sent(id) === undefined) ports.drop(id);
      else {
        ports.set(id, status);
        next.add(id);
      }
    }
    for (const id of new Set([...tracked, ...ports.sentKeys()])) {
      if (want.has(id)) continue;
      if (ports.sent(id) === 'up') {
        ports.set(id, 'down');
        next.add(id);
      } else ports.drop(id);
    }
    tracked = next;
    await ports.flush();
  };

  return {
    /** Reconciles `<resource>:<id>`; `l2:sync` then reports the ports' status. */
    async reconcile(resource: string, id: string, revision?: number) {
      const started = epoch();
      const woke = wokeAt;
      wokeAt = undefined;
      stats = {};
      await reconciler.reconcile(resource, id, revision);
      const done = applied;
      applied = undefined;
      if (!done) return;
      await reportPorts(done);
      log.debug(
        {
          ports: vmPorts(done.state, settings.intBridge).size,
          peers: done.peers.length,
          ...(woke !== undefined ? { wokeAt: woke, queuedMs: round(started - woke) } : {}),
          startedAt: started,
          ...stats,
          ms: round(epoch() - started),
        },
        'l2 sync',
      );
    },
    /** An OVSDB update arrived (the next sync's wake-up time). */
    noteUpdate() {
      wokeAt ??= epoch();
    },
    /** A `security_group` hint: ask for the groups' rules and members again. */
    forgetGroups() {
      groups.forget();
      rulesLogged.clear();
    },
    /**
     * A `port` hint (every host hears it): ask the API about it again and report it again;
     * its groups too when it is one of ours (a port new here changes the groups in use).
     */
    forgetPort(id: string) {
      if (details.has(id) || unknown.has(id)) groups.forget();
      details.delete(id);
      unknown.delete(id);
      ports.drop(id);
      tracked.delete(id);
    },
    /** A `tunnels` hint: ask for the peers again. */
    forgetPeers() {
      peersKnown = false;
    },
    /** A resync: ask the API about everything again and report every status again. */
    forget() {
      details.clear();
      unknown.clear();
      peersKnown = false;
      groups.forget();
      rulesLogged.clear();
      reconciler.forget();
      ports.forget();
    },
  };
}

export type L2 = ReturnType<typeof createL2>;
