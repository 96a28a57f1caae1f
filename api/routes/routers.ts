/**
 * Neutron v2.0 routers: GET/POST /v2.0/routers, GET/PUT/DELETE /v2.0/routers/{id}, PUT
 * …/add_router_interface, …/remove_router_interface, …/add_extraroutes and
 * …/remove_extraroutes.
 *
 * Invariants: a body is validated whole before anything is written, and a refused request
 * changes nothing (each write is one transaction, api/db/routers.ts); a non-admin sees and
 * acts on its own routers only (another project's is a 404, as a missing one), names only
 * networks, subnets and ports it may see, and may not set a gateway's enable_snat or
 * external_fixed_ips (Neutron's admin-only sub-attribute rules); every change an L3 agent
 * serves is followed, after commit, by routerChanged (which schedules, binds and hints).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import {
  ExtraRoutes,
  type GatewayRequest,
  type Route,
  type Router,
  RouterCreate,
  RouterInterfaceRequest,
  RouterUpdate,
} from '../../contracts/router.ts';
import { UUID } from '../../contracts/schema.ts';
import { getPort, portNotFound } from '../db/ports.ts';
import { addRouterInterface, removeRouterInterface } from '../db/router-interfaces.ts';
import { badRouter } from '../db/router-ports.ts';
import { mergeRoutes, withoutRoutes } from '../db/router-routes.ts';
import {
  createRouter,
  deleteRouter,
  editRoutes,
  getRouter,
  listRouters,
  ROUTER_FILTERS,
  routerNotFound,
  routerPorts,
  updateRouter,
} from '../db/routers.ts';
import { getSubnet, subnetNotFound } from '../db/subnets.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents, hintL2Port } from '../hints.ts';
import { listScope, ownerForCreate, owns } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import { l3HostsOf, routerChanged, routerDeleted } from '../scheduler/l3.ts';
import { visibleNetwork } from './networks.ts';
import { isAdmin, ownedBy } from './neutron-policy.ts';
import { neutronQuota } from './neutron-quotas.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;

/** Gateway sub-attributes only an admin sets (neutron/conf/policies/router.py). */
const ADMIN_GATEWAY_ATTRS = ['enable_snat', 'external_fixed_ips'] as const;
const GATEWAY_ATTRS = ['network_id', ...ADMIN_GATEWAY_ATTRS] as const;

/** The router as the caller may see it, or RouterNotFound as for a missing one. */
async function visibleRouter(deps: AppDeps, req: FastifyRequest, id: string): Promise<Router> {
  const router = UUID.test(id) ? await getRouter(deps.db, id) : undefined;
  if (!router || !owns(req, router.project_id)) throw routerNotFound(id);
  return router;
}

/**
 * The gateway rules of create_router / update_router: a non-admin names a network it may
 * see, and no admin-only sub-attribute; the 403 spells the rule Neutron checks.
 */
async function authorizeGateway(
  deps: AppDeps,
  req: FastifyRequest,
  action: 'create_router' | 'update_router',
  gw: GatewayRequest | null | undefined,
) {
  if (!gw || isAdmin(req)) return;
  await visibleNetwork(deps, req, gw.network_id);
  if (!ADMIN_GATEWAY_ATTRS.some((a) => gw[a] !== undefined)) return;
  const subs = GATEWAY_ATTRS.filter((a) => gw[a] !== undefined)
    .map((a) => `rule:${action}:external_gateway_info:${a}`)
    .join(' and ');
  throw new ApiError(
    'PolicyNotAuthorized',
    `(rule:${action} and (rule:${action}:external_gateway_info and (${subs}))) is disallowed by policy`,
  );
}

/** The subnet or port an interface request names must be one the caller may see; a subnet, the caller's own. */
async function authorizeInterface(
  deps: AppDeps,
  req: FastifyRequest,
  body: RouterInterfaceRequest,
) {
  if (isAdmin(req)) return;
  if (body.port_id !== undefined) {
    const port = await getPort(deps.db, body.port_id);
    const net = port && (await visibleNetwork(deps, req, port.network_id).catch(() => undefined));
    if (!port || !(ownedBy(req, port.project_id) || (net && ownedBy(req, net.project_id))))
      throw portNotFound(body.port_id);
  }
  if (body.subnet_id !== undefined) {
    const subnet = await getSubnet(deps.db, body.subnet_id);
    const net =
      subnet && (await visibleNetwork(deps, req, subnet.network_id).catch(() => undefined));
    if (!subnet || !(ownedBy(req, subnet.project_id) || net)) throw subnetNotFound(body.subnet_id);
    // A shared or external network's subnet is visible but not the caller's: its gateway
    // address would be taken over by this router (Neutron's LP-1757482).
    if (!ownedBy(req, subnet.project_id))
      throw badRouter(
        `Cannot add interface to router because subnet ${subnet.id} is not owned by project making the request`,
      );
  }
}

/** The attributes of a router an L3 agent serves (name and description it does not). */
const SERVED = ['external_gateway_info', 'routes', 'admin_state_up'] as const;

