/**
 * kumo-l3-agent: one qrouter-<router> namespace per router this host's L3 agent is
 * scheduled for, as the kit's reconciler with one resource kind, `router`.
 *
 * Invariants:
 * - one reconcile key per router (`router:<id>`): a burst of hints coalesces into one
 *   fetch, one `ip -batch` and at most one `iptables-restore --noflush`;
 * - a router's status is ACTIVE once reconciled (served, or torn down) and ERROR with the
 *   reason after a failure, retried with backoff while the other routers are served; one
 *   bad interface, route or floating IP is left out and listed in the status (`rejected`);
 * - after an apply, the floating IPs whose status the API has wrong are reported
 *   (update_floatingip_statuses): ACTIVE when served, ERROR when left out;
 * - a resync reconciles every router the API lists for this host and every router this
 *   agent has a marked state directory for, so what nothing claims is torn down (also
 *   after revival, when the router moved elsewhere), while qrouter namespaces without
 *   our marker are never touched;
 * - stopping or restarting the agent never touches a namespace, rule, route or haproxy (a
 *   restarted agent adopts each router's metadata proxy through its pid file);
 * - with `[metadata] metadata_proxy_shared_secret` set, the agent runs the metadata relay on
 *   `<state_path>/l3/metadata_proxy` (agents/lib/metadata-relay.ts) and each router a proxy
 *   (metadata.ts); without it metadata is off, said once at start.
 */
import { mkdir } from 'node:fs/promises';
import { GetActiveRoutersResult, parseRouterInfo, type RouterInfo } from '../../contracts/l3.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import { createReconciler, type KindStatus, type ResourceKindSpec } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { toolVersion } from '../../host/version.ts';
import { classify } from '../lib/errors.ts';
import { startAgentRelay } from '../lib/metadata-relay.ts';
import { lazyOvsdb } from '../lib/ovsdb.ts';
import { resyncServed, servedStatus } from '../lib/served.ts';
import { statusReporter } from '../lib/status.ts';
import { runSteps } from '../lib/steps.ts';
import type { HookDeps } from '../run.ts';
import {
  type DesiredRouter,
  desiredRouter,
  type FipStatusUpdate,
  type L3Settings,
  netnsOf,
  stateDirOf,
} from './desired.ts';
import { type ObservedRouter, observeRouter, ownedRouterIds } from './observe.ts';
import { type L3OwnStep, type L3Step, planRouter } from './plan.ts';

/** The L3 agent's metadata relay socket: `<state_path>/l3/metadata_proxy`. */
export const relaySocketOf = (config: HookDeps['config']) =>
  `${config.DEFAULT.state_path}/l3/metadata_proxy`;

export function l3Settings(config: HookDeps['config']): L3Settings {
  return {
    stateRoot: `${config.DEFAULT.state_path}/l3`,
    host: config.DEFAULT.host,
    intBridge: config.ovs.integration_bridge,
    netnsPrefix: config.DEFAULT.netns_prefix,
    sendArpCount: config.l3.send_arp_for_ha,
    ...(config.metadata.metadata_proxy_shared_secret
      ? { metadataSocket: relaySocketOf(config) }
      : {}),
    ...(config.ovs.vswitchd_netns ? { vswitchdNetns: config.ovs.vswitchd_netns } : {}),
  };
}

export interface RouterKindDeps {
  settings: L3Settings;
  runner: CommandRunner;
  log: Logger;
  ovsdb(): Promise<OvsdbClient>;
  /** get_router_info: router null when this host must serve nothing for it. */
  getRouter(id: string): Promise<RouterInfo>;
  /** update_floatingip_statuses for one router. */
  updateFloatingIpStatuses(routerId: string, statuses: FipStatusUpdate[]): Promise<void>;
  netnsExists?(name: string): Promise<boolean>;
  status?: KindStatus<RouterInfo, DesiredRouter | null, ResourceStatus>;
  /** Steps and iptables-restore runs counted (agents/lib/steps.ts); none when absent. */
  metrics?: StepMetrics;
}

/** Background commands at most this many at a time (a resync may announce thousands). */
export const BACKGROUND_LIMIT = 16;

/**
 * Runs commands without waiting for them, at most `limit` at once, the rest queued in
 * order; a failure is logged (a gratuitous ARP is advice to the neighbours, as Neutron's).
 */
export function backgroundRunner(runner: CommandRunner, log: Logger, limit = BACKGROUND_LIMIT) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return (spec: CommandSpec, ctx: Record<string, string>) => {
    const go = () => {
      running++;
      runner
        .run(spec)
        .catch((e: unknown) => log.warn({ ...ctx, err: String(e) }, 'background step failed'))
        .finally(() => {
          running--;
          waiting.shift()?.();
        });
    };
    if (running < limit) go();
    else waiting.push(go);
  };
}

