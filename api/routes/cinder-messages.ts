/**
 * Cinder's user messages (microversion 3.3): GET /v3/{project}/messages, GET and DELETE
 * …/messages/{id}, from volume_messages (db/volume-messages.ts).
 *
 * Invariants: below 3.3 these routes are Cinder's 404 for a version without the method;
 * a project sees its own messages (an admin every project's), another's is a 404; a
 * message shows Cinder's keys, its level always ERROR (Kumo records only failures) and
 * its request_id derived from its own id, since a failure an agent reports has no
 * request of its own.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { volumeAtLeast } from '../cinder-version.ts';
import {
  deleteVolumeMessage,
  getVolumeMessage,
  listVolumeMessages,
  type VolumeMessage,
} from '../db/volume-messages.ts';
import type { AppDeps } from '../deps.ts';
import { type ById, cinderLinks, type InProject, pathProject, visible } from './cinder-common.ts';

/** Messages came with 3.3. */
const MESSAGES_MINOR = 3;

function requireVersion(req: FastifyRequest) {
  if (!volumeAtLeast(req, MESSAGES_MINOR))
    throw new ApiError(
      'NotFound',
      `API version 3.${req.volumeVersion} is not supported on this method.`,
    );
}

const messageView = (req: FastifyRequest, project: string, m: VolumeMessage) => ({
  id: m.id,
  resource_type: m.resource_type,
  resource_uuid: m.resource_uuid,
  request_id: `req-${m.id}`,
  event_id: m.event_id,
  message_level: 'ERROR',
  user_message: m.message,
  created_at: m.created_at,
  guaranteed_until: m.expires_at,
  links: cinderLinks(req, project, 'messages', m.id),
});

async function load(deps: AppDeps, req: ById) {
  const m = visible(req, await getVolumeMessage(deps.db, req.params.id, deps.clock.now()));
  if (!m) throw new ApiError('NotFound', `Message ${req.params.id} could not be found.`);
  return m;
}

export function cinderMessageRoutes(scope: FastifyInstance, deps: AppDeps) {
  const base = '/v3/:project_id/messages';
  scope.get(base, async (req: InProject) => {
    const project = pathProject(req);
    requireVersion(req);
    const scopeOf = req.caller.isAdmin ? undefined : project;
    const rows = await listVolumeMessages(deps.db, scopeOf, deps.clock.now());
    return { messages: rows.map((m) => messageView(req, project, m)) };
  });
  scope.get(`${base}/:id`, async (req: ById) => {
    const project = pathProject(req);
    requireVersion(req);
    return { message: messageView(req, project, await load(deps, req)) };
  });
  scope.delete(`${base}/:id`, async (req: ById, reply) => {
    pathProject(req);
    requireVersion(req);
    const m = await load(deps, req);
    await deleteVolumeMessage(deps.db, m.id);
    deps.log.info({ messageId: m.id, volumeId: m.resource_uuid }, 'volume message deleted');
    return reply.status(204).send();
  });
}
