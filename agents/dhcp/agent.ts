/**
 * kumo-dhcp-agent: one qdhcp-<network> namespace and dnsmasq per network this host's
 * DHCP agent is scheduled for.
 *
 * Invariants:
 * - one reconcile key per network (`network:<id>`): a burst of hints for a network
 *   coalesces into one fetch, one file write and at most one SIGHUP;
 * - a resync reconciles every network the API lists for this host and every network this
 *   agent has a state directory for, so what nothing claims any more is torn down —
 *   including after revival, when the network moved elsewhere — while namespaces of
 *   other deployments on the machine are never touched;
 * - stopping or restarting the agent never touches a running dnsmasq;
 * - a lease no port accounts for any more is released (plan.ts), so its address can go
 *   to the next port at once; unusable lines of the leases file are logged, never used.
 */
import { mkdir } from 'node:fs/promises';
import { GetActiveNetworksResult, GetNetworkInfoResult } from '../../contracts/dhcp.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import { toolVersion } from '../../host/version.ts';
import type { HookDeps } from '../run.ts';
import { applyDhcp } from './apply.ts';
import { type DhcpSettings, desiredDhcp } from './desired.ts';
import { observedNetworkIds, observeNetwork } from './observe.ts';
import { planDhcp } from './plan.ts';

export function dhcpSettings(config: HookDeps['config']): DhcpSettings {
  return {
    stateRoot: `${config.DEFAULT.state_path}/dhcp`,
    leaseSeconds: config.dhcp.dhcp_lease_duration,
    intBridge: config.ovs.integration_bridge,
    ovsdbConnection: config.ovs.ovsdb_connection,
    netnsPrefix: config.DEFAULT.netns_prefix,
    ...(config.ovs.vswitchd_netns ? { vswitchdNetns: config.ovs.vswitchd_netns } : {}),
  };
}

export async function dhcpHooks({ config, runner, log, broker }: HookDeps): Promise<AgentHooks> {
  const settings = dhcpSettings(config);
  const host = config.DEFAULT.host;
  const dnsmasqVersion = await toolVersion(runner, ['dnsmasq', '--version']);
  const served = new Map<string, { subnets: number; ports: number }>();
  let ctl: AgentControl | undefined;

  const reconcileNetwork = async (networkId: string) => {
    const reply = await broker.call(PLUGIN_TOPIC, 'get_network_info', {
      host,
      network_id: networkId,
    });
    const { network } = GetNetworkInfoResult.parse(reply);
    const desired = desiredDhcp(network, settings);
    const observed = await observeNetwork(runner, settings, networkId);
    const rejected = observed.leases?.rejected ?? [];
    if (rejected.length) log.warn({ networkId, rejected }, 'ignored lines of the leases file');
    const steps = planDhcp(desired, observed, settings, networkId);
    if (steps.length)
      log.info({ networkId, steps: steps.map((s) => `${s.kind}: ${s.why}`) }, 'dhcp apply');
    await applyDhcp(runner, steps);
    if (desired && network)
      served.set(networkId, { subnets: network.subnets.length, ports: network.ports.length });
    else served.delete(networkId);
  };

  return {
    configurations: async () => ({
      dhcp_driver: 'dnsmasq',
      dnsmasq_version: dnsmasqVersion,
      dhcp_lease_duration: settings.leaseSeconds,
      networks: served.size,
      subnets: [...served.values()].reduce((n, x) => n + x.subnets, 0),
      ports: [...served.values()].reduce((n, x) => n + x.ports, 0),
    }),
    async start(control) {
      ctl = control;
      await mkdir(settings.stateRoot, { recursive: true, mode: 0o755 });
    },
    async resync() {
      const reply = await broker.call(PLUGIN_TOPIC, 'get_active_networks', { host });
      const active = GetActiveNetworksResult.parse(reply).networks;
      const ids = new Set([...active, ...(await observedNetworkIds(settings))]);
      for (const id of ids) ctl?.enqueue('network', id);
    },
    async reconcile(resource, id) {
      if (resource !== 'network') throw new Error(`kumo-dhcp-agent does not manage ${resource}`);
      await reconcileNetwork(id);
    },
  };
}
