/**
 * What one pool must look like on this host, from the API's LbPool: the qlbaas namespace,
 * the VIP's port plugged into it with its address, a default route via the subnet's
 * gateway, and an haproxy (a frontend for the VIP, a backend for the pool) with its stats
 * socket. Pure.
 *
 * Invariants:
 * - `null` means "this host must serve nothing for the pool" (answered null, admin-down,
 *   no VIP, or the VIP admin-down) and every host object it owned is removed;
 * - haproxy.cfg is rendered from the LbPool's ids, addresses, ports, numbers and
 *   enumerations only (host/haproxy checks every token): no name or description reaches it;
 * - a member whose address is not an IP is left out and listed in `rejected` with the
 *   other members the contract already left out; the pool is served without it;
 * - haproxy's global maxconn is the VIP's connection_limit (4096 when unlimited) within what
 *   the host's open file limit lets it start with; a limit above that is served lowered
 *   and named in `connectionCap` (the agent logs it) rather than failing the pool;
 * - haproxy serves as nobody/nogroup (RUN_AS) once bound, and an old process left by a
 *   reload is stopped HARD_STOP_AFTER seconds later at the latest.
 */

import { canonicalIp } from '../../contracts/inet.ts';
import type { LbMember, LbMonitor, LbPool, LbVip } from '../../contracts/lbaas.ts';
import { expectedCodeList } from '../../contracts/lbaas.ts';
import { UUID, ValidationError } from '../../contracts/schema.ts';
import { MAX_REJECTED, type RejectedPart } from '../../contracts/status.ts';
import {
  type Backend,
  type Frontend,
  type HealthCheck,
  MAX_MAXCONN,
  type Persistence,
  renderConfig,
} from '../../host/haproxy/config.ts';
import { parseCidr } from '../../host/ip/inet.ts';
import { poolNamespace, portDevice } from '../../host/ip/names.ts';
import type { StaticRoute } from '../../host/ip/route.ts';
import type { HaproxyInstance } from '../lib/haproxy-instance.ts';
import type { NsPort } from '../lib/ns-port.ts';

export interface LbSettings {
  /** <state_path>/lbaas: one directory per pool, named by its id, marked with the host. */
  stateRoot: string;
  /** This host's name: what the ownership markers say. */
  host: string;
  intBridge: string;
  /** Where ovs-vswitchd runs, when not in this process's namespace (the test lab). */
  vswitchdNetns?: string;
  /** `[DEFAULT] netns_prefix`: '' in production. */
  netnsPrefix: string;
  /** The open files a pool's haproxy may have (host/haproxy/daemon openFileLimit). */
  fileLimit: number;
}

export interface DesiredPool {
  poolId: string;
  netns: string;
  stateDir: string;
  port: NsPort;
  /** The default route via the VIP subnet's gateway (null: the subnet has none). */
  route: StaticRoute | null;
  haproxy: HaproxyInstance & { statsSocket: string };
  /** Members served without, with the reasons; sorted, capped. */
  rejected: RejectedPart[];
  /** The VIP's connection_limit, and the lower one served when fileLimit bounds it. */
  connectionCap?: { asked: number; served: number };
}

export const MARKER = { file: 'host' };

function checkedId(id: string, field: string): string {
  if (!UUID.test(id)) throw new ValidationError(field, 'must be a lower-case uuid');
  return id;
}

export const stateDirOf = (s: LbSettings, poolId: string) =>
  `${s.stateRoot}/${checkedId(poolId, 'pool id')}`;
export const netnsOf = (s: LbSettings, poolId: string) =>
  `${s.netnsPrefix}${poolNamespace(poolId)}`;
export const statsSocketOf = (stateDir: string) => `${stateDir}/haproxy.sock`;

/**
 * The longest stats socket path haproxy binds on a host whose pids stay below `pidMax`: it
 * makes `<path>.<pid>.tmp` first, which must fit a unix address (107 characters), and its
 * parser takes at most 97 (room for a 5-digit pid). 95 with Linux's largest pid_max.
 */
export const maxSocketPath = (pidMax: number) =>
  Math.min(97, 107 - '..tmp'.length - String(Math.max(pidMax - 1, 1)).length);

/**
 * Throws, naming `[DEFAULT] state_path`, when a pool's stats socket under `statePath` would be
 * longer than `max` (maxSocketPath): every pool would fail, so the agent refuses to start.
 */
