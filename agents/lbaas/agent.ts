/**
 * kumo-lbaas-agent: one qlbaas-<pool> namespace and haproxy per pool this host's LBaaS
 * agent is scheduled for, as the kit's reconciler with one resource kind, `pool`, and a
 * stats loop (stats.ts) reporting counters and member health.
 *
 * Invariants:
 * - one reconcile key per pool (`pool:<id>`): a burst of hints coalesces into one fetch,
 *   at most one config write and one hitless reload;
 * - a pool's status goes to the API only when it asked for it (`ack_wanted`: something of
 *   the pool is pending or in error), when members were left out, or on failure: ACTIVE
 *   with the pool revision served (so each revision is a change) and the rejected members,
 *   or ERROR with the reason; a pool answered null has its status key dropped;
 * - a resync reconciles every pool the API lists for this host and every pool this agent
 *   has a marked state directory for, so what nothing claims is torn down (namespace,
 *   haproxy, state) while namespaces without our marker are never touched;
 * - stopping, restarting or killing the agent never touches a running haproxy or its
 *   namespace: the next agent adopts it through its pid file.
 */
import { mkdir, readFile } from 'node:fs/promises';
import {
  GetActivePoolsResult,
  type LbPoolInfo,
  parseLbPoolInfo,
  type UpdatePoolStatsArgs,
} from '../../contracts/lbaas.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import { createReconciler, type KindStatus, type ResourceKindSpec } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import { findHaproxy, openFileLimit } from '../../host/haproxy/daemon.ts';
import { showInfo, showStat } from '../../host/haproxy/stats.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { stop } from '../../host/process/daemon.ts';
import { toolVersion } from '../../host/version.ts';
import { classify } from '../lib/errors.ts';
import { haproxyPaths } from '../lib/haproxy-instance.ts';
import { lazyOvsdb } from '../lib/ovsdb.ts';
import { resyncServed } from '../lib/served.ts';
import { resourceStatus, statusReporter } from '../lib/status.ts';
import { runSteps } from '../lib/steps.ts';
import type { HookDeps } from '../run.ts';
import {
  checkStatePath,
  type DesiredPool,
  desiredPool,
  type LbSettings,
  maxSocketPath,
  netnsOf,
  stateDirOf,
  statsBaseOf,
} from './desired.ts';
import { type ObservedPool, observePool, ownedPoolIds } from './observe.ts';
import { type PoolStep, planPool, type StopPidStep } from './plan.ts';
import { type StatsTarget, startStatsLoop, statsPass } from './stats.ts';

export function lbaasSettings(config: HookDeps['config'], fileLimit: number): LbSettings {
  return {
    fileLimit,
    stateRoot: `${config.DEFAULT.state_path}/lbaas`,
    host: config.DEFAULT.host,
    intBridge: config.ovs.integration_bridge,
    netnsPrefix: config.DEFAULT.netns_prefix,
    ...(config.ovs.vswitchd_netns ? { vswitchdNetns: config.ovs.vswitchd_netns } : {}),
  };
}

/** The host's pid_max (Linux's largest when unreadable). */
const pidMax = () =>
  readFile('/proc/sys/kernel/pid_max', 'utf8').then(
    (t) => Number.parseInt(t, 10) || 4_194_304,
    () => 4_194_304,
  );

export interface PoolKindDeps {
  settings: LbSettings;
  runner: CommandRunner;
  log: Logger;
  ovsdb(): Promise<OvsdbClient>;
  /** get_pool_info: pool null when this host must serve nothing for it. */
  getPool(id: string): Promise<LbPoolInfo>;
  netnsExists?(name: string): Promise<boolean>;
  status?: KindStatus<LbPoolInfo, DesiredPool | null, ResourceStatus>;
  /** Steps and haproxy reloads counted (agents/lib/steps.ts); none when absent. */
  metrics?: StepMetrics;
}

/** The `pool` kind. No revisionOf: a resync or retry must always look at the host. */
export function poolKind(
  deps: PoolKindDeps,
): ResourceKindSpec<LbPoolInfo, DesiredPool | null, ObservedPool, PoolStep, ResourceStatus> {
  const { settings, log } = deps;
  return {
    fetch: (id) => deps.getPool(id),
    desired(info) {
      const d = desiredPool(info.pool, settings, info.rejected);
      if (d?.connectionCap)
        log.warn(
          { poolId: d.poolId, ...d.connectionCap, fileLimit: settings.fileLimit },
          'VIP connection_limit above what the open file limit lets haproxy serve: lowered',
        );
      return d;
    },
    observe: (id, desired) => observePool(deps, settings, id, desired),
    plan: (desired, observed, id) =>
      planPool(desired, observed, settings, {
        netns: netnsOf(settings, id),
        stateDir: stateDirOf(settings, id),
      }),
    async apply(steps, id) {
      if (steps.length)
        log.info({ poolId: id, steps: steps.map((s) => `${s.kind}: ${s.why}`) }, 'lbaas apply');
      await runSteps(deps, steps, { poolId: id }, async (step: StopPidStep) => {
        await stop(step.pid, step.expected);
      });
    },
    ...(deps.status ? { status: deps.status } : {}),
  };
}

