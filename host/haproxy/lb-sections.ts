/**
 * The load balancer's haproxy.cfg sections: a `frontend` per VIP (a bind, an optional
 * maxconn, `option forwardfor` in http mode, `default_backend`) and a `backend` per pool
 * (balance, persistence, a health check, weighted servers), in haproxy 2.6's vocabulary.
 *
 * Invariant: every field is checked (checks.ts, contracts/lbaas.ts patterns) before it
 * becomes a token, so nothing from outside adds a line, a word or a comment; a bad value
 * throws a ValidationError naming its field and the caller renders nothing. Persistence and
 * checks are closed unions: only the lines written here can appear. An insert cookie's value
 * is the server's name (stable while members come and go, unlike a position). Pure.
 */
import {
  COOKIE_NAME,
  HTTP_METHODS,
  type HttpMethod,
  MAX_CONNECTION_LIMIT,
  MAX_MEMBER_WEIGHT,
  MAX_MONITOR_RETRIES,
  MAX_MONITOR_SECONDS,
  URL_PATH,
} from '../../contracts/lbaas.ts';
import {
  bad,
  checkCount,
  checkIp,
  checkName,
  checkOneOf,
  checkPort,
  hostPort,
  matching,
} from './checks.ts';

export type LbMode = 'http' | 'tcp';
export type Balance = 'roundrobin' | 'leastconn' | 'source';

/** A VIP: where clients connect, and the backend that serves them. */
export interface Frontend {
  name: string;
  mode: LbMode;
  bind: { address: string; port: number };
  /** Concurrent connections this frontend accepts (absent: unlimited but the global one). */
  maxconn?: number;
  defaultBackend: string;
}

/**
 * Session persistence: `source` (a stick table on the client's address), `insert-cookie`
 * (haproxy's own SRV cookie, http mode) or `app-cookie` (a stick table learning the
 * application's cookie from responses and matching it on requests, http mode).
 */
export type Persistence =
  | { type: 'source' }
  | { type: 'insert-cookie' }
  | { type: 'app-cookie'; cookie: string };

/** How a server is probed: a TCP connect, an HTTP request, or an SSL hello (HTTPS). */
export type CheckProbe =
  | { type: 'tcp' }
  | { type: 'http'; method: HttpMethod; path: string; expect: readonly number[] }
  | { type: 'ssl-hello' };

export interface HealthCheck {
  probe: CheckProbe;
  /** Seconds between checks (`inter`). */
  interval: number;
  /** Seconds a check may take (`timeout check`). */
  timeout: number;
  /** Consecutive failures that mark a server DOWN, successes that mark it UP again. */
  fall: number;
  rise: number;
}

export interface BackendServer {
  name: string;
  address: string;
  port: number;
  /** 0-256; 0 takes no new traffic. */
  weight: number;
}

export interface Backend {
  name: string;
  mode: LbMode;
  balance: Balance;
  persistence?: Persistence;
  /** Absent: servers are never checked (always UP). */
  check?: HealthCheck;
  servers: BackendServer[];
}

const MODES: readonly LbMode[] = ['http', 'tcp'];
const BALANCES: readonly Balance[] = ['roundrobin', 'leastconn', 'source'];
const checkCookie = matching(COOKIE_NAME, 'a cookie name of [A-Za-z0-9_-]');
const checkUrlPath = matching(URL_PATH, 'a URL path');
const STICK_SIZE = '10k';

export function frontendLines(f: Frontend, field: string): string[] {
  const mode = checkOneOf(f.mode, `${field}.mode`, MODES);
  const bind = hostPort(
    checkIp(f.bind?.address, `${field}.bind.address`),
    checkPort(f.bind?.port, `${field}.bind.port`),
  );
  const maxconn =
    f.maxconn === undefined
      ? []
      : [`maxconn ${checkCount(f.maxconn, `${field}.maxconn`, MAX_CONNECTION_LIMIT)}`];
  return [
    `frontend ${checkName(f.name, `${field}.name`)}`,
    ...[
      `mode ${mode}`,
      `bind ${bind}`,
      ...maxconn,
      ...(mode === 'http' ? ['option forwardfor'] : []),
      `default_backend ${checkName(f.defaultBackend, `${field}.defaultBackend`)}`,
    ].map((l) => `    ${l}`),
  ];
}

