/**
 * Nova 2.16's `host_status` of a server, from its host's compute agent: UP while the
 * agent is alive, UNKNOWN once its heartbeat is older than agent_down_time, MAINTENANCE
 * while an admin has it disabled (admin_state_up false, Nova's disabled service), and ""
 * for a server without a host or whose host has no compute agent (Nova's HostStatus.NONE).
 * Kumo has no forced-down services, so never DOWN.
 *
 * Invariant: one read of the compute agents serves a whole list, judged at one instant.
 */
import { agentsOfType, isAlive } from '../db/agents.ts';
import type { AppDeps } from '../deps.ts';
import { COMPUTE_AGENT } from '../scheduler/compute.ts';

export type HostStatus = 'UP' | 'UNKNOWN' | 'MAINTENANCE' | '';

/** A function giving each host's status, from the compute agents as they are now. */
export async function hostStatuses(deps: AppDeps): Promise<(host: string) => HostStatus> {
  const agents = await agentsOfType(deps.db, COMPUTE_AGENT.agentType);
  const now = deps.clock.now();
  const byHost = new Map(agents.map((a) => [a.host, a]));
  return (host) => {
    const agent = host === '' ? undefined : byHost.get(host);
    if (!agent) return '';
    if (!agent.adminStateUp) return 'MAINTENANCE';
    return isAlive(agent.heartbeat, now, deps.settings.agentDownTime) ? 'UP' : 'UNKNOWN';
  };
}
