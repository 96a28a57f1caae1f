/**
 * Nova v2.1 flavors: GET /flavors, /flavors/detail, /flavors/{id}, POST /flavors,
 * DELETE /flavors/{id}, and the empty /flavors/{id}/os-extra_specs the openstack client
 * reads, and os-flavor-access (flavor-access.ts), served both at the endpoint root (where the openstack client sends them with
 * `--os-endpoint`) and under /v2.1.
 *
 * Invariants: the views are Nova's below 2.55 (Kumo claims 2.1-2.16): no `description`,
 * the ephemeral size only as OS-FLV-EXT-DATA:ephemeral (tempest's v2_1 flavors schema);
 * create and delete are admin-only (403 `forbidden` otherwise); a non-admin sees public
 * flavors and the private ones offered to its project, any other is a 404; every error
 * on these routes leaves in Nova's shape `{"itemNotFound": {code, message}}` (nova.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type Flavor, FlavorCreate } from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import {
  createFlavor,
  deleteFlavor,
  type FlavorRecord,
  flavorNotFound,
  getFlavor,
  listFlavors,
} from '../db/flavors.ts';
import type { AppDeps } from '../deps.ts';
import { callerProjectId } from '../policy.ts';
import { type Query, values } from '../query.ts';
import { flavorAccessRoutes } from './flavor-access.ts';
import { installNovaErrors, links, requireAdminNova } from './nova.ts';

export function flavorView(req: FastifyRequest, prefix: string, f: FlavorRecord): Flavor {
  return {
    id: f.id,
    name: f.name,
    vcpus: f.vcpus,
    ram: f.ram,
    disk: f.disk,
    swap: '',
    rxtx_factor: 1.0,
    'os-flavor-access:is_public': f.isPublic,
    'OS-FLV-DISABLED:disabled': false,
    'OS-FLV-EXT-DATA:ephemeral': 0,
    links: links(req, prefix, 'flavors', f.id),
  };
}

const nonNegative = (field: string, raw: string | undefined): number | undefined => {
  if (raw === undefined) return undefined;
  if (!/^\d{1,10}$/.test(raw))
    throw new ApiError('BadRequest', `Invalid input for query parameter ${field}: '${raw}'.`);
  return Number(raw);
};

/**
 * Nova's is_public query, the admin's: true (default), false, or none/all for every
 * flavor. A non-admin always lists public flavors plus the private ones offered to its
 * project (Nova forces is_public=True for it).
 */
function isPublicFilter(req: FastifyRequest, raw: string | undefined): boolean | undefined {
  if (req.role !== 'admin' || raw === undefined) return true;
  const v = raw.toLowerCase();
  if (v === 'none' || v === 'all') return undefined;
  if (['true', '1', 't', 'yes', 'y', 'on'].includes(v)) return true;
  if (['false', '0', 'f', 'no', 'n', 'off'].includes(v)) return false;
  throw new ApiError('BadRequest', `Invalid is_public filter [${raw}]`);
}

type Listing = FastifyRequest<{ Querystring: Query }>;
type ById = FastifyRequest<{ Params: { id: string } }>;

/** The flavors a list query selects: filters, then marker and limit. */
async function listFor(deps: AppDeps, req: Listing) {
  const q = req.query;
  let flavors = await listFlavors(deps.db, {
    isPublic: isPublicFilter(req, values(q.is_public)[0]),
    project: callerProjectId(req),
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
  return limit === undefined ? flavors : flavors.slice(0, limit);
}

function flavorScope(scope: FastifyInstance, deps: AppDeps, prefix: string) {
  installNovaErrors(scope, deps.log);
  const load = async (req: FastifyRequest, id: string) => {
    const project = req.caller.isAdmin ? undefined : callerProjectId(req);
    const flavor = await getFlavor(deps.db, id, project);
    if (!flavor) throw flavorNotFound(id);
    return flavor;
  };
  scope.get('/flavors', async (req: Listing) => ({
    flavors: (await listFor(deps, req)).map((f) => {
      const { id, name, links } = flavorView(req, prefix, f);
      return { id, name, links };
    }),
  }));
  scope.get('/flavors/detail', async (req: Listing) => ({
    flavors: (await listFor(deps, req)).map((f) => flavorView(req, prefix, f)),
  }));
  scope.get('/flavors/:id', async (req: ById) => ({
    flavor: flavorView(req, prefix, await load(req, req.params.id)),
  }));
  scope.get('/flavors/:id/os-extra_specs', async (req: ById) => {
    await load(req, req.params.id);
    return { extra_specs: {} };
  });
  scope.post('/flavors', async (req) => {
    requireAdminNova(req, 'os_compute_api:os-flavor-manage:create');
    const body = FlavorCreate.parse(req.body).flavor;
    const flavor = await createFlavor(deps.db, body, deps.clock.now());
    deps.log.info({ flavorId: flavor.id, name: flavor.name }, 'flavor created');
    return { flavor: flavorView(req, prefix, flavor) };
  });
  scope.delete('/flavors/:id', async (req: ById, reply) => {
    requireAdminNova(req, 'os_compute_api:os-flavor-manage:delete');
    if (!(await deleteFlavor(deps.db, req.params.id))) throw flavorNotFound(req.params.id);
    deps.log.info({ flavorId: req.params.id }, 'flavor deleted');
    return reply.status(202).send();
  });
  flavorAccessRoutes(scope, deps, load);
}

export function flavorRoutes(app: FastifyInstance, deps: AppDeps) {
  for (const prefix of ['', '/v2.1'])
    void app.register(async (scope) => flavorScope(scope, deps, prefix), { prefix });
}
