/**
 * Nova's security groups on Kumo's ports, on both engines with a real broker
 * (api-servers-harness.ts): POST /servers `security_groups` resolved by name or id in the
 * server's project and put on the ports it makes (default alone: Neutron's default; a
 * network without port security refuses named groups, so the build is ERROR);
 * add/removeSecurityGroup change every port of the server and the column; the
 * os-security-groups proxy's shapes. Groups are made by SQL (the group API is another
 * suite's); the hints are the sg-rpc suite's.
 *
 * Invariant under test: a refused request changes no instance, port or binding.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { insertStarterRules } from '../../api/db/default-sg.ts';
import { getInstanceRow } from '../../api/db/servers.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { activeServer, type Body, serversHarness } from './api-servers-harness.ts';

const GROUP_KEYS = ['description', 'id', 'name', 'rules', 'tenant_id'];
const RULE_KEYS = [
  'from_port',
  'group',
  'id',
  'ip_protocol',
  'ip_range',
  'parent_group_id',
  'to_port',
];

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`servers and security groups on ${engine}`, () => {
    const h = serversHarness(engine);
    const { call, show, act, novaErr, portsOf, counts } = h;
    const groupIds = new Map<string, string>();
    /** The project's group `name`, made once by SQL with Neutron's egress starter rules. */
    const group = async (name: string, project = DEFAULT_PROJECT_ID) => {
      const known = groupIds.get(`${project}/${name}`);
      if (known) return known;
      const id = randomUUID();
      await h.db.query(
        `INSERT INTO securitygroups (id, project_id, name, description, revision_number,
           created_at, updated_at) VALUES (?, ?, ?, ?, 1, 'x', ?)`,
        [id, project, name, `${name} group`, new Date().toISOString()],
      );
      await insertStarterRules(h.db, id, project, 'x', false);
      groupIds.set(`${project}/${name}`, id);
      return id;
    };
    const defaultGroup = async () =>
      (
        await h.db.query<{ security_group_id: string }>(
          'SELECT security_group_id FROM default_security_groups WHERE project_id = ?',
          [DEFAULT_PROJECT_ID],
        )
      )[0]?.security_group_id;
    const bindings = () =>
      h.db.query('SELECT * FROM securitygroupportbindings ORDER BY port_id, security_group_id');
    const column = async (id: string) => (await getInstanceRow(h.db, id))?.securityGroups;

    test("POST /servers: groups by name or id on its ports; default alone is Neutron's default", async () => {
      const web = await group('web');
      const db = await group('db');
      const plain = await activeServer(h, { networks: [{ uuid: h.net.n.id }] });
      const [p0] = await portsOf(plain);
      assert.deepEqual(p0?.security_groups, [await defaultGroup()]);
      const two = await h.netWithSubnet('second', '10.77.0.0/24');
      const id = await activeServer(h, {
        networks: [{ uuid: h.net.n.id }, { uuid: two.n.id }],
        security_groups: [{ name: 'web' }, { name: db }, { name: 'default' }],
      });
      const ports = await portsOf(id);
      assert.equal(ports.length, 2);
      const all = [web, db, await defaultGroup()].sort();
      for (const p of ports) assert.deepEqual(p.security_groups, all);
      assert.deepEqual(await column(id), ['web', 'db', 'default'], 'names, an id resolved');
      assert.deepEqual((await show(id)).security_groups, [
        { name: 'web' },
        { name: 'db' },
        { name: 'default' },
      ]);
      const before = { counts: await counts(), bindings: await bindings() };
      await group('theirs', 'another-project');
      const bad = await call('POST', '/servers', {
        server: {
          name: 'x',
          flavorRef: '1',
          imageRef: h.images.plain,
          security_groups: [{ name: 'theirs' }],
        },
      });
      assert.equal(
        novaErr(bad, 'badRequest', 400),
        `Security group theirs not found for project ${DEFAULT_PROJECT_ID}.`,
      );
      assert.deepEqual({ counts: await counts(), bindings: await bindings() }, before);
    });

    test('POST /servers on a network without port security: default works, a named group is the build ERROR', async () => {
      await group('web');
      const open = await h.ok<{ id: string }>('POST', '/v2.0/networks', 'network', {
        network: { name: 'open', port_security_enabled: false },
      });
      await h.ok('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: open.id, cidr: '10.88.0.0/24', ip_version: 4 },
      });
      const fine = await activeServer(h, { networks: [{ uuid: open.id }] });
      const [p] = await portsOf(fine);
      assert.deepEqual([p?.port_security_enabled, p?.security_groups], [false, []]);
      const failed = await h.boot({
        networks: [{ uuid: open.id }],
        security_groups: [{ name: 'web' }],
      });
      const s = await show(failed);
      assert.equal(s.status, 'ERROR');
      assert.match(String((s.fault as Body).details), /Port security must be enabled/);
      assert.deepEqual(await portsOf(failed), []);
      const refused = await act(fine, { addSecurityGroup: { name: 'web' } });
      assert.equal(
        novaErr(refused, 'badRequest', 400),
        'Network requires port_security_enabled and subnet associated in order to apply security groups.',
      );
      assert.deepEqual((await portsOf(fine))[0]?.security_groups, []);
    });

    test('add/removeSecurityGroup: every port and the column change; Nova 404s change nothing', async () => {
      const web = await group('web');
      const two = await h.netWithSubnet('third', '10.78.0.0/24');
      const id = await activeServer(h, { networks: [{ uuid: h.net.n.id }, { uuid: two.n.id }] });
      const dflt = await defaultGroup();
      assert.equal((await act(id, { addSecurityGroup: { name: 'web' } })).status, 202);
      for (const p of await portsOf(id)) assert.deepEqual(p.security_groups, [dflt, web].sort());
      assert.deepEqual(await column(id), ['default', 'web']);
      const revisions = (await portsOf(id)).map((p) => p.revision_number);
      assert.equal((await act(id, { addSecurityGroup: { name: web } })).status, 202);
      assert.deepEqual(
        (await portsOf(id)).map((p) => p.revision_number),
        revisions,
        'adding a group every port has changes no port',
      );
      assert.equal((await act(id, { removeSecurityGroup: { name: 'default' } })).status, 202);
      for (const p of await portsOf(id)) assert.deepEqual(p.security_groups, [web]);
      assert.deepEqual(await column(id), ['web']);
      const before = { bindings: await bindings(), column: await column(id) };
      assert.equal(
        novaErr(await act(id, { removeSecurityGroup: { name: 'default' } }), 'itemNotFound', 404),
        `Security group default not associated with the instance ${id}`,
      );
      await group('elsewhere', 'another-project');
      assert.equal(
        novaErr(await act(id, { addSecurityGroup: { name: 'elsewhere' } }), 'itemNotFound', 404),
        `Security group elsewhere is not found for project ${DEFAULT_PROJECT_ID}`,
      );
      assert.deepEqual({ bindings: await bindings(), column: await column(id) }, before);
    });

    test("os-security-groups: the project's groups and a server's, in Nova's shape", async () => {
      const web = await group('web');
      const rules: [string | null, number | null, number | null, string | null, string | null][] = [
        ['tcp', 22, 22, '0.0.0.0/0', null],
        ['icmp', null, null, null, null],
        ['udp', null, null, '10.0.0.0/8', null],
        [null, null, null, null, web],
      ];
      for (const [protocol, min, max, prefix, remote] of rules)
        await h.db.query(
          `INSERT INTO securitygrouprules (id, security_group_id, project_id, direction, ethertype,
             protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id,
             description, revision_number, created_at, updated_at)
           VALUES (?, ?, ?, 'ingress', 'IPv4', ?, ?, ?, ?, ?, '', 1, ?, 'x')`,
          [
            randomUUID(),
            web,
            DEFAULT_PROJECT_ID,
            protocol,
            min,
            max,
            prefix,
            remote,
            `r${rules.length}`,
          ],
        );
      const r = await call('GET', '/os-security-groups');
      assert.equal(r.status, 200, r.raw);
      const groups = (r.body as { security_groups: Body[] }).security_groups;
      const shown = groups.find((g) => g.id === web) as Body;
      assert.deepEqual(Object.keys(shown).sort(), GROUP_KEYS);
      assert.deepEqual(
        [shown.name, shown.description, shown.tenant_id],
        ['web', 'web group', DEFAULT_PROJECT_ID],
      );
      const got = (shown.rules as Body[]).map((x) => {
        assert.deepEqual(Object.keys(x).sort(), RULE_KEYS);
        assert.equal(x.parent_group_id, web);
        return [x.ip_protocol, x.from_port, x.to_port, x.ip_range, x.group];
      });
      assert.deepEqual(
        got.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        [
          ['tcp', 22, 22, { cidr: '0.0.0.0/0' }, {}],
          ['icmp', -1, -1, { cidr: '0.0.0.0/0' }, {}],
          ['udp', 1, 65535, { cidr: '10.0.0.0/8' }, {}],
          [null, null, null, {}, { name: 'web', tenant_id: DEFAULT_PROJECT_ID }],
        ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        'ingress rules only, in Nova terms',
      );
      const dflt = groups.find((g) => g.name === 'default') as Body;
      assert.equal((dflt.rules as Body[]).length, 2, 'the ingress-from-itself pair');
      const id = await activeServer(h, {
        networks: [{ uuid: h.net.n.id }],
        security_groups: [{ name: 'web' }],
      });
      const mine = await call('GET', `/v2.1/servers/${id}/os-security-groups`);
      assert.equal(mine.status, 200, mine.raw);
      const list = (mine.body as { security_groups: Body[] }).security_groups;
      assert.deepEqual(
        list.map((g) => g.id),
        [web],
      );
      assert.deepEqual(list[0], shown);
      const missing = await call('GET', `/servers/${randomUUID()}/os-security-groups`);
      assert.equal(missing.status, 404);
    });
  });
}
