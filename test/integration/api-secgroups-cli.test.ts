/**
 * Security groups through Debian's real `openstack` CLI (6.0) against a real kumo-api
 * process: `security group create/list/show/set/delete` and `security group rule create/
 * list/show/delete`, with the seed's three rules on the default group (ICMP, TCP 22, TCP
 * 80). One engine, SQLite: both engines are api-secgroups.test.ts's concern.
 *
 * Invariant under test: the CLI reads back what it set, and a refused duplicate rule
 * changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../helpers/cluster.ts';
import { os, osJson } from '../helpers/os-clients.ts';

type Shown = Record<string, unknown>;

describe('security groups through the openstack CLI', { timeout: 120_000 }, () => {
  let c: Cluster;
  const rulesOf = async (group: string) =>
    osJson<Shown[]>(c, ['security', 'group', 'rule', 'list', group]);

  before(async () => {
    c = await Cluster.create('sqlite');
    await c.startApi();
  });
  after(async () => {
    await c?.cleanup();
  });

  test('create, list, show, set, delete a group', async () => {
    const created = await osJson<Shown>(c, ['security', 'group', 'create', 'web']);
    assert.equal(created.name, 'web');
    const rules = created.rules as Shown[];
    assert.deepEqual(rules.map((r) => [r.direction, r.ethertype]).sort(), [
      ['egress', 'IPv4'],
      ['egress', 'IPv6'],
    ]);
    const listed = await osJson<Shown[]>(c, ['security', 'group', 'list']);
    assert.deepEqual(listed.map((g) => g.Name).sort(), ['default', 'web']);
    await os(c, ['security', 'group', 'set', '--name', 'web2', '--description', 'd2', 'web']);
    const shown = await osJson<Shown>(c, ['security', 'group', 'show', 'web2']);
    assert.deepEqual([shown.id, shown.name, shown.description], [created.id, 'web2', 'd2']);
    await os(c, ['security', 'group', 'delete', 'web2']);
    const after = await osJson<Shown[]>(c, ['security', 'group', 'list']);
    assert.deepEqual(
      after.map((g) => g.Name),
      ['default'],
    );
  });

  test("the seed's rules on the default group; a duplicate fails and changes nothing", async () => {
    const icmp = await osJson<Shown>(c, [
      'security',
      'group',
      'rule',
      'create',
      '--protocol',
      'icmp',
      'default',
    ]);
    assert.deepEqual(
      [icmp.protocol, icmp.direction, icmp.remote_ip_prefix],
      ['icmp', 'ingress', '0.0.0.0/0'],
    );
    const ssh = await osJson<Shown>(c, [
      'security',
      'group',
      'rule',
      'create',
      '--protocol',
      'tcp',
      '--dst-port',
      '22',
      'default',
    ]);
    assert.deepEqual([ssh.protocol, ssh.port_range_min, ssh.port_range_max], ['tcp', 22, 22]);
    // Without --protocol the network CLI sends no protocol: Neutron's refusal, as there.
    const bare = await rulesOf('default');
    const noProto = await c.openstack([
      'security',
      'group',
      'rule',
      'create',
      '--dst-port',
      '80',
      'default',
    ]);
    assert.notEqual(noProto.code, 0);
    assert.match(noProto.stderr, /Must also specify protocol if port range is given\./);
    assert.deepEqual(await rulesOf('default'), bare);
    const http = await osJson<Shown>(c, [
      'security',
      'group',
      'rule',
      'create',
      '--protocol',
      'tcp',
      '--dst-port',
      '80',
      'default',
    ]);
    assert.deepEqual([http.protocol, http.port_range_min, http.port_range_max], ['tcp', 80, 80]);
    const before = await rulesOf('default');
    assert.equal(before.length, 7);
    const dup = await c.openstack([
      'security',
      'group',
      'rule',
      'create',
      '--protocol',
      'tcp',
      '--dst-port',
      '22',
      'default',
    ]);
    assert.notEqual(dup.code, 0);
    assert.match(
      dup.stderr,
      new RegExp(`Security group rule already exists. Rule id is ${ssh.id}`),
    );
    assert.deepEqual(await rulesOf('default'), before);
    const shown = await osJson<Shown>(c, ['security', 'group', 'rule', 'show', String(http.id)]);
    assert.equal(shown.id, http.id);
    await os(c, ['security', 'group', 'rule', 'delete', String(http.id)]);
    const left = await rulesOf('default');
    assert.deepEqual(
      left.map((r) => r.ID).sort(),
      before
        .map((r) => r.ID)
        .filter((id) => id !== http.id)
        .sort(),
    );
  });
});
