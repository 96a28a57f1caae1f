/**
 * kumo-dhcp-agent: one qdhcp-<network> namespace and dnsmasq per network this host's
 * DHCP agent is scheduled for, as the kit's reconciler with one resource kind, `network`.
 *
 * Invariants:
 * - one reconcile key per network (`network:<id>`): a burst of hints for a network
 *   coalesces into one fetch, one file write and at most one SIGHUP;
 * - a network's status is ACTIVE once reconciled (served, or torn down) and ERROR with
 *   the reason after a failure, which is retried with backoff while the other networks
 *   are served: one bad network never stops its neighbours; likewise one bad subnet,
 *   port or value never stops its network: it is left out and listed in the network's
 *   status (`rejected`), which the API shows as the agent's failed_subnets/failed_ports;
 * - a resync reconciles every network the API lists for this host and every network this
 *   agent has a state directory for, so what nothing claims any more is torn down —
 *   including after revival, when the network moved elsewhere — while namespaces of
 *   other deployments on the machine are never touched; it re-sends every status;
 * - stopping or restarting the agent never touches a running dnsmasq or metadata proxy;
 *   the metadata relay (metadata.ts) runs inside the agent, from start to stop;
 * - a lease no port accounts for any more is released (plan.ts), so its address can go
 *   to the next port at once; unusable lines of the leases file are logged, never used.
 */
