/**
 * Neutron v2.0 networks: GET/POST /v2.0/networks, GET/PUT/DELETE /v2.0/networks/{id},
 * and the extension list the openstack client reads.
 *
 * Invariants: a body is validated whole before anything is written, and a refused request
 * changes nothing; provider, external and shared attributes are admin-only (Neutron's
 * policy), other mutations are open to member tokens.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { NetworkCreate, NetworkUpdate, refuseReadOnly } from '../../contracts/network.ts';
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
} from '../db/networks.ts';
import { DEFAULT_NETWORK_SETTINGS } from '../db/segments.ts';
import type { AppDeps } from '../deps.ts';
import { hintDhcpAgents } from '../hints.ts';
import { page, parseListQuery, pick, type Query, requireAdminFor, values } from '../query.ts';

const ADMIN_NETWORK_ATTRS = [
  'provider:network_type',
  'provider:physical_network',
  'provider:segmentation_id',
  'router:external',
  'shared',
] as const;

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
] as const;

const extension = ([alias, name, description]: (typeof EXTENSIONS)[number]) => ({
  alias,
  name,
  description,
  updated: '2026-01-01T00:00:00-00:00',
  links: [],
});

export function networkRoutes(app: FastifyInstance, deps: AppDeps) {
  const settings = deps.settings.network ?? DEFAULT_NETWORK_SETTINGS;
  const load = async (id: string) => {
    const network = UUID.test(id) ? await getNetwork(deps.db, id) : undefined;
    if (!network) throw networkNotFound(id);
    return network;
  };

  app.get('/v2.0/extensions', async () => ({ extensions: EXTENSIONS.map(extension) }));
  app.get('/v2.0/extensions/:alias', async (req: FastifyRequest<{ Params: { alias: string } }>) => {
    const ext = EXTENSIONS.find((e) => e[0] === req.params.alias);
    if (!ext)
      throw new ApiError('NotFound', `Extension with alias ${req.params.alias} does not exist`);
    return { extension: extension(ext) };
  });

  app.get('/v2.0/networks', async (req: FastifyRequest<{ Querystring: Query }>) => {
    const q = parseListQuery(req.query, 'network', NETWORK_FILTERS);
    return page(req, 'networks', await listNetworks(deps.db, q.filter), q);
  });

  app.get(
    '/v2.0/networks/:id',
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Query }>) => ({
      network: pick(await load(req.params.id), values(req.query.fields)),
    }),
  );

  app.post('/v2.0/networks', async (req, reply) => {
    requireAdminFor(req, 'create', 'network', ADMIN_NETWORK_ATTRS);
    const body = NetworkCreate.parse(req.body).network;
    const network = await createNetwork(deps.db, body, settings, deps.clock.now());
    deps.log.info(
      {
        networkId: network.id,
        type: network['provider:network_type'],
        segmentationId: network['provider:segmentation_id'],
      },
      'network created',
    );
    return reply.status(201).send({ network });
  });

  app.put('/v2.0/networks/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    requireAdminFor(req, 'update', 'network', ADMIN_NETWORK_ATTRS);
    const before = await load(req.params.id);
    refuseReadOnly(req.body, 'network');
    const changes = NetworkUpdate.parse(req.body).network;
    const network = await updateNetwork(deps.db, before.id, changes, settings, deps.clock.now());
    void hintDhcpAgents(deps, network.id);
    return { network };
  });

  app.delete(
    '/v2.0/networks/:id',
    async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
      const network = await load(req.params.id);
      const dhcpHosts = await dhcpHostsOf(deps.db, network.id);
      await deleteNetwork(deps.db, network.id);
      deps.log.info({ networkId: network.id }, 'network deleted');
      // Its bindings went with it: the agents that served it tear it down.
      void hintDhcpAgents(deps, network.id, dhcpHosts);
      return reply.status(204).send();
    },
  );
}
