/**
 * Neutron v2.0 networks: GET/POST /v2.0/networks, GET/PUT/DELETE /v2.0/networks/{id},
 * and the extension list the openstack client reads.
 *
 * Invariants: a body is validated whole before anything is written, and a refused request
 * changes nothing; a non-admin sees its own, shared and external networks (any other is a
 * 404, as a missing one), changes and deletes only its own (403 on one it only sees), and
 * neither sets nor sees the provider attributes; shared and router:external are admin-only
 * unless given their default value (neutron-policy.ts); every create is held to the
 * owner's network quota in the insert's transaction.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import {
  type Network,
  NetworkCreate,
  NetworkUpdate,
  refuseReadOnly,
} from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import { dhcpHostsOf } from '../db/dhcp-bindings.ts';
import {
  createNetwork,
  deleteNetwork,
  getNetwork,
  listNetworks,
  NETWORK_FILTERS,
  networkNotFound,
  updateNetwork,
  visibleNetworks,
} from '../db/networks.ts';
import { DEFAULT_NETWORK_SETTINGS } from '../db/segments.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents, hintRoutersOnNetwork } from '../hints.ts';
import { callerProjectId, listScope, ownerForCreate } from '../policy.ts';
import { page, parseListQuery, pick, type Query, values } from '../query.ts';
import {
  disallowed,
  HIDDEN_NETWORK_ATTRS,
  hideFrom,
  isAdmin,
  NETWORK_POLICED,
  ownedBy,
  policedAttrs,
  seesNetwork,
  visibleFilters,
} from './neutron-policy.ts';
import { neutronQuota } from './neutron-quotas.ts';

const EXTENSIONS = [
  ['provider', 'Provider Network', 'Expose mapping of virtual networks to physical networks'],
  [
    'external-net',
    'Neutron external network',
    'Adds external network attribute to network resource.',
  ],
  ['binding', 'Port Binding', 'Expose port bindings of a virtual port to external application'],
  ['net-mtu', 'Network MTU', 'Provides MTU attribute for a network resource.'],
  [
    'net-mtu-writable',
    'Network MTU (writable)',
    'Provides a writable MTU attribute for a network resource.',
  ],
  [
    'standard-attr-description',
    'standard-attr-description',
    'Extension to add descriptions to standard attributes',
  ],
  [
    'standard-attr-revisions',
    'Resource revision numbers',
    'This extension will display the revision number of neutron resources.',
  ],
  [
    'standard-attr-timestamp',
    'Resource timestamps',
    'Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.',
  ],
  [
    'project-id',
    'project_id field enabled',
    'Extension that indicates that project_id field is enabled.',
  ],
  ['agent', 'agent', 'The agent management extension.'],
  ['security-group', 'security-group', 'The security groups extension.'],
  ['port-security', 'Port Security', 'Provides port security'],
  ['allowed-address-pairs', 'Allowed Address Pairs', 'Provides allowed address pairs'],
  ['l3_agent_scheduler', 'L3 Agent Scheduler', 'Schedule routers among l3 agents'],
  [
    'router',
    'Neutron L3 Router',
    'Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.',
  ],
  [
    'ext-gw-mode',
    'Neutron L3 Configurable external gateway mode',
    'Extension of the router abstraction for specifying whether SNAT should occur on the external gateway',
  ],
  ['extraroute', 'Neutron Extra Route', 'Extra routes configuration for L3 router'],
  [
    'extraroute-atomic',
    'Atomically add/remove extra routes',
    'Edit extra routes of a router on server side by atomically adding/removing extra routes',
  ],
] as const;

const extension = ([alias, name, description]: (typeof EXTENSIONS)[number]) => ({
  alias,
  name,
  description,
  updated: '2026-01-01T00:00:00-00:00',
  links: [],
});

/** The network as `req`'s caller may see it, or NetworkNotFound as for a missing one. */
export async function visibleNetwork(
  deps: AppDeps,
  req: FastifyRequest,
  id: string,
): Promise<Network> {
  const network = UUID.test(id) ? await getNetwork(deps.db, id) : undefined;
  if (!network || !seesNetwork(req, network)) throw networkNotFound(id);
  return network;
}