/** Whether an update changed anything an L3 agent serves (else no hint is sent). */
const servedChanged = (before: Router, after: Router) =>
  SERVED.some((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));

/** After a committed change: schedule, bind, hint (never rejects, so not awaited). */
const changed = (deps: AppDeps, id: string) => void routerChanged(deps, id);

/**
 * Runs `change`, then hints the L2 agents of the router's ports it deleted (an interface
 * removed, the gateway cleared or replaced, the router deleted): the OVS agent holding a
 * copy re-asks and puts it on the dead VLAN even when the L3 agent there is down.
 */
async function hintingDeletedPorts<T>(deps: AppDeps, routerId: string, change: () => Promise<T>) {
  const ids = async () => new Set((await routerPorts(deps.db, routerId)).map((p) => p.port_id));
  const before = await ids();
  const result = await change();
  const after = await ids();
  for (const id of before) if (!after.has(id)) void hintL2Port(deps, id);
  return result;
}

function readRoutes(app: FastifyInstance, deps: AppDeps) {
  app.get('/v2.0/routers', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'router', ROUTER_FILTERS);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.columns.project_id = [scope];
    return page(req, 'routers', await listRouters(deps.db, q.filter), q);
  });
  app.get(
    '/v2.0/routers/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      router: pick(await visibleRouter(deps, req, req.params.id), values(req.query.fields)),
    }),
  );
}

function interfaceRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const action of ['add', 'remove'] as const)
    app.put(`/v2.0/routers/:id/${action}_router_interface`, async (req: ById) => {
      const router = await visibleRouter(deps, req, req.params.id);
      const body = RouterInterfaceRequest.parse(req.body ?? {});
      // Removal names the router's own port or subnet: the router's rule is enough.
      if (action === 'add') await authorizeInterface(deps, req, body);
      const run = action === 'add' ? addRouterInterface : removeRouterInterface;
      const result = await hintingDeletedPorts(deps, router.id, () =>
        run(deps.db, router.id, body, deps.clock.now()),
      );
      deps.log.info(
        { routerId: router.id, portId: result.port_id, subnetIds: result.subnet_ids },
        `router interface ${action === 'add' ? 'added' : 'removed'}`,
      );
      changed(deps, router.id);
      // The subnet's isolation changed: its DHCP agents serve or stop serving metadata.
      void hintDhcpAgents(deps, result.network_id);
      return result;
    });
}

function extraRouteRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const action of ['add', 'remove'] as const)
    app.put(`/v2.0/routers/:id/${action}_extraroutes`, async (req: ById) => {
      const { id } = await visibleRouter(deps, req, req.params.id);
      const { routes } = ExtraRoutes.parse(req.body).router;
      const edit = (current: Route[]) =>
        action === 'add' ? mergeRoutes(current, routes) : withoutRoutes(current, routes);
      const router = await editRoutes(deps.db, id, edit, deps.clock.now());
      deps.log.info({ routerId: router.id, routes: router.routes }, 'router routes set');
      changed(deps, router.id);
      return { router };
    });
}

function writeRoutes(app: FastifyInstance, deps: AppDeps) {
  app.post('/v2.0/routers', async (req, reply) => {
    const body = RouterCreate.parse(req.body).router;
    const owner = ownerForCreate(req, body);
    await authorizeGateway(deps, req, 'create_router', body.external_gateway_info);
    const router = await createRouter(
      deps.db,
      { ...body, project_id: owner },
      deps.clock.now(),
      neutronQuota(deps),
    );
    deps.log.info({ routerId: router.id, projectId: owner }, 'router created');
    changed(deps, router.id);
    return reply.status(201).send({ router });
  });

  app.put('/v2.0/routers/:id', async (req: ById) => {
    const before = await visibleRouter(deps, req, req.params.id);
    const changes = RouterUpdate.parse(req.body).router;
    await authorizeGateway(deps, req, 'update_router', changes.external_gateway_info);
    const router = await hintingDeletedPorts(deps, before.id, () =>
      updateRouter(deps.db, before.id, changes, deps.clock.now()),
    );
    deps.log.info({ routerId: router.id }, 'router updated');
    if (servedChanged(before, router)) changed(deps, router.id);
    return { router };
  });

  app.delete('/v2.0/routers/:id', async (req: ById, reply) => {
    const router = await visibleRouter(deps, req, req.params.id);
    const hosts = await l3HostsOf(deps.db, router.id);
    await hintingDeletedPorts(deps, router.id, () =>
      deleteRouter(deps.db, router.id, deps.clock.now()),
    );
    deps.log.info({ routerId: router.id }, 'router deleted');
    void routerDeleted(deps, router.id, hosts);
    return reply.status(204).send();
  });
}

export function routerRoutes(app: FastifyInstance, deps: AppDeps): void {
  readRoutes(app, deps);
  writeRoutes(app, deps);
  interfaceRoutes(app, deps);
  extraRouteRoutes(app, deps);
}
