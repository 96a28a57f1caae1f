/**
 * Neutron v2.0 networks: GET/POST /v2.0/networks, GET/PUT/DELETE /v2.0/networks/{id},
 * the extension list the openstack client reads, and the list-query plumbing shared with
 * subnets and ports (filters, fields=, sorting, limit/marker pages).
 *
 * Invariants: a body is validated whole before anything is written, and a refused request
 * changes nothing; provider, external and shared attributes are admin-only (Neutron's
 * policy), other mutations are open to member tokens.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { NetworkCreate, NetworkUpdate, refuseReadOnly } from '../../contracts/network.ts';
import { isPlainObject, UUID } from '../../contracts/schema.ts';
import type { AppDeps } from '../app.ts';
import type { Param } from '../db/index.ts';
import {
  createNetwork,
  DEFAULT_NETWORK_SETTINGS,
  deleteNetwork,
  getNetwork,
  listNetworks,
  NETWORK_FILTERS,
  networkNotFound,
  updateNetwork,
} from '../db/networks.ts';
import type { ColumnFilter } from '../db/neutron.ts';
import { dhcpHostsOf, hintDhcpAgents } from '../scheduler/dhcp.ts';

export type Query = Record<string, string | string[] | undefined>;
export type FilterSpec = Record<string, { column: string; type: 'text' | 'bool' | 'int' }>;

export const values = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v : [v];

const PAGING = ['fields', 'limit', 'marker', 'sort_key', 'sort_dir', 'page_reverse'];

function parseValue(field: string, type: 'text' | 'bool' | 'int', raw: string): Param {
  if (type === 'text') return raw;
  if (type === 'int') {
    if (!/^-?\d{1,12}$/.test(raw))
      throw new ApiError(
        'BadRequest',
        `Invalid input for ${field}. Reason: '${raw}' is not an integer.`,
      );
    return Number(raw);
  }
  const v = raw.toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ApiError(
    'BadRequest',
    `Invalid input for ${field}. Reason: '${raw}' cannot be converted to boolean.`,
  );
}

export interface ListQuery {
  filter: ColumnFilter;
  fields: string[];
  limit?: number;
  marker?: string;
  sortKeys: string[];
  sortDirs: ('asc' | 'desc')[];
}

/** Query string → filters (OR within a key, AND across keys) and list options. */
export function parseListQuery(
  query: Query,
  resource: string,
  filters: FilterSpec,
  extra: Record<string, (values: string[]) => ColumnFilter['clauses']> = {},
): ListQuery {
  const out: ListQuery = {
    filter: { columns: {}, clauses: [] },
    fields: [],
    sortKeys: [],
    sortDirs: [],
  };
  for (const [key, raw] of Object.entries(query)) {
    const vals = values(raw);
    const spec = filters[key];
    if (spec) {
      const parsed = vals.map((v) => parseValue(key, spec.type, v));
      const existing = out.filter.columns[spec.column];
      out.filter.columns[spec.column] = existing ? [...existing, ...parsed] : parsed;
    } else if (extra[key]) {
      out.filter.clauses.push(...extra[key](vals));
    } else if (!PAGING.includes(key)) {
      throw new ApiError(
        'BadRequest',
        `Invalid filter: '${key}' is not a filterable attribute of ${resource}.`,
      );
    }
  }
  out.fields = values(query.fields);
  const limit = values(query.limit)[0];
  if (limit !== undefined) {
    if (!/^\d{1,9}$/.test(limit))
      throw new ApiError(
        'BadRequest',
        `Invalid input for limit. Reason: '${limit}' is not an integer.`,
      );
    if (Number(limit) > 0) out.limit = Number(limit);
  }
  out.marker = values(query.marker)[0];
  out.sortKeys = values(query.sort_key);
  out.sortDirs = values(query.sort_dir).map((d) => {
    if (d !== 'asc' && d !== 'desc')
      throw new ApiError(
        'BadRequest',
        `Invalid input for sort_dir. Reason: '${d}' is not asc or desc.`,
      );
    return d;
  });
  return out;
}

export function pick<T extends object>(item: T, fields: string[]): Partial<T> {
  if (fields.length === 0) return item;
  return Object.fromEntries(Object.entries(item).filter(([k]) => fields.includes(k))) as Partial<T>;
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a ?? '').localeCompare(String(b ?? ''));
}

/** Sorting, marker and limit applied to a list already ordered by creation. */
export function page<T extends { id: string }>(
  req: FastifyRequest,
  collection: string,
  items: T[],
  q: ListQuery,
): Record<string, unknown> {
  let list = items;
  if (q.sortKeys.length) {
    list = [...items].sort((x, y) => {
      for (const [i, key] of q.sortKeys.entries()) {
        const c = compare((x as Record<string, unknown>)[key], (y as Record<string, unknown>)[key]);
        if (c !== 0) return q.sortDirs[i] === 'desc' ? -c : c;
      }
      return 0;
    });
  }
  if (q.marker !== undefined) {
    const at = list.findIndex((i) => i.id === q.marker);
    list = at < 0 ? [] : list.slice(at + 1);
  }
  const body: Record<string, unknown> = {};
  if (q.limit !== undefined && list.length > q.limit) {
    list = list.slice(0, q.limit);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query as Query))
      if (k !== 'marker') for (const one of values(v)) params.append(k, one);
    params.append('marker', list[list.length - 1]?.id ?? '');
    const base = `${req.protocol}://${req.headers.host ?? req.hostname}`;
    body[`${collection}_links`] = [
      { rel: 'next', href: `${base}/v2.0/${collection}?${params.toString()}` },
    ];
  }
  body[collection] = list.map((i) => pick(i, q.fields));
  return body;
}

/** Neutron's policy: these attributes need an admin token to be set. */
export function requireAdminFor(
  req: FastifyRequest,
  action: string,
  resource: string,
  attrs: readonly string[],
) {
  if (req.role === 'admin') return;
  const inner = isPlainObject(req.body) ? req.body[resource] : undefined;
  if (!isPlainObject(inner)) return;
  const hit = attrs.find((a) => inner[a] !== undefined);
  if (hit)
    throw new ApiError(
      'PolicyNotAuthorized',
      `(rule:${action}_${resource}:${hit}) is disallowed by policy`,
    );
}

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
