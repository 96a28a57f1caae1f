/**
 * Concurrent LBaaS v1 requests through buildApp() + inject on both engines: members moved
 * between two pools in opposite directions at once (each request locks both pools' rows,
 * always in one order, so PostgreSQL never aborts one as a deadlock) all succeed, and
 * every move bumps both pools' revisions exactly once.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lbaasApp } from '../helpers/lbaas-api.ts';

const ROUNDS = 12;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS v1 concurrent requests on ${engine}`, () => {
    const h = lbaasApp(engine);
    const { A: memberA } = h.tokens;
    const revisions = async (ids: unknown[]) =>
      Promise.all(
        ids.map(async (id) =>
          Number(
            (await h.rows('SELECT revision_number FROM lb_pools WHERE id = ?', [id]))[0]
              ?.revision_number,
          ),
        ),
      );

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
      const members = await h.rows('SELECT id, pool_id FROM lb_members ORDER BY address');
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
