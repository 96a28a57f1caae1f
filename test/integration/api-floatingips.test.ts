/**
 * Neutron floating IPs through buildApp() + inject on both engines (world: see
 * api-floatingips-harness.ts): create on an external network with an automatic or a
 * chosen address and its hidden port; associate at create and by update, disassociate;
 * Neutron's errors for each refused association; a deleted port's floating IP is
 * disassociated; a deleted floating IP frees its address; the L3 agent's statuses reach
 * only the router that serves the floating IP.
 *
 * Invariant under test: every refused request leaves the floating IPs, ports, routers and
 * address allocations exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { floatingIpsOfRouter, setFloatingIpStatuses } from '../../api/db/floatingips.ts';
import type { FloatingIp } from '../../contracts/floatingip.ts';
import type { Port } from '../../contracts/network.ts';
import { FIP_KEYS, floatingIpWorld } from './api-floatingips-harness.ts';

const NOT_REACHABLE = (ext: string, subnet: string, port: string) =>
  `External network ${ext} is not reachable from subnet ${subnet}.  Therefore, cannot associate Port ${port} with a Floating IP.`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`floating IPs on ${engine}`, () => {
    const h = floatingIpWorld(engine);
    const { tokens, w, call, refused } = h;
    const url = (f: { id: string }) => `/v2.0/floatingips/${f.id}`;
    const put = (token: string, f: { id: string }, body: Record<string, unknown>) =>
      call(token, 'PUT', url(f), { floatingip: body });

    test('create: automatic and chosen address, exact keys, a hidden port of its own', async () => {
      const auto = await h.fip(tokens.a, { floating_network_id: w.ext.id, description: 'web' });
      assert.deepEqual(Object.keys(auto).sort(), FIP_KEYS);
      assert.equal(auto.floating_ip_address, '203.0.113.3', 'first free: .1 gateway, .2 r1');
      assert.deepEqual(
        [auto.status, auto.router_id, auto.port_id, auto.fixed_ip_address, auto.project_id],
        ['DOWN', null, null, null, h.projects.A],
      );
      assert.deepEqual(
        [auto.tenant_id, auto.description, auto.revision_number, auto.tags],
        [h.projects.A, 'web', 1, []],
      );
      const ports = await call(tokens.admin, 'GET', `/v2.0/ports?device_id=${auto.id}`);
      const [own] = ports.body.ports as Port[];
      assert.ok(own);
      assert.deepEqual(
        [own.device_owner, own.project_id, own.status, own.network_id, own.fixed_ips],
        [
          'network:floatingip',
          '',
          'N/A',
          w.ext.id,
          [{ subnet_id: w.extSub.id, ip_address: '203.0.113.3' }],
        ],
      );
      const mine = await call(tokens.a, 'GET', `/v2.0/ports/${own.id}`);
      assert.equal(mine.status, 404, 'a tenant never sees the floating IP port');
      const chosen = await h.fip(tokens.admin, {
        floating_network_id: w.ext.id,
        floating_ip_address: '203.0.113.50',
        project_id: h.projects.A,
      });
      assert.equal(chosen.floating_ip_address, '203.0.113.50');
      assert.equal(chosen.project_id, h.projects.A, 'an admin creates for another project');
      assert.deepEqual(await h.getFip(chosen.id), chosen);
    });

    test('refused creates change nothing', async () => {
      const create = (token: string, body: Record<string, unknown>) =>
        [token, 'POST', '/v2.0/floatingips', { floatingip: body }] as const;
      const ext = { floating_network_id: w.ext.id };
      const msg = await refused(
        400,
        'BadRequest',
        ...create(tokens.a, { floating_network_id: w.netA.id }),
      );
      assert.equal(
        msg,
        `Bad floatingip request: Network ${w.netA.id} is not a valid external network.`,
      );
      await refused(
        404,
        'NetworkNotFound',
        ...create(tokens.a, { floating_network_id: w.netB.id }),
      );
      await refused(
        404,
        'NetworkNotFound',
        ...create(tokens.a, { floating_network_id: crypto.randomUUID() }),
      );
      await h.fip(tokens.admin, { ...ext, floating_ip_address: '203.0.113.60' });
      const taken = await refused(
        409,
        'IpAddressAlreadyAllocated',
        ...create(tokens.admin, { ...ext, floating_ip_address: '203.0.113.60' }),
      );
      assert.equal(taken, `IP address 203.0.113.60 already allocated in subnet ${w.extSub.id}`);
      await refused(
        400,
        'InvalidIpForNetwork',
        ...create(tokens.admin, { ...ext, floating_ip_address: '192.0.2.5' }),
      );
      await refused(
        400,
        'InvalidIpForSubnet',
        ...create(tokens.admin, { ...ext, floating_ip_address: '203.0.113.1' }),
      );
      await refused(
        400,
        'InvalidIpForSubnet',
        ...create(tokens.admin, { ...ext, floating_ip_address: '203.0.113.255' }),
      );
      const policy = await refused(
        403,
        'PolicyNotAuthorized',
        ...create(tokens.a, { ...ext, floating_ip_address: '203.0.113.61' }),
      );
      assert.equal(
        policy,
        '(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy',
      );
      for (const bad of [
        '203.0.113.7\n',
        '203.0.113.7 ',
        "203.0.113.7'",
        '203.0.113.07',
        '1.2.3',
        '"x"',
      ]) {
        const m = await refused(
          400,
          'BadRequest',
          ...create(tokens.admin, { ...ext, floating_ip_address: bad }),
        );
        assert.match(m, /floatingip\.floating_ip_address/);
        const f = await refused(
          400,
          'BadRequest',
          ...create(tokens.admin, { ...ext, fixed_ip_address: bad }),
        );
        assert.match(f, /floatingip\.fixed_ip_address/);
      }
      const lone = await refused(
        400,
        'BadRequest',
        ...create(tokens.a, { ...ext, fixed_ip_address: '10.0.0.5' }),
      );
      assert.equal(
        lone,
        'Bad floatingip request: fixed_ip_address cannot be specified without a port_id.',
      );
      const extra = await refused(
        400,
        'BadRequest',
        ...create(tokens.a, { ...ext, router_id: w.r1 }),
      );
      assert.match(extra, /floatingip\.router_id/);
      await refused(400, 'BadRequest', ...create(tokens.a, { ...ext, port_id: 'not-a-uuid' }));
      await refused(400, 'BadRequest', ...create(tokens.a, {}));
      await refused(403, 'PolicyNotAuthorized', ...create(tokens.readerA, ext));
    });

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
        fixed_ip_address: dual.fixed_ips[0]?.ip_address,
      });
      assert.equal(dualOk.status, 200, 'a chosen IPv4 address of a multi-address port');
      assert.equal((await h.getFip(held.id)).port_id, p.id);
    });

    test('a deleted port is disassociated; a deleted floating IP frees its address', async () => {
      const p = await h.portA();
      const f = await h.fip(tokens.a, { floating_network_id: w.ext.id, port_id: p.id });
      await setFloatingIpStatuses(h.api.db, w.r1, [{ id: f.id, status: 'ACTIVE' }]);
      const ports = await call(tokens.admin, 'GET', `/v2.0/ports?device_id=${f.id}`);
      const own = (ports.body.ports as Port[])[0] as Port;
      const inUse = await refused(
        409,
        'L3PortInUse',
        tokens.admin,
        'DELETE',
        `/v2.0/ports/${own.id}`,
      );
      assert.equal(
        inUse,
        `Port ${own.id} has owner network:floatingip and therefore cannot be deleted directly via the port API.`,
      );
      assert.equal((await call(tokens.a, 'DELETE', `/v2.0/ports/${p.id}`)).status, 204);
      const after = await h.getFip(f.id);
      assert.deepEqual(
        [
          after.port_id,
          after.fixed_ip_address,
          after.router_id,
          after.status,
          after.revision_number,
        ],
        [null, null, null, 'DOWN', f.revision_number + 2],
      );
      const address = after.floating_ip_address;
      assert.equal((await call(tokens.a, 'DELETE', url(f))).status, 204);
      assert.equal((await call(tokens.a, 'GET', url(f))).status, 404);
      const gone = await call(tokens.admin, 'GET', `/v2.0/ports/${own.id}`);
      assert.equal(gone.status, 404, 'its port went with it');
      const reused = await h.fip(tokens.admin, {
        floating_network_id: w.ext.id,
        floating_ip_address: address,
      });
      assert.equal(reused.floating_ip_address, address);
      const missing = await refused(404, 'FloatingIPNotFound', tokens.a, 'DELETE', url(f));
      assert.equal(missing, `Floating IP ${f.id} could not be found`);
    });

    test('agent statuses reach only the serving router; the router sees its floating IPs', async () => {
      const p = await h.portA();
      const f = await h.fip(tokens.a, { floating_network_id: w.ext.id, port_id: p.id });
      const idle = await h.fip(tokens.a, { floating_network_id: w.ext.id });
      assert.equal(
        await setFloatingIpStatuses(h.api.db, w.r2, [{ id: f.id, status: 'ACTIVE' }]),
        0,
      );
      assert.equal(
        await setFloatingIpStatuses(h.api.db, w.r1, [{ id: idle.id, status: 'ACTIVE' }]),
        0,
      );
      assert.equal((await h.getFip(f.id)).status, 'DOWN');
      assert.equal(
        await setFloatingIpStatuses(h.api.db, w.r1, [{ id: f.id, status: 'ACTIVE' }]),
        1,
      );
      assert.equal(
        await setFloatingIpStatuses(h.api.db, w.r1, [{ id: f.id, status: 'ACTIVE' }]),
        0,
      );
      const seen = await floatingIpsOfRouter(h.api.db, w.r1);
      assert.deepEqual(
        seen.find((s) => s.id === f.id),
        {
          id: f.id,
          floating_ip_address: f.floating_ip_address,
          fixed_ip_address: p.fixed_ips[0]?.ip_address,
          port_id: p.id,
          status: 'ACTIVE',
        },
      );
      assert.equal(
        seen.some((s) => s.id === idle.id),
        false,
        'only associated ones',
      );
      assert.equal(
        (await floatingIpsOfRouter(h.api.db, w.r2)).some((s) => s.id === f.id),
        false,
      );
    });
  });
}
