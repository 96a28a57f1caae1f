/**
 * Keystone v3 admin API, domains and projects, on both database engines: Keystone's shapes
 * and codes (201 views with links, 409 duplicate names, 404 and 403 wording, 400 naming
 * the field), the admin-only policy (a member may read only its own project), and the
 * revocations a project's disable and delete record: a token issued before is refused at
 * once, one issued after works. Every refused request changes nothing (snapshot).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IDENTITY_URL, identityApi } from '../helpers/identity-admin.ts';
import { hexId } from '../helpers/tokens.ts';

const ADMIN = 'identity-admin-token';

const tick = () => new Promise((r) => setTimeout(r, 5));

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`identity admin: domains and projects on ${engine}`, () => {
    const api = identityApi(engine, { adminToken: ADMIN });

    test('create, show, list with filters: Keystone views', async () => {
      const c = await api.call('POST', '/v3/projects', ADMIN, {
        project: { name: 'alpha', description: 'first' },
      });
      assert.equal(c.status, 201);
      const p = c.body.project as Record<string, unknown>;
      assert.match(p.id as string, /^[0-9a-f]{32}$/);
      assert.deepEqual(p, {
        id: p.id,
        name: 'alpha',
        domain_id: 'default',
        description: 'first',
        enabled: true,
        parent_id: 'default',
        is_domain: false,
        tags: [],
        options: {},
        links: { self: `${IDENTITY_URL}/v3/projects/${p.id}` },
      });
      await api.call('POST', '/v3/projects', ADMIN, { project: { name: 'beta', enabled: false } });
      const show = await api.call('GET', `/v3/projects/${p.id}`, ADMIN);
      assert.deepEqual(show.body, { project: p });
      const byName = await api.call('GET', '/v3/projects?name=alpha', ADMIN);
      assert.deepEqual(byName.body, {
        projects: [p],
        links: { self: `${IDENTITY_URL}/v3/projects?name=alpha`, previous: null, next: null },
      });
      const disabled = await api.call('GET', '/v3/projects?enabled=false', ADMIN);
      assert.deepEqual(
        (disabled.body.projects as { name: string }[]).map((x) => x.name),
        ['beta'],
      );
      const inDefault = await api.call('GET', '/v3/projects?domain_id=default', ADMIN);
      assert.deepEqual(
        (inDefault.body.projects as { name: string }[]).map((x) => x.name),
        ['alpha', 'beta'],
      );
      const elsewhere = await api.call('GET', `/v3/projects?domain_id=${hexId()}`, ADMIN);
      assert.deepEqual(elsewhere.body.projects, []);
    });

    test('refusals change nothing: duplicate, bad input, missing, unknown domain', async () => {
      await api.refused(
        'POST',
        '/v3/projects',
        ADMIN,
        { project: { name: 'alpha' } },
        409,
        'Conflict occurred attempting to store project - Duplicate entry found with name alpha at domain ID default.',
      );
      await api.refused(
        'POST',
        '/v3/projects',
        ADMIN,
        { project: { name: 7 } },
        400,
        /^Invalid input for field 'name': 7 is not of type 'string'/,
      );
      await api.refused(
        'POST',
        '/v3/projects',
        ADMIN,
        { project: {} },
        400,
        /^Invalid input for field 'name'/,
      );
      await api.refused(
        'POST',
        '/v3/projects',
        ADMIN,
        { name: 'x' },
        400,
        /^Invalid input for field 'project'/,
      );
      await api.refused(
        'POST',
        '/v3/projects',
        ADMIN,
        { project: { name: 'x', enabled: 'yes' } },
        400,
        /field 'enabled'/,
      );
      const missing = hexId();
      await api.refused(
        'GET',
        `/v3/projects/${missing}`,
        ADMIN,
        undefined,
        404,
        `Could not find project: ${missing}.`,
      );
      await api.refused(
        'PATCH',
        `/v3/projects/${missing}`,
        ADMIN,
        { project: { name: 'y' } },
        404,
        `Could not find project: ${missing}.`,
      );
      await api.refused(
        'DELETE',
        `/v3/projects/${missing}`,
        ADMIN,
        undefined,
        404,
        `Could not find project: ${missing}.`,
      );
      await api.refused(
        'POST',
        '/v3/projects',
        ADMIN,
        { project: { name: 'z', domain_id: 'nodomain' } },
        404,
        'Could not find domain: nodomain.',
      );
      const [beta] = (await api.call('GET', '/v3/projects?name=beta', ADMIN)).body.projects as {
        id: string;
      }[];
      await api.refused(
        'PATCH',
        `/v3/projects/${beta?.id}`,
        ADMIN,
        { project: { name: 'alpha' } },
        409,
        /Duplicate entry found with name alpha/,
      );
    });

    test('policy: non-admins are refused, a member reads only its own project', async () => {
      const [alpha] = (await api.call('GET', '/v3/projects?name=alpha', ADMIN)).body.projects as {
        id: string;
      }[];
      const id = alpha?.id as string;
      const member = api.token({ user: hexId(), project: id, roles: ['member'] });
      const deny = (rule: string) =>
        `You are not authorized to perform the requested action: identity:${rule}.`;
      await api.refused('GET', '/v3/projects', member, undefined, 403, deny('list_projects'));
      await api.refused(
        'POST',
        '/v3/projects',
        member,
        { project: { name: 'mine' } },
        403,
        deny('create_project'),
      );
      await api.refused(
        'PATCH',
        `/v3/projects/${id}`,
        member,
        { project: { enabled: false } },
        403,
        deny('update_project'),
      );
      await api.refused(
        'DELETE',
        `/v3/projects/${id}`,
        member,
        undefined,
        403,
        deny('delete_project'),
      );
      await api.refused(
        'GET',
        `/v3/projects/${hexId()}`,
        member,
        undefined,
        403,
        deny('get_project'),
      );
      await api.refused('GET', '/v3/domains', member, undefined, 403, deny('list_domains'));
      const own = await api.call('GET', `/v3/projects/${id}`, member);
      assert.equal(own.status, 200);
      assert.equal((own.body.project as { name: string }).name, 'alpha');
      const projectAdmin = api.token({ user: hexId(), project: id, roles: ['admin'] });
      assert.equal((await api.call('GET', '/v3/projects', projectAdmin)).status, 200);
      const none = await api.call('GET', '/v3/projects', undefined);
      assert.equal(none.status, 401);
    });

    test('update; disabling revokes the project tokens issued before, at once', async () => {
      const [alpha] = (await api.call('GET', '/v3/projects?name=alpha', ADMIN)).body.projects as {
        id: string;
      }[];
      const id = alpha?.id as string;
      const old = api.token({ user: hexId(), project: id, roles: ['member'] });
      assert.equal((await api.call('GET', `/v3/projects/${id}`, old)).status, 200);
      const renamed = await api.call('PATCH', `/v3/projects/${id}`, ADMIN, {
        project: { name: 'alpha2', description: 'renamed' },
      });
      assert.equal(renamed.status, 200);
      assert.equal((renamed.body.project as { name: string }).name, 'alpha2');
      assert.equal(
        (await api.call('GET', `/v3/projects/${id}`, old)).status,
        200,
        'a rename revokes nothing',
      );
      await tick();
      const off = await api.call('PATCH', `/v3/projects/${id}`, ADMIN, {
        project: { enabled: false },
      });
      assert.equal((off.body.project as { enabled: boolean }).enabled, false);
      assert.equal((await api.call('GET', `/v3/projects/${id}`, old)).status, 401);
      await tick();
      const fresh = api.token({ user: hexId(), project: id, roles: ['member'] });
      assert.equal((await api.call('GET', `/v3/projects/${id}`, fresh)).status, 200);
      await api.refused(
        'PATCH',
        `/v3/projects/${id}`,
        ADMIN,
        { project: { domain_id: 'x' } },
        400,
        /field 'domain_id'/,
      );
    });

    test('delete: assignments and quota rows go, its tokens are revoked', async () => {
      const c = await api.call('POST', '/v3/projects', ADMIN, { project: { name: 'doomed' } });
      const id = (c.body.project as { id: string }).id;
      const u = await api.call('POST', '/v3/users', ADMIN, { user: { name: 'dweller' } });
      const uid = (u.body.user as { id: string }).id;
      const member = (await api.call('GET', '/v3/roles?name=member', ADMIN)).body.roles as {
        id: string;
      }[];
      const grant = `/v3/projects/${id}/users/${uid}/roles/${member[0]?.id}`;
      assert.equal((await api.call('PUT', grant, ADMIN)).status, 204);
      await api.db.query('INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)', [
        id,
        'network',
        3,
      ]);
      const token = api.token({ user: uid, project: id, roles: ['member'] });
      await tick();
      assert.equal((await api.call('DELETE', `/v3/projects/${id}`, ADMIN)).status, 204);
      assert.equal((await api.call('GET', `/v3/projects/${id}`, ADMIN)).status, 404);
      assert.deepEqual(
        await api.db.query('SELECT * FROM role_assignments WHERE target_id = ?', [id]),
        [],
      );
      assert.deepEqual(await api.db.query('SELECT * FROM quotas WHERE project_id = ?', [id]), []);
      assert.equal((await api.call('GET', `/v3/users/${uid}`, token)).status, 401);
    });

    test('domains: CRUD, filters, delete only when disabled, never the default', async () => {
      const list = await api.call('GET', '/v3/domains', ADMIN);
      assert.deepEqual(list.body.domains, [
        {
          id: 'default',
          name: 'Default',
          description: 'The default domain',
          enabled: true,
          tags: [],
          options: {},
          links: { self: `${IDENTITY_URL}/v3/domains/default` },
        },
      ]);
      const c = await api.call('POST', '/v3/domains', ADMIN, { domain: { name: 'Other' } });
      assert.equal(c.status, 201);
      const id = (c.body.domain as { id: string }).id;
      await api.refused(
        'POST',
        '/v3/domains',
        ADMIN,
        { domain: { name: 'Other' } },
        409,
        'Conflict occurred attempting to store domain - Duplicate entry found with name Other.',
      );
      const byName = await api.call('GET', '/v3/domains?name=Other', ADMIN);
      assert.deepEqual(
        (byName.body.domains as { id: string }[]).map((d) => d.id),
        [id],
      );
      const p = await api.call('POST', '/v3/projects', ADMIN, {
        project: { name: 'alpha', domain_id: id },
      });
      assert.equal(p.status, 201, 'names are unique per domain only');
      const pid = (p.body.project as { id: string }).id;
      await api.refused(
        'DELETE',
        `/v3/domains/${id}`,
        ADMIN,
        undefined,
        403,
        'Cannot delete a domain that is enabled, please disable it first.',
      );
      await api.refused(
        'DELETE',
        '/v3/domains/default',
        ADMIN,
        undefined,
        403,
        'Cannot delete the default domain.',
      );
      await api.refused(
        'PATCH',
        '/v3/domains/default',
        ADMIN,
        { domain: { enabled: false } },
        403,
        'Cannot disable the default domain.',
      );
      const token = api.token({ user: hexId(), project: pid, roles: ['member'] });
      await tick();
      const off = await api.call('PATCH', `/v3/domains/${id}`, ADMIN, {
        domain: { enabled: false },
      });
      assert.equal((off.body.domain as { enabled: boolean }).enabled, false);
      assert.equal((await api.call('GET', `/v3/projects/${pid}`, token)).status, 401);
      const disabled = await api.call('GET', '/v3/domains?enabled=false', ADMIN);
      assert.deepEqual(
        (disabled.body.domains as { id: string }[]).map((d) => d.id),
        [id],
      );
      assert.equal((await api.call('DELETE', `/v3/domains/${id}`, ADMIN)).status, 204);
      assert.equal((await api.call('GET', `/v3/projects/${pid}`, ADMIN)).status, 404);
      const gone = await api.call('GET', `/v3/domains/${id}`, ADMIN);
      assert.equal(gone.body.error?.message, `Could not find domain: ${id}.`);
    });
  });
}