function persistenceLines(p: Persistence | undefined, mode: LbMode, field: string): string[] {
  if (p === undefined) return [];
  const type = checkOneOf(p.type, `${field}.type`, [
    'source',
    'insert-cookie',
    'app-cookie',
  ] as const);
  if (type === 'source') return [`stick-table type ipv6 size ${STICK_SIZE}`, 'stick on src'];
  if (mode !== 'http') bad(`${field}.type`, 'a cookie needs mode http', type);
  if (type === 'insert-cookie') return ['cookie SRV insert indirect nocache'];
  const name = checkCookie((p as { cookie?: unknown }).cookie, `${field}.cookie`);
  return [
    `stick-table type string len 64 size ${STICK_SIZE}`,
    `stick store-response res.cook(${name})`,
    `stick match req.cook(${name})`,
  ];
}

function expectLine(codes: unknown, field: string): string {
  if (!Array.isArray(codes) || codes.length === 0 || codes.length > 500)
    bad(field, 'must be a list of 1-500 HTTP codes', codes);
  const checked = new Set(codes.map((c, i) => checkCount(c, `${field}[${i}]`, 599, 100)));
  return `http-check expect rstatus ^(${codeAlternatives(checked).join('|')})$`;
}

/** Ascending codes, a full hundred as `2[0-9][0-9]`, a full ten as `20[0-9]` (a short line). */
function codeAlternatives(codes: Set<number>): string[] {
  const all = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => from + i).every((c) => codes.has(c));
  const out: string[] = [];
  for (let h = 100; h < 600; h += 100) {
    if (all(h, 100)) out.push(`${h / 100}[0-9][0-9]`);
    else
      for (let d = h; d < h + 100; d += 10) {
        if (all(d, 10)) out.push(`${d / 10}[0-9]`);
        else
          out.push(
            ...[...Array(10).keys()]
              .map((i) => d + i)
              .filter((c) => codes.has(c))
              .map(String),
          );
      }
  }
  return out;
}

function probeLines(p: CheckProbe, field: string): string[] {
  const type = checkOneOf(p?.type, `${field}.type`, ['tcp', 'http', 'ssl-hello'] as const);
  if (type === 'tcp') return [];
  if (type === 'ssl-hello') return ['option ssl-hello-chk'];
  const h = p as Extract<CheckProbe, { type: 'http' }>;
  const method = checkOneOf(h.method, `${field}.method`, HTTP_METHODS);
  return [
    `option httpchk ${method} ${checkUrlPath(h.path, `${field}.path`)}`,
    expectLine(h.expect, `${field}.expect`),
  ];
}

/** The check's backend lines and the suffix every server of it carries. */
function checkParts(
  c: HealthCheck | undefined,
  field: string,
): { lines: string[]; suffix: string } {
  if (c === undefined) return { lines: [], suffix: '' };
  const secs = (v: unknown, f: string) => checkCount(v, `${field}.${f}`, MAX_MONITOR_SECONDS);
  const times = (v: unknown, f: string) => checkCount(v, `${field}.${f}`, MAX_MONITOR_RETRIES);
  const lines = [
    ...probeLines(c.probe, `${field}.probe`),
    `timeout check ${secs(c.timeout, 'timeout')}s`,
  ];
  const suffix = ` check inter ${secs(c.interval, 'interval')}s fall ${times(c.fall, 'fall')} rise ${times(c.rise, 'rise')}`;
  return { lines, suffix };
}

function serverLine(s: BackendServer, suffix: string, cookie: boolean, field: string): string {
  const name = checkName(s.name, `${field}.name`);
  const address = hostPort(
    checkIp(s.address, `${field}.address`),
    checkPort(s.port, `${field}.port`),
  );
  const weight = checkCount(s.weight, `${field}.weight`, MAX_MEMBER_WEIGHT, 0);
  return `server ${name} ${address} weight ${weight}${suffix}${cookie ? ` cookie ${name}` : ''}`;
}

export function backendLines(b: Backend, field: string): string[] {
  const name = checkName(b.name, `${field}.name`);
  const mode = checkOneOf(b.mode, `${field}.mode`, MODES);
  const balance = checkOneOf(b.balance, `${field}.balance`, BALANCES);
  const persistence = persistenceLines(b.persistence, mode, `${field}.persistence`);
  const check = checkParts(b.check, `${field}.check`);
  if (!Array.isArray(b.servers)) bad(`${field}.servers`, 'must be a list', b.servers);
  const cookie = b.persistence?.type === 'insert-cookie';
  const servers = b.servers.map((s, i) =>
    serverLine(s, check.suffix, cookie, `${field}.servers[${i}]`),
  );
  return [
    `backend ${name}`,
    ...[`mode ${mode}`, `balance ${balance}`, ...persistence, ...check.lines, ...servers].map(
      (l) => `    ${l}`,
    ),
  ];
}
