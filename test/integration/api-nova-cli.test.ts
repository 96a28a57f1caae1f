/**
 * Debian's `openstack` CLI (6.0) on Nova's quotas and flavor access, as an operator and
 * project members use it after `source openrc`: password auth on kumo-api's identity
 * listener, every endpoint from the catalog (identity-auth-harness.ts runs both listeners
 * in-process). Admin: `quota show/set` (compute side), `quota show --default`, `flavor
 * create --private`, `flavor set/unset --project`; members: `quota show`, `flavor list`
 * and `flavor show` of their own project, and the refusals of `quota set` and `flavor
 * create`, each leaving the tables as they were; a quota the admin set refusing `server
 * create` with Nova's message and nothing created.
 *
 * Invariant under test: the client's exit code and JSON output agree with what the
 * database holds. One engine (SQLite): the routes' behaviour on both engines is the
 * api-nova-policy / api-nova-quotas / api-flavor-access suites' concern.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import type { RunResult } from '../helpers/cluster.ts';
import { seedUser } from '../helpers/identity.ts';
import { ok, seededCli } from '../helpers/os-clients.ts';
import { identityStack } from './identity-auth-harness.ts';

type Who = 'admin' | 'demo' | 'alt';
type Obj = Record<string, unknown>;

describe('the openstack CLI on Nova quotas and flavor access', () => {
  const s = identityStack('sqlite');
  const project: Record<Who, string> = { admin: '', demo: '', alt: '' };
  before(async () => {
    const seed = (name: Who, roles: string[]) =>
      seedUser(s.db, { name, password: `${name}-pw`, project: name, roles });
    project.admin = (await seed('admin', ['admin'])).projectId;
    project.demo = (await seed('demo', ['member'])).projectId;
    project.alt = (await seed('alt', ['member'])).projectId;
  });

  /** `openstack <args>` as `who` with its openrc: password auth, endpoints from the catalog. */
  const run = (who: Who, ...args: string[]): Promise<RunResult> =>
    seededCli(s.main).run(who, ...args);
  const json = <T = Obj>(who: Who, ...args: string[]): Promise<T> =>
    seededCli(s.main).json<T>(who, ...args);
  /** A command the client must fail: its stderr. */
  const refused = (who: Who, ...args: string[]): Promise<string> =>
    seededCli(s.main).refused(who, ...args);
  const pick = (q: Obj) => [q.instances, q.cores, q.ram, q['key-pairs']];
  /** Rows as plain objects (the drivers' rows have no prototype), for deepEqual. */
  const rows = async (sql: string) => (await s.db.query(sql)).map((r) => ({ ...r }));
  const quotaRows = () => rows('SELECT * FROM quotas ORDER BY project_id, resource');
  const flavorRows = () => rows('SELECT * FROM flavors ORDER BY id');
  const accessRows = () => rows('SELECT * FROM flavor_access ORDER BY 1, 2');
  const serverRows = () => rows('SELECT id, name, project_id FROM instances ORDER BY id');
  const flavorNames = async (who: Who) =>
    (await json<{ Name: string }[]>(who, 'flavor', 'list')).map((f) => f.Name).sort();

  test('quota show and set, compute side: the admin sets, the member reads its own', async () => {
    assert.deepEqual(pick(await json('admin', 'quota', 'show', 'demo')), [10, 20, 51200, 100]);
    const args = ['--instances', '3', '--cores', '7', '--ram', '4096', '--key-pairs', '5'];
    ok(await run('admin', 'quota', 'set', ...args, 'demo'), 'quota set');
    assert.deepEqual(await quotaRows(), [
      { project_id: project.demo, resource: 'cores', hard_limit: 7 },
      { project_id: project.demo, resource: 'instances', hard_limit: 3 },
      { project_id: project.demo, resource: 'key_pairs', hard_limit: 5 },
      { project_id: project.demo, resource: 'ram', hard_limit: 4096 },
    ]);
    const shown = await json('admin', 'quota', 'show', 'demo');
    assert.deepEqual([shown.project, ...pick(shown)], [project.demo, 3, 7, 4096, 5]);
    const defaults = await json('admin', 'quota', 'show', '--default', 'demo');
    assert.deepEqual(pick(defaults), [10, 20, 51200, 100]);
    const own = await json('demo', 'quota', 'show');
    assert.deepEqual([own.project, ...pick(own)], [project.demo, 3, 7, 4096, 5]);
    assert.deepEqual(pick(await json('alt', 'quota', 'show')), [10, 20, 51200, 100]);
  });

  test("a member's quota set is refused and changes nothing", async () => {
    const before = await quotaRows();
    const err = await refused('demo', 'quota', 'set', '--instances', '50', project.demo);
    assert.match(err, /Policy doesn't allow os_compute_api:os-quota-sets:update/);
    assert.deepEqual(await quotaRows(), before);
  });

  test('flavor create --private, set --project, and flavor list as each member', async () => {
    const created = await json('admin', ...flavorCreate('priv'), '--private');
    assert.equal(created['os-flavor-access:is_public'], false);
    assert.deepEqual(await flavorNames('demo'), PUBLIC);
    ok(await run('admin', 'flavor', 'set', '--project', 'demo', 'priv'), 'flavor set');
    assert.deepEqual(await accessRows(), [{ flavor_id: created.id, project_id: project.demo }]);
    const admin = await json('admin', 'flavor', 'show', 'priv');
    assert.deepEqual(admin.access_project_ids, [project.demo]);
    assert.deepEqual(await flavorNames('demo'), [...PUBLIC, 'priv'].sort());
    assert.equal((await json('demo', 'flavor', 'show', 'priv')).id, created.id);
    assert.deepEqual(await flavorNames('alt'), PUBLIC);
    assert.match(await refused('alt', 'flavor', 'show', 'priv'), /No Flavor found for priv/);
    assert.match(await refused('alt', 'flavor', 'show', String(created.id)), /No Flavor found/);
    ok(await run('admin', 'flavor', 'unset', '--project', 'demo', 'priv'), 'flavor unset');
    assert.deepEqual(await accessRows(), []);
    assert.deepEqual(await flavorNames('demo'), PUBLIC);
  });

  test("a member's flavor create and flavor set --project are refused and change nothing", async () => {
    ok(await run('admin', 'flavor', 'set', '--project', 'demo', 'priv'), 'flavor set');
    const before = [await flavorRows(), await accessRows()];
    const create = await refused('demo', ...flavorCreate('mine'));
    assert.match(create, /Policy doesn't allow os_compute_api:os-flavor-manage:create/);
    const set = await refused('demo', 'flavor', 'set', '--project', project.alt, 'priv');
    assert.match(set, /Policy doesn't allow os_compute_api:os-flavor-access:add_tenant_access/);
    assert.deepEqual([await flavorRows(), await accessRows()], before);
  });

  test("the quota the admin set refuses server create with Nova's message", async () => {
    const file = join(s.keysDir, '..', 'disk.raw');
    writeFileSync(file, Buffer.alloc(1024, 7));
    const image = await json(
      'admin',
      'image',
      'create',
      '--public',
      '--disk-format',
      'raw',
      '--container-format',
      'bare',
      '--file',
      file,
      'cirros',
    );
    ok(await run('admin', 'quota', 'set', '--instances', '1', 'demo'), 'quota set');
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
    const boot = (name: string) => [
      'server',
      'create',
      '--flavor',
      'm1.tiny',
      '--image',
      String(image.id),
      '--network',
      'net',
      name,
    ];
    const first = await json('demo', ...boot('vm-1'));
    assert.equal(first.name, 'vm-1');
    const before = await serverRows();
    const err = await refused('demo', ...boot('vm-2'));
    assert.match(
      err,
      /Quota exceeded for instances: Requested 1, but already used 1 of 1 instances/,
    );
    assert.match(err, /HTTP 403/);
    assert.deepEqual(await serverRows(), before);
    assert.deepEqual(before, [{ id: first.id, name: 'vm-1', project_id: project.demo }]);
  });
});

const PUBLIC = ['m1.large', 'm1.medium', 'm1.small', 'm1.tiny'];
const flavorCreate = (name: string) => [
  'flavor',
  'create',
  '--ram',
  '512',
  '--disk',
  '1',
  '--vcpus',
  '1',
  name,
];
