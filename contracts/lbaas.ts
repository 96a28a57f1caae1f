/**
 * LBaaS v1 vocabulary shared by kumo-api, the CLI and kumo-lbaas-agent: Neutron's
 * enumerations and value patterns, and the RPC contract between the agent and the API
 * (which pools a host serves, everything one qlbaas namespace needs, the stats and member
 * health the agent reports back).
 *
 * Invariants:
 * - every value that reaches haproxy.cfg is an id, an address, a port, a number, an
 *   enumeration or one of the strict patterns below (URL_PATH, EXPECTED_CODES,
 *   COOKIE_NAME): no name, description or other free text ever travels to the agent;
 * - one bad member is that member's problem: `parseLbPoolInfo` leaves it out and names it
 *   with the reason, so the pool's other members keep being served;
 * - `pool: null` means this host must serve nothing for the pool and report nothing of it
 *   (moved elsewhere, deleted): every host object it owned is removed.
 */
import { cidrText, MAC } from './network.ts';
import { anyItem, parseParts } from './parts.ts';
import {
  arr,
  bool,
  hostname,
  type Infer,
  int,
  nullable,
  obj,
  oneOf,
  optional,
  str,
  uuid,
  ValidationError,
} from './schema.ts';
import type { RejectedPart } from './status.ts';

export const LB_METHODS = ['ROUND_ROBIN', 'LEAST_CONNECTIONS', 'SOURCE_IP'] as const;
export type LbMethod = (typeof LB_METHODS)[number];
export const LB_PROTOCOLS = ['TCP', 'HTTP', 'HTTPS'] as const;
export type LbProtocol = (typeof LB_PROTOCOLS)[number];
export const PERSISTENCE_TYPES = ['SOURCE_IP', 'HTTP_COOKIE', 'APP_COOKIE'] as const;
export type PersistenceType = (typeof PERSISTENCE_TYPES)[number];
export const MONITOR_TYPES = ['PING', 'TCP', 'HTTP', 'HTTPS'] as const;
export type MonitorType = (typeof MONITOR_TYPES)[number];
/** The methods an HTTP(S) health check may use (Neutron takes any string; haproxy a token). */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Neutron's LBaaS v1 statuses (INACTIVE: a member failing its checks, or admin-down). */
export const LB_STATUSES = [
  'ACTIVE',
  'PENDING_CREATE',
  'PENDING_UPDATE',
  'PENDING_DELETE',
  'INACTIVE',
  'ERROR',
] as const;
export type LbStatus = (typeof LB_STATUSES)[number];

/** device_owner of a VIP's port (Neutron's `neutron:LOADBALANCER`). */
export const VIP_PORT_OWNER = 'neutron:LOADBALANCER';
/** The provider every pool shows (Neutron's default haproxy service provider). */
export const LB_PROVIDER = 'haproxy';
/** connection_limit -1: unlimited (Neutron's MIN_CONNECT_VALUE). */
export const UNLIMITED_CONNECTIONS = -1;
export const MAX_CONNECTION_LIMIT = 1_000_000;
export const MAX_MEMBER_WEIGHT = 256;
export const MAX_MONITOR_RETRIES = 10;
/** Seconds: haproxy takes `inter`/`timeout check` in whole seconds here. */
export const MAX_MONITOR_SECONDS = 86_400;

/**
 * A health check's URL path: absolute, no space, quote, `#`, `\` or control character
 * (haproxy reads `option httpchk <method> <path>` as tokens).
 */
