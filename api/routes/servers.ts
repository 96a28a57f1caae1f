/**
 * Nova v2.1 servers: POST /servers, GET /servers, /servers/detail, /servers/{id},
 * PUT /servers/{id}, the /ips routes, served at the endpoint root (where the openstack
 * client sends them with `--os-endpoint`) and under /v2.1, as the flavors are. The
 * create is in server-create.ts, the lists in server-list.ts, the views in
 * server-views.ts, DELETE and the actions in server-actions.ts, os-volume_attachments in
 * server-volumes.ts.
 *
 * Invariants: errors leave in Nova's shape; PUT answers Nova's short update view and
 * changes only what its body names; the create answers Nova's create view with the
 * admin password (enable_instance_password) and a Location, or only the reservation id
 * when asked for it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServerUpdate } from '../../contracts/servers.ts';
import { type InstanceRecord, updateInstance } from '../db/servers.ts';
import type { AppDeps } from '../deps.ts';
import type { Query } from '../query.ts';
import { installNovaErrors, links } from './nova.ts';
import { instanceNotFound, loadInstance, serverActionRoutes } from './server-actions.ts';
import { createServers } from './server-create.ts';
import { serverIpRoutes } from './server-ips.ts';
import { listServers } from './server-list.ts';
import { shortView, views } from './server-views.ts';
import { serverVolumeRoutes } from './server-volumes.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;
type Listing = FastifyRequest<{ Querystring: Query }>;

/** PUT /servers/{id}: name, accessIPv4, accessIPv6 (what the body names). */
async function updateServer(
  deps: AppDeps,
  req: FastifyRequest,
  id: string,
): Promise<InstanceRecord> {
  const inst = await loadInstance(deps, req, id);
  const { name, accessIPv4, accessIPv6 } = ServerUpdate.parse(req.body).server;
  const changes = { name, accessIPv4, accessIPv6 };
  if (!(await updateInstance(deps.db, inst.id, changes, deps.clock.now())))
    throw instanceNotFound(inst.id);
  return loadInstance(deps, req, inst.id);
}

/** 202: `{reservation_id}` when asked for, else Nova's create view of the first server. */
async function create(deps: AppDeps, req: FastifyRequest, reply: FastifyReply, prefix: string) {
  const { ids, batch } = await createServers(deps, req);
  if (batch.body.return_reservation_id === true)
    return reply.status(202).send({ reservation_id: batch.reservationId });
  const id = ids[0] as string;
  const self = links(req, prefix, 'servers', id);
  return reply
    .status(202)
    .header('location', self[0].href)
    .send({
      server: {
        id,
        links: self,
        'OS-DCF:diskConfig': 'MANUAL',
        security_groups: batch.body.security_groups ?? [{ name: 'default' }],
        adminPass: batch.adminPass,
      },
    });
}

function serverScope(scope: FastifyInstance, deps: AppDeps, prefix: string) {
  installNovaErrors(scope, deps.log);
  scope.get('/servers', (req: Listing) => listServers(deps, req, prefix, false));
  scope.get('/servers/detail', (req: Listing) => listServers(deps, req, prefix, true));
  scope.get('/servers/:id', async (req: ById) => {
    const inst = await loadInstance(deps, req, req.params.id);
    return { server: (await views(deps, req, prefix, [inst]))[0] };
  });
  scope.put('/servers/:id', async (req: ById) => {
    const inst = await updateServer(deps, req, req.params.id);
    return { server: await shortView(deps, req, prefix, inst) };
  });
  scope.post('/servers', (req, reply) => create(deps, req, reply, prefix));
  serverIpRoutes(scope, deps);
  serverActionRoutes(scope, deps);
  serverVolumeRoutes(scope, deps);
}

export function serverRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const prefix of ['', '/v2.1'])
    void app.register(async (scope) => serverScope(scope, deps, prefix), { prefix });
}
