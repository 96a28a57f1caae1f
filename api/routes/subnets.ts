/**
 * Neutron v2.0 subnets: GET/POST /v2.0/subnets, GET/PUT/DELETE /v2.0/subnets/{id}.
 *
 * Invariants: a body is validated whole (schema, then CIDR, gateway, pools, DNS servers
 * and routes) before anything is written, and a refused request changes nothing; a subnet
 * on a network that does not exist, or that the caller may not see, is NetworkNotFound
 * (404). A non-admin sees its own subnets and those of the networks it sees (its own,
 * shared, external), creates, changes and deletes subnets only on its own networks (403
 * on one it only sees), and every create is held to the owner's subnet quota.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type Network,
  refuseReadOnly,
  type Subnet,
  SubnetCreate,
  SubnetUpdate,
} from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import { getNetwork } from '../db/networks.ts';
import {
  createSubnet,
  deleteSubnet,
  getSubnet,
  listSubnets,
  SUBNET_FILTERS,
  subnetNotFound,
  updateSubnet,
  visibleSubnets,
} from '../db/subnets.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents, hintRoutersOnNetwork } from '../hints.ts';
import { listScope, ownerForCreate } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { scheduleNetwork, syncDhcpPorts } from '../scheduler/dhcp.ts';
import { visibleNetwork } from './networks.ts';
import { disallowed, isAdmin, notOnThisNetwork, ownedBy, seesNetwork } from './neutron-policy.ts';
import { neutronQuota } from './neutron-quotas.ts';

/** get_subnet: admin, the subnet's owner, or a caller who sees its network. */
const seesSubnet = (req: FastifyRequest, s: Subnet, n: Network) =>
  isAdmin(req) || ownedBy(req, s.project_id) || seesNetwork(req, n);

/** update/delete_subnet: admin or the network's owner (403 on a subnet only seen). */
function authorize(req: FastifyRequest, action: string, n: Network) {
  if (!isAdmin(req) && !ownedBy(req, n.project_id)) throw disallowed(action);
}

/** Neutron: only a network's owner (or an admin) puts subnets on it; a shared one is 403. */
function authorizeCreate(req: FastifyRequest, n: Network, owner: string) {
  if (isAdmin(req) || ownedBy(req, n.project_id)) return;
  if (!n.shared) throw notOnThisNetwork(owner, 'subnet');
  throw disallowed('create_subnet');
}

export function subnetRoutes(app: FastifyInstance, deps: AppDeps) {
  /** The subnet and its network as the caller may see them; SubnetNotFound otherwise. */
  const load = async (req: FastifyRequest, id: string) => {
    const subnet = UUID.test(id) ? await getSubnet(deps.db, id) : undefined;
    const network = subnet ? await getNetwork(deps.db, subnet.network_id) : undefined;
    if (!subnet || !network || !seesSubnet(req, subnet, network)) throw subnetNotFound(id);
    return { subnet, network };
  };

  app.get('/v2.0/subnets', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'subnet', SUBNET_FILTERS);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.clauses.push(visibleSubnets(scope));
    return page(req, 'subnets', await listSubnets(deps.db, q.filter), q);
  });

  app.get(
    '/v2.0/subnets/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      subnet: pick((await load(req, req.params.id)).subnet, values(req.query.fields)),
    }),
  );

  app.post('/v2.0/subnets', async (req, reply) => {
    const body = SubnetCreate.parse(req.body).subnet;
    const network = await visibleNetwork(deps, req, body.network_id);
    const owner = ownerForCreate(req, body);
    authorizeCreate(req, network, owner);
    const subnet = await createSubnet(
      deps.db,
      { ...body, project_id: owner },
      deps.clock.now(),
      neutronQuota(deps),
    );
    deps.log.info(
      { subnetId: subnet.id, networkId: subnet.network_id, cidr: subnet.cidr },
      'subnet created',
    );
    // Schedules the network to DHCP agents (if it now needs one), fixes DHCP ports, hints.
    await scheduleNetwork(deps, subnet.network_id);
    return reply.status(201).send({ subnet });
  });

  app.put('/v2.0/subnets/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const before = await load(req, req.params.id);
    refuseReadOnly(req.body, 'subnet');
    const changes = SubnetUpdate.parse(req.body).subnet;
    authorize(req, 'update_subnet', before.network);
    const subnet = await updateSubnet(deps.db, before.subnet.id, changes, deps.clock.now());
    await scheduleNetwork(deps, subnet.network_id);
    void hintRoutersOnNetwork(deps, subnet.network_id);
    return { subnet };
  });

  app.delete(
    '/v2.0/subnets/:id',
    async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
      const { subnet, network } = await load(req, req.params.id);
      authorize(req, 'delete_subnet', network);
      await deleteSubnet(deps.db, subnet.id, deps.clock.now());
      deps.log.info({ subnetId: subnet.id, networkId: subnet.network_id }, 'subnet deleted');
      await syncDhcpPorts(deps, subnet.network_id).catch(() => false);
      await hintDhcpAgents(deps, subnet.network_id);
      return reply.status(204).send();
    },
  );
}