export function checkStatePath(s: LbSettings, statePath: string, max: number): void {
  const socket = statsSocketOf(stateDirOf(s, '00000000-0000-0000-0000-000000000000'));
  const over = socket.length - max;
  if (over > 0)
    throw new Error(
      `[DEFAULT] state_path ${JSON.stringify(statePath)} is ${over} character(s) too long for ` +
        `the pools' haproxy stats sockets (${socket.length} > ${max}): at most ` +
        `${statePath.length - over} characters`,
    );
}

/**
 * The VIP's device, recorded when it is plugged: a teardown finds its OVS port by it even
 * when the namespace (and so the device) is gone, e.g. after a reboot.
 */
export const deviceFileOf = (stateDir: string) => `${stateDir}/device`;
/** The stats counters of earlier haproxy processes (stats.ts), kept across agent restarts. */
export const statsBaseOf = (stateDir: string) => `${stateDir}/stats.json`;
/** `tap` + the first 11 characters of the VIP port's id (host/ip/names portDevice's rule). */
export const vipDevice = (portId: string) => portDevice('tap', portId);

/**
 * Who a pool's haproxy serves as once it has bound its sockets, opened its root-only stats
 * socket and written its pid file (as Neutron's haproxy driver: nobody/nogroup): a flaw in
 * haproxy then reaches neither the agent's files nor its capabilities.
 */
export const RUN_AS = { user: 'nobody', group: 'nogroup' } as const;

/**
 * Seconds an old haproxy may keep finishing its connections after a reload before it is
 * stopped (`hard-stop-after`): above the 50 s client and server timeouts, so only a
 * connection still moving data is cut, and an old process never lingers for ever.
 */
export const HARD_STOP_AFTER = 60;

/** The global maxconn of a VIP without a connection_limit (-1: unlimited). */
export const DEFAULT_MAXCONN = 4096;
/**
 * haproxy's file descriptors beyond 2 per connection and 1 per server (its checks):
 * listeners, sockets, pollers and thread pipes (28 measured with 2 threads).
 */
const FD_RESERVE = 256;

/**
 * The pool haproxy's maxconn: the VIP's connection_limit (DEFAULT_MAXCONN when unlimited),
 * within what `fileLimit` lets haproxy start with.
 */
export function maxconnOf(limit: number, servers: number, fileLimit: number) {
  const asked = limit > 0 ? limit : DEFAULT_MAXCONN;
  const room = Math.floor((fileLimit - FD_RESERVE - servers) / 2);
  return { asked, served: Math.max(1, Math.min(asked, room, MAX_MAXCONN)) };
}

const BALANCE = { ROUND_ROBIN: 'roundrobin', LEAST_CONNECTIONS: 'leastconn', SOURCE_IP: 'source' };
/** Neutron's haproxy driver: HTTPS is passed through as TCP. */
const modeOf = (protocol: LbPool['protocol']) => (protocol === 'HTTP' ? 'http' : 'tcp');

/** A canonical IP, or undefined. */
const ipOf = (text: string) => canonicalIp(text);

function persistenceOf(vip: LbVip, mode: 'http' | 'tcp'): Persistence | undefined {
  const sp = vip.session_persistence;
  if (sp === null) return undefined;
  if (sp.type === 'SOURCE_IP') return { type: 'source' };
  if (mode !== 'http') return undefined;
  if (sp.type === 'HTTP_COOKIE') return { type: 'insert-cookie' };
  if (sp.cookie_name === null)
    throw new ValidationError('vip.session_persistence.cookie_name', 'APP_COOKIE needs a name');
  return { type: 'app-cookie', cookie: sp.cookie_name };
}

function checkOf(m: LbMonitor | null): HealthCheck | undefined {
  if (m === null) return undefined;
  const times = { interval: m.delay, timeout: m.timeout, fall: m.max_retries, rise: m.max_retries };
  if (m.type === 'PING' || m.type === 'TCP') return { probe: { type: 'tcp' }, ...times };
  if (m.type === 'HTTPS') return { probe: { type: 'ssl-hello' }, ...times };
  const expect = expectedCodeList(m.expected_codes);
  if (!expect) throw new ValidationError('health_monitor.expected_codes', 'is not a code list');
  return { probe: { type: 'http', method: m.http_method, path: m.url_path, expect }, ...times };
}

