/**
 * Cinder v3 volume types: GET /v3/{project}/types, /types/{id} (an id or a name, as
 * Cinder's get_by_name_or_id), /types/default. Kumo's types are fixed (migration 17): `lvm`
 * and `file`, each naming its backend as extra_specs.volume_backend_name; with no route
 * to create, change or delete one, those methods are 405s naming the allowed ones.
 *
 * Invariants: every project sees both (public) types; extra_specs and qos_specs_id are
 * shown to admins only (Cinder's volume_extension:access_types_extra_specs and
 * qos_specs policies); the default is [volume] default_volume_type.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { findVolumeType, type VolumeType, volumeTypes } from '../db/volumes.ts';
import type { AppDeps } from '../deps.ts';
import { type ById, type InProject, pathProject } from './cinder-common.ts';

export function typeView(req: FastifyRequest, t: VolumeType) {
  return {
    id: t.id,
    name: t.name,
    description: t.description,
    is_public: t.is_public,
    'os-volume-type-access:is_public': t.is_public,
    ...(req.caller.isAdmin
      ? { extra_specs: { volume_backend_name: t.backend }, qos_specs_id: null }
      : {}),
  };
}

async function one(deps: AppDeps, req: FastifyRequest, nameOrId: string) {
  const t = await findVolumeType(deps.db, nameOrId);
  if (!t) throw new ApiError('NotFound', `Volume type ${nameOrId} could not be found.`);
  return { volume_type: typeView(req, t) };
}

export function volumeTypeRoutes(scope: FastifyInstance, deps: AppDeps) {
  const base = '/v3/:project_id/types';
  scope.get(base, async (req: InProject) => {
    pathProject(req);
    return { volume_types: (await volumeTypes(deps.db)).map((t) => typeView(req, t)) };
  });
  scope.get(`${base}/default`, async (req: InProject) => {
    pathProject(req);
    return one(deps, req, deps.settings.defaultVolumeType ?? 'lvm');
  });
  scope.get(`${base}/:id`, async (req: ById) => {
    pathProject(req);
    return one(deps, req, req.params.id);
  });
}
