/**
 * Debian's `openstack` CLI (6.0, python3-cinderclient 9.1 behind `openstack volume …`) on
 * Cinder's API as project members and an operator use it after `source openrc`: password
 * auth on kumo-api's identity listener, the volumev3 endpoint found in the catalog
 * (`/volume/v3/<project id>`, substituted per token). `volume create/list/show/set/
 * delete`, `volume snapshot create/list/delete`, `volume type list`, `quota show/set` on
 * the volume side, and the refusals (a bad size, an unknown type, deleting a volume with
 * a snapshot, another project's volume) with the client's exit code and nothing written.
 *
 * The storage host is not part of this suite: a created volume goes to `error` (no volume
 * agent reports capacity here) and `serve` makes it available on a host, as the API does
 * once the agent reports it served; the agent and report path are other suites'.
 *
 * Invariant under test: the client's exit code and JSON output agree with the database.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { seedUser } from '../helpers/identity.ts';
import { seededCli } from '../helpers/os-clients.ts';
import { identityStack } from './identity-auth-harness.ts';

type Who = 'admin' | 'demo' | 'alt';
type Obj = Record<string, unknown>;

describe('the openstack CLI on Cinder volumes, snapshots, types and quotas', {
  timeout: 300_000,
}, () => {
  const s = identityStack('sqlite');
  const project: Record<Who, string> = { admin: '', demo: '', alt: '' };
  before(async () => {
    const seed = (name: Who, roles: string[]) =>
      seedUser(s.db, { name, password: `${name}-pw`, project: name, roles });
    project.admin = (await seed('admin', ['admin'])).projectId;
    project.demo = (await seed('demo', ['member'])).projectId;
    project.alt = (await seed('alt', ['member'])).projectId;
  });
  const cli = () => seededCli(s.main);
  const json = <T = Obj>(who: Who, ...args: string[]) => cli().json<T>(who, ...args);
  const refused = (who: Who, ...args: string[]) => cli().refused(who, ...args);
  const rows = async (sql: string) => (await s.db.query(sql)).map((r) => ({ ...r }));
  const volumeRows = () =>
    rows('SELECT id, name, size, status, project_id FROM volumes ORDER BY id');
  const serve = (id: string) =>
    s.db.query("UPDATE volumes SET host = 'storage1', status = 'available' WHERE id = ?", [id]);

  test('volume type list: lvm and file', async () => {
    const types = await json<{ Name: string }[]>('demo', 'volume', 'type', 'list');
    assert.deepEqual(types.map((t) => t.Name).sort(), ['file', 'lvm']);
  });

  test('volume create, list, show, set; refusals write nothing', async () => {
    const made = await json(
      'demo',
      'volume',
      'create',
      '--size',
      '2',
      '--description',
      'first',
      '--property',
      'tier=gold',
      'v1',
    );
    assert.equal(made.name, 'v1');
    assert.equal(made.size, 2);
    assert.equal(made.type, 'lvm');
    const id = made.id as string;
    await serve(id);
    const shown = await json('demo', 'volume', 'show', 'v1');
    assert.equal(shown.id, id);
    assert.equal(shown.status, 'available');
    assert.equal(shown.description, 'first');
    assert.deepEqual(shown.properties, { tier: 'gold' });
    await cli().run('demo', 'volume', 'set', '--name', 'v1b', '--description', 'renamed', id);
    const after = await json('demo', 'volume', 'show', id);
    assert.deepEqual([after.name, after.description], ['v1b', 'renamed']);
    const listed = await json<Obj[]>('demo', 'volume', 'list');
    assert.deepEqual(
      listed.map((v) => [v.ID, v.Name, v.Status, v.Size]),
      [[id, 'v1b', 'available', 2]],
    );
    const before = await volumeRows();
    assert.match(await refused('demo', 'volume', 'create', '--size', '-1', 'neg'), /size/);
    assert.match(
      await refused('demo', 'volume', 'create', '--size', '1', '--type', 'nosuch', 'bad'),
      /nosuch/,
    );
    assert.match(await refused('alt', 'volume', 'show', id), /No volume with a name or ID/);
    assert.deepEqual(await volumeRows(), before);
  });

  test('volume snapshot create, list; a volume with a snapshot is not deleted; delete', async () => {
    const v = await json('demo', 'volume', 'create', '--size', '1', 'snapped');
    await serve(v.id as string);
    const snap = await json('demo', 'volume', 'snapshot', 'create', '--volume', 'snapped', 'snap1');
    assert.equal(snap.status, 'creating');
    assert.equal(snap.volume_id, v.id);
    const snaps = await json<Obj[]>('demo', 'volume', 'snapshot', 'list');
    assert.deepEqual(
      snaps.map((x) => x.Name),
      ['snap1'],
    );
    assert.match(await refused('demo', 'volume', 'delete', 'snapped'), /dependent snapshots/);
    assert.equal(
      (await rows(`SELECT status FROM volumes WHERE id = '${v.id}'`))[0]?.status,
      'available',
    );
    await s.db.query("UPDATE volume_snapshots SET status = 'available'");
    const del = await cli().run('demo', 'volume', 'snapshot', 'delete', 'snap1');
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await rows('SELECT name, status FROM volume_snapshots'), [
      { name: 'snap1', status: 'deleting' },
    ]);
    await s.db.query('DELETE FROM volume_snapshots');
    const vdel = await cli().run('demo', 'volume', 'delete', 'snapped');
    assert.equal(vdel.code, 0, vdel.stderr);
    assert.equal(
      (await rows(`SELECT status FROM volumes WHERE id = '${v.id}'`))[0]?.status,
      'deleting',
    );
  });

  test('quota show and set, volume side: the admin sets, the member hits the limit', async () => {
    const q = await json('admin', 'quota', 'show', 'demo');
    assert.equal(q.volumes, 10);
    const set = await cli().run(
      'admin',
      'quota',
      'set',
      '--volumes',
      '2',
      '--gigabytes',
      '50',
      'demo',
    );
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(
      await rows(
        `SELECT resource, hard_limit FROM quotas WHERE project_id = '${project.demo}' ORDER BY resource`,
      ),
      [
        { resource: 'gigabytes', hard_limit: 50 },
        { resource: 'volumes', hard_limit: 2 },
      ],
    );
    const used = Number(
      (await rows(`SELECT COUNT(*) AS n FROM volumes WHERE project_id = '${project.demo}'`))[0]?.n,
    );
    assert.ok(used >= 2, `demo has ${used} volumes`);
    assert.match(
      await refused('demo', 'volume', 'create', '--size', '1', 'over'),
      /VolumeLimitExceeded/,
    );
  });
});
