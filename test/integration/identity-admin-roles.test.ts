/**
 * Keystone v3 admin API, roles and role assignments, on both database engines: grants on
 * projects and domains (PUT, HEAD/GET check, list, DELETE), the role-assignment list
 * (filters, effective with prior_role links, include_names), role CRUD with the built-in
 * roles kept, the implied-role rules, and the revocations a removed grant and a deleted
 * role record — each refuses the tokens issued before it at once. Every refused request
 * changes nothing (snapshot).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { IDENTITY_URL, identityApi } from '../helpers/identity-admin.ts';
import { hexId } from '../helpers/tokens.ts';

const ADMIN = 'identity-admin-token';
const tick = () => new Promise((r) => setTimeout(r, 5));
const deny = (rule: string) =>
  `You are not authorized to perform the requested action: identity:${rule}.`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`identity admin: roles and assignments on ${engine}`, () => {
    const api = identityApi(engine, { adminToken: ADMIN });
    const ids = { project: '', other: '', user: '', member: '', admin: '', reader: '' };

    before(async () => {
      ids.user = await api.create('user', { name: 'alice' });
      ids.project = await api.create('project', { name: 'p1' });
      ids.other = await api.create('project', { name: 'p2' });
      Object.assign(ids, await api.builtInRoles());
    });

    test('policy: a member may not read or change roles and grants', async () => {
      const member = api.token({ user: hexId(), project: ids.project, roles: ['member'] });
      const grant = `/v3/projects/${ids.project}/users/${ids.user}/roles/${ids.member}`;
      await api.refused('GET', `/v3/roles/${ids.member}`, member, undefined, 403, deny('get_role'));
      await api.refused(
        'POST',
        '/v3/roles',
        member,
        { role: { name: 'x' } },
        403,
        deny('create_role'),
      );
      await api.refused('PUT', grant, member, undefined, 403, deny('create_grant'));
      await api.refused('GET', grant, member, undefined, 403, deny('check_grant'));
      await api.refused('DELETE', grant, member, undefined, 403, deny('revoke_grant'));
      await api.refused(
        'GET',
        '/v3/role_inferences',
        member,
        undefined,
        403,
        deny('list_role_inference_rules'),
      );
    });

    test('grants: PUT, HEAD/GET check, list; role assignments with names and effective', async () => {
      const grant = `/v3/projects/${ids.project}/users/${ids.user}/roles/${ids.admin}`;
      assert.equal((await api.call('PUT', grant, ADMIN)).status, 204);
      assert.equal(
        (await api.call('PUT', grant, ADMIN)).status,
        204,
        'granting twice is one grant',
      );
      assert.equal(
        (await api.app.inject({ method: 'HEAD', url: grant, headers: { 'x-auth-token': ADMIN } }))
          .statusCode,
        204,
      );
      const held = await api.call(
        'GET',
        `/v3/projects/${ids.project}/users/${ids.user}/roles`,
        ADMIN,
      );
      assert.deepEqual(
        (held.body.roles as { name: string }[]).map((r) => r.name),
        ['admin'],
      );
      const domainGrant = `/v3/domains/default/users/${ids.user}/roles/${ids.reader}`;
      assert.equal((await api.call('PUT', domainGrant, ADMIN)).status, 204);
      const all = await api.call('GET', '/v3/role_assignments', ADMIN);
      assert.deepEqual(all.body.role_assignments, [
        {
          role: { id: ids.reader },
          user: { id: ids.user },
          scope: { domain: { id: 'default' } },
          links: {
            assignment: `${IDENTITY_URL}/v3/domains/default/users/${ids.user}/roles/${ids.reader}`,
          },
        },
        {
          role: { id: ids.admin },
          user: { id: ids.user },
          scope: { project: { id: ids.project } },
          links: { assignment: `${IDENTITY_URL}${grant}` },
        },
      ]);
      const named = await api.call(
        'GET',
        `/v3/role_assignments?scope.project.id=${ids.project}&include_names=True`,
        ADMIN,
      );
      assert.deepEqual(named.body.role_assignments, [
        {
          role: { id: ids.admin, name: 'admin' },
          user: { id: ids.user, name: 'alice', domain: { id: 'default', name: 'Default' } },
          scope: {
            project: { id: ids.project, name: 'p1', domain: { id: 'default', name: 'Default' } },
          },
          links: { assignment: `${IDENTITY_URL}${grant}` },
        },
      ]);
      const eff = await api.call(
        'GET',
        `/v3/role_assignments?scope.project.id=${ids.project}&effective`,
        ADMIN,
      );
      const effRoles = (
        eff.body.role_assignments as { role: { id: string }; links: Record<string, string> }[]
      ).map((a) => [a.role.id, a.links.prior_role ?? null]);
      assert.deepEqual(effRoles, [
        [ids.admin, null],
        [ids.member, `${IDENTITY_URL}/v3/roles/${ids.admin}`],
        [ids.reader, `${IDENTITY_URL}/v3/roles/${ids.admin}`],
      ]);
      const byRole = await api.call(
        'GET',
        `/v3/role_assignments?user.id=${ids.user}&role.id=${ids.reader}`,
        ADMIN,
      );
      assert.deepEqual(
        (byRole.body.role_assignments as { scope: object }[]).map((a) => a.scope),
        [{ domain: { id: 'default' } }],
      );
      assert.deepEqual(
        (await api.call('GET', '/v3/role_assignments?group.id=x', ADMIN)).body.role_assignments,
        [],
      );
      const projects = await api.call(
        'GET',
        `/v3/users/${ids.user}/projects`,
        api.token({ user: ids.user, project: ids.project, roles: ['admin'] }),
      );
      assert.deepEqual(
        (projects.body.projects as { id: string }[]).map((p) => p.id),
        [ids.project],
      );
      await api.refused(
        'PUT',
        `/v3/projects/${ids.project}/users/${ids.user}/roles/nope`,
        ADMIN,
        undefined,
        404,
        'Could not find role: nope.',
      );
      await api.refused(
        'PUT',
        `/v3/projects/nope/users/${ids.user}/roles/${ids.admin}`,
        ADMIN,
        undefined,
        404,
        'Could not find project: nope.',
      );
      await api.refused(
        'DELETE',
        `/v3/projects/${ids.other}/users/${ids.user}/roles/${ids.admin}`,
        ADMIN,
        undefined,
        404,
        /^Could not find role assignment with role: /,
      );
    });

    test('removing a grant revokes the tokens on that project at once', async () => {
      const grant = `/v3/projects/${ids.project}/users/${ids.user}/roles/${ids.admin}`;
      const onProject = api.token({ user: ids.user, project: ids.project, roles: ['admin'] });
      const elsewhere = api.token({ user: ids.user, project: ids.other, roles: ['admin'] });
      await tick();
      assert.equal((await api.call('DELETE', grant, ADMIN)).status, 204);
      assert.equal((await api.call('GET', '/v3/users', onProject)).status, 401);
      assert.equal((await api.call('GET', '/v3/users', elsewhere)).status, 200);
      assert.equal(
        (await api.app.inject({ method: 'HEAD', url: grant, headers: { 'x-auth-token': ADMIN } }))
          .statusCode,
        404,
      );
      const rows = await api.db.query(
        'SELECT * FROM revocation_events WHERE user_id = ? AND project_id = ?',
        [ids.user, ids.project],
      );
      assert.equal(rows.length, 1);
    });

    test('roles: create, duplicate, built-ins kept, deleting a held role revokes', async () => {
      const names = (await api.call('GET', '/v3/roles', ADMIN)).body.roles as { name: string }[];
      assert.deepEqual(
        names.map((r) => r.name),
        ['admin', 'member', 'reader'],
      );
      const c = await api.call('POST', '/v3/roles', ADMIN, { role: { name: 'auditor' } });
      assert.equal(c.status, 201);
      const role = c.body.role as Record<string, unknown>;
      assert.deepEqual(role, {
        id: role.id,
        name: 'auditor',
        domain_id: null,
        description: '',
        options: {},
        links: { self: `${IDENTITY_URL}/v3/roles/${role.id}` },
      });
      await api.refused(
        'POST',
        '/v3/roles',
        ADMIN,
        { role: { name: 'auditor' } },
        409,
        'Conflict occurred attempting to store role - Duplicate entry found with name auditor.',
      );
      await api.refused(
        'DELETE',
        `/v3/roles/${ids.member}`,
        ADMIN,
        undefined,
        403,
        'The built-in role member cannot be deleted.',
      );
      await api.refused(
        'PATCH',
        `/v3/roles/${ids.admin}`,
        ADMIN,
        { role: { name: 'root' } },
        403,
        'The built-in role admin cannot be renamed.',
      );
      const inf = await api.call('GET', '/v3/role_inferences', ADMIN);
      const rules = (
        inf.body.role_inferences as { prior_role: { name: string }; implies: { name: string }[] }[]
      ).map((r) => [r.prior_role.name, r.implies.map((i) => i.name)]);
      assert.deepEqual(rules, [
        ['admin', ['member']],
        ['member', ['reader']],
      ]);
      await api.call('PUT', `/v3/projects/${ids.other}/users/${ids.user}/roles/${role.id}`, ADMIN);
      const t = api.token({ user: ids.user, project: ids.other, roles: ['admin'] });
      assert.equal((await api.call('GET', '/v3/users', t)).status, 200);
      await tick();
      assert.equal((await api.call('DELETE', `/v3/roles/${role.id}`, ADMIN)).status, 204);
      assert.equal((await api.call('GET', '/v3/users', t)).status, 401);
      assert.equal(
        (await api.call('GET', `/v3/roles/${role.id}`, ADMIN)).body.error?.message,
        `Could not find role: ${role.id}.`,
      );
    });
  });
}
