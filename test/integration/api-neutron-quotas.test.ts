/**
 * Neutron's quotas through buildApp() + inject on both engines, with signed tokens: the
 * quota API (own project for members, everything else admin-only), validation of PUT,
 * enforcement on network, subnet and port creates, and 20 concurrent creates against a
 * limit of 10 creating exactly 10.
 *
 * Invariant under test: a refused request (policy, validation or quota) changes nothing.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { projectQuotas, setProjectQuotas } from '../../api/db/quotas.ts';
import { QUOTA_DEFAULTS } from '../../api/deps.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

type Body = Record<string, unknown>;
const err = (b: Body) => (b as { NeutronError: { type: string; message: string } }).NeutronError;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Neutron quotas on ${engine}`, () => {
    const t = testTokens();
    const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
    const admin = t.token({ project: hexId(), roles: ['admin'] });
    after(() => t.cleanup());

    const call = (token: string, method: string, url: string, payload?: unknown) =>
      injectAs(api, token, method, url, payload);
    const quota = async (project: string) =>
      (await call(admin, 'GET', `/v2.0/quotas/${project}`)).body.quota as Body;
    const count = async (project: string, collection: string) =>
      (
        (await call(admin, 'GET', `/v2.0/${collection}?project_id=${project}`)).body[
          collection
        ] as []
      ).length;

    test('the quota API: own project for members, the rest admin-only', async () => {
      const [A, B] = [hexId(), hexId()];
      const member = t.token({ project: A });
      const own = await call(member, 'GET', `/v2.0/quotas/${A}`);
      assert.equal(own.status, 200);
      assert.deepEqual(own.body.quota, QUOTA_DEFAULTS.neutron);
      for (const url of [`/v2.0/quotas/${B}`, `/v2.0/quotas/${B}/details`, '/v2.0/quotas']) {
        const r = await call(member, 'GET', url);
        assert.equal(r.status, 403, url);
        assert.equal(err(r.body).message, 'rule:get_quota is disallowed by policy');
      }
      const put = await call(member, 'PUT', `/v2.0/quotas/${A}`, { quota: { network: 1000 } });
      assert.equal(put.status, 403);
      assert.equal(err(put.body).message, 'rule:update_quota is disallowed by policy');
      assert.equal((await call(member, 'DELETE', `/v2.0/quotas/${A}`)).status, 403);
      assert.deepEqual(await quota(A), QUOTA_DEFAULTS.neutron, 'the refusals changed nothing');
      assert.deepEqual((await call(member, 'GET', '/v2.0/quotas/project')).body, {
        project: { project_id: A },
      });

      const set = await call(admin, 'PUT', `/v2.0/quotas/${B}`, {
        quota: { network: '3', port: -1 },
      });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      assert.deepEqual(set.body.quota, { ...QUOTA_DEFAULTS.neutron, network: 3, port: -1 });
      const listed = (await call(admin, 'GET', '/v2.0/quotas')).body.quotas as Body[];
      assert.deepEqual(
        listed.map((q) => [q.project_id, q.tenant_id, q.network]),
        [[B, B, 3]],
      );
      assert.deepEqual((await call(admin, 'GET', `/v2.0/quotas/${B}/default`)).body.quota, {
        ...QUOTA_DEFAULTS.neutron,
      });
      const details = (await call(admin, 'GET', `/v2.0/quotas/${B}/details`)).body.quota as Body;
      assert.deepEqual(details.network, { limit: 3, used: 0, reserved: 0 });
      assert.deepEqual(details.router, { limit: 10, used: 0, reserved: 0 });
    });

    test('a bad PUT is refused whole naming the field; DELETE resets only Neutron’s limits', async () => {
      const P = hexId();
      await call(admin, 'PUT', `/v2.0/quotas/${P}`, { quota: { subnet: 7 } });
      await setProjectQuotas(api.db, P, { instances: 4 });
      const cases: [Body, string][] = [
        [{ quota: { network: 2, colour: 1 } }, "Unrecognized attribute(s) 'colour'"],
        [
          { quota: { network: 2, port: -2 } },
          "Invalid input for port. Reason: '-2' is too small - must be at least '-1'.",
        ],
        [{ quota: { network: 'many' } }, "Invalid input for operation: 'many' is not an integer."],
        [{ quotas: { network: 2 } }, "Unable to find 'quota' in request body"],
      ];
      for (const [payload, message] of cases) {
        const r = await call(admin, 'PUT', `/v2.0/quotas/${P}`, payload);
        assert.equal(r.status, 400, JSON.stringify(payload));
        assert.equal(err(r.body).message, message);
      }
      assert.deepEqual(await quota(P), { ...QUOTA_DEFAULTS.neutron, subnet: 7 });
      const member = t.token({ project: P });
      assert.equal(
        (await call(member, 'POST', '/v2.0/networks', { network: { name: 'x' } })).status,
        201,
      );
      const low = await call(admin, 'PUT', `/v2.0/quotas/${P}`, {
        quota: { network: 0, check_limit: true },
      });
      assert.equal(low.status, 400);
      assert.equal(
        err(low.body).message,
        'Quota limit 0 for network must be greater than or equal to already used 1',
      );
      assert.deepEqual(await quota(P), { ...QUOTA_DEFAULTS.neutron, subnet: 7 });
      assert.equal((await call(admin, 'DELETE', `/v2.0/quotas/${P}`)).status, 204);
      assert.deepEqual(await quota(P), QUOTA_DEFAULTS.neutron);
      const nova = await projectQuotas(api.db, P, QUOTA_DEFAULTS.nova);
      assert.equal(nova.instances, 4, 'Nova’s limit of the project is untouched');
      // A project id in the path is checked like one in a body: nothing is stored for it.
      const rows = await api.db.query('SELECT * FROM quotas ORDER BY 1, 2');
      for (const bad of ['a%0Ab', 'a%3Bb', `${'x'.repeat(65)}`]) {
        const r = await call(admin, 'PUT', `/v2.0/quotas/${bad}`, { quota: { network: 1 } });
        assert.equal(r.status, 400, bad);
        assert.match(err(r.body).message, /project_id/);
      }
      assert.deepEqual(await api.db.query('SELECT * FROM quotas ORDER BY 1, 2'), rows);
    });

    test('creates over quota are 409 OverQuota and create nothing; -1 is unlimited', async () => {
      const P = hexId();
      const member = t.token({ project: P });
      await call(admin, 'PUT', `/v2.0/quotas/${P}`, { quota: { network: 1, subnet: 1, port: 1 } });
      const net = await call(member, 'POST', '/v2.0/networks', { network: { name: 'n' } });
      const id = (net.body.network as { id: string }).id;
      const sub = { subnet: { network_id: id, cidr: '10.0.0.0/24' } };
      assert.equal((await call(member, 'POST', '/v2.0/subnets', sub)).status, 201);
      assert.equal(
        (await call(member, 'POST', '/v2.0/ports', { port: { network_id: id } })).status,
        201,
      );
      const over: [string, Body, string][] = [
        ['networks', { network: { name: 'm' } }, 'network'],
        ['subnets', { subnet: { network_id: id, cidr: '10.0.1.0/24' } }, 'subnet'],
        ['ports', { port: { network_id: id } }, 'port'],
      ];
      for (const [collection, body, resource] of over) {
        const r = await call(member, 'POST', `/v2.0/${collection}`, body);
        assert.equal(r.status, 409, collection);
        assert.deepEqual(err(r.body), {
          type: 'OverQuota',
          message: `Quota exceeded for resources: ['${resource}'].`,
          detail: '',
          request_id: (r.body.NeutronError as Body).request_id,
        });
        assert.equal(await count(P, collection), 1, `no ${resource} was created`);
      }
      const details = (await call(member, 'GET', `/v2.0/quotas/${P}/details`)).body.quota as Body;
      assert.deepEqual(details.port, { limit: 1, used: 1, reserved: 0 });
      await call(admin, 'PUT', `/v2.0/quotas/${P}`, { quota: { network: -1 } });
      assert.equal((await call(member, 'POST', '/v2.0/networks', { network: {} })).status, 201);
    });

    test('concurrent quota sets of one project all succeed; one of them is the last', async () => {
      const P = hexId();
      const sets = await Promise.all(
        Array.from({ length: 12 }, (_, i) => {
          // Half name the limits in the other order: no two sets lock rows in opposite orders.
          const quota =
            i % 2 ? { network: 20 + i, port: 40 + i } : { port: 40 + i, network: 20 + i };
          return call(admin, 'PUT', `/v2.0/quotas/${P}`, { quota });
        }),
      );
      assert.deepEqual(
        sets.map((r) => r.status),
        Array(12).fill(200),
        JSON.stringify(sets.find((r) => r.status !== 200)?.body),
      );
      const { network, port } = await quota(P);
      assert.equal(Number(port) - Number(network), 20, 'both limits come from the same PUT');
    });

    test('20 concurrent creates against a quota of 10 create exactly 10', async () => {
      const P = hexId();
      const member = t.token({ project: P });
      await call(admin, 'PUT', `/v2.0/quotas/${P}`, { quota: { network: 10, port: 10 } });
      const nets = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          call(member, 'POST', '/v2.0/networks', { network: { name: `n${i}` } }),
        ),
      );
      assert.deepEqual(nets.map((r) => r.status).sort(), [
        ...Array(10).fill(201),
        ...Array(10).fill(409),
      ]);
      assert.equal(await count(P, 'networks'), 10);
      const first = nets.find((r) => r.status === 201)?.body.network as { id: string };
      const ports = await Promise.all(
        Array.from({ length: 20 }, () =>
          call(member, 'POST', '/v2.0/ports', { port: { network_id: first.id } }),
        ),
      );
      assert.equal(ports.filter((r) => r.status === 201).length, 10);
      assert.equal(ports.filter((r) => r.status === 409).length, 10);
      assert.equal(await count(P, 'ports'), 10);
    });
  });
}
