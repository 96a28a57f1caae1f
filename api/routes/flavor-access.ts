/**
 * Nova's os-flavor-access (nova/api/openstack/compute/flavor_access.py): GET
 * /flavors/{id}/os-flavor-access and the addTenantAccess / removeTenantAccess actions of
 * POST /flavors/{id}/action, which answer the flavor's access list.
 *
 * Invariants: all three are admin-only (Nova's os-flavor-access policies, 403 `forbidden`
 * otherwise, nothing changed); a public flavor has no access list (404) and, from 2.7 on,
 * takes no access (409) as in Nova; a project given twice is 409 and one never given is
 * 404, decided by the access row's primary key, so racing admins cannot both win; a
 * flavor deleted between its read and the insert is its 404 (the foreign key decides).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AddTenantAccess, RemoveTenantAccess } from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import { isPlainObject } from '../../contracts/schema.ts';
import {
  addFlavorAccess,
  type FlavorRecord,
  flavorAccess,
  flavorNotFound,
  removeFlavorAccess,
} from '../db/flavors.ts';
import type { AppDeps } from '../deps.ts';
import { atLeast } from '../microversion.ts';
import { requireAdminNova } from './nova.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;
type Load = (req: FastifyRequest, id: string) => Promise<FlavorRecord>;

const accessView = async (deps: AppDeps, flavorId: string) => ({
  flavor_access: (await flavorAccess(deps.db, flavorId)).map((p) => ({
    flavor_id: flavorId,
    tenant_id: p,
  })),
});

async function addAccess(deps: AppDeps, req: ById, load: Load) {
  requireAdminNova(req, 'os_compute_api:os-flavor-access:add_tenant_access');
  const { tenant } = AddTenantAccess.parse(req.body).addTenantAccess;
  const flavor = await load(req, req.params.id);
  if (flavor.isPublic && atLeast(req, 7))
    throw new ApiError('Conflict', 'Can not add access to a public flavor.');
  const added = await addFlavorAccess(deps.db, flavor.id, tenant);
  if (added === 'gone') throw flavorNotFound(flavor.id);
  if (added === 'exists')
    throw new ApiError(
      'Conflict',
      `Flavor access already exists for flavor ${flavor.id} and project ${tenant} combination.`,
    );
  deps.log.info({ flavorId: flavor.id, projectId: tenant }, 'flavor access added');
  return accessView(deps, flavor.id);
}

async function removeAccess(deps: AppDeps, req: ById, load: Load) {
  requireAdminNova(req, 'os_compute_api:os-flavor-access:remove_tenant_access');
  const { tenant } = RemoveTenantAccess.parse(req.body).removeTenantAccess;
  const flavor = await load(req, req.params.id);
  if (!(await removeFlavorAccess(deps.db, flavor.id, tenant)))
    throw new ApiError(
      'NotFound',
      `Flavor access not found for ${flavor.id} / ${tenant} combination.`,
    );
  deps.log.info({ flavorId: flavor.id, projectId: tenant }, 'flavor access removed');
  return accessView(deps, flavor.id);
}

/** The action a body names: exactly one of Nova's two flavor actions. */
function actionOf(body: unknown): string {
  const keys = isPlainObject(body) ? Object.keys(body) : [];
  const key = keys.length === 1 ? keys[0] : undefined;
  if (key !== 'addTenantAccess' && key !== 'removeTenantAccess')
    throw new ApiError(
      'BadRequest',
      'Invalid input: the action body must be an object with exactly one of addTenantAccess, removeTenantAccess.',
    );
  return key;
}

export function flavorAccessRoutes(scope: FastifyInstance, deps: AppDeps, load: Load) {
  scope.get('/flavors/:id/os-flavor-access', async (req: ById) => {
    requireAdminNova(req, 'os_compute_api:os-flavor-access');
    const flavor = await load(req, req.params.id);
    if (flavor.isPublic)
      throw new ApiError('NotFound', 'Access list not available for public flavors.');
    return accessView(deps, flavor.id);
  });
  scope.post('/flavors/:id/action', async (req: ById) =>
    actionOf(req.body) === 'addTenantAccess'
      ? addAccess(deps, req, load)
      : removeAccess(deps, req, load),
  );
}
