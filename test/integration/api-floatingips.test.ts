/**
 * Neutron floating IPs through buildApp() + inject on both engines (world: see
 * api-floatingips-harness.ts): create on an external network with an automatic or a
 * chosen address and its hidden port; refused creates; a deleted port's floating IP is
 * disassociated; a deleted floating IP frees its address; the L3 agent's statuses reach
 * only the router that serves the floating IP. Associations: api-floatingips-assoc.test.ts.
 *
 * Invariant under test: every refused request leaves the floating IPs, ports, routers and
 * address allocations exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { floatingIpsOfRouter, setFloatingIpStatuses } from '../../api/db/floatingips.ts';
import type { Port } from '../../contracts/network.ts';
import { FIP_KEYS, floatingIpWorld } from './api-floatingips-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`floating IPs on ${engine}`, () => {
    const h = floatingIpWorld(engine);
    const { tokens, w, call, refused } = h;
    const url = (f: { id: string }) => `/v2.0/floatingips/${f.id}`;

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
      const bySubnet = await h.fip(tokens.a, {
        floating_network_id: w.ext2.id,
        subnet_id: w.ext2Sub.id,
      });
      assert.match(bySubnet.floating_ip_address, /^198\.51\.100\./);
      const both = await h.fip(tokens.admin, {
        floating_network_id: w.ext.id,
        subnet_id: w.extSub.id,
        floating_ip_address: '203.0.113.51',
      });
      assert.equal(both.floating_ip_address, '203.0.113.51');
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
      const wrongSubnet = await refused(
        400,
        'InvalidInput',
        ...create(tokens.a, { ...ext, subnet_id: w.ext2Sub.id }),
      );
      assert.match(wrongSubnet, new RegExp(`invalid subnet ${w.ext2Sub.id}`));
      await refused(
        400,
        'InvalidIpForSubnet',
        ...create(tokens.admin, {
          ...ext,
          subnet_id: w.extSub.id,
          floating_ip_address: '198.51.100.9',
        }),
      );
      const v6 = await h.made<{ id: string }>(tokens.admin, 'network', { 'router:external': true });
      await h.made(tokens.admin, 'subnet', {
        network_id: v6.id,
        cidr: '2001:db8::/64',
        ip_version: 6,
      });
      const noV4 = await refused(
        400,
        'BadRequest',
        ...create(tokens.a, { floating_network_id: v6.id }),
      );
      assert.equal(
        noV4,
        `Bad floatingip request: Network ${v6.id} does not contain any IPv4 subnet.`,
      );
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

    test("an associated port keeps its floating IP's fixed address", async () => {
      const p = await h.portA();
      const held = p.fixed_ips[0]?.ip_address;
      await h.fip(tokens.a, { floating_network_id: w.ext.id, port_id: p.id });
      const moved = await refused(400, 'BadRequest', tokens.a, 'PUT', `/v2.0/ports/${p.id}`, {
        port: { fixed_ips: [{ subnet_id: w.subA.id, ip_address: '10.0.0.200' }] },
      });
      assert.equal(
        moved,
        `Bad port request: Cannot update the fixed_ips of the port ${p.id}, because its original fixed_ip has been associated to a floating ip.`,
      );
      const kept = await call(tokens.a, 'PUT', `/v2.0/ports/${p.id}`, {
        port: { fixed_ips: [{ ip_address: held }, { subnet_id: w.subA2.id }] },
      });
      assert.equal(kept.status, 200, JSON.stringify(kept.body));
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
