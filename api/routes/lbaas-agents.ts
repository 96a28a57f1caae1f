/**
 * Neutron's LBaaS agent-scheduler API (neutron-lbaas lbaas_agentscheduler):
 * GET /v2.0/agents/{id}/loadbalancer-pools → {"pools": [...]} and
 * GET /v2.0/lb/pools/{id}/loadbalancer-agent → {"agent": {...}}.
 *
 * Invariants: admin-only (a non-admin gets Neutron's 403 `rule:get_loadbalancer-pools` /
 * `rule:get_loadbalancer-agent is disallowed by policy` before anything is looked up);
 * read-only. As Neutron: the pools of an agent that hosts none (or of an unknown agent)
 * are `{"pools": []}`, and a pool no agent hosts answers 200 with the body `null`
 * (Neutron's get_lbaas_agent_hosting_pool returns None); an unknown pool is a 404.
 */

import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { LB_PROVIDER } from '../../contracts/lbaas.ts';
import { UUID } from '../../contracts/schema.ts';
import type { Queryable } from '../db/index.ts';
import { poolAgent, poolsOfAgent } from '../db/lbaas-bindings.ts';
import { bool } from '../db/neutron.ts';
import type { AppDeps } from '../deps.ts';
import { pick, values } from '../query.ts';
import { type ById, hostingAgentsBody, requireAdmin } from './agent-scheduler.ts';

type Row = Record<string, unknown>;

/** Neutron v1's pool view (loadbalancer_db._make_pool_dict) of the pools `ids`. */
async function poolViews(db: Queryable, ids: readonly string[]) {
  const out = [];
  for (const id of ids) {
    const [p] = await db.query<Row>('SELECT * FROM lb_pools WHERE id = ?', [id]);
    if (!p) continue;
    const [vip] = await db.query<{ id: string }>('SELECT id FROM lb_vips WHERE pool_id = ?', [id]);
    const members = await db.query<{ id: string }>(
      'SELECT id FROM lb_members WHERE pool_id = ? ORDER BY id',
      [id],
    );
    const monitors = await db.query<Row>(
      `SELECT monitor_id, status, status_description FROM lb_pool_monitors
        WHERE pool_id = ? ORDER BY seq`,
      [id],
    );
    out.push({
      id,
      tenant_id: p.project_id,
      project_id: p.project_id,
      vip_id: vip?.id ?? null,
      name: p.name,
      description: p.description,
      subnet_id: p.subnet_id,
      protocol: p.protocol,
      lb_method: p.lb_method,
      admin_state_up: bool(p.admin_state_up),
      status: p.status,
      status_description: p.status_description ?? null,
      provider: LB_PROVIDER,
      members: members.map((m) => m.id),
      health_monitors: monitors.map((m) => m.monitor_id),
      health_monitors_status: monitors.map((m) => ({
        monitor_id: m.monitor_id,
        status: m.status,
        status_description: m.status_description ?? null,
      })),
    });
  }
  return out;
}

async function poolExists(db: Queryable, id: string) {
  if (!UUID.test(id)) return false;
  const [row] = await db.query('SELECT 1 AS one FROM lb_pools WHERE id = ?', [id]);
  return row !== undefined;
}

export function lbaasAgentRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get('/v2.0/agents/:id/loadbalancer-pools', async (req: ById) => {
    requireAdmin(req, 'get_loadbalancer-pools');
    const ids = UUID.test(req.params.id) ? await poolsOfAgent(deps.db, req.params.id) : [];
    const pools = await poolViews(deps.db, ids);
    return { pools: pools.map((p) => pick(p, values(req.query.fields))) };
  });
  app.get('/v2.0/lb/pools/:id/loadbalancer-agent', async (req: ById, reply) => {
    requireAdmin(req, 'get_loadbalancer-agent');
    if (!(await poolExists(deps.db, req.params.id)))
      throw new ApiError('NotFound', `Pool ${req.params.id} could not be found`);
    const hosting = await poolAgent(deps.db, req.params.id);
    if (!hosting) return reply.type('application/json').send('null');
    const { agents } = await hostingAgentsBody(deps, [hosting.id], req.query);
    return { agent: agents[0] };
  });
}
