/**
 * What the HTTP routes are given: the API's settings and the shared dependencies
 * (database, broker, clock, log). app.ts builds the routes with them; no route imports
 * app.ts, so the routes and the app never form an import cycle.
 *
 * Invariant: everything a route needs arrives in `AppDeps`; no route reads global
 * configuration.
 */
import type { Broker } from '../core/amqp.ts';
import type { Logger } from '../core/log.ts';
import type { Authenticator } from './caller.ts';
import type { Db } from './db/index.ts';
import type { QuotaLimits } from './db/quotas.ts';
import type { NetworkSettings } from './db/segments.ts';
import type { Clock } from './liveness.ts';
import type { ApiMetrics } from './metrics.ts';

/** Where links point when no public endpoint is given (tests): the default bind address. */
export const DEFAULT_PUBLIC_ENDPOINT = 'http://127.0.0.1:9696';

/** Glance's default image_size_cap: 1 TiB. */
export const DEFAULT_IMAGE_SIZE_LIMIT = 1024 ** 4;

export interface ImageSettings {
  /** Where image data lives: `<dir>/<image id>`. */
  dir: string;
  /** Largest image in bytes; bigger uploads get 413. */
  sizeLimit: number;
}

export interface ApiSettings {
  adminToken: string;
  memberTokens: readonly string[];
  agentDownTime: number;
  bodyLimit: number;
  /**
   * The URL clients reach the API at, with no trailing slash: every link the API builds
   * starts with it ([api] public_endpoint, else the bind address; see main.ts).
   * DEFAULT_PUBLIC_ENDPOINT when absent.
   */
  publicEndpoint?: string;
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
  /**
   * [compute] reclaim_instance_interval (seconds): > 0, a DELETE soft-deletes and the
   * server is reclaimed that long after; 0 or absent, a DELETE deletes at once.
   */
  reclaimInstanceInterval?: number;
  /** Keystone's URL for 401 challenges (WWW-Authenticate); none sent when absent. */
  authUri?: string;
  /**
   * [quotas] (Neutron's resources, and Cinder's quota_volumes/gigabytes/snapshots) and
   * [quota] (Nova's); QUOTA_DEFAULTS when absent (Cinder's: db/volume-quotas.ts).
   */
  quotas?: { neutron: QuotaLimits; nova: QuotaLimits; cinder?: QuotaLimits };
  /** [volume] default_volume_type: the type of a volume created without one; lvm when absent. */
  defaultVolumeType?: 'lvm' | 'file';
}

/** Neutron's and Nova's own default quotas (-1: unlimited). */
export const QUOTA_DEFAULTS = {
  neutron: {
    network: 100,
    subnet: 100,
    port: 500,
    router: 10,
    floatingip: 50,
    security_group: 10,
    security_group_rule: 100,
    pool: 10,
    vip: 10,
    member: -1,
    health_monitor: -1,
  },
  nova: { instances: 10, cores: 20, ram: 51200, key_pairs: 100 },
} as const satisfies ApiSettings['quotas'];

export interface AppDeps {
  db: Db;
  /** `call` serves os-getConsoleOutput; without it that action answers 503. */
  broker: Pick<Broker, 'cast' | 'fanout'> & Partial<Pick<Broker, 'call'>>;
  clock: Clock;
  log: Logger;
  settings: ApiSettings;
  /** Keystone tokens (kumo-api's own, or an external Keystone's); static tokens only when absent. */
  tokens?: Authenticator;
  /** Request durations by route pattern (metrics.ts); none observed when absent. */
  metrics?: Pick<ApiMetrics, 'httpDuration'>;
}
