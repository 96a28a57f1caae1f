/**
 * buildApp(deps): the kumo-api HTTP application, built without a socket so tests can
 * drive it with `inject` against a real database.
 *
 * Invariants: everything the routes need arrives in `deps` (database, broker, clock,
 * settings; their types are in deps.ts); the app reads no global configuration. Every
 * error leaves through http.ts, including those of Node's HTTP parser (clientErrorHandler)
 * and fastify's router (frameworkErrors); links use `req.publicEndpoint`, set from the
 * settings.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { installAuth } from './auth.ts';
import { installVolumeVersions } from './cinder-version.ts';
import { clientErrorHandler } from './client-errors.ts';
import { dashboardRoutes } from './dashboard/routes.ts';
import { type AppDeps, DEFAULT_IMAGE_SIZE_LIMIT, DEFAULT_PUBLIC_ENDPOINT } from './deps.ts';
import { errorHandler, installErrors } from './http.ts';
import { installHttpMetrics } from './metrics.ts';
import { installMicroversions } from './microversion.ts';
import { installRequestIds, newRequestId } from './request-id.ts';
import { rewriteUrl, rootOf } from './roots.ts';
import { agentRoutes } from './routes/agents.ts';
import { cinderRoutes } from './routes/cinder.ts';
import { dhcpAgentRoutes } from './routes/dhcp-agents.ts';
import { flavorRoutes } from './routes/flavors.ts';
import { floatingIpRoutes } from './routes/floatingips.ts';
import { imageRoutes } from './routes/images.ts';
import { keypairRoutes } from './routes/keypairs.ts';
import { l3AgentRoutes } from './routes/l3-agents.ts';
import { lbaasRoutes } from './routes/lbaas.ts';
import { lbaasAgentRoutes } from './routes/lbaas-agents.ts';
import { networkRoutes } from './routes/networks.ts';
import { neutronQuotaRoutes } from './routes/neutron-quotas.ts';
import { novaQuotaRoutes } from './routes/nova-quotas.ts';
import { novaSecurityGroupRoutes } from './routes/nova-secgroups.ts';
import { portRoutes } from './routes/ports.ts';
import { routerRoutes } from './routes/routers.ts';
import { securityGroupRoutes } from './routes/security-groups.ts';
import { serverRoutes } from './routes/servers.ts';
import { subnetRoutes } from './routes/subnets.ts';
import { versionRoutes } from './routes/versions.ts';

export type { ApiSettings, AppDeps } from './deps.ts';

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    // fastify's own per-request lines stay out of the journal: request-id.ts logs one line
    // per request with its id; errors are logged by installErrors.
    loggerInstance: deps.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    bodyLimit: deps.settings.bodyLimit,
    // installErrors answers 503 while closing, in the catalogue's shape.
    return503OnClosing: false,
    clientErrorHandler: clientErrorHandler(deps.log.child({ component: 'http' })),
    frameworkErrors: errorHandler(deps.log),
    genReqId: newRequestId,
    requestIdHeader: false,
    rewriteUrl,
  });
  const endpoint = deps.settings.publicEndpoint ?? DEFAULT_PUBLIC_ENDPOINT;
  app.decorateRequest('publicEndpoint', endpoint);
  installRequestIds(app, deps.log);
  if (deps.metrics) installHttpMetrics(app, deps.metrics.httpDuration);
  app.addHook('onRequest', async (req) => {
    req.publicEndpoint = `${endpoint}${rootOf(req.raw)}`;
  });
  installErrors(app, deps.log);
  installAuth(app, {
    adminToken: deps.settings.adminToken,
    memberTokens: deps.settings.memberTokens,
    ...(deps.settings.serviceTokens ? { serviceTokens: deps.settings.serviceTokens } : {}),
    ...(deps.tokens ? { tokens: deps.tokens } : {}),
    ...(deps.settings.authUri ? { authUri: deps.settings.authUri } : {}),
  });
  installMicroversions(app);
  installVolumeVersions(app);
  versionRoutes(app);
  agentRoutes(app, deps);
  networkRoutes(app, deps);
  subnetRoutes(app, deps);
  portRoutes(app, deps);
  securityGroupRoutes(app, deps);
  neutronQuotaRoutes(app, deps);
  dhcpAgentRoutes(app, deps);
  routerRoutes(app, deps);
  floatingIpRoutes(app, deps);
  l3AgentRoutes(app, deps);
  lbaasRoutes(app, deps);
  lbaasAgentRoutes(app, deps);
  flavorRoutes(app, deps);
  serverRoutes(app, deps);
  novaSecurityGroupRoutes(app, deps);
  novaQuotaRoutes(app, deps);
  keypairRoutes(app, deps);
  imageRoutes(
    app,
    deps,
    deps.settings.images ?? {
      dir: join(tmpdir(), 'kumo-images'),
      sizeLimit: DEFAULT_IMAGE_SIZE_LIMIT,
    },
  );
  cinderRoutes(app, deps);
  dashboardRoutes(app, deps);
  return app;
}
