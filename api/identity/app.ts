/**
 * buildIdentityApp(deps): Keystone v3 on its own listener ([identity] bind_port, 5000), as
 * keystone serves beside the other services.
 *
 * Invariants: every error leaves in Keystone's shape `{"error": {code, message, title}}`
 * with an X-OpenStack-Request-ID; routes other than token issue and version discovery
 * need a token (X-Auth-Token): a Keystone token, unscoped ones included, or [api]
 * admin_token for bootstrap and service use.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { installAuth } from '../auth.ts';
import { installErrors } from '../http.ts';
import { installRequestIds, newRequestId } from '../request-id.ts';
import { adminRoutes } from './admin-routes.ts';
import { authRoutes } from './auth-routes.ts';
import { localAuthenticator } from './authenticator.ts';
import type { IdentityDeps } from './deps.ts';

export type { IdentityDeps, IdentitySettings } from './deps.ts';

export function buildIdentityApp(deps: IdentityDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.log.child(
      { component: 'identity' },
      { level: 'warn' },
    ) as FastifyBaseLogger,
    bodyLimit: deps.settings.bodyLimit,
    return503OnClosing: false,
    genReqId: newRequestId,
    requestIdHeader: false,
  });
  installRequestIds(app, deps.log);
  installErrors(app, deps.log, 'keystone');
  installAuth(app, {
    adminToken: deps.settings.adminToken,
    memberTokens: [],
    tokens: localAuthenticator({
      ring: deps.ring,
      revocations: deps.revocations,
      now: () => deps.clock.now().getTime(),
    }),
    identityListener: true,
  });
  authRoutes(app, deps);
  adminRoutes(app, deps);
  return app;
}
