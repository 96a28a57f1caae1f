/**
 * Cinder v3's routes, registered once: the version documents (at `/volume`, `/v3`), and
 * under `/v3/{project_id}` the volumes and their actions, snapshots, types, quotas,
 * limits and user messages. Reached through the `/volume` root (roots.ts strips it) or
 * at `/v3` directly.
 *
 * Invariant: every route of the family answers errors in Cinder's shape and is
 * negotiated by cinder-version.ts (the version documents at the root excepted).
 */
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.ts';
import { installCinderErrors } from './cinder-common.ts';
import { cinderMessageRoutes } from './cinder-messages.ts';
import { cinderQuotaRoutes } from './cinder-quotas.ts';
import { cinderVersionRoutes } from './cinder-versions.ts';
import { snapshotRoutes } from './snapshots.ts';
import { volumeActionRoutes } from './volume-actions.ts';
import { volumeTypeRoutes } from './volume-types.ts';
import { volumeRoutes } from './volumes.ts';

export function cinderRoutes(app: FastifyInstance, deps: AppDeps) {
  cinderVersionRoutes(app);
  void app.register(async (scope) => {
    installCinderErrors(scope, deps.log);
    volumeRoutes(scope, deps);
    volumeActionRoutes(scope, deps);
    snapshotRoutes(scope, deps);
    volumeTypeRoutes(scope, deps);
    cinderQuotaRoutes(scope, deps);
    cinderMessageRoutes(scope, deps);
  });
}
