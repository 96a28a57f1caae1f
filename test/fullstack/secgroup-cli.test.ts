/**
 * Debian's openstack CLI against a real kumo-api process (token auth) on both engines:
 * the seed's three rules on `default` (`openstack security group rule create --protocol
 * icmp default`, tcp 22, tcp 80), a group of one's own with a remote-group rule, a port in
 * it, and the refusals (a duplicate rule, a group in use); and, with a compute agent on one
 * lab host, `server create --security-group` and `server add/remove security group`.
 *
 * Invariant under test: what the CLI prints agrees with what the HTTP API then returns,
 * and a command the API refuses fails and leaves the groups and rules as they were.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster, ovsOf } from '../helpers/cluster.ts';
import { uploadGuest, waitStatus } from '../helpers/compute.ts';
import { waitFor } from '../helpers/env.ts';
import { buildTestGuest } from '../helpers/guest.ts';
import { createLab, type Lab, type LabHost } from '../helpers/lab.ts';
import { os, osJson } from '../helpers/os-clients.ts';
import { neutron, type SecurityGroup, type SgPort, type SgRule } from '../helpers/sg-lab.ts';

/** The rule's filtering keys (the CLI prints `ethertype` as `ether_type`). */
const shape = (r: SgRule & { ether_type?: string }) => ({
  direction: r.direction,
  ethertype: r.ethertype ?? r.ether_type,
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

describe('openstack server create --security-group, server add/remove security group', {
  timeout: 300_000,
}, () => {
  let lab: Lab;
  let c: Cluster;
  let api: ReturnType<typeof neutron>;
  before(async () => {
    const guest = await buildTestGuest();
    lab = await createLab({ hosts: 1 });
    c = await Cluster.create('sqlite');
    await c.startApi();
    api = neutron(c);
    const h = lab.hosts[0] as LabHost;
    for (const kind of ['ovs', 'compute'] as const)
      c.startAgentOn(kind, `sg-${lab.prefix}-${h.name}`, ovsOf(h));
    await waitFor(
      'the compute agent alive',
      async () => {
        const res = await c.http('GET', '/v2.0/agents?binary=kumo-compute-agent&alive=true');
        return (res.body as { agents: unknown[] }).agents.length === 1;
      },
      30_000,
    );
    const images = await uploadGuest(c, guest);
    const flavor = { name: 'c1.guest', ram: 192, vcpus: 1, disk: 1, id: 'g1' };
    assert.equal((await c.http('POST', '/flavors', { flavor })).status, 200);
    await os(c, 'network create n1'.split(' '));
    await os(c, 'subnet create s1 --network n1 --subnet-range 10.0.0.0/24'.split(' '));
    await os(c, 'security group create web'.split(' '));
    await os(c, [
      ...'server create --flavor c1.guest --network n1 --security-group web --image'.split(' '),
      images.machine,
      'vm1',
    ]);
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test("the server's port follows its groups", async () => {
    const [vm] = await osJson<{ ID: string }[]>(c, 'server list --name vm1'.split(' '));
    await waitStatus(c, vm?.ID as string, 'ACTIVE', 240_000);
    const groupsOfPort = async () => {
      const [port] = await api.list<SgPort>('port', `?device_id=${vm?.ID}`);
      const all = await api.list<SecurityGroup>('security_group');
      return (port?.security_groups ?? []).map((id) => all.find((g) => g.id === id)?.name).sort();
    };
    assert.deepEqual(await groupsOfPort(), ['web']);
    await os(c, 'server add security group vm1 default'.split(' '));
    assert.deepEqual(await groupsOfPort(), ['default', 'web']);
    await os(c, 'server remove security group vm1 web'.split(' '));
    assert.deepEqual(await groupsOfPort(), ['default']);
    const missing = await c.openstack('server add security group vm1 nosuch'.split(' '));
    assert.notEqual(missing.code, 0);
    assert.deepEqual(await groupsOfPort(), ['default'], 'a refused add changes nothing');
  });
});
