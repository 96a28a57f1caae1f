/**
 * host/haproxy's load balancer rendering, pure: a full LB config (stats socket, an http and
 * a tcp IPv6 frontend, backends with round robin / leastconn / source balance, each
 * persistence, each check kind, weights) against a golden haproxy.cfg; every string-ish field
 * carrying a newline, space, quote or `#` (and bad enumerations, numbers, references) is
 * refused with a ValidationError naming that field, and nothing is rendered; reloadCommand
 * passes the stats socket as `-x`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ValidationError } from '../../contracts/schema.ts';
import { type HaproxyConfig, type HealthCheck, renderConfig } from '../../host/haproxy/config.ts';
import { reloadCommand } from '../../host/haproxy/daemon.ts';

const CHECK = { interval: 5, timeout: 2, fall: 3, rise: 2 };
const HTTP_CHECK: HealthCheck = {
  ...CHECK,
  probe: { type: 'http', method: 'HEAD', path: '/health?full=1', expect: [200, 202, 200] },
};

const full = (): HaproxyConfig => ({
  maxconn: 4000,
  timeouts: { connect: 5, client: 50, server: 50, httpRequest: 10 },
  stats: { socket: '/var/lib/kumo/lbaas/p1/haproxy.sock' },
  runAs: { user: 'nobody', group: 'nogroup' },
  hardStopAfter: 60,
  frontends: [
    {
      name: 'v1',
      mode: 'http',
      bind: { address: '10.0.0.10', port: 80 },
      maxconn: 100,
      defaultBackend: 'p1',
    },
    { name: 'v2', mode: 'tcp', bind: { address: 'fd00::10', port: 443 }, defaultBackend: 'p2' },
    { name: 'v3', mode: 'http', bind: { address: '10.0.0.11', port: 8080 }, defaultBackend: 'p3' },
    { name: 'v4', mode: 'tcp', bind: { address: '10.0.0.12', port: 22 }, defaultBackend: 'p4' },
  ],
  backends: [
    {
      name: 'p1',
      mode: 'http',
      balance: 'roundrobin',
      persistence: { type: 'app-cookie', cookie: 'JSESSIONID' },
      check: HTTP_CHECK,
      servers: [
        { name: 'm1', address: '10.0.1.1', port: 8080, weight: 1 },
        { name: 'm2', address: '10.0.1.2', port: 8080, weight: 1 },
      ],
    },
    {
      name: 'p2',
      mode: 'tcp',
      balance: 'source',
      persistence: { type: 'source' },
      check: { ...CHECK, probe: { type: 'ssl-hello' } },
      servers: [{ name: 'm3', address: 'fd00::21', port: 443, weight: 0 }],
    },
    {
      name: 'p3',
      mode: 'http',
      balance: 'leastconn',
      persistence: { type: 'insert-cookie' },
      servers: [
        { name: 'm4', address: '10.0.1.4', port: 80, weight: 10 },
        { name: 'm5', address: '10.0.1.5', port: 80, weight: 256 },
      ],
    },
    {
      name: 'p4',
      mode: 'tcp',
      balance: 'roundrobin',
      check: { ...CHECK, probe: { type: 'tcp' } },
      servers: [],
    },
  ],
});

const GOLDEN = `global
    maxconn 4000
    user nobody
    group nogroup
    hard-stop-after 60s
    stats socket /var/lib/kumo/lbaas/p1/haproxy.sock mode 600 level admin expose-fd listeners

defaults
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 50s
    timeout server 50s
    timeout http-request 10s

frontend v1
    mode http
    bind 10.0.0.10:80
    maxconn 100
    option forwardfor
    default_backend p1

frontend v2
    mode tcp
    bind [fd00::10]:443
    default_backend p2

frontend v3
    mode http
    bind 10.0.0.11:8080
    option forwardfor
    default_backend p3

frontend v4
    mode tcp
    bind 10.0.0.12:22
    default_backend p4

backend p1
    mode http
    balance roundrobin
    stick-table type string len 64 size 10k
    stick store-response res.cook(JSESSIONID)
    stick match req.cook(JSESSIONID)
    option httpchk HEAD /health?full=1
    http-check expect rstatus ^(200|202)$
    timeout check 2s
    server m1 10.0.1.1:8080 weight 1 check inter 5s fall 3 rise 2
    server m2 10.0.1.2:8080 weight 1 check inter 5s fall 3 rise 2

backend p2
    mode tcp
    balance source
    stick-table type ipv6 size 10k
    stick on src
    option ssl-hello-chk
    timeout check 2s
    server m3 [fd00::21]:443 weight 0 check inter 5s fall 3 rise 2

backend p3
    mode http
    balance leastconn
    cookie SRV insert indirect nocache
    server m4 10.0.1.4:80 weight 10 cookie m4
    server m5 10.0.1.5:80 weight 256 cookie m5

backend p4
    mode tcp
    balance roundrobin
    timeout check 2s
`;

/** A copy of the full config with one field (by path) replaced. */
function withField(path: (string | number)[], value: unknown): HaproxyConfig {
  const c = structuredClone(full()) as unknown as Record<string | number, unknown>;
  let at = c;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  at[path.at(-1) as string | number] = value;
  return c as unknown as HaproxyConfig;
}

