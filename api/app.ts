/**
 * buildApp(deps): the kumo-api HTTP application, built without a socket so tests can
 * drive it with `inject` against a real database.
 *
 * Invariant: everything the routes need arrives in `deps` (database, broker, clock,
 * settings); the app reads no global configuration.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Broker } from '../core/amqp.ts';
import type { Logger } from '../core/log.ts';
import type { Db } from './db/index.ts';
import type { NetworkSettings } from './db/networks.ts';
import { installAuth, installErrors } from './http.ts';
import type { Clock } from './liveness.ts';
import { agentRoutes } from './routes/agents.ts';
import { dhcpAgentRoutes } from './routes/dhcp-agents.ts';
import { flavorRoutes } from './routes/flavors.ts';
import { DEFAULT_IMAGE_SIZE_LIMIT, type ImageSettings, imageRoutes } from './routes/images.ts';
import { networkRoutes } from './routes/networks.ts';
import { portRoutes } from './routes/ports.ts';
import { serverRoutes } from './routes/servers.ts';
import { subnetRoutes } from './routes/subnets.ts';
import { versionRoutes } from './routes/versions.ts';

export interface ApiSettings {
  adminToken: string;
  memberTokens: readonly string[];
  agentDownTime: number;
  bodyLimit: number;
  /** Segmentation ranges, default network type and MTU ([ml2]); defaults when absent. */
  network?: NetworkSettings;
  /** [DEFAULT] dhcp_agents_per_network; 1 when absent. */
  dhcpAgentsPerNetwork?: number;
  /** [api] allow_automatic_failover; true when absent. */
  allowAutomaticFailover?: boolean;
  /** [api] image_dir and image_size_limit; images under the OS temp dir when absent. */
  images?: ImageSettings;
  /** [api] service_token: accepted on image reads only. */
  serviceTokens?: readonly string[];
}

export interface AppDeps {
  db: Db;
  /** `call` serves os-getConsoleOutput; without it that action answers 503. */
  broker: Pick<Broker, 'cast' | 'fanout'> & Partial<Pick<Broker, 'call'>>;
  clock: Clock;
  log: Logger;
  settings: ApiSettings;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    // Per-request lines stay out of the journal; errors are logged by installErrors.
    loggerInstance: deps.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    bodyLimit: deps.settings.bodyLimit,
    return503OnClosing: true,
  });
  installErrors(app, deps.log);
  installAuth(app, {
    adminToken: deps.settings.adminToken,
    memberTokens: deps.settings.memberTokens,
    ...(deps.settings.serviceTokens ? { serviceTokens: deps.settings.serviceTokens } : {}),
  });
  versionRoutes(app);
  agentRoutes(app, deps);
  networkRoutes(app, deps);
  subnetRoutes(app, deps);
  portRoutes(app, deps);
  dhcpAgentRoutes(app, deps);
  flavorRoutes(app, deps);
  serverRoutes(app, deps);
  imageRoutes(
    app,
    deps,
    deps.settings.images ?? {
      dir: join(tmpdir(), 'kumo-images'),
      sizeLimit: DEFAULT_IMAGE_SIZE_LIMIT,
    },
  );
  return app;
}
