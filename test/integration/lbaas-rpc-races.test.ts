/**
 * The LBaaS agent's reports racing the API's writes on both engines: update_pool_stats
 * (member health, agent order) and report_status (rejected members) while the pool is
 * deleted or its members are changed. Every write of a pool's rows takes the pool's row
 * first, so PostgreSQL never aborts one of them as a deadlock: every request succeeds
 * and the pool is gone with everything it owned.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deletePool } from '../../api/db/lbaas-writes.ts';
import { poolChanged } from '../../api/scheduler/lbaas.ts';
import { lbHarness } from '../helpers/lbaas-harness.ts';
import { seedMember, seedPool } from '../helpers/lbaas-seed.ts';

const ROUNDS = 10;
const LB_AGENT = 'Loadbalancer agent';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS agent reports racing API writes on ${engine}`, () => {
    const h = lbHarness(engine);

    test('stats and statuses while the pool is deleted: no deadlock, nothing left', async () => {
      await h.report('h1');
      for (let round = 0; round < ROUNDS; round += 1) {
        const id = await seedPool(h.db, h.net.subnet.id);
        const members: string[] = [];
        for (let i = 1; i <= 6; i += 1) members.push(await seedMember(h.db, id, `10.9.0.${i}`));
        await poolChanged(h.deps, id);
        const health = members.reverse().map((m) => ({ id: m, status: 'INACTIVE' }));
        const stats = { bytes_in: 1, bytes_out: 2, active_connections: 0, total_connections: 3 };
        const results = await Promise.allSettled([
          h.rpc('update_pool_stats', { host: 'h1', pool_id: id, stats, members: health }),
          deletePool(h.db, id, new Date()),
          h.rpc('report_status', {
            host: 'h1',
            agent_type: LB_AGENT,
            statuses: [
              {
                resource: 'pool',
                id,
                status: 'ACTIVE',
                revision: 1,
                rejected: members.map((m) => ({ resource: 'member', id: m, reason: 'r' })),
              },
            ],
          }),
        ]);
        const failed = results.filter((r) => r.status === 'rejected');
        assert.deepEqual(failed, [], `round ${round}`);
        for (const table of ['lb_pools', 'lb_members', 'lb_pool_stats']) {
          const col = table === 'lb_pools' ? 'id' : 'pool_id';
          const left = await h.db.query(`SELECT 1 AS one FROM ${table} WHERE ${col} = ?`, [id]);
          assert.deepEqual(left, [], `round ${round}: ${table}`);
        }
      }
    });
  });
}
