/**
 * Neutron's L3 agent-scheduler API: GET/POST /v2.0/agents/{id}/l3-routers,
 * DELETE /v2.0/agents/{id}/l3-routers/{router_id}, GET /v2.0/routers/{id}/l3-agents.
 *
 * Invariants: admin-only (a non-admin gets Neutron's 403 `rule:get_l3-routers is
 * disallowed by policy` before anything is looked up); a router is added only to an
 * admin-up L3 agent (Neutron's InvalidL3Agent, a 404, otherwise), never while another
 * agent hosts it (409 RouterHostedByL3Agent), and adding it where it already is changes
 * nothing (201, as Neutron); removing a router an agent does not host changes nothing
 * (204, as Neutron's remove_router_from_l3_agent since it unbinds by a plain delete); an
 * add rebinds the router's ports to the agent's host (the fence) and every change hints
 * the agents concerned; POST answers 201 with the JSON body `null` (the openstack client
 * parses the body). A refused request changes nothing.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject, UUID } from '../../contracts/schema.ts';
import { hostingAgent, L3_AGENT_TYPE, routersOfAgent } from '../db/l3-bindings.ts';
import { getRouter, routerNotFound, routersById } from '../db/routers.ts';
import type { AppDeps } from '../deps.ts';
import { pick, values } from '../query.ts';
import { hostRouterOn, unhostRouterFrom } from '../scheduler/l3.ts';
import { type ById, hostingAgentsBody, loadAgent, requireAdmin } from './agent-scheduler.ts';

async function loadRouter(deps: AppDeps, id: string): Promise<string> {
  if (!UUID.test(id) || !(await getRouter(deps.db, id))) throw routerNotFound(id);
  return id;
}

/** POST …/l3-routers: Neutron's add_router_to_l3_agent (router, agent, then the checks). */
async function addRouter(deps: AppDeps, agentId: string, body: unknown) {
  if (!isPlainObject(body) || typeof body.router_id !== 'string')
    throw new ApiError(
      'BadRequest',
      "Invalid input: the body must be an object with a 'router_id' string.",
    );
  const routerId = await loadRouter(deps, body.router_id);
  const agent = await loadAgent(deps, agentId);
  if (agent.agent_type !== L3_AGENT_TYPE || !agent.admin_state_up)
    throw new ApiError(
      'InvalidL3Agent',
      `Agent ${agent.id} is not a L3 Agent or has been disabled`,
    );
  const result = await hostRouterOn(deps, routerId, agent);
  if (!result.bound && result.hostedBy !== null)
    throw new ApiError(
      'RouterHostedByL3Agent',
      `The router ${routerId} has been already hosted by the L3 Agent ${result.hostedBy}.`,
    );
}

/**
 * DELETE …/l3-routers/{router_id}: Neutron's remove_router_from_l3_agent — the agent
 * (AgentNotFound), the unbinding (none when the agent does not host the router: still a
 * 204), then the router (RouterNotFound); the agent that lost it is hinted.
 */
async function removeRouter(deps: AppDeps, agentId: string, routerId: string) {
  const agent = await loadAgent(deps, agentId);
  await loadRouter(deps, routerId);
  await unhostRouterFrom(deps, routerId, agent);
}

export function l3AgentRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get('/v2.0/agents/:id/l3-routers', async (req: ById) => {
    requireAdmin(req, 'get_l3-routers');
    const agent = await loadAgent(deps, req.params.id);
    const routers = await routersById(deps.db, await routersOfAgent(deps.db, agent.id));
    return { routers: routers.map((r) => pick(r, values(req.query.fields))) };
  });
  app.post('/v2.0/agents/:id/l3-routers', async (req: ById, reply) => {
    requireAdmin(req, 'create_l3-router');
    await addRouter(deps, req.params.id, req.body);
    return reply.status(201).type('application/json').send('null');
  });
  app.delete(
    '/v2.0/agents/:id/l3-routers/:router_id',
    async (req: FastifyRequest<{ Params: { id: string; router_id: string } }>, reply) => {
      requireAdmin(req, 'delete_l3-router');
      await removeRouter(deps, req.params.id, req.params.router_id);
      return reply.status(204).send();
    },
  );
  app.get('/v2.0/routers/:id/l3-agents', async (req: ById) => {
    requireAdmin(req, 'get_l3-agents');
    const routerId = await loadRouter(deps, req.params.id);
    const hosting = await hostingAgent(deps.db, routerId);
    return hostingAgentsBody(deps, hosting ? [hosting.id] : [], req.query);
  });
}
