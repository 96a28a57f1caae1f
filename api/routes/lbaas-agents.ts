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
 */

import type { FastifyInstance } from 'fastify';
import { UUID } from '../../contracts/schema.ts';
import type { Queryable } from '../db/index.ts';
import { listPools } from '../db/lbaas.ts';
import { poolAgent, poolsOfAgent } from '../db/lbaas-bindings.ts';
import type { AppDeps } from '../deps.ts';
import { pick, values } from '../query.ts';
import { type ById, hostingAgentsBody, requireAdmin } from './agent-scheduler.ts';

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
  app.get('/v2.0/lb/pools/:id/loadbalancer-agent', async (req: ById, reply) => {
    requireAdmin(req, 'get_loadbalancer-agent');
    const hosting = UUID.test(req.params.id) ? await poolAgent(deps.db, req.params.id) : undefined;
    if (!hosting) return reply.type('application/json').send('null');
    const { agents } = await hostingAgentsBody(deps, [hosting.id], req.query);
    return { agent: agents[0] };
  });
}
