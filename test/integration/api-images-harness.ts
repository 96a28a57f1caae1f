/**
 * The Glance image tests' app: buildApp() on a real database engine and a real broker
 * vhost, called through inject with the admin, member or service token; Glance's error
 * shape checked on every refusal (bodies against the schemas: test/contract/image.test.ts).
 *
 * Invariant: each suite gets its own database, vhost and image directory, and removes
 * them after.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import type { Authenticator } from '../../api/caller.ts';
import type { Image } from '../../contracts/compute.ts';
import { testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

export const ADMIN = 'admin-token-glance';
export const MEMBER = 'member-token-glance';
export const SERVICE = 'service-token-glance';
export const V21 = 'application/openstack-images-v2.1-json-patch';
export const V20 = 'application/openstack-images-v2.0-json-patch';

export type Body = Record<string, unknown>;
export interface Res {
  status: number;
  body: Body | null;
  headers: Record<string, unknown>;
  raw: Buffer;
}
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type Call = (
  method: Method,
  url: string,
  payload?: unknown,
  opts?: { token?: string; type?: string },
) => Promise<Res>;

/**
 * An app on `engine` for the suite this is called in; `ctx.db` and `ctx.call` after
 * before(). With `tokens`, signed project tokens (test/helpers/tokens.ts) work too.
 */
export function imageApp(engine: 'sqlite' | 'postgres', tokens?: Authenticator) {
  const ctx = testApi(engine, {
    settings: { adminToken: ADMIN, memberTokens: [MEMBER], serviceTokens: [SERVICE] },
    ...(tokens ? { tokens } : {}),
  });
  const call: Call = async (method, url, payload, opts = {}) => {
    const headers: Record<string, string> = { 'x-auth-token': opts.token ?? ADMIN };
    if (opts.type) headers['content-type'] = opts.type;
    const res = await ctx.app.inject({ method, url, payload: payload as string, headers });
    const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
    return {
      status: res.statusCode,
      body: json && res.body ? (res.json() as Body) : null,
      headers: res.headers,
      raw: res.rawPayload,
    };
  };
  return { ctx, call, ...imageHelpers(call) };
}

function imageHelpers(call: Call) {
  const create = async (body: Body = {}, token = ADMIN) => {
    const r = await call(
      'POST',
      '/v2/images',
      { name: 'img', disk_format: 'raw', container_format: 'bare', ...body },
      { token },
    );
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as unknown as Image;
  };
  const upload = async (id: string, size: number) => {
    const r = await call('PUT', `/v2/images/${id}/file`, Buffer.alloc(size, 7), {
      type: 'application/octet-stream',
    });
    assert.equal(r.status, 204, JSON.stringify(r.body));
  };
  const show = async (id: string) => (await call('GET', `/v2/images/${id}`)).body as Image;
  return { create, upload, show };
}

/** A refusal in Glance's shape with `status`; its message. */
export function glanceError(r: Res, status: number): string {
  assert.equal(r.status, status, r.raw.toString());
  const body = r.body as { message: string; code: string; title: string; request_id: string };
  assert.deepEqual(Object.keys(body ?? {}).sort(), ['code', 'message', 'request_id', 'title']);
  assert.equal(body.code, `${status} ${body.title}`);
  assert.equal(body.request_id, r.headers['x-openstack-request-id']);
  return body.message;
}

/**
 * The projects of the policy suites, each with a signed token: an admin (its own project),
 * members of projects A, B and C, and a reader of A.
 */
export function policyActors() {
  const t = testTokens();
  after(() => t.cleanup());
  const project = { admin: hexId(), a: hexId(), b: hexId(), c: hexId() };
  const token = {
    admin: t.token({ project: project.admin, roles: ['admin'] }),
    a: t.token({ project: project.a }),
    b: t.token({ project: project.b }),
    c: t.token({ project: project.c }),
    reader: t.token({ project: project.a, roles: ['reader'] }),
  };
  return { authenticator: t.authenticator, project, token };
}

/** Everything an admin sees of the images and their members: a refusal must not change it. */
export async function imageSnapshot(call: Call, token: string) {
  const all = '/v2/images?visibility=all&member_status=all&limit=1000';
  const listed = (await call('GET', all, undefined, { token })).body as { images: Image[] };
  const members: Record<string, unknown> = {};
  for (const i of listed.images)
    if (i.visibility === 'shared')
      members[i.id] = (await call('GET', `/v2/images/${i.id}/members`, undefined, { token })).body;
  const files: Record<string, number> = {};
  for (const i of listed.images)
    if (i.status === 'active')
      files[i.id] = (await call('GET', `/v2/images/${i.id}/file`, undefined, { token })).raw.length;
  return { images: listed.images, members, files };
}
