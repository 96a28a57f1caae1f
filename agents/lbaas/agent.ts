/**
 * kumo-lbaas-agent hooks. Pools and HAProxy instances come with the LBaaS issue; until
 * then the agent reports its driver and the installed HAProxy version.
 */
import type { AgentHooks } from '../../core/agent.ts';
import { toolVersion } from '../../host/version.ts';
import { type HookDeps, nothingHosted } from '../run.ts';

export async function lbaasHooks({ config, runner }: HookDeps): Promise<AgentHooks> {
  const haproxyVersion = await toolVersion(runner, ['haproxy', '-v']);
  return {
    configurations: async () => ({
      device_drivers: [config.lbaas.device_driver],
      haproxy_version: haproxyVersion,
      instances: 0,
    }),
    resync: nothingHosted,
  };
}
