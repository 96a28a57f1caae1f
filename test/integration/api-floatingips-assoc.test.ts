/**
 * Floating IP associations through buildApp() + inject on both engines (world: see
 * api-floatingips-harness.ts): at create and by update, disassociation, DOWN on every
 * change; Neutron's error, with its exact message, for each refused association (no
 * router between the port's subnet and the external network, the fixed IP already has a
 * floating IP there, a router or DHCP port, several IPv4 addresses, an address the port
 * lacks, another project's port, a read-only attribute).
 *
 * Invariant under test: every refused request leaves the floating IPs, ports, routers and
 * address allocations exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFloatingIpStatuses } from '../../api/db/floatingips.ts';
import type { FloatingIp } from '../../contracts/floatingip.ts';
import { err, FIP_KEYS, floatingIpWorld } from './api-floatingips-harness.ts';

const NOT_REACHABLE = (ext: string, subnet: string, port: string) =>
  `External network ${ext} is not reachable from subnet ${subnet}.  Therefore, cannot associate Port ${port} with a Floating IP.`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`floating IP associations on ${engine}`, () => {
    const h = floatingIpWorld(engine);
    const { tokens, w, call, refused } = h;
    const url = (f: { id: string }) => `/v2.0/floatingips/${f.id}`;
    const put = (token: string, f: { id: string }, body: Record<string, unknown>) =>
      call(token, 'PUT', url(f), { floatingip: body });

    test('associate at create and by update, disassociate: DOWN on every change', async () => {
      const p1 = await h.portA();
      const at = await h.fip(tokens.a, { floating_network_id: w.ext.id, port_id: p1.id });
      assert.deepEqual(
        [at.port_id, at.fixed_ip_address, at.router_id, at.status],
        [p1.id, p1.fixed_ips[0]?.ip_address, w.r1, 'DOWN'],
      );
      const p2 = await h.portA();
      const later = await h.fip(tokens.a, { floating_network_id: w.ext.id });
      const set = await put(tokens.a, later, { port_id: p2.id });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      const on = set.body.floatingip as FloatingIp;
      assert.deepEqual(
        [on.port_id, on.fixed_ip_address, on.router_id, on.status, on.revision_number],
        [p2.id, p2.fixed_ips[0]?.ip_address, w.r1, 'DOWN', 2],
      );
      assert.deepEqual(Object.keys(on).sort(), FIP_KEYS);
      await setFloatingIpStatuses(h.api.db, w.r1, [{ id: later.id, status: 'ACTIVE' }]);
      assert.equal((await h.getFip(later.id)).status, 'ACTIVE');
      const described = await put(tokens.a, later, { description: 'kept' });
      const kept = described.body.floatingip as FloatingIp;
      assert.deepEqual([kept.status, kept.port_id, kept.description], ['ACTIVE', p2.id, 'kept']);
      const off = await put(tokens.a, later, { port_id: null });
      assert.equal(off.status, 200);
      const cleared = off.body.floatingip as FloatingIp;
      assert.deepEqual(
        [cleared.port_id, cleared.fixed_ip_address, cleared.router_id, cleared.status],
        [null, null, null, 'DOWN'],
      );
      const again = await put(tokens.a, later, {
        port_id: p2.id,
        fixed_ip_address: p2.fixed_ips[0]?.ip_address,
      });
      assert.equal((again.body.floatingip as FloatingIp).router_id, w.r1);
      const other = await h.fip(tokens.a, { floating_network_id: w.ext2.id, port_id: p2.id });
      assert.equal(
        other.router_id,
        w.r2,
        'one fixed IP may have a floating IP per external network',
      );
    });

    test('refused associations: Neutron errors, nothing changed', async () => {
      const free = await h.fip(tokens.a, { floating_network_id: w.ext.id });
      const putArgs = (token: string, body: Record<string, unknown>) =>
        [token, 'PUT', url(free), { floatingip: body }] as const;
      const lonely = await h.port(tokens.a, w.netA.id, { fixed_ips: [{ subnet_id: w.subA2.id }] });
      const m404 = await refused(
        404,
        'ExternalGatewayForFloatingIPNotFound',
        ...putArgs(tokens.a, { port_id: lonely.id }),
      );
      assert.equal(m404, NOT_REACHABLE(w.ext.id, w.subA2.id, lonely.id));
      const p = await h.portA();
      const held = await h.fip(tokens.a, { floating_network_id: w.ext.id, port_id: p.id });
      const ip = p.fixed_ips[0]?.ip_address;
      const m409 = await refused(
        409,
        'FloatingIPPortAlreadyAssociated',
        ...putArgs(tokens.a, { port_id: p.id }),
      );
      assert.equal(
        m409,
        `Cannot associate floating IP ${free.floating_ip_address} (${free.id}) with port ${p.id} using fixed IP ${ip}, as that fixed IP already has a floating IP on external network ${w.ext.id}.`,
      );
      const router = await refused(
        400,
        'BadRequest',
        ...putArgs(tokens.a, { port_id: w.r1Interface.id }),
      );
      assert.equal(
        router,
        `Bad floatingip request: Port ${w.r1Interface.id} is unable to be assigned a floating IP.`,
      );
      const dhcp = await h.port(tokens.a, w.netA.id, { device_owner: 'network:dhcp' });
      await refused(400, 'BadRequest', ...putArgs(tokens.a, { port_id: dhcp.id }));
      const dual = await h.port(tokens.a, w.netA.id, {
        fixed_ips: [{ subnet_id: w.subA.id }, { subnet_id: w.subA2.id }],
      });
      const multi = await refused(400, 'BadRequest', ...putArgs(tokens.a, { port_id: dual.id }));
      assert.equal(
        multi,
        `Bad floatingip request: Port ${dual.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP.`,
      );
      const notHers = await refused(
        400,
        'BadRequest',
        ...putArgs(tokens.a, { port_id: dual.id, fixed_ip_address: '10.0.0.200' }),
      );
      assert.equal(
        notHers,
        `Bad floatingip request: Port ${dual.id} does not have fixed ip 10.0.0.200.`,
      );
      await refused(
        400,
        'BadRequest',
        ...putArgs(tokens.a, { port_id: dual.id, fixed_ip_address: '2001:db8::5' }),
      );
      await refused(
        400,
        'BadRequest',
        ...putArgs(tokens.a, { port_id: p.id, fixed_ip_address: '10.0.0.5\n' }),
      );
      const pb = await h.port(tokens.b, w.netB.id);
      await refused(404, 'PortNotFound', ...putArgs(tokens.a, { port_id: pb.id }));
      await refused(404, 'PortNotFound', ...putArgs(tokens.a, { port_id: crypto.randomUUID() }));
      const ro = await refused(
        400,
        'BadRequest',
        ...putArgs(tokens.a, { floating_ip_address: '203.0.113.99' }),
      );
      assert.match(ro, /floatingip\.floating_ip_address: cannot be updated/);
      await refused(400, 'BadRequest', ...putArgs(tokens.a, { router_id: w.r1 }));
      await refused(400, 'BadRequest', ...putArgs(tokens.a, { fixed_ip_address: ip }));
      const viaCreate = await refused(
        409,
        'FloatingIPPortAlreadyAssociated',
        tokens.a,
        'POST',
        '/v2.0/floatingips',
        {
          floatingip: { floating_network_id: w.ext.id, port_id: p.id },
        },
      );
      assert.match(viaCreate, new RegExp(`with port ${p.id} using fixed IP ${ip}`));
      const dualOk = await put(tokens.a, free, {
        port_id: dual.id,
        fixed_ip_address: dual.fixed_ips.find((x) => x.subnet_id === w.subA.id)?.ip_address,
      });
      assert.equal(dualOk.status, 200, 'a chosen IPv4 address of a multi-address port');
      assert.equal((await h.getFip(held.id)).port_id, p.id);
    });

    test('parallel associations of one fixed IP: exactly one wins, the rest 409', async () => {
      const p = await h.portA();
      const fips = await Promise.all(
        Array.from({ length: 6 }, () => h.fip(tokens.a, { floating_network_id: w.ext.id })),
      );
      const answers = await Promise.all(fips.map((f) => put(tokens.a, f, { port_id: p.id })));
      const codes = answers.map((r) => r.status).sort();
      assert.deepEqual(codes, [200, 409, 409, 409, 409, 409], JSON.stringify(answers));
      for (const r of answers.filter((x) => x.status === 409))
        assert.equal(err(r).type, 'FloatingIPPortAlreadyAssociated');
      const r = await call(tokens.a, 'GET', `/v2.0/floatingips?port_id=${p.id}`);
      assert.equal((r.body.floatingips as FloatingIp[]).length, 1);
    });
  });
}
