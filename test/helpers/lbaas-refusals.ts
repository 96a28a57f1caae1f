/**
 * The config-injection attempts the issue names, as requests against one pool: a name or
 * description with a newline (pool, VIP, member-less monitor creation), a `url_path` with a
 * space or a newline, an `expected_codes` outside `200`, `200-204`, `200,202`. Each must be
 * a 400 naming `field`, and change nothing (the caller snapshots the API and haproxy.cfg).
 *
 * Invariant: every case carries a value that would break or extend haproxy.cfg if it were
 * written there verbatim, and only that one bad value, so a 400 is about that field.
 */

export interface InjectionCase {
  why: string;
  method: string;
  path: string;
  body: unknown;
  /** The field the 400's message must name. */
  field: string;
}

interface Ids {
  poolId: string;
  vipId: string;
  hmId: string;
  subnetId: string;
}

const monitorBody = (extra: Record<string, unknown>) => ({
  health_monitor: { type: 'HTTP', delay: 3, timeout: 3, max_retries: 3, ...extra },
});

const BAD_CODES = ['200-', '2OO', '200;202', '200,,202', '200 202', '200\n', '99', '200-204,206'];

export function injectionCases({ poolId, vipId, hmId, subnetId }: Ids): InjectionCase[] {
  const pool = `/v2.0/lb/pools/${poolId}`;
  const vip = `/v2.0/lb/vips/${vipId}`;
  const hm = `/v2.0/lb/health_monitors/${hmId}`;
  const newPool = { lb_method: 'ROUND_ROBIN', protocol: 'HTTP', subnet_id: subnetId };
  return [
    {
      why: 'a new pool named with a newline',
      ...{ method: 'POST', path: '/v2.0/lb/pools', field: 'name' },
      body: { pool: { ...newPool, name: 'p\n    bind :81' } },
    },
    {
      why: 'pool name',
      method: 'PUT',
      path: pool,
      field: 'name',
      body: { pool: { name: 'a\nb' } },
    },
    {
      why: 'pool description',
      ...{ method: 'PUT', path: pool, field: 'description' },
      body: { pool: { description: 'x\n    mode tcp' } },
    },
    { why: 'VIP name', method: 'PUT', path: vip, field: 'name', body: { vip: { name: 'v\r\nx' } } },
    {
      why: 'VIP description',
      ...{ method: 'PUT', path: vip, field: 'description' },
      body: { vip: { description: 'd\n' } },
    },
    ...['/a b', '/a\nb', '/ok\n    http-request deny'].map((url_path) => ({
      why: `url_path ${JSON.stringify(url_path)}`,
      ...{ method: 'PUT', path: hm, field: 'url_path' },
      body: { health_monitor: { url_path } },
    })),
    {
      why: 'a new monitor with url_path "/ x"',
      ...{ method: 'POST', path: '/v2.0/lb/health_monitors', field: 'url_path' },
      body: monitorBody({ url_path: '/ x' }),
    },
    ...BAD_CODES.map((expected_codes) => ({
      why: `expected_codes ${JSON.stringify(expected_codes)}`,
      ...{ method: 'PUT', path: hm, field: 'expected_codes' },
      body: { health_monitor: { expected_codes } },
    })),
  ];
}