/** A pool's status (see the module comment); `onServed` tracks what this host serves. */
export function poolStatus(
  reporter: StatusReporter<ResourceStatus>,
  onServed: (id: string, desired: DesiredPool | null) => void = () => {},
): KindStatus<LbPoolInfo, DesiredPool | null, ResourceStatus> {
  return {
    reporter,
    ok(info, desired, id) {
      onServed(id, desired);
      const pool = info.pool;
      if (pool === null) return undefined;
      const rejected = desired?.rejected ?? info.rejected;
      if (!pool.ack_wanted && rejected.length === 0) return reporter.sent(`pool:${id}`);
      return {
        ...resourceStatus('pool', id),
        ...(rejected.length ? { rejected: [...rejected] } : {}),
        revision: pool.revision_number,
      };
    },
    failed: (err, id) => resourceStatus('pool', id, err),
  };
}

/** The pools this host serves: their stats targets, counted for report_state. */
export function servedPools() {
  const served = new Map<string, StatsTarget>();
  return {
    note(id: string, d: DesiredPool | null) {
      if (!d) {
        served.delete(id);
        return;
      }
      const paths = haproxyPaths(d.stateDir);
      served.set(id, {
        socket: d.haproxy.statsSocket,
        basePath: statsBaseOf(d.stateDir),
        pid: () => findHaproxy(paths),
      });
    },
    targets: (): ReadonlyMap<string, StatsTarget> => served,
  };
}

/** The settings on this host, refused (naming state_path) when haproxy could not serve them. */
async function hostSettings(config: HookDeps['config']): Promise<LbSettings> {
  const settings = lbaasSettings(config, await openFileLimit());
  checkStatePath(settings, config.DEFAULT.state_path, maxSocketPath(await pidMax()));
  return settings;
}

/** The stats loop's pass over the served pools' real stats sockets, casting its reports. */
function brokerStatsPass(
  { log, broker }: Pick<HookDeps, 'log' | 'broker'>,
  host: string,
  served: ReturnType<typeof servedPools>,
) {
  return statsPass({
    host,
    log,
    targets: served.targets,
    showStat: (socket) => showStat(socket),
    showPid: async (socket) => (await showInfo(socket)).pid,
    send: (args: UpdatePoolStatsArgs) => broker.cast(PLUGIN_TOPIC, 'update_pool_stats', args),
  });
}

export async function lbaasHooks({
  config,
  runner,
  log,
  broker,
  metrics,
}: HookDeps): Promise<AgentHooks> {
  const settings = await hostSettings(config);
  const host = settings.host;
  const haproxyVersion = await toolVersion(runner, ['haproxy', '-v']);
  const ovsdb = lazyOvsdb(config, log, metrics?.links);
  const reporter = statusReporter(broker, host, 'lbaas');
  const served = servedPools();
  let ctl: AgentControl | undefined;
  let stopStats = async () => {};

  const pool = poolKind({
    settings,
    runner,
    log,
    ovsdb: ovsdb.get,
    metrics: metrics?.steps,
    async getPool(id) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_pool_info', { host, pool_id: id });
      return parseLbPoolInfo(reply);
    },
    status: poolStatus(reporter, served.note),
  });
  const reconciler = createReconciler({ log, kinds: { pool }, classify });
  const pass = brokerStatsPass({ log, broker }, host, served);

  return {
    configurations: async () => ({
      device_drivers: [config.lbaas.device_driver],
      haproxy_version: haproxyVersion,
      instances: served.targets().size,
    }),
    async start(control) {
      ctl = control;
      await mkdir(settings.stateRoot, { recursive: true, mode: 0o755 });
      stopStats = startStatsLoop(pass, config.lbaas.stats_interval * 1000);
    },
    async resync() {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_active_pools', { host });
      resyncServed({
        resource: 'pool',
        active: GetActivePoolsResult.parse(reply).pools,
        owned: await ownedPoolIds(settings),
        reporter,
        reconciler,
        enqueue: (resource, id) => ctl?.enqueue(resource, id),
      });
    },
    reconcile: (resource, id, revision) => reconciler.reconcile(resource, id, revision),
    async stop() {
      await stopStats();
      await ovsdb.close();
    },
  };
}