/** The agent's own steps: background commands, floating IP status reports. */
function ownStepRunner(
  deps: RouterKindDeps,
  background: ReturnType<typeof backgroundRunner>,
  routerId: string,
) {
  return async (step: L3OwnStep) => {
    if (step.kind === 'fip-status') await deps.updateFloatingIpStatuses(routerId, step.statuses);
    else background(step.spec, { routerId, why: step.why });
  };
}

/** The `router` kind. No revisionOf: the router's revision does not cover its ports. */
export function routerKind(
  deps: RouterKindDeps,
): ResourceKindSpec<RouterInfo, DesiredRouter | null, ObservedRouter, L3Step, ResourceStatus> {
  const { settings, log } = deps;
  const background = backgroundRunner(deps.runner, log);
  return {
    fetch: (id) => deps.getRouter(id),
    desired: (info) => desiredRouter(info.router, settings, info.rejected),
    observe: (id, desired) => observeRouter(deps, settings, id, desired),
    plan: (desired, observed, id) =>
      planRouter(desired, observed, settings, {
        netns: netnsOf(settings, id),
        stateDir: stateDirOf(settings, id),
      }),
    async apply(steps, id) {
      if (steps.length)
        log.info({ routerId: id, steps: steps.map((s) => `${s.kind}: ${s.why}`) }, 'l3 apply');
      await runSteps(deps, steps, { routerId: id }, ownStepRunner(deps, background, id));
    },
    ...(deps.status ? { status: deps.status } : {}),
  };
}

/** A router's status (agents/lib/served.ts): ACTIVE once served or torn down, else ERROR. */
export function routerStatus(
  reporter: StatusReporter<ResourceStatus>,
  log: Logger,
  onServed: (id: string, router: DesiredRouter | null) => void = () => {},
): KindStatus<RouterInfo, DesiredRouter | null, ResourceStatus> {
  return servedStatus(reporter, log, 'router', (id, _info, desired) => onServed(id, desired));
}

/** What this host serves, counted for report_state's configurations. */
export function servedRouters() {
  const served = new Map<string, { interfaces: number; fips: number; gw: number }>();
  const sum = (k: 'interfaces' | 'fips' | 'gw') =>
    [...served.values()].reduce((n, x) => n + x[k], 0);
  return {
    note(id: string, d: DesiredRouter | null) {
      if (!d) served.delete(id);
      else
        served.set(id, {
          interfaces: d.ports.length - (d.gateway ? 1 : 0),
          fips: d.floatingIps.length,
          gw: d.gateway ? 1 : 0,
        });
    },
    totals: () => ({
      routers: served.size,
      interfaces: sum('interfaces'),
      floating_ips: sum('fips'),
      ex_gw_ports: sum('gw'),
    }),
  };
}

export async function l3Hooks({
  config,
  runner,
  log,
  broker,
  metrics,
}: HookDeps): Promise<AgentHooks> {
  const settings = l3Settings(config);
  const host = settings.host;
  const iptablesVersion = await toolVersion(runner, ['iptables', '--version']);
  const ovsdb = lazyOvsdb(config, log, metrics?.links);
  const reporter = statusReporter(broker, host, 'l3');
  const served = servedRouters();
  let ctl: AgentControl | undefined;
  let relay: { close(): Promise<void> } | null = null;

  const router = routerKind({
    settings,
    runner,
    log,
    ovsdb: ovsdb.get,
    metrics: metrics?.steps,
    async getRouter(id) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_router_info', { host, router_id: id });
      return parseRouterInfo(reply);
    },
    async updateFloatingIpStatuses(routerId, statuses) {
      await broker.call(PLUGIN_TOPIC, 'update_floatingip_statuses', {
        host,
        router_id: routerId,
        statuses,
      });
    },
    status: routerStatus(reporter, log, served.note),
  });
  const reconciler = createReconciler({ log, kinds: { router }, classify });

  return {
    configurations: async () => ({
      agent_mode: config.l3.agent_mode,
      iptables_version: iptablesVersion,
      ...served.totals(),
    }),
    async start(control) {
      ctl = control;
      await mkdir(settings.stateRoot, { recursive: true, mode: 0o755 });
      relay = await startAgentRelay({ config, broker, log, socket: relaySocketOf(config) });
    },
    async resync() {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_active_routers', { host });
      resyncServed({
        resource: 'router',
        active: GetActiveRoutersResult.parse(reply).routers,
        owned: await ownedRouterIds(settings),
        reporter,
        reconciler,
        enqueue: (resource, id) => ctl?.enqueue(resource, id),
      });
    },
    reconcile: (resource, id, revision) => reconciler.reconcile(resource, id, revision),
    async stop() {
      await relay?.close();
      await ovsdb.close();
    },
  };
}
