/**
 * The HAProxy configuration in front of kumo-api replicas: one frontend for the service
 * API and one for identity (Keystone v3), each balanced round robin over every replica,
 * with HTTP health checks. etc/haproxy-kumo-api.cfg is `renderApiHaproxy(SAMPLE)` and the
 * fullstack test runs what the same function renders, so the sample operators copy is the
 * configuration the tests prove (test/fullstack/api-replicas.test.ts checks they match).
 *
 * Invariant: a request is retried on another replica only when its connection failed
 * before the request was sent (`retry-on conn-failure`), never after a replica may have
 * received it: a POST retried after the replica that took it died could create the
 * resource twice. Such a request gets HAProxy's 502/504 instead, which the client sees.
 */

export interface ApiReplicaAddress {
  name: string;
  host: string;
  servicePort: number;
  identityPort: number;
}

export interface ApiHaproxyShape {
  /** `address:port` of the service API's and identity's frontends. */
  serviceBind: string;
  identityBind: string;
  replicas: readonly ApiReplicaAddress[];
  /** Health checks: ms between checks, failures to mark a replica down, successes to mark it up. */
  check: { interMs: number; fall: number; rise: number };
  /** HAProxy's admin socket (`show stat`, disable/enable server for maintenance). */
  statsSocket: string;
  /** Lines of `global` for a system install (user, log); none in the tests. */
  globalExtra?: readonly string[];
}

/** The operator's sample: three controllers, production check timing. */
export const SAMPLE: ApiHaproxyShape = {
  serviceBind: '0.0.0.0:9696',
  identityBind: '0.0.0.0:5000',
  replicas: ['192.0.2.11', '192.0.2.12', '192.0.2.13'].map((host, i) => ({
    name: `controller${i + 1}`,
    host,
    servicePort: 9696,
    identityPort: 5000,
  })),
  check: { interMs: 2000, fall: 3, rise: 2 },
  statsSocket: '/run/haproxy/kumo-api.sock',
  globalExtra: ['log /dev/log local0', 'user haproxy', 'group haproxy'],
};

const HEADER = [
  '# HAProxy in front of kumo-api replicas (Debian haproxy 2.6).',
  '# Every replica runs kumo-api with the same [database] connection (PostgreSQL),',
  '# transport_url, [api] admin_token, [api] image_dir and [identity] key_repository',
  '# (one directory all replicas share), and [api] / [identity] public_endpoint set to',
  '# the addresses below, so the links and the token catalog point through HAProxy.',
  '# Rendered by test/helpers/api-haproxy.ts renderApiHaproxy(SAMPLE): the fullstack',
  '# test test/fullstack/api-replicas.test.ts runs this shape and checks this file matches.',
];

function globalAndDefaults(s: ApiHaproxyShape): string[] {
  return [
    'global',
    ...(s.globalExtra ?? []).map((l) => `    ${l}`),
    '    maxconn 4096',
    '    # show stat / disable server: take a replica out before upgrading it.',
    `    stats socket ${s.statsSocket} mode 600 level admin`,
    '',
    'defaults',
    '    mode http',
    '    log global',
    '    option httplog',
    '    option forwardfor',
    '    # A replica that does not accept a connection within 2 s counts as a failed',
    '    # connection, which the retry below may send elsewhere.',
    '    timeout connect 2s',
    '    # Requests are small JSON bodies; image uploads and downloads are the long ones.',
    '    timeout http-request 10s',
    '    timeout client 120s',
    '    timeout server 120s',
    '    timeout queue 10s',
    '    timeout http-keep-alive 10s',
    '    timeout check 2s',
    '    # Retry only when the connection to a replica failed, so the request never',
    '    # reached it, and then on another replica (redispatch). Never retry on a',
    '    # response error or a timeout: a POST that reached a replica which then died',
    '    # may have been committed, and a retry would create the resource twice. The',
    '    # client gets 502/504 and decides (list by name, then create again).',
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure',
    '',
  ];
}

interface Balanced {
  name: string;
  bind: string;
  port: 'servicePort' | 'identityPort';
  /** The health check's path and why it proves the listener serves. */
  check: { path: string; why: string };
}

/** One frontend and its backend: round robin over every replica, HTTP health checks. */
function balanced(s: ApiHaproxyShape, { name, bind, port, check }: Balanced) {
  const { interMs, fall, rise } = s.check;
  return [
    `frontend ${name}`,
    `    bind ${bind}`,
    `    default_backend ${name}`,
    '',
    `backend ${name}`,
    '    balance roundrobin',
    `    # ${check.why}`,
    `    option httpchk GET ${check.path}`,
    '    http-check expect status 200',
    `    # Down after ${fall} failed checks ${interMs} ms apart, up again after ${rise}.`,
    `    default-server inter ${interMs} fall ${fall} rise ${rise}`,
    ...s.replicas.map((r) => `    server ${r.name} ${r.host}:${r[port]} check`),
    '',
  ];
}

export function renderApiHaproxy(s: ApiHaproxyShape): string {
  return [
    ...HEADER,
    '',
    ...globalAndDefaults(s),
    ...balanced(s, {
      name: 'kumo-api',
      bind: s.serviceBind,
      port: 'servicePort',
      check: { path: '/', why: 'GET / (the versions document) answers 200 without a token.' },
    }),
    ...balanced(s, {
      name: 'kumo-identity',
      bind: s.identityBind,
      port: 'identityPort',
      check: { path: '/v3', why: 'GET /v3 answers 200 without a token (GET / is a 300).' },
    }),
  ].join('\n');
}
