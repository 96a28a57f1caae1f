/**
 * Neutron v2.0 ports: GET/POST /v2.0/ports, GET/PUT/DELETE /v2.0/ports/{id}.
 *
 * Invariants: a body is validated whole before anything is written, and a refused request
 * changes nothing (IPAM and MAC choice run in the same transaction as the port row);
 * binding attributes are admin-only, as in Neutron's policy.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PortCreate, PortUpdate, refuseReadOnly } from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import {
  createPort,
  deletePort,
  fixedIpClauses,
  getPort,
  listPorts,
  PORT_FILTERS,
  portNotFound,
  updatePort,
} from '../db/ports.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents, hintL2Port } from '../hints.ts';
import { page, parseListQuery, pick, type Query, requireAdminFor, values } from '../query.ts';

const ADMIN_PORT_ATTRS = ['binding:host_id', 'binding:profile'] as const;

export function portRoutes(app: FastifyInstance, deps: AppDeps) {
  const load = async (id: string) => {
    const port = UUID.test(id) ? await getPort(deps.db, id) : undefined;
    if (!port) throw portNotFound(id);
    return port;
  };

  app.get('/v2.0/ports', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'port', PORT_FILTERS, { fixed_ips: fixedIpClauses });
    return page(req, 'ports', await listPorts(deps.db, q.filter), q);
  });

  app.get(
    '/v2.0/ports/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      port: pick(await load(req.params.id), values(req.query.fields)),
    }),
  );

  app.post('/v2.0/ports', async (req, reply) => {
    requireAdminFor(req, 'create', 'port', ADMIN_PORT_ATTRS);
    const body = PortCreate.parse(req.body).port;
    const port = await createPort(deps.db, body, deps.clock.now());
    deps.log.info(
      { portId: port.id, networkId: port.network_id, fixedIps: port.fixed_ips },
      'port created',
    );
    void hintDhcpAgents(deps, port.network_id);
    return reply.status(201).send({ port });
  });

  app.put('/v2.0/ports/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    requireAdminFor(req, 'update', 'port', ADMIN_PORT_ATTRS);
    const before = await load(req.params.id);
    refuseReadOnly(req.body, 'port');
    const changes = PortUpdate.parse(req.body).port;
    const port = await updatePort(deps.db, before.id, changes, deps.clock.now());
    void hintL2Port(deps, port.id);
    void hintDhcpAgents(deps, port.network_id);
    return { port };
  });

  app.delete('/v2.0/ports/:id', async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const port = await load(req.params.id);
    await deletePort(deps.db, port.id);
    deps.log.info({ portId: port.id, networkId: port.network_id }, 'port deleted');
    void hintL2Port(deps, port.id);
    void hintDhcpAgents(deps, port.network_id);
    return reply.status(204).send();
  });
}
