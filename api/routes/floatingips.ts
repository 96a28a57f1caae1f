/**
 * Neutron v2.0 floating IPs: GET/POST /v2.0/floatingips, GET/PUT/DELETE
 * /v2.0/floatingips/{id}.
 *
 * Invariants: a body is validated whole before anything is written, and a refused request
 * changes nothing (floatingip-writes.ts runs each in one transaction, quota included).
 * Neutron's policy: a non-admin sees, changes and deletes only its own project's floating
 * IPs (any other is a 404, as a missing one), creates them on networks it sees, and sets
 * floating_ip_address only as an admin (create_floatingip:floating_ip_address). After every
 * change the routers that served the floating IP before and after are told (routerChanged,
 * after commit), and the external network's DHCP agents follow its port.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import {
  type FloatingIp,
  FloatingIpCreate,
  FloatingIpUpdate,
  refuseFloatingIpReadOnly,
} from '../../contracts/floatingip.ts';
import { canonicalIp } from '../../contracts/inet.ts';
import { UUID } from '../../contracts/schema.ts';
import { badFloatingIp, type Caller } from '../db/floatingip-assoc.ts';
import { createFloatingIp, deleteFloatingIp, updateFloatingIp } from '../db/floatingip-writes.ts';
import {
  FLOATINGIP_FILTERS,
  floatingIpNotFound,
  getFloatingIp,
  listFloatingIps,
} from '../db/floatingips.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents } from '../hints.ts';
import { callerProjectId, listScope, ownerForCreate, owns } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { routerChanged } from '../scheduler/l3.ts';
import { visibleNetwork } from './networks.ts';
import { disallowed, isAdmin } from './neutron-policy.ts';
import { neutronQuota } from './neutron-quotas.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;

const ADDRESS_FILTERS = ['floating_ip_address', 'fixed_ip_address'] as const;

/** The query with its address filters in canonical form (stored so); not an address: 400. */
function canonicalAddresses(query: Query): Query {
  const out = { ...query };
  for (const key of ADDRESS_FILTERS) {
    if (query[key] === undefined) continue;
    out[key] = values(query[key]).map((v) => {
      const ip = canonicalIp(v);
      if (ip === undefined)
        throw new ApiError(
          'BadRequest',
          `Invalid input for ${key}. Reason: '${v.slice(0, 45)}' is not a valid IP address.`,
        );
      return ip;
    });
  }
  return out;
}

const callerOf = (req: FastifyRequest): Caller => ({
  admin: isAdmin(req),
  projectId: callerProjectId(req),
});

/** The routers to tell after a change: the old and the new one, each once. */
function tellRouters(deps: AppDeps, ...fips: FloatingIp[]) {
  const routers = new Set(fips.flatMap((f) => (f.router_id ? [f.router_id] : [])));
  for (const id of routers) void routerChanged(deps, id);
}

function readRoutes(app: FastifyInstance, deps: AppDeps, load: Loader) {
  app.get('/v2.0/floatingips', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(canonicalAddresses(req.query), 'floatingip', FLOATINGIP_FILTERS);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.clauses.push({ sql: 'project_id = ?', params: [scope] });
    return page(req, 'floatingips', await listFloatingIps(deps.db, q.filter), q);
  });

  app.get(
    '/v2.0/floatingips/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      floatingip: pick(await load(req, req.params.id), values(req.query.fields)),
    }),
  );
}

type Loader = (req: FastifyRequest, id: string) => Promise<FloatingIp>;

export function floatingIpRoutes(app: FastifyInstance, deps: AppDeps): void {
  /** get_floatingip: admin or the owner; FloatingIPNotFound otherwise. */
  const load: Loader = async (req, id) => {
    const fip = UUID.test(id) ? await getFloatingIp(deps.db, id) : undefined;
    if (!fip || !owns(req, fip.project_id)) throw floatingIpNotFound(id);
    return fip;
  };
  readRoutes(app, deps, load);

  app.post('/v2.0/floatingips', async (req, reply) => {
    const body = FloatingIpCreate.parse(req.body).floatingip;
    const owner = ownerForCreate(req, body);
    if (!isAdmin(req) && body.floating_ip_address)
      throw disallowed('create_floatingip', ['floating_ip_address']);
    const network = await visibleNetwork(deps, req, body.floating_network_id);
    if (!network['router:external'])
      throw badFloatingIp(`Network ${network.id} is not a valid external network`);
    const fip = await createFloatingIp(
      deps.db,
      { ...body, project_id: owner },
      callerOf(req),
      deps.clock.now(),
      neutronQuota(deps),
    );
    deps.log.info(
      { floatingIpId: fip.id, address: fip.floating_ip_address, routerId: fip.router_id },
      'floating IP created',
    );
    tellRouters(deps, fip);
    void hintDhcpAgents(deps, fip.floating_network_id);
    return reply.status(201).send({ floatingip: fip });
  });

  app.put('/v2.0/floatingips/:id', async (req: ById) => {
    const fip = await load(req, req.params.id);
    refuseFloatingIpReadOnly(req.body);
    const changes = FloatingIpUpdate.parse(req.body).floatingip;
    const { before, after } = await updateFloatingIp(
      deps.db,
      fip.id,
      changes,
      callerOf(req),
      deps.clock.now(),
    );
    deps.log.info(
      { floatingIpId: fip.id, portId: after.port_id, routerId: after.router_id },
      'floating IP updated',
    );
    tellRouters(deps, before, after);
    return { floatingip: after };
  });

  app.delete('/v2.0/floatingips/:id', async (req: ById, reply) => {
    const fip = await load(req, req.params.id);
    const gone = await deleteFloatingIp(deps.db, fip.id);
    deps.log.info(
      { floatingIpId: fip.id, address: gone.floating_ip_address },
      'floating IP deleted',
    );
    tellRouters(deps, gone);
    void hintDhcpAgents(deps, gone.floating_network_id);
    return reply.status(204).send();
  });
}
