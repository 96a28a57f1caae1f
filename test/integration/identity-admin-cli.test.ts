/**
 * Debian's `openstack` CLI (6.0) against a listening identity app, with the admin token
 * (`--os-auth-type admin_token`, which needs no auth routes): project create, list, show,
 * set and delete, user create with a password and a default project, user list, role add,
 * role list, role assignment list --names, domain list — each client call's exit code
 * checked and its JSON output compared with what the database holds. One engine (SQLite):
 * the routes' behaviour on both engines is the other identity-admin suites' concern.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { verifyPassword } from '../../api/identity/passwords.ts';
import { runCommand } from '../helpers/cluster.ts';
import { identityApi } from '../helpers/identity-admin.ts';
import { ok } from '../helpers/os-clients.ts';

const ADMIN = 'identity-cli-admin-token';

describe('the openstack CLI against the identity admin API', () => {
  const api = identityApi('sqlite', { adminToken: ADMIN, listen: true });
  const openstack = async (...args: string[]) => {
    const auth = [
      '--os-auth-type',
      'admin_token',
      '--os-endpoint',
      `http://127.0.0.1:${api.port}/v3`,
      '--os-token',
      ADMIN,
      '--os-identity-api-version',
      '3',
    ];
    return ok(await runCommand(['openstack', ...auth, ...args]), args.join(' '));
  };
  const json = async <T>(...args: string[]) =>
    JSON.parse(await openstack(...args, '-f', 'json')) as T;

  test('projects: create, list, show, set, delete', async () => {
    const p = await json<Record<string, unknown>>(
      'project',
      'create',
      '--description',
      'Demo project',
      'demo',
    );
    assert.equal(p.name, 'demo');
    assert.equal(p.domain_id, 'default');
    assert.equal(p.enabled, true);
    assert.equal(p.description, 'Demo project');
    await json('project', 'create', 'spare');
    const list = await json<{ Name: string }[]>('project', 'list');
    assert.deepEqual(list.map((x) => x.Name).sort(), ['demo', 'spare']);
    const shown = await json<{ id: string }>('project', 'show', 'demo');
    assert.equal(shown.id, p.id);
    await openstack('project', 'set', '--disable', '--description', 'changed', 'spare');
    const spare = await json<{ enabled: boolean; description: string }>('project', 'show', 'spare');
    assert.deepEqual([spare.enabled, spare.description], [false, 'changed']);
    await openstack('project', 'delete', 'spare');
    const rows = await api.db.query<{ name: string }>('SELECT name FROM projects ORDER BY name');
    assert.deepEqual(
      rows.map((r) => r.name),
      ['demo'],
    );
  });

  test('users and roles: create with password, list, role add, assignment list --names', async () => {
    const u = await json<Record<string, unknown>>(
      'user',
      'create',
      '--password',
      'pw-1',
      '--project',
      'demo',
      '--email',
      'd@x.test',
      'dana',
    );
    assert.equal(u.name, 'dana');
    assert.equal(u.email, 'd@x.test');
    assert.equal(u.password, undefined);
    const [row] = await api.db.query<{ password_hash: string; default_project_id: string }>(
      'SELECT password_hash, default_project_id FROM users WHERE id = ?',
      [u.id as string],
    );
    assert.ok(await verifyPassword('pw-1', row?.password_hash ?? null));
    const [demo] = await api.db.query<{ id: string }>(
      "SELECT id FROM projects WHERE name = 'demo'",
    );
    assert.equal(row?.default_project_id, demo?.id);
    const users = await json<{ Name: string }[]>('user', 'list');
    assert.deepEqual(
      users.map((x) => x.Name),
      ['dana'],
    );
    const roles = await json<{ Name: string }[]>('role', 'list');
    assert.deepEqual(roles.map((x) => x.Name).sort(), ['admin', 'member', 'reader']);
    await openstack('role', 'add', '--user', 'dana', '--project', 'demo', 'member');
    const names = await json<Record<string, string>[]>(
      'role',
      'assignment',
      'list',
      '--names',
      '--project',
      'demo',
    );
    assert.equal(names.length, 1);
    assert.equal(names[0]?.Role, 'member');
    assert.equal(names[0]?.User, 'dana@Default');
    assert.equal(names[0]?.Project, 'demo@Default');
    const byId = await json<Record<string, string>[]>(
      'role',
      'assignment',
      'list',
      '--user',
      'dana',
    );
    assert.equal(byId[0]?.User, u.id);
    await openstack('role', 'remove', '--user', 'dana', '--project', 'demo', 'member');
    assert.deepEqual(await api.db.query('SELECT * FROM role_assignments'), []);
  });

  test('domain list', async () => {
    const domains = await json<{ ID: string; Name: string; Enabled: boolean }[]>('domain', 'list');
    assert.deepEqual(
      domains.map((d) => [d.ID, d.Name, d.Enabled]),
      [['default', 'Default', true]],
    );
  });
});
