/**
 * Port security through buildApp() + inject on both engines (world:
 * api-port-security-harness.ts): the network's port_security_enabled (default, update,
 * filter); a port's keys, port_security_enabled and security_groups (its project's default
 * group when none is given, none on network:* ports or without port security), groups of
 * its own project (an admin's any). Refusals, pairs, updates: api-port-security-update.test.ts.
 *
 * Invariant under test: a refused request changes nothing (the harness's `refused`). The
 * security-group hints are the sg-rpc suite's: the hint functions are its own.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { Network, Port } from '../../contracts/network.ts';
import { portSecurityWorld } from './api-port-security-harness.ts';

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
    const { api, A, B, tok, call, made, refused, w, port, group, defaultOf } =
      portSecurityWorld(engine);

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
  });
}