const fieldOf = (path: (string | number)[]) =>
  path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');

function refused(path: (string | number)[], value: unknown, field = fieldOf(path)) {
  let out: string | undefined;
  assert.throws(
    () => {
      out = renderConfig(withField(path, value));
    },
    (e: unknown) => e instanceof ValidationError && e.field === field,
    `${field} = ${JSON.stringify(value)}`,
  );
  assert.equal(out, undefined);
}

const STRING_FIELDS: (string | number)[][] = [
  ['stats', 'socket'],
  ['runAs', 'user'],
  ['runAs', 'group'],
  ['frontends', 0, 'name'],
  ['frontends', 0, 'mode'],
  ['frontends', 0, 'bind', 'address'],
  ['frontends', 1, 'defaultBackend'],
  ['backends', 0, 'name'],
  ['backends', 0, 'mode'],
  ['backends', 0, 'balance'],
  ['backends', 0, 'persistence', 'type'],
  ['backends', 0, 'persistence', 'cookie'],
  ['backends', 0, 'check', 'probe', 'type'],
  ['backends', 0, 'check', 'probe', 'method'],
  ['backends', 0, 'check', 'probe', 'path'],
  ['backends', 0, 'servers', 1, 'name'],
  ['backends', 0, 'servers', 1, 'address'],
  ['backends', 2, 'persistence', 'type'],
];

describe('haproxy load balancer config', () => {
  test('a full config renders the golden file', () => {
    assert.equal(renderConfig(full()), GOLDEN);
  });

  test('a newline, space, quote or # in any string-ish field is refused, naming it', () => {
    for (const path of STRING_FIELDS)
      for (const evil of ['p1\nbind 0.0.0.0:1', 'p1 x', 'p1"', "p1'", 'p1#x', '/x/y\n', ''])
        refused(path, evil);
  });

  test('bad numbers, addresses and codes are refused, naming the field', () => {
    refused(['frontends', 0, 'bind', 'port'], 0);
    refused(['frontends', 0, 'bind', 'address'], '010.0.0.10');
    refused(['frontends', 0, 'maxconn'], 0);
    refused(['frontends', 0, 'maxconn'], '100');
    refused(['backends', 0, 'servers', 0, 'weight'], 257);
    refused(['backends', 0, 'servers', 0, 'weight'], 1.5);
    refused(['backends', 0, 'servers', 0, 'port'], 65536);
    refused(['backends', 0, 'check', 'interval'], 0);
    refused(['backends', 0, 'check', 'timeout'], 86_401);
    refused(['backends', 0, 'check', 'fall'], 11);
    refused(['backends', 0, 'check', 'rise'], -1);
    refused(['backends', 0, 'check', 'probe', 'expect'], []);
    refused(['backends', 0, 'check', 'probe', 'expect'], '200');
    refused(['backends', 0, 'check', 'probe', 'expect', 1], 600);
    refused(['backends', 0, 'check', 'probe', 'expect', 1], '200|.*');
    refused(['backends', 0, 'check', 'probe', 'method'], 'get');
    refused(['backends', 0, 'check', 'probe', 'path'], 'health');
    refused(['runAs', 'user'], 'Nobody');
    refused(['runAs', 'group'], '0');
    refused(['hardStopAfter'], 0);
    refused(['hardStopAfter'], '60');
  });

  test('expected codes: ascending, a full ten or hundred as a character class', () => {
    const expectOf = (expect: number[]) =>
      renderConfig(withField(['backends', 0, 'check', 'probe', 'expect'], expect))
        .split('\n')
        .find((l) => l.includes('http-check expect'));
    assert.equal(expectOf([204, 200]), '    http-check expect rstatus ^(200|204)$');
    const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
    assert.equal(
      expectOf([...range(200, 299), ...range(300, 309), 404]),
      '    http-check expect rstatus ^(2[0-9][0-9]|30[0-9]|404)$',
    );
    assert.equal(
      expectOf(range(100, 599)),
      '    http-check expect rstatus ^(1[0-9][0-9]|2[0-9][0-9]|3[0-9][0-9]|4[0-9][0-9]|5[0-9][0-9])$',
    );
  });

  test('a frontend must name a backend of the config; cookies need http mode', () => {
    refused(['frontends', 1, 'defaultBackend'], 'p9');
    refused(
      ['backends', 1, 'persistence'],
      { type: 'insert-cookie' },
      'backends[1].persistence.type',
    );
    refused(
      ['backends', 1, 'persistence'],
      { type: 'app-cookie', cookie: 'A' },
      'backends[1].persistence.type',
    );
  });

  test('a reload with a stats socket takes the listeners over it (-x) before -sf', () => {
    const p = {
      config: '/v/p1/haproxy.cfg',
      pidfile: '/v/p1/haproxy.pid',
      socket: '/v/p1/haproxy.sock',
    };
    assert.deepEqual(reloadCommand(p, 1234, 'qlbaas-p1'), {
      argv: ['haproxy', '-f', p.config, '-p', p.pidfile, '-D', '-x', p.socket, '-sf', '1234'],
      netns: 'qlbaas-p1',
    });
    assert.throws(() => reloadCommand({ ...p, socket: '/v/p 1' }, 1234), ValidationError);
  });
});
