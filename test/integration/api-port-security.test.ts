/**
 * Port security through buildApp() + inject on both engines, with real signed tokens for
 * two member projects and an admin: the network's port_security_enabled (default, update,
 * filter); a port's port_security_enabled, security_groups (its project's default group
 * when none is given, none on network:* ports or without port security) and
 * allowed_address_pairs; every refusal with Neutron's type and message.
 *
 * Invariant under test: a refused request leaves ports, networks, groups, port bindings and
 * address pairs exactly as they were. (The security-group hints are the sg-rpc suite's: the
 * hint functions are its own.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { insertStarterRules } from '../../api/db/default-sg.ts';
import { deviceFilters } from '../../api/db/port-devices.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { type Body, creator, refusals } from '../helpers/neutron-refusals.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';
import { hexId, testTokens } from '../helpers/tokens.ts';

const PORT_KEYS = [
  'admin_state_up',
  'allowed_address_pairs',
  'binding:vnic_type',
  'created_at',
  'description',
  'device_id',
  'device_owner',
  'extra_dhcp_opts',
  'fixed_ips',
  'id',
  'mac_address',
  'name',
  'network_id',
  'port_security_enabled',
  'project_id',
  'revision_number',
  'security_groups',
  'status',
  'tags',
  'tenant_id',
  'updated_at',
];

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`port security on ${engine}`, () => {
    const t = testTokens();
    const api = testApi(engine, { settings: { adminToken: hexId() }, tokens: t.authenticator });
    after(() => t.cleanup());
    const [A, B] = [hexId(), hexId()];
    const tok = {
      A: t.token({ project: A }),
      B: t.token({ project: B }),
      admin: t.token({ project: hexId(), roles: ['admin'] }),
    };
    const call = (token: string, method: string, url: string, payload?: unknown) =>
      injectAs(api, token, method, url, payload);
    const made = creator(call);
    const rows = (sql: string) => api.db.query(sql);
    const state = async () => ({
      ports: (await call(tok.admin, 'GET', '/v2.0/ports')).body,
      networks: (await call(tok.admin, 'GET', '/v2.0/networks')).body,
      groups: await rows('SELECT * FROM securitygroups ORDER BY id'),
      defaults: await rows('SELECT * FROM default_security_groups ORDER BY project_id'),
      bindings: await rows(
        'SELECT * FROM securitygroupportbindings ORDER BY port_id, security_group_id',
      ),
      pairs: await rows('SELECT * FROM allowedaddresspairs ORDER BY port_id, ip_address'),
      ips: await rows('SELECT * FROM ipallocations ORDER BY ip_address'),
    });
    const refused = refusals(call, state);
    const w = {} as { net: Network; sub: Subnet; open: Network; shared: Network };
    const port = (token: string, body: Body) =>
      made<Port>(token, 'port', { network_id: w.net.id, ...body });
    const put = (token: string, id: string, body: Body) =>
      call(token, 'PUT', `/v2.0/ports/${id}`, { port: body });
    /** A group of `project` made by SQL (the group API is another suite's). */
    const group = async (project: string, name: string) => {
      const id = randomUUID();
      await api.db.query(
        `INSERT INTO securitygroups (id, project_id, name, description, revision_number,
           created_at, updated_at) VALUES (?, ?, ?, '', 1, 'x', 'x')`,
        [id, project, name],
      );
      await insertStarterRules(api.db, id, project, 'x', false);
      return id;
    };
    const defaultOf = async (project: string) =>
      (
        await api.db.query<{ security_group_id: string }>(
          'SELECT security_group_id FROM default_security_groups WHERE project_id = ?',
          [project],
        )
      )[0]?.security_group_id;

    before(async () => {
      w.net = await made(tok.A, 'network', { name: 'a' });
      w.sub = await made(tok.A, 'subnet', {
        network_id: w.net.id,
        cidr: '10.0.0.0/24',
        ip_version: 4,
      });
      w.open = await made(tok.A, 'network', { name: 'open', port_security_enabled: false });
      await made(tok.A, 'subnet', { network_id: w.open.id, cidr: '10.1.0.0/24', ip_version: 4 });
      w.shared = await made(tok.admin, 'network', { name: 'shared', shared: true });
      await made(tok.admin, 'subnet', {
        network_id: w.shared.id,
        cidr: '10.2.0.0/24',
        ip_version: 4,
      });
    });

    test('networks: port_security_enabled defaults to true, is set, updated and filtered', async () => {
      assert.equal(w.net.port_security_enabled, true);
      assert.equal(w.open.port_security_enabled, false);
      const n = await made<Network>(tok.A, 'network', { port_security_enabled: 'False' });
      assert.equal(n.port_security_enabled, false);
      const r = await call(tok.A, 'PUT', `/v2.0/networks/${n.id}`, {
        network: { port_security_enabled: true },
      });
      assert.equal(r.status, 200);
      const updated = r.body.network as Network;
      assert.deepEqual(
        [updated.port_security_enabled, updated.revision_number],
        [true, n.revision_number + 1],
      );
      const off = await call(tok.A, 'GET', '/v2.0/networks?port_security_enabled=false');
      assert.deepEqual(
        (off.body.networks as Network[]).map((x) => x.id),
        [w.open.id],
      );
      const bad = await refused(400, 'BadRequest', tok.A, 'POST', '/v2.0/networks', {
        network: { port_security_enabled: 'maybe' },
      });
      assert.match(bad, /port_security_enabled/);
      await call(tok.A, 'DELETE', `/v2.0/networks/${n.id}`);
    });

    test("create: exact keys, the project's default group, none on network:* or unsecured ports", async () => {
      assert.equal(await defaultOf(A), undefined, 'no default group before first use');
      const p = await port(tok.A, {});
      assert.deepEqual(Object.keys(p).sort(), PORT_KEYS);
      const dflt = await defaultOf(A);
      assert.ok(dflt);
      assert.deepEqual(
        [p.port_security_enabled, p.security_groups, p.allowed_address_pairs],
        [true, [dflt], []],
      );
      const [g] = await api.db.query<{ name: string; project_id: string }>(
        'SELECT name, project_id FROM securitygroups WHERE id = ?',
        [dflt],
      );
      assert.deepEqual([g?.name, g?.project_id], ['default', A]);
      const rules = await api.db.query(
        'SELECT id FROM securitygrouprules WHERE security_group_id = ?',
        [dflt],
      );
      assert.equal(rules.length, 4, 'egress v4/v6, ingress from itself v4/v6');
      assert.deepEqual((await port(tok.A, {})).security_groups, [dflt], 'the same default');
      const router = await port(tok.A, { device_owner: 'network:router_interface' });
      assert.deepEqual([router.port_security_enabled, router.security_groups], [true, []]);
      const empty = await port(tok.A, { security_groups: [] });
      assert.deepEqual(empty.security_groups, [], 'an explicit empty list: no group');
      const open = await made<Port>(tok.A, 'port', { network_id: w.open.id });
      assert.deepEqual([open.port_security_enabled, open.security_groups], [false, []]);
      const on = await made<Port>(tok.A, 'port', {
        network_id: w.open.id,
        port_security_enabled: true,
      });
      assert.deepEqual([on.port_security_enabled, on.security_groups], [true, [dflt]]);
      const off = await port(tok.A, { port_security_enabled: false });
      assert.deepEqual([off.port_security_enabled, off.security_groups], [false, []]);
      const shown = await call(tok.A, 'GET', `/v2.0/ports/${p.id}`);
      assert.deepEqual(shown.body.port, p);
      const filtered = await call(tok.A, 'GET', '/v2.0/ports?port_security_enabled=false');
      assert.deepEqual(
        (filtered.body.ports as Port[]).map((x) => x.id).sort(),
        [open.id, off.id].sort(),
      );
    });

    test('create with groups: own ones (sorted), another project is a 404, an admin may use any', async () => {
      const g1 = await group(A, 'web');
      const g2 = await group(A, 'db');
      const p = await port(tok.A, { security_groups: [g2, g1, g1] });
      assert.deepEqual(p.security_groups, [g1, g2].sort());
      const bg = await group(B, 'b-only');
      const other = await made<Port>(tok.admin, 'port', {
        network_id: w.shared.id,
        project_id: B,
        security_groups: [g1],
      });
      assert.deepEqual(other.security_groups, [g1]);
      const msg = await refused(404, 'SecurityGroupNotFound', tok.B, 'POST', '/v2.0/ports', {
        port: { network_id: w.shared.id, security_groups: [g1, bg] },
      });
      assert.equal(msg, `Security group ${g1} does not exist`);
      const ghost = randomUUID();
      assert.equal(
        await refused(404, 'SecurityGroupNotFound', tok.A, 'POST', '/v2.0/ports', {
          port: { network_id: w.net.id, security_groups: [ghost] },
        }),
        `Security group ${ghost} does not exist`,
      );
      await refused(400, 'BadRequest', tok.A, 'POST', '/v2.0/ports', {
        port: { network_id: w.net.id, security_groups: ['web'] },
      });
    });

    test('create refusals: groups or pairs without port security, bad pairs', async () => {
      const g = await group(A, 'x');
      const create = (body: Body) =>
        [tok.A, 'POST', '/v2.0/ports', { port: { network_id: w.net.id, ...body } }] as const;
      assert.equal(
        await refused(
          400,
          'PortSecurityAndIPRequiredForSecurityGroups',
          ...create({ port_security_enabled: false, security_groups: [g] }),
        ),
        'Port security must be enabled and port must have an IP address in order to use security groups.',
      );
      await refused(
        400,
        'PortSecurityAndIPRequiredForSecurityGroups',
        ...([
          tok.A,
          'POST',
          '/v2.0/ports',
          { port: { network_id: w.open.id, security_groups: [g] } },
        ] as const),
      );
      assert.equal(
        await refused(
          409,
          'AddressPairAndPortSecurityRequired',
          ...create({
            port_security_enabled: false,
            allowed_address_pairs: [{ ip_address: '10.0.0.9' }],
          }),
        ),
        'Port Security must be enabled in order to have allowed address pairs on a port.',
      );
      assert.equal(
        await refused(
          400,
          'AllowedAddressPairsMissingIP',
          ...create({ allowed_address_pairs: [{}] }),
        ),
        'AllowedAddressPair must contain ip_address',
      );
      const dup = [{ ip_address: '10.0.0.9' }, { ip_address: '10.0.0.9' }];
      assert.equal(
        await refused(
          400,
          'DuplicateAddressPairInRequest',
          ...create({ allowed_address_pairs: dup }),
        ),
        'Request contains duplicate address pair: mac_address None ip_address 10.0.0.9.',
      );
      const eleven = Array.from({ length: 11 }, (_, i) => ({ ip_address: `10.9.0.${i + 1}` }));
      assert.equal(
        await refused(
          400,
          'AllowedAddressPairExhausted',
          ...create({ allowed_address_pairs: eleven }),
        ),
        'The number of allowed address pair exceeds the maximum 10.',
      );
      assert.equal(
        await refused(
          400,
          'BadRequest',
          ...create({ allowed_address_pairs: [{ ip_address: '10.0.0.1/24' }] }),
        ),
        "'10.0.0.1/24' isn't a recognized IP subnet cidr, '10.0.0.0/24' is recommended",
      );
      assert.equal(
        await refused(
          400,
          'BadRequest',
          ...create({ allowed_address_pairs: [{ ip_address: 'nope' }] }),
        ),
        "'nope' is not a valid IP address",
      );
      const unknown = await refused(
        400,
        'BadRequest',
        ...create({ allowed_address_pairs: [{ ip_address: '10.0.0.9', vlan: 3 }] }),
      );
      assert.match(unknown, /allowed_address_pairs\[0\]\.vlan/);
      await refused(
        400,
        'BadRequest',
        ...create({ allowed_address_pairs: [{ ip_address: '10.0.0.9', mac_address: 'zz' }] }),
      );
    });

    test("allowed address pairs: the port's MAC by default, canonical, replaced and cleared", async () => {
      const p = await port(tok.A, {
        allowed_address_pairs: [
          { ip_address: '192.168.0.0/24', mac_address: 'FA:16:3E:00:00:01' },
          { ip_address: '10.0.0.200' },
          { ip_address: '2001:DB8::1' },
        ],
      });
      const own = p.mac_address;
      const expected = [
        { ip_address: '10.0.0.200', mac_address: own },
        { ip_address: '2001:db8::1', mac_address: own },
        { ip_address: '192.168.0.0/24', mac_address: 'fa:16:3e:00:00:01' },
      ].sort((a, b) => (a.mac_address + a.ip_address < b.mac_address + b.ip_address ? -1 : 1));
      assert.deepEqual(p.allowed_address_pairs, expected);
      const r = await put(tok.A, p.id, { allowed_address_pairs: [{ ip_address: '10.0.0.201' }] });
      assert.equal(r.status, 200);
      const after1 = r.body.port as Port;
      assert.deepEqual(after1.allowed_address_pairs, [
        { ip_address: '10.0.0.201', mac_address: own },
      ]);
      assert.equal(after1.revision_number, p.revision_number + 1, 'a pairs change is a revision');
      const cleared = await put(tok.A, p.id, { allowed_address_pairs: null });
      assert.deepEqual((cleared.body.port as Port).allowed_address_pairs, []);
      const pairs = await api.db.query('SELECT * FROM allowedaddresspairs WHERE port_id = ?', [
        p.id,
      ]);
      assert.deepEqual(pairs, []);
    });

    test('update: groups replaced; port security off only without groups and pairs', async () => {
      const g1 = await group(A, 'u1');
      const g2 = await group(A, 'u2');
      const p = await port(tok.A, { allowed_address_pairs: [{ ip_address: '10.0.0.77' }] });
      const r = await put(tok.A, p.id, { security_groups: [g1, g2] });
      assert.equal(r.status, 200);
      assert.deepEqual((r.body.port as Port).security_groups, [g1, g2].sort());
      assert.equal((r.body.port as Port).revision_number, p.revision_number + 1);
      const url = `/v2.0/ports/${p.id}`;
      assert.equal(
        await refused(409, 'AddressPairAndPortSecurityRequired', tok.A, 'PUT', url, {
          port: { port_security_enabled: false, security_groups: [] },
        }),
        'Port Security must be enabled in order to have allowed address pairs on a port.',
      );
      assert.equal(
        await refused(409, 'PortSecurityPortHasSecurityGroup', tok.A, 'PUT', url, {
          port: { port_security_enabled: false, allowed_address_pairs: [] },
        }),
        'Port has security group associated. Cannot disable port security or IP address until security group is removed.',
      );
      await refused(404, 'SecurityGroupNotFound', tok.A, 'PUT', url, {
        port: { security_groups: [await group(B, 'theirs')] },
      });
      const off = await put(tok.A, p.id, {
        port_security_enabled: false,
        security_groups: [],
        allowed_address_pairs: [],
      });
      assert.equal(off.status, 200, JSON.stringify(off.body));
      const o = off.body.port as Port;
      assert.deepEqual(
        [o.port_security_enabled, o.security_groups, o.allowed_address_pairs],
        [false, [], []],
      );
      await refused(400, 'PortSecurityAndIPRequiredForSecurityGroups', tok.A, 'PUT', url, {
        port: { security_groups: [g1] },
      });
      await refused(409, 'AddressPairAndPortSecurityRequired', tok.A, 'PUT', url, {
        port: { allowed_address_pairs: [{ ip_address: '10.0.0.78' }] },
      });
      const on = await put(tok.A, p.id, { port_security_enabled: true, security_groups: [g1] });
      assert.deepEqual((on.body.port as Port).security_groups, [g1]);
      assert.equal((await call(tok.A, 'DELETE', url)).status, 204);
      const left = await api.db.query('SELECT * FROM securitygroupportbindings WHERE port_id = ?', [
        p.id,
      ]);
      assert.deepEqual(left, [], 'a deleted port leaves its groups');
    });

    test('policy: a shared network user may not set port security or pairs', async () => {
      const create = (body: Body) =>
        [tok.B, 'POST', '/v2.0/ports', { port: { network_id: w.shared.id, ...body } }] as const;
      const msg = await refused(
        403,
        'PolicyNotAuthorized',
        ...create({ port_security_enabled: false }),
      );
      assert.match(msg, /rule:create_port:port_security_enabled/);
      await refused(
        403,
        'PolicyNotAuthorized',
        ...create({ allowed_address_pairs: [{ ip_address: '10.2.0.9' }] }),
      );
      const mine = await made<Port>(tok.B, 'port', { network_id: w.shared.id });
      assert.deepEqual(mine.security_groups, [await defaultOf(B)]);
      assert.equal((await call(tok.B, 'DELETE', `/v2.0/ports/${mine.id}`)).status, 204);
    });

    test('get_devices_details reads the groups and pairs the API wrote', async () => {
      const g = await group(A, 'dev');
      const p = await port(tok.A, {
        security_groups: [g],
        allowed_address_pairs: [{ ip_address: '10.0.0.250' }],
      });
      const [row] = await api.db.query<{ port_security_enabled: unknown }>(
        'SELECT port_security_enabled FROM ports WHERE id = ?',
        [p.id],
      );
      assert.ok(row?.port_security_enabled === true || row?.port_security_enabled === 1);
      const f = (await deviceFilters(api.db, [p.id])).get(p.id);
      assert.deepEqual(f?.groups, [g]);
      assert.deepEqual(f?.pairs, [{ mac_address: p.mac_address, ip_address: '10.0.0.250' }]);
    });
  });
}
