/**
 * Neutron LBaaS v1 pools: /v2.0/lb/pools (list, show, create, update, delete), a pool's
 * stats, and its health monitor associations (POST /v2.0/lb/pools/{id}/health_monitors,
 * DELETE /v2.0/lb/pools/{id}/health_monitors/{monitor_id}).
 *
 * Invariants: a body is validated whole before anything is written; a pool's subnet exists
 * and is one the caller sees; `provider` is haproxy or absent (ServiceProviderNotFound);
 * admin or the owner acts on a pool, and only on monitors it may see. A delete reads the
 * hosting agents before and tells them after (poolDeleted); every other change tells the
 * scheduler after commit (poolChanged). The association answers as Neutron's extension
 * controller does: 201 with `{"health_monitor": {}}` (create_pool_health_monitor's list
 * of monitor ids is no attribute of the sub-resource, so Neutron's view drops it).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { LB_PROVIDER } from '../../contracts/lbaas.ts';
import { MonitorAssociate, PoolCreate, PoolUpdate } from '../../contracts/lbaas-api.ts';
import {
  getView,
  listPools,
  monitorNotFound,
  POOL_FILTERS,
  poolNotFound,
  poolStats,
} from '../db/lbaas.ts';
import { associateMonitor, disassociateMonitor } from '../db/lbaas-monitors.ts';
import { createPool, deletePool, updatePool } from '../db/lbaas-writes.ts';
import type { AppDeps } from '../deps.ts';
import { ownerForCreate } from '../policy.ts';
import { lbaasHostsOf, poolDeleted } from '../scheduler/lbaas.ts';
import { type ById, loader, readRoutes, tell, visibleSubnet } from './lb-common.ts';

type Assoc = FastifyRequest<{ Params: { id: string; monitorId: string } }>;

function refuseProvider(provider: string | undefined) {
  if (provider !== undefined && provider !== LB_PROVIDER)
    throw new ApiError(
      'ServiceProviderNotFound',
      `Service provider '${provider}' could not be found for service type LOADBALANCER`,
    );
}

function associationRoutes(app: FastifyInstance, deps: AppDeps) {
  const loadPool = loader(deps, 'lb_pools', poolNotFound);
  const loadMonitor = loader(deps, 'lb_health_monitors', monitorNotFound);

  app.post('/v2.0/lb/pools/:id/health_monitors', async (req: ById, reply) => {
    const body = MonitorAssociate.parse(req.body).health_monitor;
    const pool = await loadPool(req, req.params.id);
    await loadMonitor(req, body.id);
    await associateMonitor(deps.db, String(pool.id), body.id, deps.clock.now());
    deps.log.info({ poolId: pool.id, monitorId: body.id }, 'health monitor associated');
    tell(deps, String(pool.id));
    return reply.status(201).send({ health_monitor: {} });
  });

  app.delete('/v2.0/lb/pools/:id/health_monitors/:monitorId', async (req: Assoc, reply) => {
    const pool = await loadPool(req, req.params.id);
    await disassociateMonitor(deps.db, String(pool.id), req.params.monitorId, deps.clock.now());
    deps.log.info(
      { poolId: pool.id, monitorId: req.params.monitorId },
      'health monitor disassociated',
    );
    tell(deps, String(pool.id));
    return reply.status(204).send();
  });
}

export function lbPoolRoutes(app: FastifyInstance, deps: AppDeps): void {
  const load = loader(deps, 'lb_pools', poolNotFound);
  const spec = { collection: 'pools', member: 'pool', filters: POOL_FILTERS, list: listPools };
  readRoutes(app, deps, spec, load);
  associationRoutes(app, deps);

  app.get('/v2.0/lb/pools/:id/stats', async (req: ById) => {
    const pool = await load(req, req.params.id);
    return { stats: await poolStats(deps.db, String(pool.id)) };
  });

  app.post('/v2.0/lb/pools', async (req, reply) => {
    const body = PoolCreate.parse(req.body).pool;
    const owner = ownerForCreate(req, body);
    refuseProvider(body.provider);
    await visibleSubnet(deps, req, body.subnet_id);
    const id = await createPool(deps.db, { ...body, project_id: owner }, deps.clock.now());
    deps.log.info({ poolId: id }, 'pool created');
    tell(deps, id);
    return reply.status(201).send({ pool: await getView(deps.db, 'lb_pools', id) });
  });

  app.put('/v2.0/lb/pools/:id', async (req: ById) => {
    const pool = await load(req, req.params.id);
    const changes = PoolUpdate.parse(req.body).pool;
    await updatePool(deps.db, String(pool.id), changes, deps.clock.now());
    deps.log.info({ poolId: pool.id }, 'pool updated');
    tell(deps, String(pool.id));
    return { pool: await load(req, String(pool.id)) };
  });

  app.delete('/v2.0/lb/pools/:id', async (req: ById, reply) => {
    const pool = await load(req, req.params.id);
    const id = String(pool.id);
    const hosts = await lbaasHostsOf(deps.db, id);
    await deletePool(deps.db, id, deps.clock.now());
    deps.log.info({ poolId: id }, 'pool deleted');
    void poolDeleted(deps, id, hosts);
    return reply.status(204).send();
  });
}
