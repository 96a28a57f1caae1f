/**
 * Issue 10, the API's HTTP layer, through buildApp() on both database engines: `inject`
 * for what fastify routes, and raw bytes over a loopback socket for what Node's HTTP
 * parser refuses before fastify sees a request.
 *
 * Invariant under test: every error leaves in the catalogue's shape of the path's family
 * (NeutronError; Nova's `{"<kind>": {code, message}}`; Glance's webob body), with
 * Neutron's/Glance's status; links come from the configured endpoint; only the version
 * documents answer without a token.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { buildApp } from '../../api/app.ts';
import { openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { publicEndpoint } from '../../api/main.ts';
import { createBroker } from '../../core/amqp.ts';
import { ConfigError, compileConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost } from '../helpers/env.ts';
import { testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-xyz';
const ENDPOINT = 'http://api.example:9696';

type Body = Record<string, unknown>;
interface Res {
  status: number;
  body: Body;
  headers: Record<string, unknown>;
}

/** Neutron's error, without the request id (checked against the response header). */
const neutron = (r: Res) => {
  const inner = (
    r.body as { NeutronError?: { type: string; message: string; request_id?: string } }
  ).NeutronError;
  if (!inner) return inner;
  const { request_id, ...rest } = inner;
  assert.match(request_id ?? '', /^req-[0-9a-f-]{36}$/);
  if (r.headers) assert.equal(request_id, r.headers['x-openstack-request-id']);
  return rest;
};

/** Glance's (webob's) error body: its message. */
const glance = (r: Res) => {
  const b = r.body as { message?: string; code?: string; title?: string };
  assert.equal(
    b.code?.split(' ')[0],
    String(r.status),
    `a Glance error: ${JSON.stringify(r.body)}`,
  );
  return b.message ?? '';
};

const nova = (r: Res, key: string) => {
  const inner = (r.body as Record<string, { code: number; message: string }>)[key];
  assert.ok(inner, `expected a ${key} error, got ${JSON.stringify(r.body)}`);
  assert.equal(inner.code, r.status);
  return inner.message;
};

/** Writes `request` on a fresh connection and reads until the server closes it. */
function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(5000, () => socket.destroy(new Error('no close within 5 s')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.write(request);
  });
}

