/**
 * What Neutron's DHCP and L3 agent-scheduler APIs share (api/routes/dhcp-agents.ts,
 * l3-agents.ts): the admin-only policy check, the agent lookup and the agents hosting a
 * resource, in the agent API's own shape.
 *
 * Invariant: the policy check comes before any lookup, so a non-admin learns nothing about
 * which agents or resources exist; a malformed id is the same 404 as an unknown one.
 */
import type { FastifyRequest } from 'fastify';
import type { Agent } from '../../contracts/agents.ts';
import { ApiError } from '../../contracts/errors.ts';
import { UUID } from '../../contracts/schema.ts';
import { getAgent, listAgents } from '../db/agents.ts';
import type { AppDeps } from '../deps.ts';
import { pick, type Query, values } from '../query.ts';
import { disallowed, isAdmin } from './neutron-policy.ts';

export type ById = FastifyRequest<{ Params: { id: string }; Querystring: Query }>;

/** Neutron's 403 `rule:<rule> is disallowed by policy` for a non-admin. */
export function requireAdmin(req: FastifyRequest, rule: string) {
  if (!isAdmin(req)) throw disallowed(rule);
}

/** The agent `id`, or Neutron's AgentNotFound (404). */
export async function loadAgent(deps: AppDeps, id: string): Promise<Agent> {
  const agent = UUID.test(id)
    ? await getAgent(deps.db, id, deps.clock.now(), deps.settings.agentDownTime)
    : undefined;
  if (!agent) throw new ApiError('AgentNotFound', `Agent ${id} could not be found.`);
  return agent;
}

/** `{agents}` for the agents `ids` (those hosting a resource), with `?fields=` applied. */
export async function hostingAgentsBody(deps: AppDeps, ids: readonly string[], query: Query) {
  const now = deps.clock.now();
  const agents = ids.length
    ? await listAgents(deps.db, { id: [...ids] }, now, deps.settings.agentDownTime)
    : [];
  return { agents: agents.map((a) => pick(a, values(query.fields))) };
}
