/**
 * Keystone v3 admin API, users, on both database engines: passwords stored as scrypt
 * hashes and never shown, self-service (a user reads itself, lists its projects, changes
 * its password with the original, no token needed), and the revocations a password
 * change, a disable and a delete record — each refuses the tokens issued before it at
 * once. Every refused request changes nothing (snapshot).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { verifyPassword } from '../../api/identity/passwords.ts';
import { IDENTITY_URL, identityApi } from '../helpers/identity-admin.ts';
import { hexId } from '../helpers/tokens.ts';

const ADMIN = 'identity-admin-token';
const tick = () => new Promise((r) => setTimeout(r, 5));
const deny = (rule: string) =>
  `You are not authorized to perform the requested action: identity:${rule}.`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`identity admin: users, roles, assignments on ${engine}`, () => {
    const api = identityApi(engine, { adminToken: ADMIN });
    const ids = { project: '', other: '', user: '', member: '', admin: '', reader: '' };

    before(async () => {
      ids.project = await api.create('project', { name: 'p1' });
      ids.other = await api.create('project', { name: 'p2' });
      Object.assign(ids, await api.builtInRoles());
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
      await api.refused(
        'POST',
        '/v3/users',
        ADMIN,
        { user: { name: 'alice' } },
        409,
        'Conflict occurred attempting to store user - Duplicate entry found with name alice at domain ID default.',
      );
      await api.refused(
        'POST',
        '/v3/users',
        ADMIN,
        { user: { name: 'bob', password: 5 } },
        400,
        /^Invalid input for field 'password'/,
      );
      await api.refused(
        'POST',
        '/v3/users',
        ADMIN,
        { user: { name: 'bob', default_project_id: 'nope' } },
        400,
        /^Invalid input for field 'default_project_id'/,
      );
      await api.refused(
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
      await api.refused('GET', `/v3/users/${hexId()}`, own, undefined, 403, deny('get_user'));
      await api.refused('GET', '/v3/users', own, undefined, 403, deny('list_users'));
      await api.refused(
        'POST',
        '/v3/users',
        own,
        { user: { name: 'eve' } },
        403,
        deny('create_user'),
      );
      await api.refused(
        'PATCH',
        `/v3/users/${ids.user}`,
        own,
        { user: { enabled: false } },
        403,
        deny('update_user'),
      );
      await api.refused('GET', '/v3/roles', own, undefined, 403, deny('list_roles'));
      await api.refused(
        'GET',
        '/v3/role_assignments',
        own,
        undefined,
        403,
        deny('list_role_assignments'),
      );
      await api.refused(
        'PUT',
        `/v3/projects/${ids.project}/users/${ids.user}/roles/${ids.admin}`,
        own,
        undefined,
        403,
        deny('create_grant'),
      );
      const missing = hexId();
      await api.refused(
        'GET',
        `/v3/users/${missing}`,
        ADMIN,
        undefined,
        404,
        `Could not find user: ${missing}.`,
      );
    });

    test('password: PATCH and self-service change revoke; a wrong original is a 401', async () => {
      const old = api.token({ user: ids.user, project: ids.project, roles: ['member'] });
      await api.refused(
        'POST',
        `/v3/users/${ids.user}/password`,
        undefined,
        { user: { password: 'new1', original_password: 'wrong' } },
        401,
        'Error when changing user password: Invalid user / password',
      );
      await api.refused(
        'POST',
        `/v3/users/${hexId()}/password`,
        undefined,
        { user: { password: 'new1', original_password: 's3cret' } },
        401,
        'Error when changing user password: Invalid user / password',
      );
      await api.refused(
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
      const id = await api.create('user', { name: 'carol' });
      await api.call('PUT', `/v3/projects/${ids.other}/users/${id}/roles/${ids.member}`, ADMIN);
      const t1 = api.token({ user: id, project: ids.other, roles: ['member'] });
      await tick();
      const off = await api.call('PATCH', `/v3/users/${id}`, ADMIN, { user: { enabled: false } });
      assert.equal((off.body.user as { enabled: boolean }).enabled, false);
      assert.equal((await api.call('GET', `/v3/users/${id}`, t1)).status, 401);
      await api.refused(
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
      await api.refused(
        'DELETE',
        `/v3/users/${id}`,
        ADMIN,
        undefined,
        404,
        `Could not find user: ${id}.`,
      );
    });
  });
}
