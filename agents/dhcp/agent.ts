/**
 * kumo-dhcp-agent hooks. Issue #4 adds qdhcp namespaces and dnsmasq; until then the agent
 * reports its driver, lease time and the installed dnsmasq version.
 */
import type { AgentHooks } from '../../core/agent.ts';
import { toolVersion } from '../../host/version.ts';
import { type HookDeps, nothingHosted } from '../run.ts';

export async function dhcpHooks({ config, runner }: HookDeps): Promise<AgentHooks> {
  const dnsmasqVersion = await toolVersion(runner, ['dnsmasq', '--version']);
  return {
    configurations: async () => ({
      dhcp_driver: 'dnsmasq',
      dnsmasq_version: dnsmasqVersion,
      dhcp_lease_duration: config.dhcp.dhcp_lease_duration,
      networks: 0,
      subnets: 0,
      ports: 0,
    }),
    resync: nothingHosted,
  };
}
