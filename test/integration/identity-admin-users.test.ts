/**
 * Keystone v3 admin API, users, roles and role assignments, on both database engines:
 * passwords stored as scrypt hashes and never shown, self-service (a user reads itself,
 * lists its projects, changes its password with the original), grants and the
 * role-assignment list (filters, effective, include_names), and the revocations a password
 * change, a disable, a delete, a removed grant and a deleted role record — each refuses
 * the tokens issued before it at once. Every refused request changes nothing (snapshot).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { verifyPassword } from '../../api/identity/passwords.ts';
import { IDENTITY_URL, identityApi, identitySnapshot } from '../helpers/identity-admin.ts';
import { hexId } from '../helpers/tokens.ts';

const ADMIN = 'identity-admin-token';
const tick = () => new Promise((r) => setTimeout(r, 5));
const deny = (rule: string) =>
  `You are not authorized to perform the requested action: identity:${rule}.`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`identity admin: users, roles, assignments on ${engine}`, () => {
    const api = identityApi(engine, { adminToken: ADMIN });
    const ids = { project: '', other: '', user: '', member: '', admin: '', reader: '' };

    async function refused(
      method: 'POST' | 'PATCH' | 'DELETE' | 'GET' | 'PUT',
      url: string,
      token: string | undefined,
      body: unknown,
      status: number,
      message: string | RegExp,
    ) {
      const before = await identitySnapshot(api.db);
      const r = await api.call(method, url, token, body);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error?.code, status);
      if (typeof message === 'string') assert.equal(r.body.error?.message, message);
      else assert.match(r.body.error?.message ?? '', message);
      assert.deepEqual(await identitySnapshot(api.db), before);
    }

    const idOf = (r: { body: Record<string, unknown> }, key: string) =>
      (r.body[key] as { id: string }).id;

    before(async () => {
      ids.project = idOf(
        await api.call('POST', '/v3/projects', ADMIN, { project: { name: 'p1' } }),
        'project',
      );
      ids.other = idOf(
        await api.call('POST', '/v3/projects', ADMIN, { project: { name: 'p2' } }),
        'project',
      );
      const roles = (await api.call('GET', '/v3/roles', ADMIN)).body.roles as {
        id: string;
        name: string;
      }[];
      for (const r of roles) if (r.name in ids) ids[r.name as 'member'] = r.id;
    });

    test('create: 201, no password in the view, an scrypt hash stored', async () => {
      const c = await api.call('POST', '/v3/users', ADMIN, {
        user: {
          name: 'alice',
          password: 's3cret',
          default_project_id: ids.project,
          email: 'a@x.test',
        },
      });
      assert.equal(c.status, 201);
      const u = c.body.user as Record<string, unknown>;
      ids.user = u.id as string;
      assert.deepEqual(u, {
        id: ids.user,
        name: 'alice',
        domain_id: 'default',
        enabled: true,
        password_expires_at: null,
        options: {},
        default_project_id: ids.project,
        email: 'a@x.test',
        links: { self: `${IDENTITY_URL}/v3/users/${ids.user}` },
      });
      const [row] = await api.db.query<{ password_hash: string; password_changed_at: string }>(
        'SELECT password_hash, password_changed_at FROM users WHERE id = ?',
        [ids.user],
      );
      assert.match(row?.password_hash ?? '', /^scrypt\$/);
      assert.ok(await verifyPassword('s3cret', row?.password_hash ?? null));
      assert.ok(row?.password_changed_at);
      const list = await api.call('GET', '/v3/users?name=alice', ADMIN);
      assert.deepEqual(list.body.users, [u]);
      assert.deepEqual((await api.call('GET', '/v3/users?enabled=false', ADMIN)).body.users, []);
      await refused(
        'POST',
        '/v3/users',
        ADMIN,
        { user: { name: 'alice' } },
        409,
        'Conflict occurred attempting to store user - Duplicate entry found with name alice at domain ID default.',
      );
      await refused(
        'POST',
        '/v3/users',
        ADMIN,
        { user: { name: 'bob', password: 5 } },
        400,
        /^Invalid input for field 'password'/,
      );
      await refused(
        'POST',
        '/v3/users',
        ADMIN,
        { user: { name: 'bob', default_project_id: 'nope' } },
        400,
        /^Invalid input for field 'default_project_id'/,
      );
      await refused(
        'POST',
        '/v3/users',
        ADMIN,
        { user: { name: '' } },
        400,
        /^Invalid input for field 'name'/,
      );
    });

    test('self-service: read itself, list its projects; others are refused', async () => {
      const own = api.token({ user: ids.user, project: ids.project, roles: ['member'] });
      assert.equal((await api.call('GET', `/v3/users/${ids.user}`, own)).status, 200);
      const none = await api.call('GET', `/v3/users/${ids.user}/projects`, own);
      assert.deepEqual(none.body.projects, []);
      await refused('GET', `/v3/users/${hexId()}`, own, undefined, 403, deny('get_user'));
      await refused('GET', '/v3/users', own, undefined, 403, deny('list_users'));
      await refused('POST', '/v3/users', own, { user: { name: 'eve' } }, 403, deny('create_user'));
      await refused(
        'PATCH',
        `/v3/users/${ids.user}`,
        own,
        { user: { enabled: false } },
        403,
        deny('update_user'),
      );
      await refused('GET', '/v3/roles', own, undefined, 403, deny('list_roles'));
      await refused(
        'GET',
        '/v3/role_assignments',
        own,
        undefined,
        403,
        deny('list_role_assignments'),
      );
      await refused(
        'PUT',
        `/v3/projects/${ids.project}/users/${ids.user}/roles/${ids.admin}`,
        own,
        undefined,
        403,
        deny('create_grant'),
      );
      const missing = hexId();
      await refused(
        'GET',
        `/v3/users/${missing}`,
        ADMIN,
        undefined,
        404,
        `Could not find user: ${missing}.`,
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
      await refused(
        'PUT',
        `/v3/projects/${ids.project}/users/${ids.user}/roles/nope`,
        ADMIN,
        undefined,
        404,
        'Could not find role: nope.',
      );
      await refused(
        'PUT',
        `/v3/projects/nope/users/${ids.user}/roles/${ids.admin}`,
        ADMIN,
        undefined,
        404,
        'Could not find project: nope.',
      );
      await refused(
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

    test('password: PATCH and self-service change revoke; a wrong original is a 401', async () => {
      const old = api.token({ user: ids.user, project: ids.project, roles: ['member'] });
      await refused(
        'POST',
        `/v3/users/${ids.user}/password`,
        undefined,
        { user: { password: 'new1', original_password: 'wrong' } },
        401,
        'Error when changing user password: Invalid user / password',
      );
      await refused(
        'POST',
        `/v3/users/${hexId()}/password`,
        undefined,
        { user: { password: 'new1', original_password: 's3cret' } },
        401,
        'Error when changing user password: Invalid user / password',
      );
      await refused(
        'POST',
        `/v3/users/${ids.user}/password`,
        undefined,
        { user: { password: 'new1' } },
        400,
        /field 'original_password'/,
      );
      await tick();
      const changed = await api.call('POST', `/v3/users/${ids.user}/password`, undefined, {
        user: { password: 'new1', original_password: 's3cret' },
      });
      assert.equal(changed.status, 204);
      assert.equal((await api.call('GET', `/v3/users/${ids.user}`, old)).status, 401);
      const hash = async () =>
        (
          await api.db.query<{ h: string }>('SELECT password_hash AS h FROM users WHERE id = ?', [
            ids.user,
          ])
        )[0]?.h ?? null;
      assert.ok(await verifyPassword('new1', await hash()));
      await tick();
      const mid = api.token({ user: ids.user, project: ids.project, roles: ['member'] });
      assert.equal((await api.call('GET', `/v3/users/${ids.user}`, mid)).status, 200);
      await tick();
      const p = await api.call('PATCH', `/v3/users/${ids.user}`, ADMIN, {
        user: { password: 'new2', description: 'ops' },
      });
      assert.equal(p.status, 200);
      assert.equal((p.body.user as { description: string }).description, 'ops');
      assert.equal((await api.call('GET', `/v3/users/${ids.user}`, mid)).status, 401);
      assert.ok(await verifyPassword('new2', await hash()));
    });

    test('disable and delete revoke; a deleted user loses its assignments', async () => {
      const u = await api.call('POST', '/v3/users', ADMIN, { user: { name: 'carol' } });
      const id = idOf(u, 'user');
      await api.call('PUT', `/v3/projects/${ids.other}/users/${id}/roles/${ids.member}`, ADMIN);
      const t1 = api.token({ user: id, project: ids.other, roles: ['member'] });
      await tick();
      const off = await api.call('PATCH', `/v3/users/${id}`, ADMIN, { user: { enabled: false } });
      assert.equal((off.body.user as { enabled: boolean }).enabled, false);
      assert.equal((await api.call('GET', `/v3/users/${id}`, t1)).status, 401);
      await refused(
        'POST',
        `/v3/users/${id}/password`,
        undefined,
        { user: { password: 'a', original_password: '' } },
        401,
        /Invalid user \/ password/,
      );
      await api.call('PATCH', `/v3/users/${id}`, ADMIN, { user: { enabled: true } });
      await tick();
      const t2 = api.token({ user: id, project: ids.other, roles: ['member'] });
      assert.equal((await api.call('GET', `/v3/users/${id}`, t2)).status, 200);
      await tick();
      assert.equal((await api.call('DELETE', `/v3/users/${id}`, ADMIN)).status, 204);
      assert.equal((await api.call('GET', `/v3/users/${id}`, t2)).status, 401);
      assert.deepEqual(
        await api.db.query('SELECT * FROM role_assignments WHERE user_id = ?', [id]),
        [],
      );
      await refused(
        'DELETE',
        `/v3/users/${id}`,
        ADMIN,
        undefined,
        404,
        `Could not find user: ${id}.`,
      );
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
      await refused(
        'POST',
        '/v3/roles',
        ADMIN,
        { role: { name: 'auditor' } },
        409,
        'Conflict occurred attempting to store role - Duplicate entry found with name auditor.',
      );
      await refused(
        'DELETE',
        `/v3/roles/${ids.member}`,
        ADMIN,
        undefined,
        403,
        'The built-in role member cannot be deleted.',
      );
      await refused(
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
