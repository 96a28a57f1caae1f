/**
 * LBaaS scheduling in kumo-api on both database engines, with a real broker catching the
 * pool hints (`lbaas_agent.<host>`) and the port hints (OVS fanout), pools seeded in SQL
 * with a real VIP port (test/helpers/lbaas-harness.ts): scheduling and spread, never to a
 * dead or admin-down agent, no agent at all (unhosted, said so, placed by the sweep's
 * second sighting), the failover sweep with an injected clock (the fence: the VIP port
 * moves and is hinted first), revival, a deleted agent's pools rehosted, a stray VIP port,
 * and the agent-scheduler routes' shapes and policy.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NO_LBAAS_AGENT } from '../../api/db/lbaas-bindings.ts';
import { OVS_FANOUT } from '../../api/hints.ts';
import {
  type LbaasDeps,
  lbaasHostsOf,
  newLbaasSweepMemory,
  poolChanged,
  poolDeleted,
  runLbaasSweep,
} from '../../api/scheduler/lbaas.ts';
import { LB_DOWN, LB_MEMBER, lbHarness } from '../helpers/lbaas-harness.ts';
import { poolStatuses, seedPool } from '../helpers/lbaas-seed.ts';

const GHOST = '00000000-0000-4000-8000-000000000000';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`LBaaS scheduling on ${engine}`, () => {
    const h = lbHarness(engine);

    /** The deps with every hint sent recorded in order (still sent on the real broker). */
    function recording(sent: string[]): LbaasDeps {
      return {
        ...h.deps,
        broker: {
          cast: (queue, method, args, opts) => {
            sent.push(`${queue} ${(args as { id: string }).id}`);
            return h.broker.cast(queue, method, args, opts);
          },
          fanout: (exchange, method, args, opts) => {
            sent.push(`${exchange} ${(args as { id: string }).id}`);
            return h.broker.fanout(exchange, method, args, opts);
          },
        },
      };
    }

    test('a pool goes to the agent with fewest pools, ties by host; its VIP port follows, hinted first', async () => {
      await h.report('h2', 'h1');
      const a = await h.poolWithVip('a');
      const sent: string[] = [];
      await poolChanged(recording(sent), a.id);
      assert.deepEqual(await h.hostsOf(a.id), ['h1'], 'equal loads: the first host name');
      assert.equal(await h.portHost(a.port.id), 'h1');
      assert.deepEqual(sent, [`${OVS_FANOUT} ${a.port.id}`, `lbaas_agent.h1 ${a.id}`]);
      await h.waitPortHint(a.port.id);
      await h.waitPoolHint('h1', a.id);

      const b = await h.poolWithVip('b');
      await poolChanged(h.deps, b.id);
      assert.deepEqual(await h.hostsOf(b.id), ['h2'], 'fewest pools');
      assert.equal(await h.portHost(b.port.id), 'h2');
      const bare = await seedPool(h.db, h.net.subnet.id, { name: 'no-vip' });
      await poolChanged(h.deps, bare);
      assert.deepEqual(await h.hostsOf(bare), ['h1'], 'a pool without a VIP is hosted too');
      assert.deepEqual(await lbaasHostsOf(h.db, bare), ['h1']);

      // A change of a hosted pool moves nothing; the hosting agent and lostHosts hear.
      h.received.length = 0;
      await poolChanged(h.deps, a.id, ['h3']);
      assert.deepEqual(await h.hostsOf(a.id), ['h1']);
      await h.waitPoolHint('h1', a.id);
      await h.waitPoolHint('h3', a.id);
      assert.ok(!h.hinted('l2-watch', 'port', a.port.id), 'the VIP port did not move');

      h.received.length = 0;
      await poolDeleted(h.deps, a.id, ['h1']);
      await h.waitPoolHint('h1', a.id);
      const [deleted] = h.received.map((r) => r.message.args as { deleted?: boolean });
      assert.equal(deleted?.deleted, true, 'a deleted hint');
    });

    test('dead and admin-down agents are never scheduled to; poolChanged never rejects', async () => {
      await h.report('h1', 'h2', 'h3');
      h.advance(LB_DOWN + 1);
      await h.report('h2', 'h3');
      const h2 = await h.agentOn('h2');
      const put = await h.call('PUT', `/v2.0/agents/${h2.id}`, {
        agent: { admin_state_up: false },
      });
      assert.equal(put.status, 200, put.raw);
      const a = await h.poolWithVip('a');
      await poolChanged(h.deps, a.id);
      assert.deepEqual(await h.hostsOf(a.id), ['h3']);
      await poolChanged(h.deps, GHOST);
      assert.deepEqual(await h.hostsOf(a.id), ['h3']);
    });

    test('no eligible agent: the pool waits unhosted and says so; the sweep places it on its second sighting', async () => {
      const a = await h.poolWithVip('a');
      await poolChanged(h.deps, a.id);
      assert.deepEqual(await h.hostsOf(a.id), []);
      assert.deepEqual((await poolStatuses(h.db, a.id)).pool, {
        status: 'PENDING_CREATE',
        description: NO_LBAAS_AGENT,
      });
      assert.equal(await h.portHost(a.port.id), '', 'the VIP port stays unbound');

      const memory = newLbaasSweepMemory();
      assert.deepEqual(await runLbaasSweep(h.deps, memory), [], 'nobody to take it');
      await h.report('h2');
      const first = await runLbaasSweep(h.deps, memory);
      assert.deepEqual(
        first.map((c) => [c.poolId, c.to, c.ports]),
        [[a.id, 'h2', [a.port.id]]],
      );
      assert.deepEqual(await h.hostsOf(a.id), ['h2']);
      assert.equal(await h.portHost(a.port.id), 'h2');
      assert.deepEqual((await poolStatuses(h.db, a.id)).pool, {
        status: 'PENDING_CREATE',
        description: null,
      });
      await h.waitPoolHint('h2', a.id);

      // A pool first seen unhosted by this pass waits for the next.
      const b = await seedPool(h.db, h.net.subnet.id, { name: 'b' });
      assert.deepEqual(await runLbaasSweep(h.deps, memory), []);
      assert.deepEqual(await h.hostsOf(b), []);
      assert.deepEqual((await poolStatuses(h.db, b)).pool?.description, null, 'an agent exists');
      assert.deepEqual(
        (await runLbaasSweep(h.deps, memory)).map((c) => c.poolId),
        [b],
      );
    });

    test('the sweep moves a pool off a dead agent, VIP port first, and both agents hear', async () => {
      await h.report('h1', 'h2');
      const a = await h.poolWithVip('a');
      await poolChanged(h.deps, a.id);
      assert.deepEqual(await h.hostsOf(a.id), ['h1']);
      const memory = newLbaasSweepMemory();

      h.advance(LB_DOWN / 2);
      await h.report('h2');
      assert.deepEqual(await runLbaasSweep(h.deps, memory), [], 'h1 is not dead yet');
      h.advance(LB_DOWN / 2 + 1);
      await h.report('h2');
      h.received.length = 0;
      const sent: string[] = [];
      const moved = await runLbaasSweep(recording(sent), memory);
      assert.deepEqual(moved, [
        { poolId: a.id, from: 'h1', to: 'h2', moved: true, ports: [a.port.id] },
      ]);
      assert.equal(sent[0], `${OVS_FANOUT} ${a.port.id}`, 'the fence goes out first');
      assert.deepEqual(sent.slice(1).sort(), [`lbaas_agent.h1 ${a.id}`, `lbaas_agent.h2 ${a.id}`]);
      assert.equal(await h.portHost(a.port.id), 'h2', 'the fence: the VIP port moved');
      await h.waitPortHint(a.port.id);
      await h.waitPoolHint('h1', a.id);
      await h.waitPoolHint('h2', a.id);

      // Nobody alive: the binding stays.
      h.advance(LB_DOWN + 1);
      assert.deepEqual(await runLbaasSweep(h.deps, memory), []);
      assert.deepEqual(await h.hostsOf(a.id), ['h2']);

      // Both back (revival), h2 admin-down: the pool moves to h1.
      await h.report('h1', 'h2');
      const h2 = await h.agentOn('h2');
      await h.call('PUT', `/v2.0/agents/${h2.id}`, { agent: { admin_state_up: false } });
      const back = await runLbaasSweep(h.deps, memory);
      assert.deepEqual(
        back.map((m) => [m.from, m.to]),
        [['h2', 'h1']],
      );
      assert.equal(await h.portHost(a.port.id), 'h1');

      // allow_automatic_failover = false: a dead agent keeps its pools.
      h.settings.allowAutomaticFailover = false;
      await h.call('PUT', `/v2.0/agents/${h2.id}`, { agent: { admin_state_up: true } });
      h.advance(LB_DOWN + 1);
      await h.report('h2');
      assert.deepEqual(await runLbaasSweep(h.deps, memory), []);
      assert.deepEqual(await h.hostsOf(a.id), ['h1']);
    });

    test("a deleted agent's pools go elsewhere and its host hears; a stray VIP port is rebound", async () => {
      await h.report('h1', 'h2');
      const a = await h.poolWithVip('a');
      await poolChanged(h.deps, a.id);
      const h1 = await h.agentOn('h1');
      assert.equal((await h.call('DELETE', `/v2.0/agents/${h1.id}`)).status, 204);
      assert.deepEqual(await h.hostsOf(a.id), [], 'the binding went with the agent');
      const memory = newLbaasSweepMemory();
      assert.deepEqual(await runLbaasSweep(h.deps, memory), [], 'first sighting');
      h.received.length = 0;
      const moved = await runLbaasSweep(h.deps, memory);
      assert.deepEqual(moved, [
        { poolId: a.id, from: 'h1', to: 'h2', moved: true, ports: [a.port.id] },
      ]);
      await h.waitPoolHint('h1', a.id);
      await h.waitPoolHint('h2', a.id);

      await h.db.query("UPDATE ports SET host_id = 'h9' WHERE id = ?", [a.port.id]);
      h.received.length = 0;
      const rebound = await runLbaasSweep(h.deps, memory);
      assert.deepEqual(rebound, [
        { poolId: a.id, from: null, to: 'h2', moved: false, ports: [a.port.id] },
      ]);
      assert.equal(await h.portHost(a.port.id), 'h2');
      await h.waitPortHint(a.port.id);
    });

    test('the agent-scheduler routes: shapes, the unhosted answer, admin only', async () => {
      await h.report('h1');
      const a = await h.poolWithVip('a');
      await poolChanged(h.deps, a.id);
      const h1 = await h.agentOn('h1');
      const pools = await h.call('GET', `/v2.0/agents/${h1.id}/loadbalancer-pools`);
      assert.equal(pools.status, 200, pools.raw);
      const shown = await h.call('GET', `/v2.0/lb/pools/${a.id}`);
      assert.equal(shown.status, 200, shown.raw);
      assert.deepEqual(pools.body, { pools: [(shown.body as { pool: unknown }).pool] });
      const [view] = (pools.body as { pools: Record<string, unknown>[] }).pools;
      assert.equal(view?.vip_id, a.vip);
      const only = await h.call('GET', `/v2.0/agents/${h1.id}/loadbalancer-pools?fields=id`);
      assert.deepEqual(only.body, { pools: [{ id: a.id }] });
      assert.deepEqual(
        (await h.call('GET', `/v2.0/agents/${GHOST}/loadbalancer-pools`)).body,
        { pools: [] },
        "Neutron's answer for an agent hosting nothing",
      );

      const agent = await h.call('GET', `/v2.0/lb/pools/${a.id}/loadbalancer-agent`);
      assert.equal(agent.status, 200, agent.raw);
      assert.deepEqual(agent.body, { agent: h1 });
      const bare = await seedPool(h.db, h.net.subnet.id);
      const none = await h.call('GET', `/v2.0/lb/pools/${bare}/loadbalancer-agent`);
      assert.equal(none.status, 200);
      assert.equal(none.raw, 'null', "Neutron's answer when no agent hosts the pool");
      const ghost = await h.call('GET', `/v2.0/lb/pools/${GHOST}/loadbalancer-agent`);
      assert.deepEqual([ghost.status, ghost.raw], [200, 'null'], 'Neutron checks no parent pool');

      for (const [url, rule] of [
        [`/v2.0/agents/${h1.id}/loadbalancer-pools`, 'get_loadbalancer-pools'],
        [`/v2.0/lb/pools/${a.id}/loadbalancer-agent`, 'get_loadbalancer-agent'],
      ] as const) {
        const r = await h.call('GET', url, undefined, LB_MEMBER);
        assert.equal(r.status, 403, r.raw);
        assert.match(r.raw, new RegExp(`rule:${rule} is disallowed by policy`));
      }
    });
  });
}
