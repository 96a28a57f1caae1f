/**
 * Neutron LBaaS v1 refusals through buildApp() + inject on both engines: Neutron's errors
 * (PoolNotFound, VipExists, ProtocolMismatch, PoolInUse, MemberExists,
 * DelayOrTimeoutInvalid, PoolMonitorAssociationExists/NotFound, HealthMonitorInUse,
 * ServiceProviderNotFound, an address in use or off the subnet), project scoping (another
 * project's object is a 404 for every verb and left out of lists; an admin sees all), and
 * what must never reach haproxy.cfg: a name with a newline, a url_path with a space or a
 * newline, expected_codes `abc`, `200 ,202`, `204-200`, a cookie_name with `;`.
 *
 * Invariant under test: every refused request leaves every LBaaS table, ports, addresses
 * and security group bindings exactly as they were.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Subnet } from '../../contracts/network.ts';
import { lbaasApp, type Obj } from '../helpers/lbaas-api.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS v1 refusals on ${engine}`, () => {
    const h = lbaasApp(engine);
    const { call, lb, refused } = h;
    const { A: memberA, B: memberB, admin } = h.tokens;
    const w = {} as { pool: Obj; sub: Subnet; vip: Obj; member: Obj; hm: Obj };

    before(async () => {
      const { pool, sub } = await h.pool(memberA);
      w.pool = pool;
      w.sub = sub;
      w.member = await lb(memberA, 'members', {
        pool_id: pool.id,
        address: '10.5.0.5',
        protocol_port: 80,
      });
      w.vip = await lb(memberA, 'vips', {
        subnet_id: sub.id,
        protocol: 'HTTP',
        protocol_port: 80,
        pool_id: pool.id,
      });
      w.hm = await lb(memberA, 'health_monitors', {
        type: 'HTTP',
        delay: 3,
        timeout: 3,
        max_retries: 3,
      });
      const r = await call(memberA, 'POST', `/v2.0/lb/pools/${pool.id}/health_monitors`, {
        health_monitor: { id: w.hm.id },
      });
      assert.equal(r.status, 201);
    });

    test('Neutron’s conflicts and bad requests, each changing nothing', async () => {
      const vipBody = {
        subnet_id: w.sub.id,
        protocol: 'HTTP',
        protocol_port: 81,
        pool_id: w.pool.id,
      };
      assert.equal(
        await refused(409, 'VipExists', memberA, 'POST', '/v2.0/lb/vips', { vip: vipBody }),
        `Another Vip already exists for pool ${w.pool.id}`,
      );
      const tcp = await h.pool(memberA, { protocol: 'TCP' });
      assert.equal(
        await refused(400, 'ProtocolMismatch', memberA, 'POST', '/v2.0/lb/vips', {
          vip: { ...vipBody, pool_id: tcp.pool.id, subnet_id: tcp.sub.id },
        }),
        'Protocol HTTP does not match pool protocol TCP',
      );
      assert.equal(
        await refused(409, 'PoolInUse', memberA, 'DELETE', `/v2.0/lb/pools/${w.pool.id}`),
        `Pool ${w.pool.id} is still in use`,
      );
      assert.equal(
        await refused(409, 'MemberExists', memberA, 'POST', '/v2.0/lb/members', {
          member: { pool_id: w.pool.id, address: '10.5.0.5', protocol_port: '80' },
        }),
        `Member with address 10.5.0.5 and port 80 already present in pool ${w.pool.id}`,
      );
      assert.equal(
        await refused(400, 'DelayOrTimeoutInvalid', memberA, 'POST', '/v2.0/lb/health_monitors', {
          health_monitor: { type: 'TCP', delay: 2, timeout: 3, max_retries: 3 },
        }),
        'Delay must be greater than or equal to timeout',
      );
      await refused(
        400,
        'DelayOrTimeoutInvalid',
        memberA,
        'PUT',
        `/v2.0/lb/health_monitors/${w.hm.id}`,
        {
          health_monitor: { timeout: 4 },
        },
      );
      const assocUrl = `/v2.0/lb/pools/${w.pool.id}/health_monitors`;
      assert.equal(
        await refused(409, 'PoolMonitorAssociationExists', memberA, 'POST', assocUrl, {
          health_monitor: { id: w.hm.id },
        }),
        `health_monitor ${w.hm.id} is already associated with pool ${w.pool.id}`,
      );
      assert.equal(
        await refused(
          404,
          'PoolMonitorAssociationNotFound',
          memberA,
          'DELETE',
          `/v2.0/lb/pools/${tcp.pool.id}/health_monitors/${w.hm.id}`,
        ),
        `Monitor ${w.hm.id} is not associated with Pool ${tcp.pool.id}`,
      );
      assert.equal(
        await refused(
          409,
          'HealthMonitorInUse',
          memberA,
          'DELETE',
          `/v2.0/lb/health_monitors/${w.hm.id}`,
        ),
        `Health monitor ${w.hm.id} still has associations with pools`,
      );
      assert.equal(
        await refused(400, 'ServiceProviderNotFound', memberA, 'POST', '/v2.0/lb/pools', {
          pool: {
            subnet_id: w.sub.id,
            protocol: 'HTTP',
            lb_method: 'ROUND_ROBIN',
            provider: 'octavia',
          },
        }),
        "Service provider 'octavia' could not be found for service type LOADBALANCER",
      );
    });

    test('a VIP address in use, the gateway or off its subnet is refused', async () => {
      const { pool, sub } = await h.pool(memberA);
      const body = { subnet_id: sub.id, protocol: 'HTTP', protocol_port: 80, pool_id: pool.id };
      const taken = String(w.vip.address);
      const mine = await h.pool(memberA);
      const first = await lb(memberA, 'vips', { ...body, address: sub.cidr.replace('0/24', '50') });
      assert.equal(first.address, sub.cidr.replace('0/24', '50'));
      const again = { ...body, pool_id: mine.pool.id, address: first.address };
      await refused(409, 'IpAddressAlreadyAllocated', memberA, 'POST', '/v2.0/lb/vips', {
        vip: again,
      });
      assert.equal(
        await refused(409, 'IpAddressInUse', memberA, 'POST', '/v2.0/lb/vips', {
          vip: { ...again, address: sub.gateway_ip },
        }),
        `Unable to complete operation for network ${sub.network_id}. The IP address ${sub.gateway_ip} is in use.`,
      );
      await refused(400, 'InvalidIpForSubnet', memberA, 'POST', '/v2.0/lb/vips', {
        vip: { ...again, address: taken },
      });
      await refused(400, 'BadRequest', memberA, 'POST', '/v2.0/lb/vips', {
        vip: { ...again, address: '10.1.1.1\n' },
      });
    });

    test('another project’s objects are 404s for every verb; an admin sees all', async () => {
      const cases: [string, string, unknown][] = [
        ['pools', 'PoolNotFound', `Pool ${w.pool.id} could not be found`],
        ['members', 'MemberNotFound', `Member ${w.member.id} could not be found`],
        ['vips', 'VipNotFound', `Vip ${w.vip.id} could not be found`],
        [
          'health_monitors',
          'HealthMonitorNotFound',
          `Health_monitor ${w.hm.id} could not be found`,
        ],
      ];
      const ids: Record<string, unknown> = {
        pools: w.pool.id,
        members: w.member.id,
        vips: w.vip.id,
        health_monitors: w.hm.id,
      };
      for (const [collection, type, message] of cases) {
        const url = `/v2.0/lb/${collection}/${ids[collection]}`;
        assert.equal(await refused(404, type, memberB, 'GET', url), message);
        await refused(404, type, memberB, 'PUT', url, { [collection.replace(/s$/, '')]: {} });
        await refused(404, type, memberB, 'DELETE', url);
        const listed = (await call(memberB, 'GET', `/v2.0/lb/${collection}`)).body[
          collection
        ] as Obj[];
        assert.deepEqual(listed, [], `B lists none of ${collection}`);
        const all = (await call(admin, 'GET', `/v2.0/lb/${collection}`)).body[collection] as Obj[];
        assert.ok(
          all.some((x) => x.id === ids[collection]),
          `the admin lists ${collection}`,
        );
      }
      await refused(404, 'PoolNotFound', memberB, 'POST', '/v2.0/lb/members', {
        member: { pool_id: w.pool.id, address: '10.5.0.6', protocol_port: 80 },
      });
      await refused(404, 'PoolNotFound', memberB, 'GET', `/v2.0/lb/pools/${w.pool.id}/stats`);
      const own = await lb(memberB, 'health_monitors', {
        type: 'TCP',
        delay: 1,
        timeout: 1,
        max_retries: 1,
      });
      await refused(
        404,
        'PoolNotFound',
        memberB,
        'POST',
        `/v2.0/lb/pools/${w.pool.id}/health_monitors`,
        {
          health_monitor: { id: own.id },
        },
      );
      await refused(
        404,
        'HealthMonitorNotFound',
        memberA,
        'POST',
        `/v2.0/lb/pools/${w.pool.id}/health_monitors`,
        {
          health_monitor: { id: own.id },
        },
      );
      await refused(404, 'SubnetNotFound', memberB, 'POST', '/v2.0/lb/pools', {
        pool: { subnet_id: w.sub.id, protocol: 'HTTP', lb_method: 'ROUND_ROBIN' },
      });
      const other = await refused(400, 'BadRequest', memberA, 'POST', '/v2.0/lb/health_monitors', {
        health_monitor: {
          tenant_id: h.projects.B,
          type: 'TCP',
          delay: 1,
          timeout: 1,
          max_retries: 1,
        },
      });
      assert.match(other, /requires admin privileges/);
      const renamed = await h.put(admin, 'pools', w.pool.id, { description: 'by admin' });
      assert.equal(renamed.description, 'by admin');
    });

    test('nothing user-sent reaches haproxy.cfg unvalidated: 400 naming the field', async () => {
      const pool = { subnet_id: w.sub.id, protocol: 'HTTP', lb_method: 'ROUND_ROBIN' };
      const hm = { type: 'HTTP', delay: 3, timeout: 3, max_retries: 3 };
      const vip = { subnet_id: w.sub.id, protocol: 'HTTP', protocol_port: 80, pool_id: w.pool.id };
      const bad: [string, string, unknown, RegExp][] = [
        ['POST', '/v2.0/lb/pools', { pool: { ...pool, name: 'a\nbind *:1' } }, /pool\.name/],
        ['POST', '/v2.0/lb/pools', { pool: { ...pool, description: 'x\r' } }, /pool\.description/],
        ['POST', '/v2.0/lb/pools', { pool: { ...pool, name: 'n'.repeat(256) } }, /pool\.name/],
        ['PUT', `/v2.0/lb/pools/${w.pool.id}`, { pool: { name: 'tab\there' } }, /pool\.name/],
        ['POST', '/v2.0/lb/pools', { pool: { ...pool, lb_method: 'RANDOM' } }, /pool\.lb_method/],
        [
          'POST',
          '/v2.0/lb/health_monitors',
          { health_monitor: { ...hm, url_path: '/a b' } },
          /url_path/,
        ],
        [
          'POST',
          '/v2.0/lb/health_monitors',
          { health_monitor: { ...hm, url_path: '/a\nb' } },
          /url_path/,
        ],
        [
          'POST',
          '/v2.0/lb/health_monitors',
          { health_monitor: { ...hm, expected_codes: 'abc' } },
          /expected_codes/,
        ],
        [
          'POST',
          '/v2.0/lb/health_monitors',
          { health_monitor: { ...hm, expected_codes: '200 ,202' } },
          /expected_codes/,
        ],
        [
          'POST',
          '/v2.0/lb/health_monitors',
          { health_monitor: { ...hm, expected_codes: '204-200' } },
          /expected_codes/,
        ],
        [
          'POST',
          '/v2.0/lb/health_monitors',
          { health_monitor: { ...hm, http_method: 'GET /x' } },
          /http_method/,
        ],
        [
          'POST',
          '/v2.0/lb/health_monitors',
          { health_monitor: { ...hm, max_retries: 11 } },
          /max_retries/,
        ],
        [
          'PUT',
          `/v2.0/lb/health_monitors/${w.hm.id}`,
          { health_monitor: { url_path: 'x' } },
          /url_path/,
        ],
        [
          'POST',
          '/v2.0/lb/members',
          { member: { pool_id: w.pool.id, address: '10.5.0.7', protocol_port: 80, weight: 257 } },
          /weight/,
        ],
        [
          'POST',
          '/v2.0/lb/members',
          { member: { pool_id: w.pool.id, address: 'x; y', protocol_port: 80 } },
          /member\.address/,
        ],
        [
          'PUT',
          `/v2.0/lb/vips/${w.vip.id}`,
          { vip: { session_persistence: { type: 'APP_COOKIE', cookie_name: 'a;b' } } },
          /session_persistence\.cookie_name/,
        ],
        [
          'PUT',
          `/v2.0/lb/vips/${w.vip.id}`,
          { vip: { session_persistence: { type: 'APP_COOKIE' } } },
          /session_persistence\.cookie_name/,
        ],
        [
          'PUT',
          `/v2.0/lb/vips/${w.vip.id}`,
          { vip: { session_persistence: { type: 'SOURCE_IP', cookie_name: 'c' } } },
          /session_persistence\.cookie_name/,
        ],
        [
          'PUT',
          `/v2.0/lb/vips/${w.vip.id}`,
          { vip: { connection_limit: 0 } },
          /vip\.connection_limit/,
        ],
        ['PUT', `/v2.0/lb/vips/${w.vip.id}`, { vip: { address: '10.5.0.9' } }, /vip\.address/],
        ['POST', '/v2.0/lb/vips', { vip: { ...vip, name: 'v\n' } }, /vip\.name/],
      ];
      for (const [method, url, body, field] of bad) {
        const message = await refused(400, 'BadRequest', memberA, method, url, body);
        assert.match(message, field, `${method} ${url} ${JSON.stringify(body)}`);
      }
    });
  });
}
