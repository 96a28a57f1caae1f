/**
 * Port security refusals and updates on both engines (world: api-port-security-harness.ts):
 * groups or pairs without port security, malformed, duplicate and too many pairs with
 * Neutron's types and messages and nothing changed; pairs canonical with the port's MAC by
 * default, replaced and cleared; groups replaced; port security turned off only without
 * groups and pairs; the network-owner policy of both attributes; what get_devices_details
 * reads back.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deviceFilters } from '../../api/db/port-devices.ts';
import type { Port } from '../../contracts/network.ts';
import { type Body, portSecurityWorld } from './api-port-security-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`port security updates and refusals on ${engine}`, () => {
    const { api, A, B, tok, call, made, refused, w, port, put, group, defaultOf } =
      portSecurityWorld(engine);

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
