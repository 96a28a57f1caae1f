/**
 * Debian's `openstack` CLI (6.0) on Nova's key pairs, as project members use it after
 * `source openrc` (password auth on kumo-api's identity listener, endpoints from the
 * catalog; identity-auth-harness.ts runs both listeners in-process): `keypair create k1 >
 * k1.pem` (the private key printed once, and ssh-keygen derives the public key Kumo
 * shows from it), `keypair create --public-key FILE k2` (ssh-keygen's fingerprint),
 * `keypair list/show/delete`, another user seeing none of them, and `server create
 * --key-name k2 --user-data FILE --config-drive True` then `server show` with key_name and
 * config_drive. No compute host reports here, so the server ends in ERROR (no valid host):
 * what it was created with is shown all the same.
 *
 * Invariant under test: the client's exit code and output agree with what the database
 * holds; a refused command (duplicate name, unknown key_name) leaves the tables as they
 * were. One engine (SQLite): both engines are api-keypairs*.test.ts's concern.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunResult } from '../helpers/cluster.ts';
import { tempDir } from '../helpers/env.ts';
import { seedUser } from '../helpers/identity.ts';
import { ok, seededCli } from '../helpers/os-clients.ts';
import { sshKey } from './api-keypairs-helpers.ts';
import { identityStack } from './identity-auth-harness.ts';

type Who = 'demo' | 'alt';
type Obj = Record<string, unknown>;

describe('the openstack CLI on key pairs and servers booted with them', () => {
  const s = identityStack('sqlite');
  const dir = tempDir();
  after(() => dir.cleanup());
  const users: Record<Who, string> = { demo: '', alt: '' };
  before(async () => {
    for (const name of ['demo', 'alt'] as const)
      users[name] = (
        await seedUser(s.db, { name, password: `${name}-pw`, project: name, roles: ['member'] })
      ).userId;
  });

  const run = (who: Who, ...args: string[]): Promise<RunResult> =>
    seededCli(s.main).run(who, ...args);
  const json = <T = Obj>(who: Who, ...args: string[]): Promise<T> =>
    seededCli(s.main).json<T>(who, ...args);
  /** A command the client must fail: its stderr. */
  const refused = (who: Who, ...args: string[]): Promise<string> =>
    seededCli(s.main).refused(who, ...args);
  const rows = async (sql: string) => (await s.db.query(sql)).map((r) => ({ ...r }));
  const keypairRows = () => rows('SELECT user_id, name, fingerprint FROM keypairs ORDER BY seq');
  const serverRows = () =>
    rows('SELECT id, key_name, key_data, user_data, config_drive FROM instances ORDER BY id');
  const imported = sshKey(dir.path, 'k2', 'ed25519');

  test('keypair create prints the private key once; --public-key imports; list, show, delete', async () => {
    const created = await run('demo', 'keypair', 'create', 'k1');
    const pem = ok(created, 'keypair create k1');
    assert.match(pem, /^-----BEGIN RSA PRIVATE KEY-----\n[\s\S]+-----END RSA PRIVATE KEY-----\n*$/);
    const pemFile = join(dir.path, 'k1.pem');
    writeFileSync(pemFile, pem, { mode: 0o600 });
    const derived = execFileSync('ssh-keygen', ['-y', '-f', pemFile], { encoding: 'utf8' }).trim();
    const pub = ok(await run('demo', 'keypair', 'show', '--public-key', 'k1'), 'show --public-key');
    assert.equal(pub.trim().split(' ').slice(0, 2).join(' '), derived);

    const k2 = await json(
      'demo',
      'keypair',
      'create',
      '--public-key',
      `${imported.file}.pub`,
      'k2',
    );
    assert.equal(k2.fingerprint, imported.fingerprint);
    const listed = await json<Obj[]>('demo', 'keypair', 'list');
    assert.deepEqual(listed.map((k) => k.Name).sort(), ['k1', 'k2']);
    const shown = await json('demo', 'keypair', 'show', 'k2');
    assert.equal(shown.fingerprint, imported.fingerprint);
    assert.equal(shown.user_id, users.demo);
    assert.deepEqual(await json<Obj[]>('alt', 'keypair', 'list'), []);
    assert.match(await refused('alt', 'keypair', 'show', 'k2'), /No Keypair found for k2/);

    const before = await keypairRows();
    const dup = await refused(
      'demo',
      'keypair',
      'create',
      '--public-key',
      `${imported.file}.pub`,
      'k2',
    );
    assert.match(dup, /Key pair 'k2' already exists/);
    assert.deepEqual(await keypairRows(), before);

    ok(await run('demo', 'keypair', 'delete', 'k1'), 'keypair delete');
    assert.deepEqual(
      (await keypairRows()).map((r) => [r.user_id, r.name]),
      [[users.demo, 'k2']],
    );
  });

  test('server create --key-name --user-data --config-drive True; server show shows them', async () => {
    const disk = join(dir.path, 'disk.raw');
    writeFileSync(disk, Buffer.alloc(1024, 7));
    const image = await json(
      'demo',
      'image',
      'create',
      '--disk-format',
      'raw',
      '--container-format',
      'bare',
      '--file',
      disk,
      'cirros',
    );
    await json('demo', 'network', 'create', 'net');
    await json(
      'demo',
      'subnet',
      'create',
      '--network',
      'net',
      '--subnet-range',
      '10.9.0.0/24',
      'sub',
    );
    const userData = join(dir.path, 'user-data');
    writeFileSync(userData, '#cloud-config\nhostname: from-user-data\n');
    const boot = (name: string, key: string) => [
      'server',
      'create',
      '--flavor',
      'm1.tiny',
      '--image',
      String(image.id),
      '--network',
      'net',
      '--key-name',
      key,
      '--user-data',
      userData,
      '--config-drive',
      'True',
      name,
    ];
    const before = await serverRows();
    assert.match(await refused('demo', ...boot('vm-0', 'nope')), /Invalid key_name provided/);
    assert.deepEqual(await serverRows(), before);

    const made = await json('demo', ...boot('vm-1', 'k2'));
    const shown = await json('demo', 'server', 'show', String(made.id));
    assert.equal(shown.key_name, 'k2');
    assert.equal(shown.config_drive, 'True');
    const [row] = await serverRows();
    assert.deepEqual(
      { ...row, config_drive: Boolean(row?.config_drive) },
      {
        id: made.id,
        key_name: 'k2',
        key_data: readFileSync(`${imported.file}.pub`, 'utf8'),
        user_data: readFileSync(userData).toString('base64'),
        config_drive: true,
      },
    );
  });
});