export const URL_PATH = /^\/[A-Za-z0-9._~%/?=&+:@,-]{0,254}$/;
/** `200`, `200,202` or `200-204`: HTTP codes 100-599, no spaces. */
export const EXPECTED_CODES = /^([1-5][0-9]{2}(,[1-5][0-9]{2}){0,15}|[1-5][0-9]{2}-[1-5][0-9]{2})$/;
/** An APP_COOKIE's name: an RFC 6265 token, trimmed to what haproxy reads unquoted. */
export const COOKIE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** The codes `expected_codes` names, or undefined when it is not one of the forms above. */
export function expectedCodeList(value: string): number[] | undefined {
  if (!EXPECTED_CODES.test(value)) return undefined;
  if (!value.includes('-')) return [...new Set(value.split(',').map(Number))];
  const [lo, hi] = value.split('-').map(Number) as [number, number];
  if (lo > hi) return undefined;
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

const mac = () => str({ pattern: MAC, patternName: 'a MAC address' });
/** Checked value by value by the agent; here size and shape only. */
const addressText = () =>
  str({ min: 2, max: 45, pattern: /^[0-9A-Fa-f.:]+$/, patternName: 'an IP address' });
const port = () => int({ min: 1, max: 65535 });

/** The VIP's port as the agent plugs it into `qlbaas-<pool>`: one address on its subnet. */
export const LbVipPort = obj({
  id: uuid(),
  network_id: uuid(),
  mac_address: mac(),
  mtu: int({ min: 68, max: 65535 }),
  ip_address: addressText(),
  subnet_id: uuid(),
  cidr: cidrText(),
  gateway_ip: nullable(addressText()),
});
export type LbVipPort = Infer<typeof LbVipPort>;

export const SessionPersistence = obj({
  type: oneOf(PERSISTENCE_TYPES),
  cookie_name: nullable(str({ pattern: COOKIE_NAME, patternName: 'a cookie name' })),
});
export type SessionPersistence = Infer<typeof SessionPersistence>;

export const LbVip = obj({
  id: uuid(),
  address: addressText(),
  protocol_port: port(),
  protocol: oneOf(LB_PROTOCOLS),
  connection_limit: int({ min: UNLIMITED_CONNECTIONS, max: MAX_CONNECTION_LIMIT }),
  session_persistence: nullable(SessionPersistence),
  admin_state_up: bool(),
  port: LbVipPort,
});
export type LbVip = Infer<typeof LbVip>;

export const LbMember = obj({
  id: uuid(),
  address: addressText(),
  protocol_port: port(),
  weight: int({ min: 0, max: MAX_MEMBER_WEIGHT }),
  admin_state_up: bool(),
});
export type LbMember = Infer<typeof LbMember>;

export const LbMonitor = obj({
  id: uuid(),
  type: oneOf(MONITOR_TYPES),
  delay: int({ min: 1, max: MAX_MONITOR_SECONDS }),
  timeout: int({ min: 1, max: MAX_MONITOR_SECONDS }),
  max_retries: int({ min: 1, max: MAX_MONITOR_RETRIES }),
  http_method: oneOf(HTTP_METHODS),
  url_path: str({ pattern: URL_PATH, patternName: 'a URL path' }),
  expected_codes: str({ pattern: EXPECTED_CODES, patternName: 'expected codes' }),
});
export type LbMonitor = Infer<typeof LbMonitor>;

/**
 * One pool hosted by the asking host's LBaaS agent. Served (a namespace and an haproxy) only
 * when it is admin-up and has an admin-up VIP; otherwise the agent keeps nothing on the
 * host for it but still acknowledges the revision (its statuses turn ACTIVE).
 */
export const LbPool = obj({
  id: uuid(),
  /** Bumped by every change of the pool, its VIP, members or monitor associations. */
  revision_number: int({ min: 0 }),
  admin_state_up: bool(),
  protocol: oneOf(LB_PROTOCOLS),
  lb_method: oneOf(LB_METHODS),
  vip: nullable(LbVip),
  /** Admin-up members only. */
  members: arr(LbMember, { max: 10_000 }),
  /** The first admin-up monitor associated with the pool (haproxy runs one check). */
  health_monitor: nullable(LbMonitor),
  /** Some status of the pool is pending or in error: the agent reports once it served it. */
  ack_wanted: bool(),
});
export type LbPool = Infer<typeof LbPool>;

export const GetActivePoolsArgs = obj({ host: hostname() });
export const GetActivePoolsResult = obj({ pools: arr(uuid(), { max: 100_000 }) });

export const GetPoolInfoArgs = obj({ host: hostname(), pool_id: uuid() });

const PoolEnvelope = obj({
  pool: nullable(obj({ ...LbPool.shape, members: arr(anyItem(), { max: 10_000 }) })),
});

/** A get_pool_info answer, and the members left out. */
export interface LbPoolInfo {
  pool: LbPool | null;
  rejected: RejectedPart[];
}

/**
 * Parses get_pool_info's answer member by member: the pool, its VIP and monitor must be
 * valid (else it throws, naming the field); a member that is not is left out and listed in
 * `rejected` with the reason.
 */
export function parseLbPoolInfo(reply: unknown): LbPoolInfo {
  const p = PoolEnvelope.parse(reply).pool;
  if (p === null) return { pool: null, rejected: [] };
  const rejected: RejectedPart[] = [];
  const members = parseParts(
    p.members,
    LbMember,
    { list: 'members', resource: 'member' },
    rejected,
  );
  return { pool: { ...p, members }, rejected };
}

/** Counters of one pool as haproxy counts them (summed over reloads by the agent). */
export const PoolStats = obj({
  bytes_in: int({ min: 0 }),
  bytes_out: int({ min: 0 }),
  active_connections: int({ min: 0 }),
  total_connections: int({ min: 0 }),
});
export type PoolStats = Infer<typeof PoolStats>;

export const MEMBER_HEALTH = ['ACTIVE', 'INACTIVE'] as const;
export type MemberHealth = (typeof MEMBER_HEALTH)[number];

export const MemberHealthReport = obj({ id: uuid(), status: oneOf(MEMBER_HEALTH) });

const UpdatePoolStatsShape = obj({
  host: hostname(),
  pool_id: uuid(),
  /** The counters, present only when they changed since the agent's last report. */
  stats: optional(PoolStats),
  /** The members' health, present only when it changed (with its reasons). */
  members: optional(arr(MemberHealthReport, { max: 10_000 })),
  /** The check's reason for a member down (haproxy's last check status), by member id. */
  reasons: optional(arr(obj({ id: uuid(), reason: str({ max: 255 }) }), { max: 10_000 })),
});

/**
 * update_pool_stats (a cast, sent when it changed): `stats` and `members` each only when
 * that part changed, at least one of them (`reasons` only with `members`); applied only
 * while `host` hosts the pool, so a fenced copy's numbers never overwrite the serving one's.
 */
export const UpdatePoolStatsArgs: typeof UpdatePoolStatsShape = {
  ...UpdatePoolStatsShape,
  parse(value, path = '') {
    const args = UpdatePoolStatsShape.parse(value, path);
    const at = (key: string) => (path ? `${path}.${key}` : key);
    if (args.stats === undefined && args.members === undefined)
      throw new ValidationError(at('stats'), 'or members is required');
    if (args.reasons !== undefined && args.members === undefined)
      throw new ValidationError(at('reasons'), 'needs members');
    return args;
  },
};
export type UpdatePoolStatsArgs = Infer<typeof UpdatePoolStatsArgs>;
