/**
 * kumo-api: the HTTP API, Keystone v3 on its own listener (identity/app.ts), the
 * state-report consumer, the RPC server, and the periodic jobs (jobs.ts: failover sweeps,
 * the compute sweep, reclaim, key rotation), each run by one replica at a time under a
 * database lease. Any number of replicas may share one PostgreSQL database and one broker
 * cluster: they share the queues too (competing consumers).
 *
 * With [metadata] metadata_proxy_shared_secret it also serves instance metadata on
 * [metadata] bind_host:bind_port (metadata/listener.ts); without, it says so once at start.
 *
 * With [DEFAULT] metrics_port it serves Prometheus metrics (api/metrics.ts, core/metrics.ts)
 * on metrics_bind_host:metrics_port (kumo-api's offset is 0).
 *
 * Invariant: the database is migrated before anything is served or consumed; on stop the
 * HTTP servers close first (service API, identity, metadata), then buffered state reports are
 * committed and acked, then the revocation listener, the broker and the database close, so
 * no acknowledged report is lost. Tokens are kumo-api's own or an external Keystone's
 * (identity/start.ts).
 */
import { PLUGIN_TOPIC, REPORTS_TOPIC } from '../contracts/messages.ts';
import { apiQueue, createBroker } from '../core/amqp.ts';
import { ConfigError, required } from '../core/config.ts';
import { type DaemonContext, type Running, runDaemon } from '../core/daemon.ts';
import type { Logger } from '../core/log.ts';
import { startMetrics } from '../core/metrics.ts';
import { buildApp } from './app.ts';
import { type Db, databaseOf, openDb } from './db/index.ts';
import { migrate } from './db/migrations.ts';
import type { ApiSettings } from './deps.ts';
import type { IdentitySettings } from './identity/app.ts';
import { identityEndpoint, keyRepositoryOf, startIdentity } from './identity/start.ts';
import { apiJobs, type KeyRotation } from './jobs.ts';
import { createReportConsumer, systemClock } from './liveness.ts';
import { startMetadata } from './metadata/start.ts';
import { type ApiDaemonMetrics, createApiMetrics, timedRpcHandler } from './metrics.ts';
import { startPeriodicJobs } from './periodic.ts';
import { createRpcHandler } from './rpc.ts';

/**
 * The URL clients reach kumo-api at: [api] public_endpoint, else the bind address; a
 * wildcard bind (0.0.0.0) is no address a client can use, so [DEFAULT] host stands in.
 */
export function publicEndpoint(config: DaemonContext['config']): string {
  if (config.api.public_endpoint) return config.api.public_endpoint;
  const host = config.api.bind_host === '0.0.0.0' ? config.DEFAULT.host : config.api.bind_host;
  return `http://${host}:${config.api.bind_port}`;
}

function identitySettings(config: DaemonContext['config'], api: ApiSettings): IdentitySettings {
  return {
    adminToken: api.adminToken,
    tokenExpiration: config.identity.token_expiration,
    region: config.identity.region_id,
    endpoints: { identity: identityEndpoint(config), api: publicEndpoint(config) },
    bodyLimit: config.api.body_limit,
  };
}

/** The app's settings, compiled once from the configuration. */
function apiSettings(config: DaemonContext['config']): ApiSettings {
  return {
    adminToken: required(config.api.admin_token, 'api', 'admin_token'),
    memberTokens: config.api.member_tokens,
    agentDownTime: config.DEFAULT.agent_down_time,
    bodyLimit: config.api.body_limit,
    publicEndpoint: publicEndpoint(config),
    authUri: config.keystone_authtoken.auth_url ?? identityEndpoint(config),
    network: {
      tenantNetworkTypes: config.ml2.tenant_network_types,
      vniRanges: config.ml2.vni_ranges,
      greIdRanges: config.ml2.gre_id_ranges,
      flatNetworks: config.ml2.flat_networks,
      globalPhysnetMtu: config.ml2.global_physnet_mtu,
      vlanRanges: config.ml2.network_vlan_ranges,
    },
    dhcpAgentsPerNetwork: config.DEFAULT.dhcp_agents_per_network,
    allowAutomaticFailover: config.api.allow_automatic_failover,
    images: {
      dir: config.api.image_dir ?? `${config.DEFAULT.state_path}/images`,
      sizeLimit: config.api.image_size_limit,
    },
    ...(config.api.service_token ? { serviceTokens: [config.api.service_token] } : {}),
    reclaimInstanceInterval: config.compute.reclaim_instance_interval,
    quotas: {
      neutron: {
        network: config.quotas.quota_network,
        subnet: config.quotas.quota_subnet,
        port: config.quotas.quota_port,
        router: config.quotas.quota_router,
        floatingip: config.quotas.quota_floatingip,
        security_group: config.quotas.quota_security_group,
        security_group_rule: config.quotas.quota_security_group_rule,
        pool: config.quotas.quota_pool,
        vip: config.quotas.quota_vip,
        member: config.quotas.quota_member,
        health_monitor: config.quotas.quota_health_monitor,
      },
      nova: { ...config.quota },
      cinder: {
        volumes: config.quotas.quota_volumes,
        gigabytes: config.quotas.quota_gigabytes,
        snapshots: config.quotas.quota_snapshots,
      },
    },
    defaultVolumeType: config.volume.default_volume_type,
  };
}

