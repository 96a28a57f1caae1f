/**
 * The harness of the Nova policy, quota and flavor-access suites: one kumo-api (testApi)
 * on a real database of either engine and a real RabbitMQ vhost, accepting real signed
 * Keystone tokens (testTokens) for two projects' members, a reader and a project admin,
 * beside the static admin token; one public raw image uploaded once.
 *
 * Servers are created through POST /servers with no compute agent, so each lands in
 * ERROR ("No valid host") — a real row of its project that lists, shows, counts against
 * the quota and deletes as any other.
 *
 * Invariant: call it inside a describe; hooks are registered there.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

export const STATIC_ADMIN = 'nova-policy-admin-token';

export type Body = Record<string, unknown>;
export interface Res {
  status: number;
  body: Body;
  headers: Record<string, unknown>;
}

export function novaPolicyHarness(engine: 'sqlite' | 'postgres') {
  const tokens = testTokens();
  const ctx = testApi(engine, {
    settings: { adminToken: STATIC_ADMIN },
    tokens: tokens.authenticator,
  });
  const projects = { a: hexId(), b: hexId(), admin: hexId() };
  const who = {
    memberA: tokens.token({ project: projects.a }),
    memberB: tokens.token({ project: projects.b }),
    readerA: tokens.token({ project: projects.a, roles: ['reader'] }),
    admin: tokens.token({ project: projects.admin, roles: ['admin'] }),
  };
  const state = { image: '' };

  const call = async (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    token: string,
    payload?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Res> => {
    const res = await ctx.app.inject({
      method,
      url,
      headers: { 'x-auth-token': token, ...headers },
      ...(payload === undefined ? {} : { payload: payload as Body }),
    });
    const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
    return {
      status: res.statusCode,
      body: json && res.body ? (res.json() as Body) : {},
      headers: res.headers,
    };
  };

  before(async () => {
    const img = await call('POST', '/v2/images', STATIC_ADMIN, {
      name: 'img',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'public',
    });
    assert.equal(img.status, 201, JSON.stringify(img.body));
    state.image = String(img.body.id);
    const up = await ctx.app.inject({
      method: 'PUT',
      url: `/v2/images/${state.image}/file`,
      headers: { 'x-auth-token': STATIC_ADMIN, 'content-type': 'application/octet-stream' },
      payload: Buffer.alloc(1024, 7),
    });
    assert.equal(up.statusCode, 204, up.body);
  });
  after(() => tokens.cleanup());

  /** POST /servers as `token`; the response. */
  const boot = (token: string, extra: Body = {}) =>
    call('POST', '/servers', token, {
      server: { name: 'vm', flavorRef: '1', imageRef: state.image, networks: 'none', ...extra },
    });

  /** A server of `token`'s project; its id. */
  const server = async (token: string, extra: Body = {}) => {
    const r = await boot(token, extra);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return String((r.body.server as Body).id);
  };

  /** The ids GET /servers/detail lists for `token` (with `query`), sorted. */
  const listed = async (token: string, query = '') => {
    const r = await call('GET', `/servers/detail${query}`, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body.servers as Body[]).map((s) => String(s.id)).sort();
  };

  /** Every live instance row, as a snapshot for "nothing changed". */
  const snapshot = () =>
    ctx.db.query(
      `SELECT id, name, project_id, vm_state, task_state, locked_by, deleted_at, updated_at
         FROM instances ORDER BY id`,
    );

  return { ctx, call, boot, server, listed, snapshot, projects, who, tokens };
}

/** A refusal in Nova's shape `{"<kind>": {code, message}}`: its kind and message. */
export function novaError(r: Res, status: number): { kind: string; message: string } {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const [kind, inner] = Object.entries(r.body)[0] as [string, Body];
  assert.equal(inner.code, status);
  return { kind, message: String(inner.message) };
}
