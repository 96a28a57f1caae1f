/**
 * Bodiless requests that carry `Content-Type: application/json` over a real socket, as
 * OpenStack's API test clients send them: DELETE and GET on every family (Neutron's
 * networks, subnets, ports and quotas, Nova's flavors, Glance's images) answer as without
 * the header, never "400 Request body is empty". Both engines, raw node:http requests.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { testApi } from '../helpers/test-api.ts';
import { hexId } from '../helpers/tokens.ts';

const ADMIN = hexId();

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`bodiless JSON requests on ${engine}`, () => {
    const api = testApi(engine, { settings: { adminToken: ADMIN }, listen: true });

    /** One raw request with a JSON Content-Type and no body (with or without Content-Length). */
    const send = (method: string, path: string, length: boolean, payload?: unknown) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const data = payload === undefined ? '' : JSON.stringify(payload);
        const headers: Record<string, string> = {
          'x-auth-token': ADMIN,
          'content-type': 'application/json',
        };
        if (length || data) headers['content-length'] = String(Buffer.byteLength(data));
        const req = request({ host: '127.0.0.1', port: api.port, method, path, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
        });
        req.on('error', reject);
        req.end(data);
      });
    const created = async (kind: string, body: Record<string, unknown>) => {
      const r = await send('POST', `/v2.0/${kind}s`, true, { [kind]: body });
      assert.equal(r.status, 201, r.body);
      return (JSON.parse(r.body) as Record<string, { id: string }>)[kind]?.id as string;
    };

    test('GET and DELETE with a JSON Content-Type and no body are not refused', async () => {
      for (const length of [true, false]) {
        const net = await created('network', { name: 'n' });
        const sub = await created('subnet', { network_id: net, cidr: '10.0.0.0/24' });
        const port = await created('port', { network_id: net });
        const cases: [string, string, number][] = [
          ['GET', '/v2.0/networks', 200],
          ['GET', `/v2.0/ports/${port}`, 200],
          ['GET', `/v2.0/quotas/${hexId()}`, 200],
          ['DELETE', `/v2.0/quotas/${hexId()}`, 204],
          ['DELETE', `/v2.0/ports/${port}`, 204],
          ['DELETE', `/v2.0/subnets/${sub}`, 204],
          ['DELETE', `/v2.0/networks/${net}`, 204],
          ['GET', '/compute/v2.1/flavors', 200],
          ['GET', '/image/v2/images', 200],
          ['DELETE', `/image/v2/images/${crypto.randomUUID()}`, 404],
          ['DELETE', `/compute/v2.1/servers/${crypto.randomUUID()}`, 404],
        ];
        for (const [method, path, status] of cases) {
          const r = await send(method, path, length);
          assert.equal(r.status, status, `${method} ${path} (length ${length}): ${r.body}`);
          assert.doesNotMatch(r.body, /body is empty/i);
        }
      }
    });
  });
}
