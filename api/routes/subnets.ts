/**
 * Neutron v2.0 subnets: GET/POST /v2.0/subnets, GET/PUT/DELETE /v2.0/subnets/{id}.
 *
 * Invariants: a body is validated whole (schema, then CIDR, gateway, pools, DNS servers
 * and routes) before anything is written, and a refused request changes nothing; a subnet
 * on a network that does not exist is NetworkNotFound (404).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { refuseReadOnly, SubnetCreate, SubnetUpdate } from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import {
  createSubnet,
  deleteSubnet,
  getSubnet,
  listSubnets,
  SUBNET_FILTERS,
  subnetNotFound,
  updateSubnet,
} from '../db/subnets.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents } from '../hints.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { scheduleNetwork, syncDhcpPorts } from '../scheduler/dhcp.ts';

export function subnetRoutes(app: FastifyInstance, deps: AppDeps) {
  const load = async (id: string) => {
    const subnet = UUID.test(id) ? await getSubnet(deps.db, id) : undefined;
    if (!subnet) throw subnetNotFound(id);
    return subnet;
  };

  app.get('/v2.0/subnets', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'subnet', SUBNET_FILTERS);
    return page(req, 'subnets', await listSubnets(deps.db, q.filter), q);
  });

  app.get(
    '/v2.0/subnets/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      subnet: pick(await load(req.params.id), values(req.query.fields)),
    }),
  );

  app.post('/v2.0/subnets', async (req, reply) => {
    const body = SubnetCreate.parse(req.body).subnet;
    const subnet = await createSubnet(deps.db, body, deps.clock.now());
    deps.log.info(
      { subnetId: subnet.id, networkId: subnet.network_id, cidr: subnet.cidr },
      'subnet created',
    );
    // Schedules the network to DHCP agents (if it now needs one), fixes DHCP ports, hints.
    await scheduleNetwork(deps, subnet.network_id);
    return reply.status(201).send({ subnet });
  });

  app.put('/v2.0/subnets/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const before = await load(req.params.id);
    refuseReadOnly(req.body, 'subnet');
    const changes = SubnetUpdate.parse(req.body).subnet;
    const subnet = await updateSubnet(deps.db, before.id, changes, deps.clock.now());
    await scheduleNetwork(deps, subnet.network_id);
    return { subnet };
  });

  app.delete(
    '/v2.0/subnets/:id',
    async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
      const subnet = await load(req.params.id);
      await deleteSubnet(deps.db, subnet.id, deps.clock.now());
      deps.log.info({ subnetId: subnet.id, networkId: subnet.network_id }, 'subnet deleted');
      await syncDhcpPorts(deps, subnet.network_id).catch(() => false);
      await hintDhcpAgents(deps, subnet.network_id);
      return reply.status(204).send();
    },
  );
}
