/**
 * Glance v2 image actions: POST /images/{id}/actions/deactivate and /reactivate (204).
 *
 * Invariants: admin only (Glance's documented default); only an active or deactivated
 * image moves — deactivating a deactivated image or reactivating an active one changes
 * nothing, any other status is Glance's 403 naming it; the move is conditional on the
 * status the image was read in, so a racing action or upload never loses a transition.
 * A deactivated image's data is refused to non-admins (image-data.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { type ImageRecord, setImageStatus } from '../db/images.ts';
import type { AppDeps } from '../deps.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;
type Load = (req: FastifyRequest, id: string) => Promise<ImageRecord>;

const ACTIONS = {
  deactivate: { from: 'active', to: 'deactivated' },
  reactivate: { from: 'deactivated', to: 'active' },
} as const;
type Action = keyof typeof ACTIONS;

async function act(deps: AppDeps, req: ById, image: ImageRecord, action: Action) {
  if (req.role !== 'admin')
    throw new ApiError(
      'PolicyNotAuthorized',
      `You are not authorized to complete ${action} action.`,
    );
  const { from, to } = ACTIONS[action];
  if (image.status === to) return;
  const moved =
    image.status === from && (await setImageStatus(deps.db, image.id, from, to, deps.clock.now()));
  if (!moved)
    throw new ApiError(
      'PolicyNotAuthorized',
      `Not allowed to ${action} image in status '${image.status}'`,
    );
  deps.log.info({ imageId: image.id }, `image ${to}`);
}

export function imageActionRoutes(scope: FastifyInstance, deps: AppDeps, load: Load) {
  for (const action of Object.keys(ACTIONS) as Action[])
    scope.post(`/images/:id/actions/${action}`, async (req: ById, reply) => {
      await act(deps, req, await load(req, req.params.id), action);
      return reply.status(204).send();
    });
}