/** The first response of a raw exchange: status and JSON body. */
function firstResponse(text: string): { status: number; body: Body } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  const head = text.indexOf('\r\n\r\n');
  const length = Number(/\r\ncontent-length: (\d+)/i.exec(text.slice(0, head))?.[1]);
  return { status, body: JSON.parse(text.slice(head + 4, head + 4 + length)) as Body };
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`api HTTP hardening on ${engine}`, () => {
    const api = testApi(engine, {
      settings: { adminToken: ADMIN, publicEndpoint: ENDPOINT },
      listen: true,
    });

    const call = async (
      method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
      url: string,
      payload?: unknown,
      headers: Record<string, string> = {},
    ): Promise<Res> => {
      const res = await api.app.inject({
        method,
        url,
        payload: payload as string,
        headers: { 'x-auth-token': ADMIN, ...headers },
      });
      return { status: res.statusCode, body: res.body ? res.json() : {}, headers: res.headers };
    };
    const network = async (name: string) =>
      ((await call('POST', '/v2.0/networks', { network: { name } })).body.network as Body)
        .id as string;

    test('6: sort_key must be a sortable attribute, sort_dir asc/desc, paired', async () => {
      for (const name of ['s1', 's2']) await network(name);
      const cases: [string, string][] = [
        ['sort_key=nonexistent&sort_dir=asc', "['nonexistent'] is invalid attribute for sort_keys"],
        [
          'sort_key=name&sort_dir=up',
          "['up'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'",
        ],
        ['sort_key=name', 'The number of sort_keys and sort_dirs must be same'],
      ];
      for (const [query, message] of cases) {
        const r = await call('GET', `/v2.0/networks?${query}`);
        assert.equal(r.status, 400, query);
        assert.deepEqual(neutron(r), { type: 'HTTPBadRequest', message, detail: '' });
      }
      const sorted = await call('GET', '/v2.0/networks?sort_key=name&sort_dir=desc');
      assert.deepEqual(
        (sorted.body.networks as { name: string }[]).map((n) => n.name),
        ['s2', 's1'],
      );
    });

    test('7: image data in any type but application/octet-stream is a 415', async () => {
      const created = await call('POST', '/v2/images', {
        name: 'i',
        disk_format: 'raw',
        container_format: 'bare',
      });
      const id = created.body.id as string;
      for (const type of ['application/json', 'text/plain', 'application/x-anything']) {
        const r = await call('PUT', `/v2/images/${id}/file`, '{"a": 1}', { 'content-type': type });
        assert.equal(r.status, 415, type);
        assert.match(glance(r), new RegExp(`Invalid content type ${type}`));
      }
      const ok = await call('PUT', `/images/${id}/file`, 'data', {
        'content-type': 'application/octet-stream',
      });
      assert.equal(ok.status, 204, 'the refused uploads left the image queued');
    });

    test('8: a known path with another method is a 405 with Allow, in its family', async () => {
      const id = await network('m');
      const patch = await call('PATCH', `/v2.0/networks/${id}`, {});
      assert.equal(patch.status, 405);
      assert.equal(patch.headers.allow, 'DELETE, GET, HEAD, PUT');
      assert.equal(neutron(patch)?.type, 'MethodNotAllowed');
      assert.match(neutron(patch)?.message ?? '', /Method PATCH is not allowed/);
      const del = await call('DELETE', '/v2.0/networks');
      assert.equal(del.status, 405);
      assert.equal(del.headers.allow, 'GET, HEAD, POST');
      const flavors = await call('DELETE', '/v2.1/flavors');
      assert.equal(flavors.status, 405);
      assert.match(nova(flavors, 'badMethod'), /DELETE/);
      const image = await call('POST', `/v2/images/${crypto.randomUUID()}`, {});
      assert.equal(image.status, 405);
      assert.equal(image.headers.allow, 'DELETE, GET, HEAD, PATCH');
      const unknown = await call('GET', '/v2.1/nothing-here');
      assert.equal(unknown.status, 404);
      assert.match(nova(unknown, 'itemNotFound'), /GET \/v2\.1\/nothing-here/);
      assert.equal(neutron(await call('GET', '/v2.0/nothing'))?.type, 'NotFound');
    });

    test("9: Node's parser errors answer in the catalogue's shape and close", async () => {
      const long = await rawHttp(
        api.port,
        `GET /v2.0/networks/${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      );
      const tooLong = firstResponse(long);
      assert.equal(tooLong.status, 431);
      assert.equal(neutron(tooLong as Res)?.type, 'RequestHeaderFieldsTooLarge');
      const novaLong = firstResponse(
        await rawHttp(
          api.port,
          `GET /v2.1/servers/${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
        ),
      );
      assert.equal(nova(novaLong as Res, 'computeFault').length > 0, true);

      const head = `POST /v2.0/networks HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${ADMIN}\r\nContent-Type: application/json\r\n`;
      for (const request of [
        `${head}Content-Length: 2\r\n\r\n{}not-a-request\r\n\r\n`,
        `${head}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      ]) {
        const text = await rawHttp(api.port, request);
        const first = firstResponse(text);
        assert.equal(first.status, 400, text);
        assert.equal(neutron(first as Res)?.type, 'BadRequest', text);
        assert.doesNotMatch(text, /"statusCode"|Client Error/);
      }
    });

    test('9: __proto__ and constructor keys are refused by name, in the family shape', async () => {
      const proto = await call(
        'POST',
        '/v2.0/networks',
        '{"network": {"name": "p", "__proto__": {"admin_state_up": false}}}',
        { 'content-type': 'application/json' },
      );
      assert.equal(proto.status, 400);
      assert.equal(
        neutron(proto)?.message,
        'Invalid input: network.__proto__: is not a recognised attribute',
      );
      const ctor = await call(
        'POST',
        '/v2.1/flavors',
        '{"flavor": {"constructor": {"prototype": {"x": 1}}}}',
        { 'content-type': 'application/json' },
      );
      assert.equal(ctor.status, 400);
      assert.match(nova(ctor, 'badRequest'), /flavor\.constructor\. Value: is not a recognised/);
      assert.equal(({} as Body).admin_state_up, undefined, 'no prototype was touched');
    });

    test("9: fastify's own errors answer in the catalogue's shape", async () => {
      const badUrl = await call('GET', '/v2.0/networks/%E0%A4%A');
      assert.equal(badUrl.status, 400);
      assert.equal(neutron(badUrl)?.type, 'BadRequest');
      const badJson = await call('POST', '/v2.1/flavors', '{"flavor": ', {
        'content-type': 'application/json',
      });
      assert.match(nova(badJson, 'badRequest'), /Malformed request body/);
      const empty = await call('POST', '/v2.0/networks', '', {
        'content-type': 'application/json',
      });
      assert.match(neutron(empty)?.message ?? '', /request body is empty/);
      const media = await call('POST', '/v2.0/networks', 'x', { 'content-type': 'text/x-y' });
      assert.equal(neutron(media)?.type, 'UnsupportedMediaType');
      const length = await call('POST', '/v2/images', '{}', {
        'content-type': 'application/json',
        'content-length': '9',
      });
      assert.match(glance(length), /did not match Content-Length/);
    });

    test('10: links come from the configured endpoint, never from the Host header', async () => {
      for (const name of ['l1', 'l2']) await network(name);
      const headers = { host: 'evil.example:666' };
      const page = await call('GET', '/v2.0/networks?limit=1', undefined, headers);
      const links = page.body.networks_links as { href: string }[];
      assert.ok(links[0]?.href.startsWith(`${ENDPOINT}/v2.0/networks?`), links[0]?.href);
      const versions = await call('GET', '/', undefined, headers);
      const flavors = await call('GET', '/v2.1/flavors', undefined, headers);
      for (const r of [page, versions, flavors])
        assert.doesNotMatch(JSON.stringify(r.body), /evil\.example/);
      assert.match(JSON.stringify(versions.body), /http:\/\/api\.example:9696\/v2\.0\//);
      assert.match(JSON.stringify(flavors.body), /http:\/\/api\.example:9696\/v2\.1\/flavors\//);

      const endpoint = (text: string) => publicEndpoint(compileConfig(text));
      assert.equal(
        endpoint('[api]\npublic_endpoint = https://cloud.example/network/\n'),
        'https://cloud.example/network',
      );
      assert.equal(endpoint('[api]\nbind_port = 9797\n'), 'http://127.0.0.1:9797');
      assert.equal(endpoint('host = ctl1\n[api]\nbind_host = 0.0.0.0\n'), 'http://ctl1:9696');
      for (const bad of ['ftp://x', 'http://x/?a=1', 'http://u:p@x', 'controller'])
        assert.throws(
          () => compileConfig(`[api]\npublic_endpoint = ${bad}\n`),
          (e: unknown) => e instanceof ConfigError && e.message.startsWith('[api] public_endpoint'),
          bad,
        );
    });

    test('11: version documents answer without a token; nothing else does', async () => {
      for (const url of ['/', '/v2.0', '/v2.0/']) {
        const r = await api.app.inject({ method: 'GET', url });
        assert.equal(r.statusCode, 200, url);
      }
      for (const url of ['/v2.0/networks', '/v2.0/nothing', '/flavors', '/v2/images']) {
        const r = await api.app.inject({ method: 'GET', url });
        assert.equal(r.statusCode, 401, url);
      }
      const noToken = await api.app.inject({ method: 'POST', url: '/', payload: {} });
      assert.equal(noToken.statusCode, 401, 'a 405 on a public path still needs a token');
    });
  });
}

describe('api HTTP hardening while closing', () => {
  test('9: a request on a kept-alive connection during close gets the catalogue 503', async (t) => {
    const db = openDb({ engine: 'sqlite', path: ':memory:' });
    await migrate(db);
    const vhost = rabbitVhost();
    const broker = createBroker({ url: vhost.url, log: silentLogger() });
    await broker.start();
    t.after(async () => {
      await broker.close();
      vhost.cleanup();
    });
    const app = buildApp({
      db,
      broker,
      clock: { now: () => new Date() },
      log: silentLogger(),
      settings: { adminToken: ADMIN, memberTokens: [], agentDownTime: 30, bodyLimit: 4096 },
    });
    let release = () => {};
    app.get('/slow', { config: { public: true } }, async () => {
      await new Promise<void>((r) => {
        release = r;
      });
      return {};
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((r) => socket.on('close', r));
    socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    const closing = app.close();
    await new Promise((r) => setTimeout(r, 50));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    release();
    await Promise.all([closing, ended]);
    await db.close();
    const text = Buffer.concat(chunks).toString('latin1');
    const second = firstResponse(text.slice(text.indexOf('HTTP/1.1', 1)));
    assert.equal(second.status, 503, text);
    assert.equal(neutron(second as Res)?.type, 'ServiceUnavailable');
  });
});
