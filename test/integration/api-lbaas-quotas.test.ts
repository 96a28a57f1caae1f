/**
 * Neutron LBaaS v1 quotas (neutron-lbaas's lbaas_quota_opts: pool 10, vip 10, member -1,
 * health_monitor -1) through buildApp() + inject on both engines: the defaults in GET and
 * …/default, PUT and GET of the new keys, a bad value refused naming the resource, quota
 * details counting what the project owns, each limit refusing the (N+1)th create with
 * OverQuota (409), -1 admitting without bound, and racing creates held to the limit.
 *
 * Invariant under test: a refused create changes nothing (every LBaaS table, ports and
 * their addresses row for row), and concurrent creates never exceed a limit.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { QUOTA_DEFAULTS } from '../../api/deps.ts';
import { waitFor } from '../helpers/env.ts';
import { type Body, lbaasApp, type Obj } from '../helpers/lbaas-api.ts';

const LBAAS_DEFAULTS = { pool: 10, vip: 10, member: -1, health_monitor: -1 };
const PING = { type: 'PING', delay: 3, timeout: 3, max_retries: 3 };
const overQuota = (resource: string) => `Quota exceeded for resources: ['${resource}'].`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS v1 quotas on ${engine}`, () => {
    const h = lbaasApp(engine);
    const { call, lb } = h;
    const { admin } = h.tokens;
    const quota = async (project: string, suffix = '') => {
      const r = await call(admin, 'GET', `/v2.0/quotas/${project}${suffix}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.quota as Obj;
    };
    const setQuota = async (project: string, limits: Body) => {
      const r = await call(admin, 'PUT', `/v2.0/quotas/${project}`, { quota: limits });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.quota as Obj;
    };
    const count = async (table: string, project: string) =>
      (await h.rows(`SELECT id FROM ${table} WHERE project_id = ?`, [project])).length;
    /** The scheduler has marked every pool (no agent runs here): no write of it is pending. */
    const unhosted = () =>
      waitFor('every pool marked unhosted', async () => {
        const open = await h.rows('SELECT id FROM lb_pools WHERE status_description IS NULL');
        return open.length === 0;
      });
    /** A POST of `body` to /v2.0/lb/<collection> refused as over `resource`'s quota. */
    const overLimit = async (token: string, collection: string, body: Body, resource: string) => {
      await unhosted();
      const key = collection.replace(/s$/, '');
      const msg = await h.refused(409, 'OverQuota', token, 'POST', `/v2.0/lb/${collection}`, {
        [key]: body,
      });
      assert.equal(msg, overQuota(resource));
    };

    test('the defaults are neutron-lbaas’s; PUT and GET carry the new keys', async () => {
      const { A, B } = h.projects;
      const { pool, vip, member, health_monitor } = QUOTA_DEFAULTS.neutron;
      assert.deepEqual({ pool, vip, member, health_monitor }, LBAAS_DEFAULTS);
      assert.deepEqual(await quota(A), QUOTA_DEFAULTS.neutron);
      assert.deepEqual(await quota(A, '/default'), QUOTA_DEFAULTS.neutron);
      const limits = { pool: 3, vip: '2', member: 50, health_monitor: 0 };
      const expected = {
        ...QUOTA_DEFAULTS.neutron,
        pool: 3,
        vip: 2,
        member: 50,
        health_monitor: 0,
      };
      assert.deepEqual(await setQuota(B, limits), expected);
      assert.deepEqual(await quota(B), expected);
      const listed = (await call(admin, 'GET', '/v2.0/quotas')).body.quotas as Obj[];
      const mine = listed.find((q) => q.project_id === B);
      assert.deepEqual([mine?.pool, mine?.vip, mine?.member, mine?.health_monitor], [3, 2, 50, 0]);
      const bad = await call(admin, 'PUT', `/v2.0/quotas/${B}`, { quota: { pool: 1, vip: -2 } });
      assert.equal(bad.status, 400);
      assert.equal(
        (bad.body.NeutronError as Obj).message,
        "Invalid input for vip. Reason: '-2' is too small - must be at least '-1'.",
      );
      assert.deepEqual(await quota(B), expected, 'the bad PUT changed nothing');
      assert.equal((await call(admin, 'DELETE', `/v2.0/quotas/${B}`)).status, 204);
      assert.deepEqual(await quota(B), QUOTA_DEFAULTS.neutron, 'DELETE resets the LBaaS limits');
    });

    test('each limit refuses the (N+1)th create and changes nothing; details count usage', async () => {
      const { A } = h.projects;
      const token = h.tokens.A;
      await setQuota(A, { pool: 2, vip: 1, member: 2, health_monitor: 1 });
      const { pool: p1, sub } = await h.pool(token);
      const p2 = await lb(token, 'pools', {
        subnet_id: sub.id,
        protocol: 'HTTP',
        lb_method: 'ROUND_ROBIN',
      });
      const poolBody = { subnet_id: sub.id, protocol: 'TCP', lb_method: 'SOURCE_IP' };
      await overLimit(token, 'pools', poolBody, 'pool');
      for (const port of [80, 81])
        await lb(token, 'members', { pool_id: p1.id, address: '10.0.0.5', protocol_port: port });
      await overLimit(
        token,
        'members',
        { pool_id: p2.id, address: '10.0.0.5', protocol_port: 80 },
        'member',
      );
      await lb(token, 'health_monitors', PING);
      await overLimit(token, 'health_monitors', PING, 'health_monitor');
      const vip = (poolId: unknown) => ({
        subnet_id: sub.id,
        protocol: 'HTTP',
        protocol_port: 80,
        pool_id: poolId,
      });
      await lb(token, 'vips', vip(p1.id));
      await overLimit(token, 'vips', vip(p2.id), 'vip');
      const details = await quota(A, '/details');
      assert.deepEqual(
        ['pool', 'vip', 'member', 'health_monitor'].map((r) => details[r]),
        [
          { limit: 2, used: 2, reserved: 0 },
          { limit: 1, used: 1, reserved: 0 },
          { limit: 2, used: 2, reserved: 0 },
          { limit: 1, used: 1, reserved: 0 },
        ],
      );
      const low = await call(admin, 'PUT', `/v2.0/quotas/${A}`, {
        quota: { member: 1, check_limit: true },
      });
      assert.equal(low.status, 400);
      assert.equal(
        (low.body.NeutronError as Obj).message,
        'Quota limit 1 for member must be greater than or equal to already used 2',
      );
    });

    test('-1 is unlimited: past every default, and after a PUT of -1', async () => {
      const { B } = h.projects;
      const token = h.tokens.B;
      const { pool, sub } = await h.pool(token);
      for (let i = 0; i < 12; i++) {
        await lb(token, 'members', { pool_id: pool.id, address: `10.0.1.${i}`, protocol_port: 80 });
        await lb(token, 'health_monitors', PING);
      }
      assert.deepEqual(
        [await count('lb_members', B), await count('lb_health_monitors', B)],
        [12, 12],
        'member and health_monitor default to unlimited',
      );
      await setQuota(B, { pool: -1 });
      for (let i = 0; i < 10; i++)
        await lb(token, 'pools', { subnet_id: sub.id, protocol: 'TCP', lb_method: 'SOURCE_IP' });
      assert.equal(await count('lb_pools', B), 11, 'past the default of 10');
      const details = await quota(B, '/details');
      assert.deepEqual(details.pool, { limit: -1, used: 11, reserved: 0 });
      assert.deepEqual(details.member, { limit: -1, used: 12, reserved: 0 });
    });

    test('racing creates never exceed the limit', async () => {
      const { OPS } = h.projects;
      await setQuota(OPS, { pool: 3, member: 4 });
      const { pool, sub } = await h.pool(admin);
      const pools = await Promise.all(
        Array.from({ length: 10 }, () =>
          call(admin, 'POST', '/v2.0/lb/pools', {
            pool: { subnet_id: sub.id, protocol: 'HTTP', lb_method: 'ROUND_ROBIN' },
          }),
        ),
      );
      assert.deepEqual(pools.map((r) => r.status).sort(), [201, 201, ...Array(8).fill(409)]);
      assert.equal(await count('lb_pools', OPS), 3);
      const members = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          call(admin, 'POST', '/v2.0/lb/members', {
            member: { pool_id: pool.id, address: `10.0.2.${i}`, protocol_port: 80 },
          }),
        ),
      );
      assert.deepEqual(members.map((r) => r.status).sort(), [
        ...Array(4).fill(201),
        ...Array(6).fill(409),
      ]);
      assert.equal(await count('lb_members', OPS), 4);
    });
  });
}
