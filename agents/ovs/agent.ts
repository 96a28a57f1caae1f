/**
 * kumo-ovs-agent hooks. Issue #3 adds bridges, port binding and the tunnel mesh; until
 * then the agent reports its L2 settings and the installed Open vSwitch version.
 */
import type { AgentHooks } from '../../core/agent.ts';
import { toolVersion } from '../../host/version.ts';
import { type HookDeps, nothingHosted } from '../run.ts';

export async function ovsHooks({ config, runner }: HookDeps): Promise<AgentHooks> {
  const ovsVersion = await toolVersion(runner, ['ovs-vswitchd', '--version']);
  return {
    configurations: async () => ({
      integration_bridge: config.ovs.integration_bridge,
      tunnel_bridge: config.ovs.tunnel_bridge,
      datapath_type: config.ovs.datapath_type,
      tunneling_ip: config.ovs.local_ip ?? null,
      tunnel_types: config.agent.tunnel_types,
      l2_population: false,
      arp_responder_enabled: false,
      ovs_version: ovsVersion,
      devices: 0,
    }),
    resync: nothingHosted,
  };
}
