/**
 * Neutron's LBaaS agent-scheduler API (neutron-lbaas lbaas_agentscheduler):
 * GET /v2.0/agents/{id}/loadbalancer-pools → {"pools": [...]} and
 * GET /v2.0/lb/pools/{id}/loadbalancer-agent → {"agent": {...}}.
 *
 * Invariants: admin-only (a non-admin gets Neutron's 403 `rule:get_loadbalancer-pools` /
 * `rule:get_loadbalancer-agent is disallowed by policy` before anything is looked up);
 * read-only. As Neutron: the pools of an agent that hosts none (or of an unknown agent)
 * are `{"pools": []}`, and a pool no agent hosts, or no pool at all, answers 200 with the
 * body `null` (Neutron's get_lbaas_agent_hosting_pool looks up the binding only and
 * returns None; the controller checks no parent pool).
 *
 * Kumo adds POST /v2.0/agents/{id}/loadbalancer-pools {"pool_id"}, the move Neutron's
 * LBaaS v1 lacks (the dashboard's rehosting uses it, as dhcp-networks and l3-routers for
 * the others): admin-only, to an admin-up LBaaS agent (InvalidLbaasAgent, 404, otherwise),
 * answered 201 with the body `null` like its siblings; a refused request changes nothing.
 */

import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject, UUID } from '../../contracts/schema.ts';
import type { Queryable } from '../db/index.ts';
import { getRow, listPools, poolNotFound } from '../db/lbaas.ts';
import { LBAAS_AGENT_TYPE, poolAgent, poolsOfAgent } from '../db/lbaas-bindings.ts';
import type { AppDeps } from '../deps.ts';
import { pick, values } from '../query.ts';
import { movePoolTo } from '../scheduler/lbaas.ts';
import { type ById, hostingAgentsBody, loadAgent, requireAdmin } from './agent-scheduler.ts';

/** Neutron v1's pool views (api/db/lbaas.ts, as GET /v2.0/lb/pools) of the pools `ids`. */
const poolViews = async (db: Queryable, ids: string[]) =>
  ids.length ? listPools(db, { columns: { id: ids }, clauses: [] }) : [];

export function lbaasAgentRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get('/v2.0/agents/:id/loadbalancer-pools', async (req: ById) => {
    requireAdmin(req, 'get_loadbalancer-pools');
    const ids = UUID.test(req.params.id) ? await poolsOfAgent(deps.db, req.params.id) : [];
    const pools = await poolViews(deps.db, ids);
    return { pools: pools.map((p) => pick(p, values(req.query.fields))) };
  });
  app.post('/v2.0/agents/:id/loadbalancer-pools', async (req: ById, reply) => {
    requireAdmin(req, 'create_loadbalancer-pool');
    const body = req.body;
    if (!isPlainObject(body) || typeof body.pool_id !== 'string')
      throw new ApiError(
        'BadRequest',
        "Invalid input: the body must be an object with a 'pool_id' string.",
      );
    const poolId = body.pool_id;
    if (!UUID.test(poolId) || !(await getRow(deps.db, 'lb_pools', poolId)))
      throw poolNotFound(poolId);
    const agent = await loadAgent(deps, req.params.id);
    const unusable = () =>
      new ApiError(
        'InvalidLbaasAgent',
        `Agent ${agent.id} is not a Loadbalancer agent or has been disabled`,
      );
    if (agent.agent_type !== LBAAS_AGENT_TYPE || !agent.admin_state_up) throw unusable();
    const result = await movePoolTo(deps, poolId, agent);
    if (result === 'no pool') throw poolNotFound(poolId);
    if (result === 'unusable agent') throw unusable();
    return reply.status(201).type('application/json').send('null');
  });
  app.get('/v2.0/lb/pools/:id/loadbalancer-agent', async (req: ById, reply) => {
    requireAdmin(req, 'get_loadbalancer-agent');
    const hosting = UUID.test(req.params.id) ? await poolAgent(deps.db, req.params.id) : undefined;
    if (!hosting) return reply.type('application/json').send('null');
    const { agents } = await hostingAgentsBody(deps, [hosting.id], req.query);
    return { agent: agents[0] };
  });
}
