/**
 * Debian's openstack CLI against a real kumo-api process (token auth) on both engines:
 * the seed's three rules on `default` (`openstack security group rule create --protocol
 * icmp default`, tcp 22, tcp 80), a group of one's own with a remote-group rule, a port in
 * it, and the refusals (a duplicate rule, a group in use).
 *
 * Invariant under test: what the CLI prints agrees with what the HTTP API then returns,
 * and a command the API refuses fails and leaves the groups and rules as they were.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../helpers/cluster.ts';
import { os, osJson } from '../helpers/os-clients.ts';
import { neutron, type SecurityGroup, type SgPort, type SgRule } from '../helpers/sg-lab.ts';

/** The rule's filtering keys, as the API holds them. */
const shape = (r: SgRule) => ({
  direction: r.direction,
  ethertype: r.ethertype,
  protocol: r.protocol,
  port_range_min: r.port_range_min,
  port_range_max: r.port_range_max,
  remote_ip_prefix: r.remote_ip_prefix,
  remote_group_id: r.remote_group_id,
});

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`openstack security group CLI against kumo-api (${engine})`, {
    timeout: 120_000,
  }, () => {
    let c: Cluster;
    let api: ReturnType<typeof neutron>;
    before(async () => {
      c = await Cluster.create(engine);
      await c.startApi();
      api = neutron(c);
    });
    after(async () => {
      await c?.cleanup();
    });
    const state = async () => ({
      groups: await api.list<SecurityGroup>('security_group'),
      rules: await api.list<SgRule>('security_group_rule'),
    });

    test("the seed's rules on the default group through the CLI", async () => {
      const listed = await osJson<{ ID: string; Name: string }[]>(c, [
        ...'security group'.split(' '),
        'list',
      ]);
      assert.deepEqual(
        listed.map((g) => g.Name),
        ['default'],
        'the first list makes the default group',
      );
      const made = [
        ['--protocol', 'icmp'],
        ['--protocol', 'tcp', '--dst-port', '22'],
        ['--protocol', 'tcp', '--dst-port', '80'],
      ];
      const rules: SgRule[] = [];
      for (const args of made)
        rules.push(
          await osJson<SgRule>(c, [...'security group rule create'.split(' '), ...args, 'default']),
        );
      assert.deepEqual(
        rules.map((r) => [r.protocol, r.port_range_min, r.port_range_max, r.remote_ip_prefix]),
        [
          ['icmp', null, null, '0.0.0.0/0'],
          ['tcp', 22, 22, '0.0.0.0/0'],
          ['tcp', 80, 80, '0.0.0.0/0'],
        ],
      );
      for (const r of rules) {
        assert.equal(r.security_group_id, listed[0]?.ID);
        assert.deepEqual(shape(await api.show<SgRule>('security_group_rule', r.id)), shape(r));
      }
      const table = await osJson<{ ID: string }[]>(c, [
        ...'security group rule list'.split(' '),
        'default',
      ]);
      assert.equal(table.length, 7, 'four default rules and the three new ones');
      for (const r of rules)
        assert.ok(
          table.some((row) => row.ID === r.id),
          r.id,
        );
    });

    test('a duplicate rule fails with Neutron’s message and changes nothing', async () => {
      const before = await state();
      const dup = await c.openstack(
        'security group rule create --protocol tcp --dst-port 22 default'.split(' '),
      );
      assert.notEqual(dup.code, 0);
      assert.match(dup.stderr, /Security group rule already exists/);
      assert.deepEqual(await state(), before);
    });

    test('a group of its own with a remote-group rule, a port in it, and deleting it', async () => {
      const web = await osJson<SecurityGroup>(c, [
        ...'security group create'.split(' '),
        'web',
        '--description',
        'web servers',
      ]);
      assert.equal(web.name, 'web');
      const rule = await osJson<SgRule>(c, [
        ...'security group rule create'.split(' '),
        '--protocol',
        'tcp',
        '--dst-port',
        '8080:8081',
        '--remote-group',
        'default',
        'web',
      ]);
      const dflt = (await api.list<SecurityGroup>('security_group', '?name=default'))[0];
      assert.deepEqual(
        [rule.port_range_min, rule.port_range_max, rule.remote_group_id, rule.remote_ip_prefix],
        [8080, 8081, dflt?.id, null],
      );
      await os(c, [...'network create'.split(' '), 'n1']);
      await os(c, [
        ...'subnet create'.split(' '),
        's1',
        '--network',
        'n1',
        '--subnet-range',
        '10.0.0.0/24',
      ]);
      const port = await osJson<SgPort>(c, [
        ...'port create'.split(' '),
        'p1',
        '--network',
        'n1',
        '--security-group',
        'web',
      ]);
      assert.deepEqual((await api.show<SgPort>('port', port.id)).security_groups, [web.id]);
      const before = await state();
      const inUse = await c.openstack([...'security group delete'.split(' '), 'web']);
      assert.notEqual(inUse.code, 0);
      assert.match(inUse.stderr, new RegExp(`Security Group ${web.id} in use`));
      assert.deepEqual(await state(), before);
      await os(c, [
        ...'port set'.split(' '),
        '--no-security-group',
        '--security-group',
        'default',
        'p1',
      ]);
      assert.deepEqual((await api.show<SgPort>('port', port.id)).security_groups, [dflt?.id]);
      await os(c, [...'security group delete'.split(' '), 'web']);
      assert.deepEqual(
        (await state()).groups.map((g) => g.name),
        ['default'],
      );
      assert.ok(
        (await state()).rules.every((r) => r.security_group_id === dflt?.id),
        "the group's rules went with it",
      );
    });
  });
}