/** The broker with kumo-api's two queues: state reports (batched) and q-plugin's RPC. */
function consumers(
  config: DaemonContext['config'],
  db: Db,
  log: Logger,
  metrics: ApiDaemonMetrics | undefined,
) {
  const broker = createBroker({
    url: config.DEFAULT.transport_url,
    log,
    timeoutMs: config.DEFAULT.rpc_response_timeout * 1000,
    ...(metrics ? { metrics: metrics.amqp } : {}),
  });
  const reports = createReportConsumer({
    db,
    broker,
    log,
    clock: systemClock,
    agentDownTime: config.DEFAULT.agent_down_time,
    ...(metrics ? { heartbeatLag: metrics.api.heartbeatLag } : {}),
  });
  broker.consume({ ...apiQueue(REPORTS_TOPIC), prefetch: 2000 }, async (message) => {
    if (message.method !== 'report_state')
      throw new Error(`unexpected method ${message.method} on ${REPORTS_TOPIC}`);
    await reports.handle(message.args);
  });
  broker.consume(
    { ...apiQueue(PLUGIN_TOPIC), prefetch: 64 },
    metrics
      ? timedRpcHandler(createRpcHandler({ db, broker, log }), metrics.api.rpcHandleDuration)
      : createRpcHandler({ db, broker, log }),
  );
  return { broker, reports };
}

/** kumo-api's own key repository, when it rotates it ([identity] key_rotation_interval). */
export function keyRotation(config: DaemonContext['config']): KeyRotation | undefined {
  if (config.keystone_authtoken.auth_url || config.identity.key_rotation_interval <= 0)
    return undefined;
  const { key_rotation_interval: hours, max_active_keys: keys, token_expiration } = config.identity;
  // A key stays accepted for (max_active_keys - 2) rotations after it stopped signing.
  if (hours * 3600 * (keys - 2) < token_expiration)
    throw new ConfigError(
      `[identity] key_rotation_interval: ${hours} h drops keys that signed unexpired tokens: it must be at least token_expiration / (max_active_keys - 2) = ${token_expiration / 3600 / (keys - 2)} h`,
    );
  return { dir: keyRepositoryOf(config), intervalHours: hours, maxActive: keys };
}

/** How long requests in flight may take to finish on stop before connections are cut. */
const HTTP_DRAIN_MS = 5000;

/**
 * Closes the service API: requests in flight get HTTP_DRAIN_MS to finish; then every
 * connection still open is cut. Browsers keep connections they opened ahead of use, which
 * carry no request and so never count as idle: they would hold the stop for a minute.
 */
async function closeHttp(app: ReturnType<typeof buildApp>) {
  const cut = setTimeout(() => app.server.closeAllConnections(), HTTP_DRAIN_MS);
  try {
    await app.close();
  } finally {
    clearTimeout(cut);
  }
}

export async function startApi({ config, log }: DaemonContext): Promise<Running> {
  const settings = apiSettings(config);
  const db = openDb(databaseOf(config));
  const applied = await migrate(db);
  log.info({ engine: db.engine, applied }, 'database ready');
  const agentDownTime = config.DEFAULT.agent_down_time;
  // metrics_port = 0: nothing is counted at all, so "off" costs nothing.
  const metrics =
    config.DEFAULT.metrics_port > 0
      ? createApiMetrics({ db, clock: systemClock, agentDownTime, log })
      : undefined;
  const metricsListener =
    metrics && (await startMetrics(config, 'kumo-api', metrics.registry, log));
  const identity = await startIdentity(
    config,
    { db, clock: systemClock, log },
    identitySettings(config, settings),
  );
  const { broker, reports } = consumers(config, db, log, metrics);
  await broker.start();
  const app = buildApp({
    db,
    broker,
    clock: systemClock,
    log,
    settings,
    tokens: identity.tokens,
    ...(metrics ? { metrics: metrics.api } : {}),
  });
  // Sweeps, failover, reclaim and key rotation: each on one replica at a time (jobs.ts).
  const jobs = startPeriodicJobs(
    { db, log, leaseMs: config.api.lease_duration * 1000 },
    apiJobs({ db, broker, clock: systemClock, log, settings }, keyRotation(config)),
  );
  log.info({ holder: jobs.holder }, 'periodic jobs start under leases');
  await app.listen({ host: config.api.bind_host, port: config.api.bind_port });
  log.info({ host: config.api.bind_host, port: config.api.bind_port }, 'kumo-api listening');
  await identity.listen();
  const metadata = await startMetadata(config, db, log);
  return {
    async stop() {
      await closeHttp(app);
      await metricsListener?.close();
      await identity.close();
      await metadata.close();
      await jobs.stop();
      await reports.close();
      await broker.close();
      await db.close();
    },
  };
}

export const main = () => runDaemon('kumo-api', startApi);
