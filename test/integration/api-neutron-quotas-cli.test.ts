/**
 * Neutron's quotas through Debian's real `openstack` CLI (6.0) with password auth and the
 * catalog, against a real kumo-api process: `quota set --networks/--subnets/--ports`,
 * `quota show` (a project's, the caller's own, `--default`), `quota list --network` and
 * `quota list --network --detail`. (OSC 6.0's `quota show` has no `--network` option: it
 * shows Nova's and Neutron's limits together.) One engine, SQLite: the routes on both
 * engines are api-neutron-quotas.test.ts's concern.
 *
 * Invariant under test: the CLI reads back exactly what it set, usage counts what the
 * project owns, and a refused set (bad value, limit below usage) changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../helpers/cluster.ts';
import { type Credentials, openstackAs, osJsonAs } from '../helpers/os-clients.ts';

const admin: Credentials = { user: 'admin', password: 'admin-quota-1', project: 'admin' };
const bob: Credentials = { user: 'bob', password: 'bob-quota-1', project: 'beta' };

type Shown = Record<string, unknown>;
type Detail = { Resource: string; 'In Use': number; Reserved: number; Limit: number };

describe('Neutron quotas through the openstack CLI', { timeout: 120_000 }, () => {
  let c: Cluster;
  const network = (s: Shown) => [s.networks, s.subnets, s.ports];
  const refused = async (args: string[], pattern: RegExp) => {
    const r = await openstackAs(c, admin, args);
    assert.notEqual(r.code, 0, `openstack ${args.join(' ')} should fail`);
    assert.match(r.stderr, pattern);
  };

  before(async () => {
    c = await Cluster.create('sqlite');
    await c.startApi();
    await c.bootstrap(admin.user, admin.project, 'admin', admin.password);
    await c.bootstrap(bob.user, bob.project, 'member', bob.password);
  });
  after(async () => {
    await c?.cleanup();
  });

  test('quota set, show, show --default, list --network', async () => {
    const set = await openstackAs(c, admin, [
      'quota',
      'set',
      '--networks',
      '7',
      '--subnets',
      '3',
      '--ports',
      '-1',
      'beta',
    ]);
    assert.equal(set.code, 0, set.stderr);
    const shown = await osJsonAs<Shown>(c, admin, ['quota', 'show', 'beta']);
    assert.deepEqual(network(shown), [7, 3, -1]);
    assert.equal(shown.project_name, 'beta');
    const own = await osJsonAs<Shown>(c, bob, ['quota', 'show']);
    assert.deepEqual(network(own), [7, 3, -1], 'a member reads its own project’s quotas');
    const dflt = await osJsonAs<Shown>(c, admin, ['quota', 'show', '--default', 'beta']);
    assert.deepEqual(network(dflt), [100, 100, 500]);
    const listed = await osJsonAs<Shown[]>(c, admin, ['quota', 'list', '--network']);
    assert.deepEqual(
      listed.map((q) => [q['Project ID'], q.Networks, q.Subnets, q.Ports, q.Routers]),
      [[shown.project, 7, 3, -1, 10]],
      'only the project with limits of its own is listed',
    );
  });

  test('quota list --network --detail counts usage; refused sets change nothing', async () => {
    await osJsonAs(c, bob, ['network', 'create', 'b-net']);
    const detail = async () =>
      await osJsonAs<Detail[]>(c, admin, [
        'quota',
        'list',
        '--network',
        '--detail',
        '--project',
        'beta',
      ]);
    const before = await detail();
    const networks = before.find((d) => d.Resource === 'networks');
    assert.deepEqual(networks, { Resource: 'networks', 'In Use': 1, Reserved: 0, Limit: 7 });
    await refused(['quota', 'set', '--networks', '-2', 'beta'], /'-2' is too small/);
    await refused(
      ['quota', 'set', '--networks', '0', '--check-limit', 'beta'],
      /Quota limit 0 for network must be greater than or equal to already used 1/,
    );
    assert.deepEqual(await detail(), before, 'the refused sets changed nothing');
  });
});
