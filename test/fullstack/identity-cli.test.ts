/**
 * Identity and projects end to end, with Debian's real `openstack` CLI (6.0) using password
 * auth and the catalog, as an operator's openrc sets it up: a real kumo-api process (its
 * service and identity listeners), users made by the real `kumo-manage bootstrap`.
 *
 * Invariants under test: each project sees only its own networks, ports, servers and
 * images, and both see and use a shared network; a reader cannot create; an expired,
 * revoked or tampered token is a 401; removing a user from its project takes its access
 * away at once; quotas refuse and nothing is created — every refusal is checked against a
 * listing taken before it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openKeyRing } from '../../api/identity/keys.ts';
import { newAuditId, signToken } from '../../api/identity/tokens.ts';
import { Cluster } from '../helpers/cluster.ts';
import { type Credentials, openstackAs, osJsonAs } from '../helpers/os-clients.ts';

type Named = { ID: string; Name: string };

const admin: Credentials = { user: 'admin', password: 'admin-secret-1', project: 'admin' };
const alice: Credentials = { user: 'alice', password: 'alice-secret-1', project: 'alpha' };
const bob: Credentials = { user: 'bob', password: 'bob-secret-1', project: 'beta' };
const carol: Credentials = { user: 'carol', password: 'carol-secret-1', project: 'alpha' };

describe('identity, projects and quotas through the openstack CLI', { timeout: 600_000 }, () => {
  let c: Cluster;
  let image: string;
  const names = async (who: Credentials, args: string[]) =>
    (await osJsonAs<Named[]>(c, who, args)).map((r) => r.Name).sort();
  const refused = async (who: Credentials, args: string[], pattern: RegExp) => {
    const r = await openstackAs(c, who, args);
    assert.notEqual(r.code, 0, `${who.user}: openstack ${args.join(' ')} should fail`);
    assert.match(r.stderr, pattern, `${who.user}: openstack ${args.join(' ')}`);
  };
  /** The service API with a raw token: the status only. */
  const statusWith = async (token: string, path = '/v2.0/networks') =>
    (await fetch(`${c.url}${path}`, { headers: { 'x-auth-token': token } })).status;
  const tokenOf = async (who: Credentials) =>
    await osJsonAs<{ id: string; project_id: string; user_id: string }>(c, who, ['token', 'issue']);

  before(async () => {
    c = await Cluster.create('sqlite');
    await c.startApi();
    await c.bootstrap(admin.user, admin.project, 'admin', admin.password);
    await c.bootstrap(alice.user, alice.project, 'member', alice.password);
    await c.bootstrap(bob.user, bob.project, 'member', bob.password);
    await c.bootstrap(carol.user, carol.project, 'reader', carol.password);
    image = join(c.dir.path, 'disk.raw');
    writeFileSync(image, Buffer.alloc(4096, 7));
  });
  after(async () => {
    await c?.cleanup();
  });

  test('each project sees only its own resources; a shared network is seen and used by both', async () => {
    await osJsonAs(c, admin, ['network', 'create', '--share', 'shared-net']);
    await osJsonAs(c, admin, [
      'subnet',
      'create',
      '--network',
      'shared-net',
      '--subnet-range',
      '10.50.0.0/24',
      'shared-sub',
    ]);
    for (const [who, p, cidr] of [
      [alice, 'a', '10.51.0.0/24'],
      [bob, 'b', '10.52.0.0/24'],
    ] as const) {
      await osJsonAs(c, who, ['network', 'create', `${p}-net`]);
      await osJsonAs(c, who, [
        'subnet',
        'create',
        '--network',
        `${p}-net`,
        '--subnet-range',
        cidr,
        `${p}-sub`,
      ]);
      await osJsonAs(c, who, ['port', 'create', '--network', `${p}-net`, `${p}-port`]);
      await osJsonAs(c, who, ['port', 'create', '--network', 'shared-net', `${p}-shared-port`]);
      await osJsonAs(c, who, [
        'image',
        'create',
        '--file',
        image,
        '--disk-format',
        'raw',
        '--container-format',
        'bare',
        `${p}-img`,
      ]);
      await osJsonAs(c, who, [
        'server',
        'create',
        '--flavor',
        'm1.tiny',
        '--image',
        `${p}-img`,
        '--network',
        `${p}-net`,
        `${p}-vm`,
      ]);
    }
    assert.deepEqual(await names(alice, ['network', 'list']), ['a-net', 'shared-net']);
    assert.deepEqual(await names(bob, ['network', 'list']), ['b-net', 'shared-net']);
    assert.deepEqual(await names(alice, ['port', 'list']), ['a-port', 'a-shared-port']);
    assert.deepEqual(await names(bob, ['port', 'list']), ['b-port', 'b-shared-port']);
    assert.deepEqual(await names(alice, ['image', 'list']), ['a-img']);
    assert.deepEqual(await names(bob, ['image', 'list']), ['b-img']);
    assert.deepEqual(await names(alice, ['server', 'list']), ['a-vm']);
    assert.deepEqual(await names(bob, ['server', 'list']), ['b-vm']);
    assert.deepEqual(await names(admin, ['server', 'list', '--all-projects']), ['a-vm', 'b-vm']);
    const aNet = (await osJsonAs<{ id: string }>(c, alice, ['network', 'show', 'a-net'])).id;
    await refused(bob, ['network', 'show', aNet], /No Network found|not found/i);
    await refused(bob, ['network', 'delete', aNet], /not found|Failed to delete/i);
    assert.deepEqual(await names(alice, ['network', 'list']), ['a-net', 'shared-net']);
  });

  test('a reader lists but cannot create, and its refusal changes nothing', async () => {
    const before = await names(admin, ['network', 'list']);
    assert.deepEqual(await names(carol, ['network', 'list']), ['a-net', 'shared-net']);
    await refused(
      carol,
      ['network', 'create', 'c-net'],
      /403|Forbidden|disallowed|not authorized/i,
    );
    await refused(
      carol,
      ['server', 'create', '--flavor', 'm1.tiny', '--image', 'a-img', '--network', 'a-net', 'c-vm'],
      /403|Forbidden|not authorized|disallowed/i,
    );
    assert.deepEqual(await names(admin, ['network', 'list']), before);
    assert.deepEqual(await names(alice, ['server', 'list']), ['a-vm']);
  });

  test('an expired, revoked or tampered token answers 401', async () => {
    const t = await tokenOf(alice);
    assert.equal(await statusWith(t.id), 200);
    const [payload, mac] = t.id.split('.') as [string, string];
    const forged = Buffer.from(
      Buffer.from(payload, 'base64url').toString().replace('"member"', '"admin"'),
    ).toString('base64url');
    assert.equal(await statusWith(`${forged}.${mac}`), 401);
    const challenged = await fetch(`${c.url}/v2.0/networks`, {
      headers: { 'x-auth-token': `${forged}.${mac}` },
    });
    assert.equal(
      challenged.headers.get('www-authenticate'),
      `Keystone uri="http://127.0.0.1:${c.identityPort}"`,
      "a 401 names Keystone's URL, as keystonemiddleware's does",
    );
    assert.equal(
      (await fetch(`${c.url}/v2.0/networks`, { headers: { 'x-auth-token': t.id } })).headers.get(
        'www-authenticate',
      ),
      null,
    );
    const ring = openKeyRing({ dir: join(c.dir.path, 'token-keys') });
    const past = Date.now() - 7_200_000;
    const expired = signToken(
      {
        userId: t.user_id,
        projectId: t.project_id,
        roles: ['member'],
        methods: ['password'],
        issuedAt: past,
        expiresAt: past + 3_600_000,
        auditIds: [newAuditId()],
      },
      ring.primary(),
    );
    assert.equal(await statusWith(expired), 401);
    const r = await openstackAs(c, alice, ['token', 'revoke', t.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await statusWith(t.id), 401);
  });

  test('quotas refuse over the limit and nothing is created', async () => {
    const set = await openstackAs(c, admin, [
      'quota',
      'set',
      '--networks',
      '2',
      '--instances',
      '1',
      'beta',
    ]);
    assert.equal(set.code, 0, set.stderr);
    const shown = await osJsonAs<Record<string, unknown>>(c, admin, ['quota', 'show', 'beta']);
    assert.equal(shown.networks, 2);
    assert.equal(shown.instances, 1);
    await osJsonAs(c, bob, ['network', 'create', 'b-net-2']);
    const nets = await names(bob, ['network', 'list']);
    await refused(bob, ['network', 'create', 'b-net-3'], /Quota exceeded/i);
    assert.deepEqual(await names(bob, ['network', 'list']), nets);
    await refused(
      bob,
      [
        'server',
        'create',
        '--flavor',
        'm1.tiny',
        '--image',
        'b-img',
        '--network',
        'b-net',
        'b-vm-2',
      ],
      /Quota exceeded/i,
    );
    assert.deepEqual(await names(bob, ['server', 'list']), ['b-vm']);
  });

  test('a user removed from its project loses access at once', async () => {
    const t = await tokenOf(alice);
    assert.equal(await statusWith(t.id), 200);
    const r = await openstackAs(c, admin, [
      'role',
      'remove',
      '--user',
      'alice',
      '--project',
      'alpha',
      'member',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await statusWith(t.id), 401);
    await refused(alice, ['network', 'list'], /401|authoriz|authenticat/i);
  });
});
