/**
 * Members and VIPs moved between pools (PUT pool_id) through buildApp() + inject on both
 * engines: a move into another project's pool is that pool's 404, a VIP's move follows
 * Neutron's update_vip checks (ProtocolMismatch, VipExists, NotAuthorized across projects
 * even for an admin), a member's keeps (pool, address, port) unique, and every refusal
 * changes nothing; a VIP that moves takes its port's device_id and both pools' revisions
 * along. Moves in opposite directions at once (each request locks both pools' rows, always
 * in one order, so PostgreSQL never aborts one as a deadlock) all succeed, and every move
 * bumps both pools' revisions exactly once.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lbaasApp, type Obj } from '../helpers/lbaas-api.ts';

const ROUNDS = 12;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS v1 member and VIP moves on ${engine}`, () => {
    const h = lbaasApp(engine);
    const { A: memberA, B: memberB, admin } = h.tokens;
    const revisions = async (ids: unknown[]) =>
      Promise.all(
        ids.map(async (id) =>
          Number(
            (await h.rows('SELECT revision_number FROM lb_pools WHERE id = ?', [id]))[0]
              ?.revision_number,
          ),
        ),
      );

    const vipOn = (p: { pool: Obj; sub: { id: string } }, protocol = 'HTTP') =>
      h.lb(memberA, 'vips', {
        subnet_id: p.sub.id,
        protocol,
        protocol_port: 80,
        pool_id: p.pool.id,
      });

    test('refused moves change nothing; a VIP move takes its port and both revisions', async () => {
      const src = await h.pool(memberA);
      const vip = await vipOn(src);
      const member = await h.lb(memberA, 'members', {
        pool_id: src.pool.id,
        address: '10.51.0.1',
        protocol_port: 80,
      });
      const theirs = await h.pool(memberB);
      const tcp = await h.pool(memberA, { protocol: 'TCP' });
      const taken = await h.pool(memberA);
      await vipOn(taken);
      await h.lb(memberA, 'members', {
        pool_id: taken.pool.id,
        address: '10.51.0.1',
        protocol_port: 80,
      });
      const moveVip = (token: string, to: unknown) =>
        [token, 'PUT', `/v2.0/lb/vips/${vip.id}`, { vip: { pool_id: to } }] as const;
      const theirId = theirs.pool.id;
      await h.refused(404, 'PoolNotFound', ...moveVip(memberA, theirId));
      await h.refused(404, 'PoolNotFound', memberA, 'PUT', `/v2.0/lb/members/${member.id}`, {
        member: { pool_id: theirId },
      });
      assert.equal(
        await h.refused(400, 'ProtocolMismatch', ...moveVip(memberA, tcp.pool.id)),
        'Protocol HTTP does not match pool protocol TCP',
      );
      assert.equal(
        await h.refused(409, 'VipExists', ...moveVip(memberA, taken.pool.id)),
        `Another Vip already exists for pool ${taken.pool.id}`,
      );
      await h.refused(403, 'NotAuthorized', ...moveVip(admin, theirId));
      assert.equal(
        await h.refused(409, 'MemberExists', memberA, 'PUT', `/v2.0/lb/members/${member.id}`, {
          member: { pool_id: taken.pool.id },
        }),
        `Member with address 10.51.0.1 and port 80 already present in pool ${taken.pool.id}`,
      );
      await h.refused(404, 'SubnetNotFound', memberA, 'POST', '/v2.0/lb/vips', {
        vip: {
          subnet_id: theirs.sub.id,
          protocol: 'HTTP',
          protocol_port: 80,
          pool_id: tcp.pool.id,
        },
      });

      const dst = await h.pool(memberA);
      const before = await revisions([src.pool.id, dst.pool.id]);
      const moved = await h.put(memberA, 'vips', vip.id, { pool_id: dst.pool.id });
      assert.equal(moved.pool_id, dst.pool.id);
      assert.equal(moved.status, 'PENDING_CREATE', 'never acknowledged: stays PENDING_CREATE');
      const after = await revisions([src.pool.id, dst.pool.id]);
      assert.deepEqual(
        after,
        before.map((r) => r + 1),
      );
      assert.equal((await h.show('pools', src.pool.id)).vip_id, null);
      assert.equal((await h.show('pools', dst.pool.id)).vip_id, vip.id);
      const [port] = await h.rows('SELECT device_id FROM ports WHERE id = ?', [vip.port_id]);
      assert.deepEqual(port, { device_id: dst.pool.id });
    });

    test('members moved A → B and B → A at once all move; both revisions count every move', async () => {
      const { pool: a } = await h.pool(memberA);
      const { pool: b } = await h.pool(memberA);
      const m1 = await h.lb(memberA, 'members', {
        pool_id: a.id,
        address: '10.50.0.1',
        protocol_port: 80,
      });
      const m2 = await h.lb(memberA, 'members', {
        pool_id: b.id,
        address: '10.50.0.2',
        protocol_port: 80,
      });
      const before = await revisions([a.id, b.id]);
      const move = (id: unknown, to: unknown) =>
        h.call(memberA, 'PUT', `/v2.0/lb/members/${id}`, { member: { pool_id: to } });
      for (let round = 0; round < ROUNDS; round += 1) {
        const [there, back] = round % 2 === 0 ? [b.id, a.id] : [a.id, b.id];
        const answers = await Promise.all([move(m1.id, there), move(m2.id, back)]);
        assert.deepEqual(
          answers.map((r) => [r.status, (r.body.member as { pool_id?: unknown })?.pool_id]),
          [
            [200, there],
            [200, back],
          ],
          `round ${round}: ${JSON.stringify(answers.map((r) => r.body))}`,
        );
      }
      const members = await h.rows(
        'SELECT id, pool_id FROM lb_members WHERE id IN (?, ?) ORDER BY address',
        [m1.id, m2.id],
      );
      assert.deepEqual(members, [
        { id: m1.id, pool_id: a.id },
        { id: m2.id, pool_id: b.id },
      ]);
      const after = await revisions([a.id, b.id]);
      assert.deepEqual(
        after.map((r, i) => r - (before[i] ?? 0)),
        [2 * ROUNDS, 2 * ROUNDS],
      );
    });
  });
}
