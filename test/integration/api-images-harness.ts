/**
 * The Glance image tests' app: buildApp() on a real database engine and a real broker
 * vhost, called through inject with the admin, member or service token; Glance's error
 * shape checked on every refusal; and a JSON-schema check (the subset Glance's schema
 * documents use) for the contract tests.
 *
 * Invariant: each suite gets its own database, vhost and image directory, and removes
 * them after.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import type { Image } from '../../contracts/compute.ts';
import { type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost } from '../helpers/env.ts';

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

/** An app on `engine` for the suite this is called in; `ctx.db` and `ctx.call` after before(). */
export function imageApp(engine: 'sqlite' | 'postgres') {
  const dir = tempDir();
  const database = testDatabase(engine, dir.path);
  const ctx = { db: undefined as unknown as Db, app: undefined as unknown as FastifyInstance };
  let vhost: Vhost;
  let broker: Broker;
  before(async () => {
    ctx.db = openDb(database.url);
    await migrate(ctx.db);
    vhost = rabbitVhost();
    broker = createBroker({ url: vhost.url, log: silentLogger() });
    await broker.start();
    ctx.app = buildApp({
      db: ctx.db,
      broker,
      clock: { now: () => new Date('2026-11-22T10:00:00.000Z') },
      log: silentLogger(),
      settings: {
        adminToken: ADMIN,
        memberTokens: [MEMBER],
        serviceTokens: [SERVICE],
        agentDownTime: 30,
        bodyLimit: 1 << 20,
        images: { dir: join(dir.path, 'images'), sizeLimit: 1 << 20 },
      },
    });
  });
  after(async () => {
    await ctx.app.close();
    await broker.close();
    vhost.cleanup();
    await ctx.db.close();
    database.cleanup();
    dir.cleanup();
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

type JsonSchema = {
  type?: string | string[];
  enum?: unknown[];
  pattern?: string;
  maxLength?: number;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  required?: string[];
};

const typeOf = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v;

/** Problems of `value` against `schema` (type, enum, pattern, maxLength, keys, items). */
export function schemaProblems(value: unknown, schema: JsonSchema, at = '$'): string[] {
  const out: string[] = [];
  const types = [schema.type ?? []].flat();
  const t = typeOf(value);
  if (types.length && !types.includes(t) && !(t === 'integer' && types.includes('number')))
    return [`${at}: ${t} is not ${types.join('|')}`];
  if (schema.enum && !schema.enum.includes(value)) out.push(`${at}: ${value} not in enum`);
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) out.push(`${at}: pattern`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength)
      out.push(`${at}: longer than ${schema.maxLength}`);
  }
  if (Array.isArray(value) && schema.items)
    value.forEach((v, i) => {
      out.push(...schemaProblems(v, schema.items as JsonSchema, `${at}[${i}]`));
    });
  if (t !== 'object') return out;
  const obj = value as Record<string, unknown>;
  for (const key of schema.required ?? []) if (!(key in obj)) out.push(`${at}.${key}: missing`);
  for (const [key, v] of Object.entries(obj)) {
    const sub = schema.properties?.[key];
    const extra = schema.additionalProperties;
    if (sub) out.push(...schemaProblems(v, sub, `${at}.${key}`));
    else if (extra === false) out.push(`${at}.${key}: not in the schema`);
    else if (extra && typeof extra === 'object')
      out.push(...schemaProblems(v, extra, `${at}.${key}`));
  }
  return out;
}
