/**
 * kumo-manage as a process (bin/kumo-manage.ts) with a temporary kumo.conf on SQLite:
 * bootstrap creates the Default-domain project, user (scrypt password) and grant, says
 * so, and a second run changes nothing; a new password is set and revokes the user's
 * tokens; token-keys setup and rotate lay the repository out as keys.ts reads it; usage
 * and file errors exit 2 and 1 with one line on stderr.
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openDb } from '../../api/db/index.ts';
import { verifyPassword } from '../../api/identity/passwords.ts';
import { runCommand } from '../helpers/cluster.ts';
import { REPO, tempDir } from '../helpers/env.ts';
import { identitySnapshot } from '../helpers/identity-admin.ts';

describe('kumo-manage', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const conf = join(dir.path, 'kumo.conf');
  writeFileSync(conf, `[DEFAULT]\nstate_path = ${dir.path}\n\n[identity]\nmax_active_keys = 3\n`);
  const pw = join(dir.path, 'pw');
  const manage = (...args: string[]) =>
    runCommand([
      process.execPath,
      join(REPO, 'bin', 'kumo-manage.ts'),
      '--config-file',
      conf,
      ...args,
    ]);
  const bootstrap = (user: string, project: string, role: string, file = pw) =>
    manage(
      'bootstrap',
      '--user',
      user,
      '--project',
      project,
      '--role',
      role,
      '--password-file',
      file,
    );
  const boot = () => bootstrap('admin', 'admin', 'admin');

  async function withDb<T>(fn: (db: ReturnType<typeof openDb>) => Promise<T>): Promise<T> {
    const db = openDb({ engine: 'sqlite', path: join(dir.path, 'kumo.sqlite') });
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  }

  test('bootstrap creates the project, user and grant; a second run changes nothing', async () => {
    writeFileSync(pw, 'first-pw\n');
    const r = await boot();
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^created project admin \([0-9a-f]{32}\)$/);
    assert.match(lines[1] ?? '', /^created user admin \([0-9a-f]{32}\) with the given password$/);
    assert.match(lines[2] ?? '', /^role admin exists \(/);
    assert.equal(lines[3], 'granted role admin to user admin on project admin');
    const before = await withDb(async (db) => {
      const [row] = await db.query<{ password_hash: string; domain_id: string }>(
        "SELECT password_hash, domain_id FROM users WHERE name = 'admin'",
      );
      assert.equal(row?.domain_id, 'default');
      assert.ok(await verifyPassword('first-pw', row?.password_hash ?? null));
      const grants = await db.query(
        `SELECT r.name FROM role_assignments a JOIN roles r ON r.id = a.role_id
          JOIN projects p ON p.id = a.target_id WHERE p.name = 'admin'`,
      );
      assert.deepEqual(
        grants.map((g) => ({ ...g })),
        [{ name: 'admin' }],
      );
      return identitySnapshot(db);
    });
    const again = await boot();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /project admin exists/);
    assert.match(again.stdout, /user admin exists \([0-9a-f]{32}\), password unchanged/);
    assert.match(again.stdout, /role admin already granted to admin on admin/);
    assert.deepEqual(await withDb(identitySnapshot), before);
  });

  test('a new password is set and revokes the earlier tokens; a new role is created', async () => {
    writeFileSync(pw, 'second-pw');
    const r = await bootstrap('admin', 'demo', 'operator');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created project demo/);
    assert.match(r.stdout, /password set; its earlier tokens are revoked/);
    assert.match(r.stdout, /created role operator/);
    await withDb(async (db) => {
      const [u] = await db.query<{ id: string; password_hash: string }>(
        "SELECT id, password_hash FROM users WHERE name = 'admin'",
      );
      assert.ok(await verifyPassword('second-pw', u?.password_hash ?? null));
      const events = await db.query('SELECT user_id, project_id FROM revocation_events');
      assert.deepEqual(
        events.map((e) => ({ ...e })),
        [{ user_id: u?.id, project_id: null }],
      );
    });
  });

  test('token-keys setup, then rotate: staged 0, the highest primary, max_active kept', async () => {
    const keys = join(dir.path, 'token-keys');
    const ls = () => readdirSync(keys).sort();
    const setup = await manage('token-keys', 'setup');
    assert.equal(setup.code, 0, setup.stderr);
    assert.equal(setup.stdout, `token keys ready in ${keys}\n`);
    assert.deepEqual(ls(), ['0', '1']);
    const rot = await manage('token-keys', 'rotate');
    assert.equal(rot.stdout, `rotated token keys in ${keys}: key 2 is now primary\n`);
    assert.deepEqual(ls(), ['0', '1', '2']);
    await manage('token-keys', 'rotate');
    assert.deepEqual(ls(), ['0', '2', '3'], 'max_active_keys = 3: staged, primary, one secondary');
  });

  test('errors: usage exits 2, a missing file or bad config exits 1, each with one line', async () => {
    const usage = await manage('bootstrap', '--user', 'u');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^kumo-manage: required option '--project <name>' not specified\n$/);
    const missing = await bootstrap('u', 'p', 'member', join(dir.path, 'none'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^kumo-manage: ENOENT/);
    writeFileSync(join(dir.path, 'empty'), '\n');
    const empty = await bootstrap('u', 'p', 'member', join(dir.path, 'empty'));
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /the password file .* is empty/);
    const bad = await runCommand([
      process.execPath,
      join(REPO, 'bin', 'kumo-manage.ts'),
      '--config-file',
      join(dir.path, 'nope.conf'),
      'token-keys',
      'setup',
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^kumo-manage: cannot read config file/);
  });
});
