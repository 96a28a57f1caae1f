/**
 * Neutron LBaaS v1 health monitors: /v2.0/lb/health_monitors (list, show, create, update,
 * delete).
 *
 * Invariants: a body is validated whole before anything is written (url_path and
 * expected_codes by the strict patterns that alone reach haproxy.cfg); a monitor in use by
 * a pool is never deleted (HealthMonitorInUse); a change tells every pool it serves.
 */
import type { FastifyInstance } from 'fastify';
import { MonitorCreate, MonitorUpdate } from '../../contracts/lbaas-api.ts';
import { getView, listMonitors, MONITOR_FILTERS, monitorNotFound } from '../db/lbaas.ts';
import { createMonitor, deleteMonitor, updateMonitor } from '../db/lbaas-monitors.ts';
import type { AppDeps } from '../deps.ts';
import { ownerForCreate } from '../policy.ts';
import { type ById, loader, readRoutes, tell } from './lb-common.ts';

export function lbMonitorRoutes(app: FastifyInstance, deps: AppDeps): void {
  const load = loader(deps, 'lb_health_monitors', monitorNotFound);
  readRoutes(
    app,
    deps,
    {
      collection: 'health_monitors',
      member: 'health_monitor',
      filters: MONITOR_FILTERS,
      list: listMonitors,
    },
    load,
  );

  app.post('/v2.0/lb/health_monitors', async (req, reply) => {
    const body = MonitorCreate.parse(req.body).health_monitor;
    const owner = ownerForCreate(req, body);
    const id = await createMonitor(deps.db, { ...body, project_id: owner }, deps.clock.now());
    deps.log.info({ monitorId: id }, 'health monitor created');
    return reply
      .status(201)
      .send({ health_monitor: await getView(deps.db, 'lb_health_monitors', id) });
  });

  app.put('/v2.0/lb/health_monitors/:id', async (req: ById) => {
    const monitor = await load(req, req.params.id);
    const changes = MonitorUpdate.parse(req.body).health_monitor;
    const id = String(monitor.id);
    const pools = await updateMonitor(deps.db, id, changes, deps.clock.now());
    deps.log.info({ monitorId: id, pools }, 'health monitor updated');
    tell(deps, ...pools);
    return { health_monitor: await load(req, id) };
  });

  app.delete('/v2.0/lb/health_monitors/:id', async (req: ById, reply) => {
    const monitor = await load(req, req.params.id);
    await deleteMonitor(deps.db, String(monitor.id));
    deps.log.info({ monitorId: monitor.id }, 'health monitor deleted');
    return reply.status(204).send();
  });
}