/** update_network / delete_network: owner or admin, with the policed attributes admin-only. */
function authorize(req: FastifyRequest, action: string, network: Network, item = {}) {
  const attrs = policedAttrs(item, NETWORK_POLICED, false);
  if (!isAdmin(req) && (!ownedBy(req, network.project_id) || attrs.length))
    throw disallowed(action, attrs, item);
}

function extensionRoutes(app: FastifyInstance) {
  app.get('/v2.0/extensions', async () => ({ extensions: EXTENSIONS.map(extension) }));
  app.get('/v2.0/extensions/:alias', async (req: FastifyRequest<{ Params: { alias: string } }>) => {
    const ext = EXTENSIONS.find((e) => e[0] === req.params.alias);
    if (!ext)
      throw new ApiError('NotFound', `Extension with alias ${req.params.alias} does not exist`);
    return { extension: extension(ext) };
  });
}

function readRoutes(app: FastifyInstance, deps: AppDeps) {
  app.get('/v2.0/networks', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const filters = visibleFilters(req, NETWORK_FILTERS, HIDDEN_NETWORK_ATTRS);
    const q = parseListQuery(req.query, 'network', filters);
    const scope = listScope(req);
    if (scope !== undefined) q.filter.clauses.push(visibleNetworks(scope));
    const networks = await listNetworks(deps.db, q.filter);
    const shown = networks.map((n) => hideFrom(req, n, HIDDEN_NETWORK_ATTRS) as Network);
    return page(req, 'networks', shown, q);
  });

  app.get(
    '/v2.0/networks/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => {
      const network = hideFrom(
        req,
        await visibleNetwork(deps, req, req.params.id),
        HIDDEN_NETWORK_ATTRS,
      );
      return { network: pick(network, values(req.query.fields)) };
    },
  );
}

export function networkRoutes(app: FastifyInstance, deps: AppDeps) {
  const settings = deps.settings.network ?? DEFAULT_NETWORK_SETTINGS;
  extensionRoutes(app);
  readRoutes(app, deps);

  app.post('/v2.0/networks', async (req, reply) => {
    const body = NetworkCreate.parse(req.body).network;
    const attrs = policedAttrs(body, NETWORK_POLICED, true);
    if (!isAdmin(req) && attrs.length) throw disallowed('create_network', attrs, body);
    const owner = ownerForCreate(req, body);
    const network = await createNetwork(
      deps.db,
      { ...body, project_id: owner },
      settings,
      deps.clock.now(),
      neutronQuota(deps),
    );
    deps.log.info(
      {
        networkId: network.id,
        projectId: owner,
        type: network['provider:network_type'],
        segmentationId: network['provider:segmentation_id'],
      },
      'network created',
    );
    return reply.status(201).send({ network: hideFrom(req, network, HIDDEN_NETWORK_ATTRS) });
  });

  app.put('/v2.0/networks/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const before = await visibleNetwork(deps, req, req.params.id);
    refuseReadOnly(req.body, 'network');
    const changes = NetworkUpdate.parse(req.body).network;
    authorize(req, 'update_network', before, changes);
    const network = await updateNetwork(deps.db, before.id, changes, settings, deps.clock.now());
    void hintDhcpAgents(deps, network.id);
    void hintRoutersOnNetwork(deps, network.id);
    return { network: hideFrom(req, network, HIDDEN_NETWORK_ATTRS) };
  });

  app.delete(
    '/v2.0/networks/:id',
    async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
      const network = await visibleNetwork(deps, req, req.params.id);
      authorize(req, 'delete_network', network);
      const dhcpHosts = await dhcpHostsOf(deps.db, network.id);
      await deleteNetwork(deps.db, network.id);
      deps.log.info({ networkId: network.id, by: callerProjectId(req) }, 'network deleted');
      // Its bindings went with it: the agents that served it tear it down.
      void hintDhcpAgents(deps, network.id, dhcpHosts);
      return reply.status(204).send();
    },
  );
}