import { mkdir } from 'node:fs/promises';
import {
  type DhcpNetwork,
  GetActiveNetworksResult,
  type NetworkInfo,
  parseNetworkInfo,
} from '../../contracts/dhcp.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import type { CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import type { StepMetrics } from '../../core/metrics.ts';
import { createReconciler, type KindStatus, type ResourceKindSpec } from '../../core/reconciler.ts';
import type { StatusReporter } from '../../core/status.ts';
import type { OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { toolVersion } from '../../host/version.ts';
import { classify } from '../lib/errors.ts';
import { lazyOvsdb } from '../lib/ovsdb.ts';
import { resyncServed, servedStatus } from '../lib/served.ts';
import { statusReporter } from '../lib/status.ts';
import { runSteps, type Step } from '../lib/steps.ts';
import type { HookDeps } from '../run.ts';
import { type DesiredDhcp, type DhcpSettings, desiredDhcp } from './desired.ts';
import { dhcpRelaySocket, startDhcpRelay } from './metadata.ts';
import { type ObservedDhcp, observeNetwork, ownedNetworkIds } from './observe.ts';
import { planDhcp } from './plan.ts';

export function dhcpSettings(config: HookDeps['config']): DhcpSettings {
  const stateRoot = `${config.DEFAULT.state_path}/dhcp`;
  const metadataSocket = dhcpRelaySocket(config, stateRoot);
  return {
    stateRoot,
    leaseSeconds: config.dhcp.dhcp_lease_duration,
    intBridge: config.ovs.integration_bridge,
    netnsPrefix: config.DEFAULT.netns_prefix,
    ...(config.ovs.vswitchd_netns ? { vswitchdNetns: config.ovs.vswitchd_netns } : {}),
    ...(metadataSocket ? { metadataSocket } : {}),
  };
}

export interface NetworkKindDeps {
  settings: DhcpSettings;
  runner: CommandRunner;
  log: Logger;
  ovsdb(): Promise<OvsdbClient>;
  /** get_network_info: network null when this host must serve nothing for it. */
  getNetwork(id: string): Promise<NetworkInfo>;
  status?: KindStatus<NetworkInfo, DesiredDhcp | null, ResourceStatus>;
  /** Steps and dnsmasq reloads counted (agents/lib/steps.ts); none when absent. */
  metrics?: StepMetrics;
}

/** The old `dhcp apply` line (benches and operators read it): dnsmasq steps say so. */
const label = (st: Step) =>
  `${st.kind === 'daemon' || st.kind === 'signal' ? 'dnsmasq' : st.kind}: ${st.why}`;

/**
 * The `network` kind. No revisionOf: hints carry no revision, and the network's own
 * revision does not cover its ports.
 */
export function networkKind(
  deps: NetworkKindDeps,
): ResourceKindSpec<NetworkInfo, DesiredDhcp | null, ObservedDhcp, Step, ResourceStatus> {
  const { settings, log } = deps;
  return {
    fetch: (id) => deps.getNetwork(id),
    desired: (info) => desiredDhcp(info.network, settings, info.rejected),
    async observe(id, desired) {
      const observed = await observeNetwork(deps, settings, id, desired);
      const rejected = observed.leases?.rejected ?? [];
      if (rejected.length)
        log.warn({ networkId: id, rejected }, 'ignored lines of the leases file');
      return observed;
    },
    plan: (desired, observed, id) => planDhcp(desired, observed, settings, id),
    async apply(steps, id) {
      if (steps.length) log.info({ networkId: id, steps: steps.map(label) }, 'dhcp apply');
      await runSteps(deps, steps, { networkId: id });
    },
    ...(deps.status ? { status: deps.status } : {}),
  };
}

/** A network's status (agents/lib/served.ts): ACTIVE once served or torn down, else ERROR. */
export function networkStatus(
  reporter: StatusReporter<ResourceStatus>,
  log: Logger,
  onServed: (id: string, net: DhcpNetwork | null) => void = () => {},
): KindStatus<NetworkInfo, DesiredDhcp | null, ResourceStatus> {
  return servedStatus(reporter, log, 'network', (id, info, desired) =>
    onServed(id, desired && info.network),
  );
}

/** The networks this host serves, counted for report_state's configurations. */
function servedNetworks() {
  const served = new Map<string, { subnets: number; ports: number }>();
  const sum = (k: 'subnets' | 'ports') => [...served.values()].reduce((n, x) => n + x[k], 0);
  return {
    note(id: string, net: DhcpNetwork | null) {
      if (net) served.set(id, { subnets: net.subnets.length, ports: net.ports.length });
      else served.delete(id);
    },
    totals: () => ({ networks: served.size, subnets: sum('subnets'), ports: sum('ports') }),
  };
}

export async function dhcpHooks({
  config,
  runner,
  log,
  broker,
  metrics,
}: HookDeps): Promise<AgentHooks> {
  const settings = dhcpSettings(config);
  const host = config.DEFAULT.host;
  const dnsmasqVersion = await toolVersion(runner, ['dnsmasq', '--version']);
  const ovsdb = lazyOvsdb(config, log, metrics?.links);
  const reporter = statusReporter(broker, host, 'dhcp');
  const served = servedNetworks();
  let ctl: AgentControl | undefined;
  let closeRelay = async () => {};

  const network = networkKind({
    settings,
    runner,
    log,
    ovsdb: ovsdb.get,
    metrics: metrics?.steps,
    async getNetwork(id) {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_network_info', { host, network_id: id });
      return parseNetworkInfo(reply);
    },
    status: networkStatus(reporter, log, served.note),
  });
  const reconciler = createReconciler({ log, kinds: { network }, classify });

  return {
    configurations: async () => ({
      dhcp_driver: 'dnsmasq',
      dnsmasq_version: dnsmasqVersion,
      dhcp_lease_duration: settings.leaseSeconds,
      ...served.totals(),
    }),
    async start(control) {
      ctl = control;
      await mkdir(settings.stateRoot, { recursive: true, mode: 0o755 });
      closeRelay = await startDhcpRelay(config, settings.stateRoot, broker, log);
    },
    async resync() {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_active_networks', { host });
      resyncServed({
        resource: 'network',
        active: GetActiveNetworksResult.parse(reply).networks,
        owned: await ownedNetworkIds(settings),
        reporter,
        reconciler,
        enqueue: (resource, id) => ctl?.enqueue(resource, id),
      });
    },
    reconcile: (resource, id, revision) => reconciler.reconcile(resource, id, revision),
    async stop() {
      await closeRelay();
      await ovsdb.close();
    },
  };
}
