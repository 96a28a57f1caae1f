/**
 * Nova's quotas on both engines: os-quota-sets (show, defaults, detail, PUT, DELETE),
 * os-quota-class-sets/default and /limits with their policies; enforcement at server
 * create (instances, cores, ram; min_count/max_count as Nova counts them) with Nova's 403
 * TooManyInstances message and nothing created; a limit below the usage refused unless
 * forced (Nova's _validate_quota_limit); 20 concurrent creates against an
 * instances quota of 10 create exactly 10.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Body, novaError, novaPolicyHarness } from './api-nova-policy-harness.ts';

const LEGACY = {
  fixed_ips: -1,
  floating_ips: 10,
  injected_file_content_bytes: 10240,
  injected_file_path_bytes: 255,
  injected_files: 5,
  metadata_items: 128,
  security_group_rules: 20,
  security_groups: 10,
  server_group_members: 10,
  server_groups: 10,
};
const DEFAULTS = { ...LEGACY, cores: 20, instances: 10, key_pairs: 100, ram: 51200 };

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Nova quotas on ${engine}`, () => {
    const h = novaPolicyHarness(engine);
    const { who, projects } = h;
    const quotas = (token: string, project: string, tail = '') =>
      h.call('GET', `/os-quota-sets/${project}${tail}`, token);
    const setQuotas = (project: string, set: Body, token = who.admin) =>
      h.call('PUT', `/os-quota-sets/${project}`, token, { quota_set: set });
    const liveCount = async (project: string) =>
      Number(
        (
          await h.ctx.db.query<{ n: unknown }>(
            'SELECT COUNT(*) AS n FROM instances WHERE project_id = ? AND deleted_at IS NULL',
            [project],
          )
        )[0]?.n,
      );

    test('a project reads its quotas and defaults; another project is 403', async () => {
      const own = await quotas(who.memberA, projects.a);
      assert.deepEqual(own.body, { quota_set: { id: projects.a, ...DEFAULTS } });
      const defaults = await quotas(who.memberA, projects.b, '/defaults');
      assert.deepEqual(defaults.body, { quota_set: { id: projects.b, ...DEFAULTS } });
      assert.deepEqual(novaError(await quotas(who.memberA, projects.b), 403), {
        kind: 'forbidden',
        message: "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.",
      });
      assert.equal(
        novaError(await quotas(who.memberA, projects.b, '/detail'), 403).kind,
        'forbidden',
      );
      assert.equal((await quotas(who.admin, projects.b)).status, 200);
      const cls = await h.call('GET', '/os-quota-class-sets/default', who.admin);
      assert.deepEqual(cls.body, { quota_class_set: { id: 'default', ...DEFAULTS } });
    });

    test('an admin sets and resets quotas; members cannot; bad values are 400 naming the key', async () => {
      const p = projects.b;
      const set = await setQuotas(p, { instances: 5, cores: '-1', force: true });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      assert.deepEqual(set.body, { quota_set: { ...DEFAULTS, instances: 5, cores: -1 } });
      const before = (await quotas(who.admin, p)).body;
      const refused = [
        [await setQuotas(p, { instances: 50 }, who.memberB), 403],
        [await setQuotas(p, { instances: -2 }), 400],
        [await setQuotas(p, { instances: 'ten' }), 400],
        [await setQuotas(p, { instances: 2 ** 31 }), 400],
        [await setQuotas(p, { volumes: 3 }), 400],
        [await h.call('PUT', `/os-quota-sets/${p}`, who.admin, { instances: 3 }), 400],
        [await h.call('DELETE', `/os-quota-sets/${p}`, who.memberB), 403],
        [await setQuotas('a%0Ab', { instances: 1 }), 400],
      ] as const;
      for (const [r, status] of refused) novaError(r, status);
      assert.match(novaError(refused[1][0], 400).message, /quota_set\.instances/);
      assert.match(novaError(refused[4][0], 400).message, /quota_set\.volumes/);
      assert.match(novaError(refused[7][0], 400).message, /project_id/);
      assert.deepEqual((await quotas(who.admin, p)).body, before, 'nothing changed');
      assert.equal((await h.call('DELETE', `/os-quota-sets/${p}`, who.admin)).status, 202);
      assert.deepEqual((await quotas(who.admin, p)).body, { quota_set: { id: p, ...DEFAULTS } });
    });

    test('detail and /limits count the live servers of the project', async () => {
      const p = projects.a;
      const id = await h.server(who.memberA);
      const n = await liveCount(p);
      const detail = (await quotas(who.memberA, p, '/detail')).body.quota_set as Body;
      assert.deepEqual(detail.instances, { in_use: n, limit: 10, reserved: 0 });
      assert.deepEqual(detail.cores, { in_use: n, limit: 20, reserved: 0 });
      assert.deepEqual(detail.ram, { in_use: n * 512, limit: 51200, reserved: 0 });
      assert.deepEqual(detail.key_pairs, { in_use: 0, limit: 100, reserved: 0 });
      const limits = await h.call('GET', '/limits', who.memberA);
      const abs = (limits.body.limits as Body).absolute as Body;
      assert.equal(abs.maxTotalInstances, 10);
      assert.equal(abs.totalInstancesUsed, n);
      assert.equal(abs.totalRAMUsed, n * 512);
      assert.equal(abs.maxImageMeta, 128);
      assert.deepEqual((limits.body.limits as Body).rate, []);
      const other = await h.call('GET', `/limits?tenant_id=${projects.b}`, who.memberA);
      assert.equal(novaError(other, 403).kind, 'forbidden');
      const asAdmin = await h.call('GET', `/limits?tenant_id=${p}`, who.admin);
      assert.equal(((asAdmin.body.limits as Body).absolute as Body).totalInstancesUsed, n);
      assert.equal((await h.call('DELETE', `/servers/${id}`, who.memberA)).status, 204);
    });

    test("over quota is Nova's 403 TooManyInstances and creates nothing", async () => {
      const p = projects.b;
      assert.equal((await setQuotas(p, { instances: 2 })).status, 200);
      await h.server(who.memberB);
      await h.server(who.memberB);
      const before = await h.snapshot();
      const r = await h.boot(who.memberB);
      assert.deepEqual(novaError(r, 403), {
        kind: 'forbidden',
        message: 'Quota exceeded for instances: Requested 1, but already used 2 of 2 instances',
      });
      assert.equal((await setQuotas(p, { instances: -1, cores: 2, ram: 1024 })).status, 200);
      const both = await h.boot(who.memberB);
      assert.equal(
        novaError(both, 403).message,
        'Quota exceeded for cores, ram: Requested 1, 512, but already used 2, 1024 of 2, 1024 cores, ram',
      );
      assert.deepEqual(await h.snapshot(), before);
      assert.equal((await h.call('DELETE', `/os-quota-sets/${p}`, who.admin)).status, 202);
    });

    test("a limit below the project's usage is Nova's 400 unless forced; nothing changes", async () => {
      const p = projects.b;
      await h.server(who.memberB);
      const n = await liveCount(p);
      const before = (await quotas(who.admin, p)).body;
      const below = (set: Body) => setQuotas(p, { key_pairs: 5, ...set });
      const floor = (key: string, limit: number, used: number) =>
        `Quota limit ${limit} for ${key} must be greater than or equal to already used and reserved ${used}.`;
      assert.equal(
        novaError(await below({ instances: n - 1 }), 400).message,
        floor('instances', n - 1, n),
      );
      assert.equal(novaError(await below({ cores: n - 1 }), 400).message, floor('cores', n - 1, n));
      assert.equal(novaError(await below({ ram: 1 }), 400).message, floor('ram', 1, n * 512));
      const badForce = await below({ instances: 0, force: 'maybe' });
      assert.match(novaError(badForce, 400).message, /quota_set\.force/);
      assert.deepEqual((await quotas(who.admin, p)).body, before, 'nothing changed');
      assert.equal((await setQuotas(p, { instances: n, cores: -1 })).status, 200);
      const forced = await setQuotas(p, { instances: 0, ram: 0, force: 'True' });
      assert.equal(forced.status, 200, JSON.stringify(forced.body));
      const shown = (await quotas(who.admin, p)).body.quota_set as Body;
      assert.deepEqual([shown.instances, shown.cores, shown.ram], [0, -1, 0]);
      assert.equal((await h.call('DELETE', `/os-quota-sets/${p}`, who.admin)).status, 202);
    });

    test('a batch creates up to max_count as the quota allows, at least min_count or none', async () => {
      const p = projects.admin;
      assert.equal((await setQuotas(p, { instances: (await liveCount(p)) + 3 })).status, 200);
      const before = await h.snapshot();
      const tooMany = await h.boot(who.admin, { min_count: 4, max_count: 6 });
      assert.match(novaError(tooMany, 403).message, /^Quota exceeded for instances: Requested 4-6/);
      assert.deepEqual(await h.snapshot(), before);
      const r = await h.boot(who.admin, {
        min_count: 2,
        max_count: 5,
        return_reservation_id: true,
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const rows = await h.ctx.db.query<{ name: string }>(
        'SELECT name FROM instances WHERE reservation_id = ? ORDER BY launch_index',
        [String(r.body.reservation_id)],
      );
      assert.deepEqual(
        rows.map((x) => x.name),
        ['vm-1', 'vm-2', 'vm-3'],
      );
      assert.equal((await h.call('DELETE', `/os-quota-sets/${p}`, who.admin)).status, 202);
    });

    test('20 concurrent creates against an instances quota of 10 create exactly 10', async () => {
      const p = projects.a;
      for (const s of (await h.call('GET', '/servers', who.memberA)).body.servers as Body[])
        assert.equal((await h.call('DELETE', `/servers/${String(s.id)}`, who.memberA)).status, 204);
      assert.equal(await liveCount(p), 0);
      assert.equal((await setQuotas(p, { instances: 10, cores: -1, ram: -1 })).status, 200);
      const results = await Promise.all(Array.from({ length: 20 }, () => h.boot(who.memberA)));
      const codes = results.map((r) => r.status).sort();
      assert.deepEqual(codes, [...Array(10).fill(202), ...Array(10).fill(403)]);
      for (const r of results.filter((x) => x.status === 403))
        assert.equal(
          novaError(r, 403).message,
          'Quota exceeded for instances: Requested 1, but already used 10 of 10 instances',
        );
      assert.equal(await liveCount(p), 10);
    });
  });
}