/** The members haproxy can serve, and the others with the reason. */
function servers(members: readonly LbMember[], rejected: RejectedPart[]) {
  return members.flatMap((m) => {
    const address = ipOf(m.address);
    if (address === undefined) {
      rejected.push({ resource: 'member', id: m.id, reason: 'address is not an IP address' });
      return [];
    }
    return [{ name: m.id, address, port: m.protocol_port, weight: m.weight }];
  });
}

function backendOf(pool: LbPool, vip: LbVip, rejected: RejectedPart[]): Backend {
  const mode = modeOf(pool.protocol);
  const persistence = persistenceOf(vip, mode);
  const check = checkOf(pool.health_monitor);
  return {
    name: pool.id,
    mode,
    balance: BALANCE[pool.lb_method] as Backend['balance'],
    ...(persistence ? { persistence } : {}),
    ...(check ? { check } : {}),
    servers: servers(pool.members, rejected),
  };
}

/** haproxy.cfg, and the connection limit asked and served. */
function haproxyConfig(pool: LbPool, vip: LbVip, s: LbSettings, rejected: RejectedPart[]) {
  const address = ipOf(vip.address);
  if (address === undefined) throw new ValidationError('vip.address', 'is not an IP address');
  const backend = backendOf(pool, vip, rejected);
  const conns = maxconnOf(vip.connection_limit, backend.servers.length, s.fileLimit);
  const frontend: Frontend = {
    name: checkedId(vip.id, 'vip.id'),
    mode: backend.mode,
    bind: { address, port: vip.protocol_port },
    ...(vip.connection_limit > 0 ? { maxconn: conns.served } : {}),
    defaultBackend: pool.id,
  };
  const config = renderConfig({
    maxconn: conns.served,
    timeouts: { connect: 5, client: 50, server: 50, httpRequest: 10 },
    stats: { socket: statsSocketOf(stateDirOf(s, pool.id)) },
    runAs: RUN_AS,
    hardStopAfter: HARD_STOP_AFTER,
    frontends: [frontend],
    backends: [backend],
  });
  return { config, conns };
}

/** The VIP port's address with its subnet's prefix, and the default route via the gateway. */
function vipAddressing(vip: LbVip) {
  const cidr = parseCidr(vip.port.cidr);
  const ip = ipOf(vip.port.ip_address);
  if (!cidr || ip === undefined || ip.includes(':') !== (cidr.version === 6))
    throw new ValidationError('vip.port.ip_address', 'is not an address of its subnet');
  const gw = vip.port.gateway_ip === null ? undefined : ipOf(vip.port.gateway_ip);
  if (vip.port.gateway_ip !== null && gw === undefined)
    throw new ValidationError('vip.port.gateway_ip', 'is not an IP address');
  const route: StaticRoute | null =
    gw === undefined ? null : { destination: cidr.version === 6 ? '::/0' : '0.0.0.0/0', via: gw };
  return { address: `${ip}/${cidr.prefix}`, route };
}

const capped = (parts: RejectedPart[]) =>
  parts.sort((a, b) => (a.resource + a.id < b.resource + b.id ? -1 : 1)).slice(0, MAX_REJECTED);

/** `arrived`: the members the contract already left out (parseLbPoolInfo). */
export function desiredPool(
  pool: LbPool | null,
  s: LbSettings,
  arrived: readonly RejectedPart[] = [],
): DesiredPool | null {
  const vip = pool?.admin_state_up ? pool.vip : null;
  if (!pool || !vip?.admin_state_up) return null;
  const stateDir = stateDirOf(s, pool.id);
  const netns = netnsOf(s, pool.id);
  const rejected = [...arrived];
  const socket = statsSocketOf(stateDir);
  const { config, conns } = haproxyConfig(pool, vip, s, rejected);
  const { address, route } = vipAddressing(vip);
  return {
    poolId: pool.id,
    netns,
    stateDir,
    port: {
      netns,
      device: vipDevice(vip.port.id),
      portId: vip.port.id,
      mac: vip.port.mac_address.toLowerCase(),
      mtu: vip.port.mtu,
      addresses: [address],
      bridge: s.intBridge,
      ...(s.vswitchdNetns ? { vswitchdNetns: s.vswitchdNetns } : {}),
    },
    route,
    haproxy: { netns, dir: stateDir, config, statsSocket: socket, label: 'pool haproxy' },
    rejected: capped(rejected),
    ...(conns.served < vip.connection_limit ? { connectionCap: conns } : {}),
  };
}
