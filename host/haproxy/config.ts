/**
 * haproxy.cfg in haproxy's own vocabulary: a `global` section (with an optional admin stats
 * socket), `defaults`, `listen` sections (a bind, `http-request` header rules, servers on TCP
 * or a unix socket), and the load balancer's `frontend`/`backend` sections (lb-sections.ts).
 * The metadata proxy uses one `listen`; an LBaaS pool a frontend and a backend.
 *
 * Invariant: every value is checked against a strict pattern before it becomes a token
 * (names, header names, header values, IPs in canonical form, ports, absolute paths of
 * [A-Za-z0-9_./-] only); a bad one throws a ValidationError naming its field and nothing is
 * rendered, so no newline, space, quote or `#` from outside can reach the file (`%` only
 * inside a health check's URL path, where haproxy reads it literally). The
 * one fetch a header may take is `%[src]` (the client's source address), written by us.
 * `user`/`group` are account names of [a-z0-9_-] only. No `log` line is rendered: haproxy logs nowhere (the relay behind it logs). Connections
 * to the servers are kept alive and shared between clients (`http-reuse always`): the
 * header rules run on every request, so a reused connection carries each request's own
 * headers; bench/metadata measured 0.40 → 0.44 of the direct rate from this alone. Pure.
 */
import {
  bad,
  checkAccount,
  checkCount,
  checkHeaderName,
  checkIp,
  checkLiteral,
  checkName,
  checkPath,
  checkPort,
  hostPort,
} from './checks.ts';
import { type Backend, backendLines, type Frontend, frontendLines } from './lb-sections.ts';

export { checkHeaderName, checkIp, checkName, checkPath, checkPort } from './checks.ts';
export type * from './lb-sections.ts';

/** A header's value: a checked literal, or the connection's source address. */
export type HeaderValue = { literal: string } | { fetch: 'src' };

export type HttpRequestRule =
  | {
      action: 'del-header';
      name: string /** Every header whose name begins so. */;
      prefix?: boolean;
    }
  | { action: 'set-header'; name: string; value: HeaderValue };

export type ServerAddress = { unix: string } | { ip: string; port: number };

export interface Listen {
  name: string;
  mode: 'http' | 'tcp';
  bind: { address: string; port: number };
  httpRequest: HttpRequestRule[];
  servers: { name: string; address: ServerAddress }[];
}

/** The largest global maxconn rendered. */
export const MAX_MAXCONN = 100_000;

export interface HaproxyConfig {
  maxconn: number;
  /** Seconds. */
  timeouts: { connect: number; client: number; server: number; httpRequest: number };
  /**
   * The admin socket (`stats socket … mode 600 level admin expose-fd listeners`): stats.ts
   * reads it, and a reload (`-x`) takes the listening sockets over it.
   */
  stats?: { socket: string };
  /**
   * `user` and `group` in global: haproxy binds, opens the stats socket (root's, 0600) and
   * writes its pid file as root, then serves as these (absent: it stays root).
   */
  runAs?: { user: string; group: string };
  /** Seconds an old process may keep finishing its connections after a reload (`hard-stop-after`). */
  hardStopAfter?: number;
  listens?: Listen[];
  frontends?: Frontend[];
  backends?: Backend[];
}

function ruleLine(rule: HttpRequestRule, field: string): string {
  const name = checkHeaderName(rule.name, `${field}.name`);
  if (rule.action === 'del-header')
    return `http-request del-header ${name}${rule.prefix === true ? ' -m beg' : ''}`;
  if (rule.action !== 'set-header')
    bad(`${field}.action`, 'must be del-header or set-header', rule);
  const v = rule.value;
  const value =
    'fetch' in v && v.fetch === 'src'
      ? '%[src]'
      : checkLiteral((v as { literal?: unknown }).literal, `${field}.value`);
  return `http-request set-header ${name} ${value}`;
}

function serverLine(s: Listen['servers'][number], field: string): string {
  const name = checkName(s.name, `${field}.name`);
  const a = s.address;
  const address =
    'unix' in a
      ? `unix@${checkPath(a.unix, `${field}.address.unix`)}`
      : hostPort(checkIp(a.ip, `${field}.address.ip`), checkPort(a.port, `${field}.address.port`));
  return `server ${name} ${address}`;
}

function listenLines(l: Listen, field: string): string[] {
  if (l.mode !== 'http' && l.mode !== 'tcp') bad(`${field}.mode`, 'must be http or tcp', l.mode);
  if (l.mode === 'tcp' && l.httpRequest.length)
    bad(`${field}.httpRequest`, 'needs mode http', l.httpRequest);
  const bind = hostPort(
    checkIp(l.bind.address, `${field}.bind.address`),
    checkPort(l.bind.port, `${field}.bind.port`),
  );
  return [
    `listen ${checkName(l.name, `${field}.name`)}`,
    `    mode ${l.mode}`,
    `    bind ${bind}`,
    ...l.httpRequest.map((r, i) => `    ${ruleLine(r, `${field}.httpRequest[${i}]`)}`),
    ...l.servers.map((s, i) => `    ${serverLine(s, `${field}.servers[${i}]`)}`),
  ];
}

function globalLines(c: HaproxyConfig): string[] {
  const socket =
    c.stats === undefined
      ? []
      : [
          `    stats socket ${checkPath(c.stats.socket, 'stats.socket')} mode 600 level admin expose-fd listeners`,
        ];
  const runAs =
    c.runAs === undefined
      ? []
      : [
          `    user ${checkAccount(c.runAs.user, 'runAs.user')}`,
          `    group ${checkAccount(c.runAs.group, 'runAs.group')}`,
        ];
  const hardStop =
    c.hardStopAfter === undefined
      ? []
      : [`    hard-stop-after ${checkCount(c.hardStopAfter, 'hardStopAfter', 86_400)}s`];
  return [
    'global',
    `    maxconn ${checkCount(c.maxconn, 'maxconn', MAX_MAXCONN)}`,
    ...runAs,
    ...hardStop,
    ...socket,
  ];
}

/** Every frontend's default_backend names a backend of this file. */
function checkBackendRefs(c: HaproxyConfig): void {
  const names = new Set((c.backends ?? []).map((b) => b.name));
  (c.frontends ?? []).forEach((f, i) => {
    if (!names.has(f.defaultBackend))
      bad(`frontends[${i}].defaultBackend`, 'must name a backend of the config', f.defaultBackend);
  });
}

/** The whole file; throws ValidationError (naming the field) before rendering anything. */
export function renderConfig(c: HaproxyConfig): string {
  const t = c.timeouts;
  const secs = (v: number, f: string) => `${checkCount(v, `timeouts.${f}`, 3600)}s`;
  const section = <T>(items: T[] | undefined, key: string, render: (x: T, f: string) => string[]) =>
    (items ?? []).flatMap((x, i) => ['', ...render(x, `${key}[${i}]`)]);
  const lines = [
    ...globalLines(c),
    '',
    'defaults',
    '    option http-keep-alive',
    '    http-reuse always',
    `    timeout connect ${secs(t.connect, 'connect')}`,
    `    timeout client ${secs(t.client, 'client')}`,
    `    timeout server ${secs(t.server, 'server')}`,
    `    timeout http-request ${secs(t.httpRequest, 'httpRequest')}`,
    ...section(c.listens, 'listens', listenLines),
    ...section(c.frontends, 'frontends', frontendLines),
    ...section(c.backends, 'backends', backendLines),
  ];
  checkBackendRefs(c);
  return `${lines.join('\n')}\n`;
}
