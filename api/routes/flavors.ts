/**
 * Nova v2.1 flavors: GET /flavors, /flavors/detail, /flavors/{id}, POST /flavors,
 * DELETE /flavors/{id}, and the empty /flavors/{id}/os-extra_specs the openstack client
 * reads, served both at the endpoint root (where the openstack client sends them with
 * `--os-endpoint`) and under /v2.1.
 *
 * Invariants: create and delete are admin-only (403 `forbidden` otherwise); every error
 * on these routes leaves in Nova's shape `{"itemNotFound": {code, message}}`.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  type Flavor,
  FlavorCreate,
  novaError,
  ReadOnlyAttribute,
} from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import { ValidationError } from '../../contracts/schema.ts';
import type { Logger } from '../../core/log.ts';
import type { AppDeps } from '../app.ts';
import {
  createFlavor,
  deleteFlavor,
  type FlavorRecord,
  flavorNotFound,
  getFlavor,
  listFlavors,
} from '../db/flavors.ts';
import { type Query, values } from '../query.ts';

/** Errors in Nova's shape for every route of an encapsulated scope (also for 401s). */
export function installNovaErrors(scope: FastifyInstance, log: Logger) {
  scope.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    let status: number;
    let message: string;
    if (err instanceof ApiError) {
      status = err.status;
      message = err.message;
    } else if (err instanceof ValidationError) {
      status = 400;
      message = `Invalid input for field/attribute ${err.field}. Value: ${err.reason}`;
      if (!err.field) message = `Invalid input: ${err.reason}`;
    } else if (err instanceof ReadOnlyAttribute) {
      status = 403;
      message = err.message;
    } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      message = 'Request body is larger than the configured limit.';
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      message = `Unsupported Content-Type: ${req.headers['content-type'] ?? '(none)'}`;
    } else if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      status = 400;
      message = 'Request body is empty.';
    } else if (err.statusCode === 400 || err instanceof SyntaxError) {
      status = 400;
      message = `Malformed request body: ${err.message}`;
    } else {
      status = 500;
      message = 'Unexpected API Error. Please report this at the Kumo issue tracker.';
    }
    if (status >= 500) log.error({ err: err.message, url: req.url }, 'request failed');
    void reply.status(status).send(novaError(status, message));
  });
}

export function requireAdminNova(req: FastifyRequest, rule: string) {
  if (req.role !== 'admin')
    throw new ApiError('PolicyNotAuthorized', `Policy doesn't allow ${rule} to be performed.`);
}

function base(req: FastifyRequest, prefix: string): string {
  return `${req.protocol}://${req.headers.host ?? req.hostname}${prefix}`;
}

export function flavorView(req: FastifyRequest, prefix: string, f: FlavorRecord): Flavor {
  return {
    id: f.id,
    name: f.name,
    vcpus: f.vcpus,
    ram: f.ram,
    disk: f.disk,
    ephemeral: 0,
    swap: '',
    rxtx_factor: 1.0,
    'os-flavor-access:is_public': f.isPublic,
    'OS-FLV-DISABLED:disabled': false,
    'OS-FLV-EXT-DATA:ephemeral': 0,
    description: f.description,
    links: [
      { rel: 'self', href: `${base(req, prefix)}/flavors/${encodeURIComponent(f.id)}` },
      { rel: 'bookmark', href: `${base(req, '')}/flavors/${encodeURIComponent(f.id)}` },
    ],
  };
}

const nonNegative = (field: string, raw: string | undefined): number | undefined => {
  if (raw === undefined) return undefined;
  if (!/^\d{1,10}$/.test(raw))
    throw new ApiError('BadRequest', `Invalid input for query parameter ${field}: '${raw}'.`);
  return Number(raw);
};

/** Nova's is_public query: true (default), false, or none/all for every flavor. */
function isPublicFilter(req: FastifyRequest, raw: string | undefined): boolean | undefined {
  if (raw === undefined) return true;
  const v = raw.toLowerCase();
  if (v === 'none' || v === 'all') return req.role === 'admin' ? undefined : true;
  if (['true', '1', 't', 'yes', 'y', 'on'].includes(v)) return true;
  if (['false', '0', 'f', 'no', 'n', 'off'].includes(v)) return false;
  throw new ApiError('BadRequest', `Invalid is_public filter [${raw}]`);
}

export function flavorRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const prefix of ['', '/v2.1']) {
    void app.register(
      async (scope) => {
        installNovaErrors(scope, deps.log);
        const load = async (id: string) => {
          const flavor = await getFlavor(deps.db, id);
          if (!flavor) throw flavorNotFound(id);
          return flavor;
        };

        const list = async (req: FastifyRequest<{ Querystring: Query }>) => {
          const q = req.query;
          let flavors = await listFlavors(deps.db, {
            isPublic: isPublicFilter(req, values(q.is_public)[0]),
            minRam: nonNegative('minRam', values(q.minRam)[0]),
            minDisk: nonNegative('minDisk', values(q.minDisk)[0]),
          });
          const marker = values(q.marker)[0];
          if (marker !== undefined) {
            const at = flavors.findIndex((f) => f.id === marker);
            if (at < 0) throw new ApiError('BadRequest', `marker [${marker}] not found`);
            flavors = flavors.slice(at + 1);
          }
          const limit = nonNegative('limit', values(q.limit)[0]);
          if (limit !== undefined) flavors = flavors.slice(0, limit);
          return flavors;
        };

        scope.get('/flavors', async (req: FastifyRequest<{ Querystring: Query }>) => ({
          flavors: (await list(req)).map((f) => {
            const { id, name, description, links } = flavorView(req, prefix, f);
            return { id, name, description, links };
          }),
        }));
        scope.get('/flavors/detail', async (req: FastifyRequest<{ Querystring: Query }>) => ({
          flavors: (await list(req)).map((f) => flavorView(req, prefix, f)),
        }));
        scope.get('/flavors/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => ({
          flavor: flavorView(req, prefix, await load(req.params.id)),
        }));
        scope.get(
          '/flavors/:id/os-extra_specs',
          async (req: FastifyRequest<{ Params: { id: string } }>) => {
            await load(req.params.id);
            return { extra_specs: {} };
          },
        );

        scope.post('/flavors', async (req) => {
          requireAdminNova(req, 'os_compute_api:os-flavor-manage:create');
          const body = FlavorCreate.parse(req.body).flavor;
          const flavor = await createFlavor(deps.db, body, deps.clock.now());
          deps.log.info({ flavorId: flavor.id, name: flavor.name }, 'flavor created');
          return { flavor: flavorView(req, prefix, flavor) };
        });

        scope.delete(
          '/flavors/:id',
          async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
            requireAdminNova(req, 'os_compute_api:os-flavor-manage:delete');
            if (!(await deleteFlavor(deps.db, req.params.id))) throw flavorNotFound(req.params.id);
            deps.log.info({ flavorId: req.params.id }, 'flavor deleted');
            return reply.status(202).send();
          },
        );
      },
      { prefix },
    );
  }
}
