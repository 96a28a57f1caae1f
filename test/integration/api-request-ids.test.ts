/**
 * Issue 11's HTTP layer through buildApp(): request ids (A), bodiless requests sent with a
 * JSON Content-Type (B), one root per service with its version documents, and compute
 * microversion negotiation.
 *
 * Invariants under test: every answer — success, 401, 404, 405, a fastify framework
 * error, and a raw answer to a request Node's parser refused — carries a fresh
 * `req-<uuid>` in X-OpenStack-Request-ID (and X-Compute-Request-ID on compute), the
 * same id as its error body and its log line; a bodiless DELETE or action with
 * `Content-Type: application/json` is served; `/compute`, `/image` and `/networking`
 * reach the same resources as the legacy paths, with links under the root the client
 * used; compute versions outside 2.1..2.16 are refused before any route runs.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-ids';
const ENDPOINT = 'http://api.example:9696';
const REQ_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

type Body = Record<string, unknown>;
interface Res {
  status: number;
  body: Body;
  headers: Record<string, unknown>;
}

/** The request id an error body carries, whatever the family's shape. */
function bodyId(body: Body): unknown {
  if ('request_id' in body) return body.request_id;
  const inner = Object.values(body)[0] as Body | undefined;
  return inner?.request_id;
}

describe('request ids, roots, versions and microversions', () => {
  const lines: Body[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Body);
      cb();
    },
  });
  const api = testApi('sqlite', {
    settings: { adminToken: ADMIN, publicEndpoint: ENDPOINT },
    log: pino({ level: 'info' }, sink),
    listen: true,
  });

  const call = async (
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    payload?: unknown,
    headers: Record<string, string> = {},
    token: string | null = ADMIN,
  ): Promise<Res> => {
    const res = await api.app.inject({
      method,
      url,
      headers: {
        ...(token ? { 'x-auth-token': token } : {}),
        ...(typeof payload === 'object' ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(payload === undefined
        ? {}
        : { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }),
    });
    return { status: res.statusCode, body: res.body ? res.json() : {}, headers: res.headers };
  };
  const json = { 'content-type': 'application/json' };

  test('A: every answer carries a fresh req-<uuid>; compute also X-Compute-Request-ID', async () => {
    const cases: [string, Res, boolean][] = [
      ['neutron list', await call('GET', '/v2.0/networks'), false],
      ['neutron 404', await call('GET', '/v2.0/networks/nope'), false],
      ['neutron 401', await call('GET', '/v2.0/networks', undefined, {}, null), false],
      ['neutron 405', await call('PATCH', '/v2.0/networks/x'), false],
      ['nova list', await call('GET', '/v2.1/flavors'), true],
      ['nova 401', await call('GET', '/compute/v2.1/servers', undefined, {}, null), true],
      ['nova 404', await call('GET', '/servers/7c4b9d4e-1111-4222-8333-444455556666'), true],
      ['nova unknown path', await call('GET', '/compute/v2.1/os-no-such-thing'), true],
      ['nova version doc', await call('GET', '/compute/'), true],
      ['glance list', await call('GET', '/image/v2/images'), false],
      ['glance 404', await call('GET', '/v2/images/7c4b9d4e-1111-4222-8333-444455556666'), false],
      ['bad url', await call('GET', '/v2.0/networks/%E0%A4%A'), false],
    ];
    const seen = new Set<unknown>();
    for (const [what, r, compute] of cases) {
      const id = r.headers['x-openstack-request-id'];
      assert.match(String(id), REQ_ID, what);
      assert.ok(!seen.has(id), `${what}: a fresh id`);
      seen.add(id);
      assert.equal(r.headers['x-compute-request-id'], compute ? id : undefined, what);
      if (r.status >= 400) assert.equal(bodyId(r.body), id, `${what}: the error body names it`);
    }
    const logged = lines.find(
      (l) => l.request_id === cases[1]?.[1].headers['x-openstack-request-id'],
    );
    assert.ok(logged, 'the request was logged with its id');
    assert.equal(logged.status, 404);
    assert.equal(logged.url, '/v2.0/networks/nope');
    const client = await call('GET', '/v2.0/networks', undefined, {
      'x-openstack-request-id': 'req-00000000-0000-4000-8000-000000000000',
    });
    assert.notEqual(
      client.headers['x-openstack-request-id'],
      'req-00000000-0000-4000-8000-000000000000',
    );
  });

  test("A: a request Node's parser refuses gets an id in its raw answer and body", async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(api.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', reject);
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
      socket.end(
        'POST /compute/v2.1/servers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n' +
          'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      );
    });
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    const id = /\r\nX-OpenStack-Request-ID: (\S+)/i.exec(head)?.[1];
    assert.match(id ?? '', REQ_ID);
    assert.equal(/\r\nX-Compute-Request-ID: (\S+)/i.exec(head)?.[1], id);
    assert.equal(bodyId(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Body), id);
  });

  test('B: bodiless requests with a JSON Content-Type are served', async () => {
    const net = await call('POST', '/v2.0/networks', { network: { name: 'b1' } });
    const netId = (net.body.network as Body).id as string;
    assert.equal((await call('DELETE', `/v2.0/networks/${netId}`, '', json)).status, 204);
    const img = await call('POST', '/v2/images', {
      name: 'b',
      disk_format: 'raw',
      container_format: 'bare',
    });
    assert.equal(img.status, 201);
    assert.equal((await call('DELETE', `/v2/images/${img.body.id}`, '', json)).status, 204);
    const server = await call(
      'DELETE',
      '/v2.1/servers/7c4b9d4e-1111-4222-8333-444455556666',
      '',
      json,
    );
    assert.equal(server.status, 404, 'looked up, not refused for its empty body');
    const create = await call('POST', '/v2.0/networks', '', json);
    assert.equal(create.status, 400);
    assert.match(
      (create.body.NeutronError as { message: string }).message,
      /request body is empty/,
      'a create that needs a body still says so',
    );
  });

  test('one root per service: the same resources, links under the root used', async () => {
    const created = await call('POST', '/networking/v2.0/networks', { network: { name: 'r1' } });
    assert.equal(created.status, 201);
    const id = (created.body.network as Body).id;
    const legacy = await call('GET', `/v2.0/networks/${id}`);
    assert.equal((legacy.body.network as Body).name, 'r1');
    const flavor = await call('POST', '/compute/v2.1/flavors', {
      flavor: { name: 'root.tiny', ram: 64, vcpus: 1, disk: 0, id: 'rt1' },
    });
    assert.equal(flavor.status, 200);
    const links = (flavor.body.flavor as { links: { rel: string; href: string }[] }).links;
    assert.deepEqual(
      links.map((l) => l.href),
      [`${ENDPOINT}/compute/v2.1/flavors/rt1`, `${ENDPOINT}/compute/flavors/rt1`],
    );
    const viaLegacy = await call('GET', '/v2.1/flavors/rt1');
    assert.equal(
      (viaLegacy.body.flavor as { links: { href: string }[] }).links[0]?.href,
      `${ENDPOINT}/v2.1/flavors/rt1`,
    );
    const images = await call('GET', '/image/v2/images');
    assert.equal(images.status, 200);
    assert.ok(Array.isArray(images.body.images));
    const elsewhere: [string, string][] = [
      ['/image/v2.1/servers', 'glance'],
      ['/networking/v2.1/flavors', 'neutron'],
      ['/compute/v2.0/networks', 'nova'],
      ['/compute/versions', 'nova'],
      ['/image/compute', 'glance'],
    ];
    for (const [path, family] of elsewhere) {
      const r = await call('GET', path);
      assert.equal(r.status, 404, `${path}: another service's path under a root is not served`);
      const message =
        family === 'glance'
          ? r.body.message
          : family === 'nova'
            ? (r.body.itemNotFound as Body | undefined)?.message
            : (r.body.NeutronError as Body | undefined)?.message;
      assert.equal(message, `The resource could not be found: GET ${path}`, path);
    }
    const lost = await call('GET', '/image/v2/nothing-here');
    assert.equal(lost.status, 404);
    assert.equal(lost.body.title, 'Not Found', "Glance's shape under /image");
  });

  test('version documents answer without a token, in each service shape', async () => {
    const compute = await call('GET', '/compute/', undefined, {}, null);
    assert.equal(compute.status, 200);
    assert.deepEqual(compute.body, {
      versions: [
        {
          id: 'v2.1',
          status: 'CURRENT',
          version: '2.16',
          min_version: '2.1',
          updated: '2013-07-23T11:33:21Z',
          links: [{ rel: 'self', href: `${ENDPOINT}/compute/v2.1/` }],
        },
      ],
    });
    const v21 = await call('GET', '/compute/v2.1', undefined, {}, null);
    assert.equal(v21.status, 200);
    const version = v21.body.version as Body;
    assert.equal(version.version, '2.16');
    assert.equal(version.min_version, '2.1');
    assert.deepEqual(version['media-types'], [
      { base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' },
    ]);
    const image = await call('GET', '/image', undefined, {}, null);
    assert.equal(image.status, 300);
    const ids = image.body.versions as { id: string; status: string; links: { href: string }[] }[];
    assert.equal(ids[0]?.status, 'CURRENT');
    assert.equal(ids[0]?.links[0]?.href, `${ENDPOINT}/image/v2/`);
    assert.equal((await call('GET', '/image/versions', undefined, {}, null)).status, 200);
    const net = await call('GET', '/networking/', undefined, {}, null);
    assert.equal(net.status, 200);
    assert.deepEqual(net.body, {
      versions: [
        {
          id: 'v2.0',
          status: 'CURRENT',
          links: [{ href: `${ENDPOINT}/networking/v2.0/`, rel: 'self' }],
        },
      ],
    });
    assert.equal(
      (await call('GET', '/', undefined, {}, null)).status,
      200,
      'the legacy root stays',
    );
  });

  test('microversions: negotiated, echoed with Vary, refused out of range', async () => {
    const at = async (headers: Record<string, string>) =>
      call('GET', '/compute/v2.1/flavors', undefined, headers);
    const none = await at({});
    assert.equal(none.headers['openstack-api-version'], 'compute 2.1');
    assert.equal(none.headers['x-openstack-nova-api-version'], '2.1');
    assert.match(String(none.headers.vary), /OpenStack-API-Version/);
    assert.match(String(none.headers.vary), /X-OpenStack-Nova-API-Version/);
    assert.equal(
      (await at({ 'openstack-api-version': 'compute 2.9' })).headers['openstack-api-version'],
      'compute 2.9',
    );
    assert.equal(
      (await at({ 'x-openstack-nova-api-version': '2.3' })).headers['x-openstack-nova-api-version'],
      '2.3',
    );
    assert.equal(
      (await at({ 'openstack-api-version': 'compute latest' })).headers['openstack-api-version'],
      'compute 2.16',
    );
    assert.equal(
      (await at({ 'openstack-api-version': 'volume 3.5, compute 2.16' })).headers[
        'openstack-api-version'
      ],
      'compute 2.16',
    );
    for (const v of ['2.17', '2.0', '3.1']) {
      const r = await at({ 'openstack-api-version': `compute ${v}` });
      assert.equal(r.status, 406, v);
      assert.match(
        (r.body.computeFault as { message: string }).message,
        /Minimum is 2\.1 and maximum is 2\.16/,
      );
    }
    const bad = await at({ 'openstack-api-version': 'compute two' });
    assert.equal(bad.status, 400);
    // As microversion_parse and Nova's APIVersionRequest read them.
    const nova: [Record<string, string>, number | string][] = [
      [{ 'openstack-api-version': 'compute 2.3, compute 2.9' }, 'compute 2.9'],
      [{ 'openstack-api-version': 'compute' }, 'compute 2.1'],
      [{ 'x-openstack-nova-api-version': '2.3, 2.5' }, 'compute 2.5'],
      [{ 'openstack-api-version': 'Compute 2.2' }, 'compute 2.2'],
      [{ 'openstack-api-version': 'compute 2.5 x' }, 400],
      [{ 'openstack-api-version': 'compute LATEST' }, 400],
      [{ 'openstack-api-version': 'compute 2.01' }, 400],
      [{ 'openstack-api-version': 'compute 2.12345' }, 406],
    ];
    for (const [headers, want] of nova) {
      const r = await at(headers);
      if (typeof want === 'number') assert.equal(r.status, want, JSON.stringify(headers));
      else assert.equal(r.headers['openstack-api-version'], want, JSON.stringify(headers));
    }
    const neutron = await call('GET', '/v2.0/networks', undefined, {
      'openstack-api-version': 'compute 9.9',
    });
    assert.equal(neutron.status, 200, 'only compute negotiates');
    assert.equal(neutron.headers['openstack-api-version'], undefined);
  });
});
