/**
 * The catalog's read-only admin routes: `GET /v3/services`, `/v3/endpoints`, `/v3/regions`
 * (and each by id), as `openstack service|endpoint|region list|show` and `catalog list`
 * use them.
 *
 * Invariants: the answers come from catalog.ts, which derives the catalog from kumo.conf;
 * so no request may change it: create, update and delete answer 501, as Keystone's own
 * config-derived catalog (the templated backend) does, naming the settings to edit
 * instead; nothing changes. Only admins read it, as
 * Keystone's default policy lets only (system) readers list services and endpoints.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { authorize } from './admin-common.ts';
import { buildCatalog, endpointViews, regionView, serviceView } from './catalog.ts';
import type { IdentityDeps } from './deps.ts';

const READ_ONLY =
  'The service catalog is derived from kumo.conf ([identity] public_endpoint and region_id, [api] public_endpoint) and cannot be changed through the API.';

/** Keystone's list envelope. */
export const listLinks = (base: string, path: string) => ({
  self: `${base}/v3/${path}`,
  previous: null,
  next: null,
});

/** The string filters of a list request, as Keystone's `?name=…` hints. */
function filters(req: FastifyRequest, keys: readonly string[]): Record<string, string> {
  const query = (req.query ?? {}) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const k of keys) if (typeof query[k] === 'string') out[k] = query[k] as string;
  return out;
}

const matches = (row: Record<string, unknown>, want: Record<string, string>) =>
  Object.entries(want).every(([k, v]) => row[k] === v);

function found<T>(row: T | undefined, kind: string, id: string): T {
  if (!row) throw new ApiError('NotFound', `Could not find ${kind}: ${id}.`);
  return row;
}

interface Kind {
  plural: 'services' | 'endpoints' | 'regions';
  one: 'service' | 'endpoint' | 'region';
  rows: { id: string }[];
  /** The query keys a list filters on. */
  keys: string[];
}

/** List, show, and the writes that answer 501 (policy first, as Keystone: 403 before 501). */
function kindRoutes(app: FastifyInstance, base: string, k: Kind) {
  app.get(`/v3/${k.plural}`, async (req) => {
    authorize(req, `list_${k.plural}`);
    const want = filters(req, k.keys);
    return { [k.plural]: k.rows.filter((r) => matches(r, want)), links: listLinks(base, k.plural) };
  });
  app.get<{ Params: { id: string } }>(`/v3/${k.plural}/:id`, async (req) => {
    authorize(req, `get_${k.one}`);
    const id = req.params.id;
    return {
      [k.one]: found(
        k.rows.find((r) => r.id === id),
        k.one,
        id,
      ),
    };
  });
  const readOnly = (action: string) => async (req: FastifyRequest) => {
    authorize(req, `${action}_${k.one}`);
    throw new ApiError('NotImplemented', READ_ONLY);
  };
  app.post(`/v3/${k.plural}`, readOnly('create'));
  app.patch(`/v3/${k.plural}/:id`, readOnly('update'));
  app.delete(`/v3/${k.plural}/:id`, readOnly('delete'));
}

export function catalogRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const catalog = buildCatalog(deps.settings);
  const base = deps.settings.endpoints.identity.replace(/\/+$/, '');
  const services = catalog.map((s) => serviceView(s, base));
  kindRoutes(app, base, {
    plural: 'services',
    one: 'service',
    rows: services,
    keys: ['type', 'name'],
  });
  kindRoutes(app, base, {
    plural: 'endpoints',
    one: 'endpoint',
    rows: endpointViews(catalog, base),
    keys: ['service_id', 'interface', 'region_id'],
  });
  const regions = [regionView(deps.settings.region, base)];
  kindRoutes(app, base, { plural: 'regions', one: 'region', rows: regions, keys: [] });
}
