/**
 * Private flavors and os-flavor-access on both engines: an admin creates a private
 * flavor and offers it to one project; that project's members list, show and boot it,
 * another project's see a 404 (and a 400 flavorRef at create); only admins read or
 * change the access list, with Nova's 404/409 answers; every refusal changes nothing;
 * access given while the flavor is deleted is the flavor's 404, never a 500 or a row.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addFlavorAccess } from '../../api/db/flavors.ts';
import { type Body, novaError, novaPolicyHarness } from './api-nova-policy-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Nova os-flavor-access on ${engine}`, () => {
    const h = novaPolicyHarness(engine);
    const { who, projects } = h;
    const action = (
      id: string,
      body: Body,
      token = who.admin,
      headers: Record<string, string> = {},
    ) => h.call('POST', `/flavors/${id}/action`, token, body, headers);
    const access = () =>
      h.ctx.db.query('SELECT * FROM flavor_access ORDER BY flavor_id, project_id');
    const names = async (token: string, query = '') =>
      ((await h.call('GET', `/flavors${query}`, token)).body.flavors as Body[]).map((f) => f.id);

    const privateFlavor = async (id: string) => {
      const r = await h.call('POST', '/flavors', who.admin, {
        flavor: { name: id, id, vcpus: 1, ram: 256, disk: 1, 'os-flavor-access:is_public': false },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal((r.body.flavor as Body)['os-flavor-access:is_public'], false);
    };

    test('a private flavor offered to project A: A sees and boots it, B gets 404', async () => {
      await privateFlavor('priv-a');
      const added = await action('priv-a', { addTenantAccess: { tenant: projects.a } });
      assert.equal(added.status, 200, JSON.stringify(added.body));
      assert.deepEqual(added.body, {
        flavor_access: [{ flavor_id: 'priv-a', tenant_id: projects.a }],
      });
      assert.ok((await names(who.memberA)).includes('priv-a'));
      assert.ok(!(await names(who.memberB)).includes('priv-a'));
      assert.ok(!(await names(who.memberB, '?is_public=false')).includes('priv-a'));
      assert.equal((await h.call('GET', '/flavors/priv-a', who.memberA)).status, 200);
      assert.deepEqual(novaError(await h.call('GET', '/flavors/priv-a', who.memberB), 404), {
        kind: 'itemNotFound',
        message: 'Flavor priv-a could not be found.',
      });
      assert.ok((await names(who.admin, '?is_public=none')).includes('priv-a'));
      assert.ok((await names(who.admin, '?is_public=false')).includes('priv-a'));
      assert.equal((await h.boot(who.memberA, { flavorRef: 'priv-a' })).status, 202);
      const before = await h.snapshot();
      const refused = await h.boot(who.memberB, { flavorRef: 'priv-a' });
      assert.equal(
        novaError(refused, 400).message,
        'Invalid flavorRef provided: flavor priv-a could not be found.',
      );
      assert.deepEqual(await h.snapshot(), before);
    });

    test('the access list: admin-only, 404 for public flavors, 409 twice, 404 when absent', async () => {
      await privateFlavor('priv-b');
      const list = await h.call('GET', '/flavors/priv-b/os-flavor-access', who.admin);
      assert.deepEqual(list.body, { flavor_access: [] });
      const before = await access();
      const refusals: [Promise<ReturnType<typeof h.call>> | ReturnType<typeof h.call>, number][] = [
        [h.call('GET', '/flavors/priv-b/os-flavor-access', who.memberA), 403],
        [action('priv-b', { addTenantAccess: { tenant: projects.a } }, who.memberA), 403],
        [action('priv-b', { removeTenantAccess: { tenant: projects.a } }), 404],
        [action('priv-b', { addTenantAccess: {} }), 400],
        [action('priv-b', { addTenantAccess: { tenant: 'bad id!' } }), 400],
        [action('priv-b', { grant: {} }), 400],
        [action('nope', { addTenantAccess: { tenant: projects.a } }), 404],
        [h.call('GET', '/flavors/1/os-flavor-access', who.admin), 404],
        [
          action('1', { addTenantAccess: { tenant: projects.a } }, who.admin, {
            'x-openstack-nova-api-version': '2.7',
          }),
          409,
        ],
      ];
      const messages: string[] = [];
      for (const [r, status] of refusals) messages.push(novaError(await r, status).message);
      assert.equal(messages[2], `Flavor access not found for priv-b / ${projects.a} combination.`);
      assert.equal(messages[7], 'Access list not available for public flavors.');
      assert.equal(messages[8], 'Can not add access to a public flavor.');
      assert.deepEqual(await access(), before, 'nothing changed');

      assert.equal(
        (await action('priv-b', { addTenantAccess: { tenant: projects.b } })).status,
        200,
      );
      const twice = await action('priv-b', { addTenantAccess: { tenant: projects.b } });
      assert.equal(
        novaError(twice, 409).message,
        `Flavor access already exists for flavor priv-b and project ${projects.b} combination.`,
      );
      const removed = await action('priv-b', { removeTenantAccess: { tenant: projects.b } });
      assert.deepEqual(removed.body, { flavor_access: [] });
    });

    test('access given to a flavor deleted meanwhile is its 404 and leaves no row', async () => {
      await privateFlavor('priv-d');
      assert.equal(await addFlavorAccess(h.ctx.db, 'priv-d', projects.a), 'added');
      assert.equal(await addFlavorAccess(h.ctx.db, 'priv-d', projects.a), 'exists');
      assert.equal((await h.call('DELETE', '/flavors/priv-d', who.admin)).status, 202);
      assert.equal(await addFlavorAccess(h.ctx.db, 'priv-d', projects.a), 'gone');
      const ids = Array.from({ length: 8 }, (_, i) => `race-${i}`);
      for (const id of ids) await privateFlavor(id);
      const answers = await Promise.all(
        ids.map(async (id) => {
          const [add, del] = await Promise.all([
            action(id, { addTenantAccess: { tenant: projects.b } }),
            h.call('DELETE', `/flavors/${id}`, who.admin),
          ]);
          assert.equal(del.status, 202);
          if (add.status !== 200)
            assert.equal(novaError(add, 404).message, `Flavor ${id} could not be found.`);
          return add.status;
        }),
      );
      assert.ok(
        answers.every((s) => s === 200 || s === 404),
        String(answers),
      );
      const left = await h.ctx.db.query(
        `SELECT * FROM flavor_access WHERE flavor_id = 'priv-d' OR flavor_id LIKE 'race-%'`,
      );
      assert.deepEqual(left, []);
    });

    test('deleting a flavor takes its access with it; members cannot create or delete', async () => {
      await privateFlavor('priv-c');
      assert.equal(
        (await action('priv-c', { addTenantAccess: { tenant: projects.a } })).status,
        200,
      );
      const before = await access();
      const create = await h.call('POST', '/flavors', who.memberA, {
        flavor: { name: 'm', vcpus: 1, ram: 64, disk: 1 },
      });
      assert.equal(novaError(create, 403).kind, 'forbidden');
      assert.equal(
        novaError(await h.call('DELETE', '/flavors/priv-c', who.memberA), 403).kind,
        'forbidden',
      );
      assert.deepEqual(await access(), before);
      assert.equal((await h.call('DELETE', '/flavors/priv-c', who.admin)).status, 202);
      const left = await h.ctx.db.query('SELECT * FROM flavor_access WHERE flavor_id = ?', [
        'priv-c',
      ]);
      assert.deepEqual(left, []);
    });
  });
}
