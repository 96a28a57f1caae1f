/**
 * kumo-l3-agent hooks. Routers, SNAT and floating IPs come with the L3 issue; until then
 * the agent reports its mode and the iptables it would program.
 */
import type { AgentHooks } from '../../core/agent.ts';
import { toolVersion } from '../../host/version.ts';
import { type HookDeps, nothingHosted } from '../run.ts';

export async function l3Hooks({ config, runner }: HookDeps): Promise<AgentHooks> {
  const iptablesVersion = await toolVersion(runner, ['iptables', '--version']);
  return {
    configurations: async () => ({
      agent_mode: config.l3.agent_mode,
      iptables_version: iptablesVersion,
      routers: 0,
      interfaces: 0,
      floating_ips: 0,
      ex_gw_ports: 0,
    }),
    resync: nothingHosted,
  };
}
