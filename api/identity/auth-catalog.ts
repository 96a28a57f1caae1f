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
import { requireAdmin } from '../auth.ts';
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

export function catalogRoutes(app: FastifyInstance, deps: IdentityDeps) {
  const catalog = buildCatalog(deps.settings);
  const base = deps.settings.endpoints.identity.replace(/\/+$/, '');
  const services = catalog.map((s) => serviceView(s, base));
  const endpoints = endpointViews(catalog, base);
  const regions = [regionView(deps.settings.region, base)];
  type P = { Params: { id: string } };

  app.get('/v3/services', async (req) => {
    requireAdmin(req, 'identity:list_services');
    const want = filters(req, ['type', 'name']);
    return {
      services: services.filter((s) => matches(s, want)),
      links: listLinks(base, 'services'),
    };
  });
  app.get<P>('/v3/services/:id', async (req) => {
    requireAdmin(req, 'identity:get_service');
    return {
      service: found(
        services.find((s) => s.id === req.params.id),
        'service',
        req.params.id,
      ),
    };
  });
  app.get('/v3/endpoints', async (req) => {
    requireAdmin(req, 'identity:list_endpoints');
    const want = filters(req, ['service_id', 'interface', 'region_id']);
    return {
      endpoints: endpoints.filter((e) => matches(e, want)),
      links: listLinks(base, 'endpoints'),
    };
  });
  app.get<P>('/v3/endpoints/:id', async (req) => {
    requireAdmin(req, 'identity:get_endpoint');
    return {
      endpoint: found(
        endpoints.find((e) => e.id === req.params.id),
        'endpoint',
        req.params.id,
      ),
    };
  });
  app.get('/v3/regions', async (req) => {
    requireAdmin(req, 'identity:list_regions');
    return { regions, links: listLinks(base, 'regions') };
  });
  app.get<P>('/v3/regions/:id', async (req) => {
    requireAdmin(req, 'identity:get_region');
    return {
      region: found(
        regions.find((r) => r.id === req.params.id),
        'region',
        req.params.id,
      ),
    };
  });
  // Policy first, as Keystone: a non-admin is refused (403) before the backend says 501.
  const readOnly = (rule: string) => async (req: FastifyRequest) => {
    requireAdmin(req, `identity:${rule}`);
    throw new ApiError('NotImplemented', READ_ONLY);
  };
  for (const [kind, one] of [
    ['services', 'service'],
    ['endpoints', 'endpoint'],
    ['regions', 'region'],
  ] as const) {
    app.post(`/v3/${kind}`, readOnly(`create_${one}`));
    app.patch(`/v3/${kind}/:id`, readOnly(`update_${one}`));
    app.delete(`/v3/${kind}/:id`, readOnly(`delete_${one}`));
  }
}
