/**
 * L3 scheduling in kumo-api on both database engines, with a real broker catching the
 * router hints (`l3_agent.<host>`) and the port hints (OVS fanout), routers seeded in SQL
 * with real ports (test/helpers/l3-harness.ts): scheduling on router change, the ports
 * following their router (the fence) with its hints sent first, the failover sweep with
 * an injected clock (dead and admin-down agents; no eligible agent: the binding stays), a
 * deleted agent's routers rehosted and its host told, the sweep's second-sighting rule
 * for unhosted routers, stray ports, and two replicas racing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openDb } from '../../api/db/index.ts';
import { OVS_FANOUT } from '../../api/hints.ts';
import {
  type L3Deps,
  l3HostsOf,
  newL3SweepMemory,
  routerChanged,
  routerDeleted,
  runL3Sweep,
} from '../../api/scheduler/l3.ts';
import { waitFor } from '../helpers/env.ts';
import { L3_DOWN, l3Harness } from '../helpers/l3-harness.ts';
import {
  agentState,
  bindingSnapshot,
  reportAgents,
  seedGateway,
  seedInterface,
  seedRouter,
} from '../helpers/l3-seed.ts';

const GHOST = '00000000-0000-4000-8000-000000000000';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`L3 scheduling on ${engine}`, () => {
    const h = l3Harness(engine);

    test('a router with a gateway or an interface goes to the agent with fewest routers; its ports follow', async () => {
      await h.report('h1', 'h2');
      const a = await h.fullRouter('a');
      await routerChanged(h.deps, a.id);
      assert.deepEqual(await h.hostsOf(a.id), ['h1'], 'equal loads: the first host name');
      assert.deepEqual(await h.portHosts(a.ports), ['h1']);
      await h.waitPortHints(a.ports);
      await h.waitRouterHint('h1', a.id);

      const b = await seedRouter(h.db, { name: 'b' });
      const bIface = await seedInterface(
        h.db,
        b,
        (await h.network('b', '10.2.0.0/24', false)).subnet,
      );
      await routerChanged(h.deps, b);
      assert.deepEqual(await h.hostsOf(b), ['h2'], 'fewest routers');
      assert.deepEqual(await h.portHosts([bIface.id]), ['h2']);

      const bare = await seedRouter(h.db, { name: 'bare' });
      await routerChanged(h.deps, bare);
      assert.deepEqual(await h.hostsOf(bare), [], 'no gateway, no interface: no host');
      const down = await seedRouter(h.db, { name: 'down', adminStateUp: false });
      await seedGateway(h.db, down, h.ext.net.id);
      await routerChanged(h.deps, down);
      assert.deepEqual(await h.hostsOf(down), [], 'admin-down: no host');

      // A new interface on a hosted router is bound to its host and hinted, nothing moves.
      h.received.length = 0;
      const a2 = await seedInterface(
        h.db,
        a.id,
        (await h.network('a2', '10.3.0.0/24', false)).subnet,
      );
      await routerChanged(h.deps, a.id, ['h3']);
      assert.deepEqual(await h.portHosts([a2.id]), ['h1']);
      await h.waitPortHints([a2.id]);
      await h.waitRouterHint('h1', a.id);
      await h.waitRouterHint('h3', a.id);
      assert.ok(!a.ports.some(h.portHinted), 'ports already on h1 are not hinted again');
    });

    test('a gateway on a flat physnet goes to the host whose OVS agent maps it', async () => {
      await h.report('h1', 'h2');
      await reportAgents(h, h.deps.clock.now(), [
        agentState('h1', 'ovs', { bridge_mappings: {} }),
        agentState('h2', 'ovs', { bridge_mappings: { public: 'br-ex' } }),
      ]);
      const net = await h.call('POST', '/v2.0/networks', {
        network: {
          name: 'flat-ext',
          'router:external': true,
          'provider:network_type': 'flat',
          'provider:physical_network': 'public',
        },
      });
      assert.equal(net.status, 201, net.raw);
      const netId = (net.body as { network: { id: string } }).network.id;
      const sub = await h.call('POST', '/v2.0/subnets', {
        subnet: { network_id: netId, cidr: '198.51.100.0/24', ip_version: 4, enable_dhcp: false },
      });
      assert.equal(sub.status, 201, sub.raw);
      const r = await seedRouter(h.db, { name: 'flat-gw' });
      await seedGateway(h.db, r, netId);
      await routerChanged(h.deps, r);
      assert.deepEqual(
        await h.hostsOf(r),
        ['h2'],
        'h1 sorts first but cannot reach physnet public',
      );
      const tunnelGw = await h.fullRouter('tunnel-gw');
      await routerChanged(h.deps, tunnelGw.id);
      assert.deepEqual(
        await h.hostsOf(tunnelGw.id),
        ['h1'],
        'a tunnelled external network needs no mapping',
      );
    });

    test('dead and admin-down agents are never scheduled to; routerChanged never rejects', async () => {
      await h.report('h1', 'h2', 'h3');
      h.advance(L3_DOWN + 1);
      await h.report('h2', 'h3');
      const h2 = await h.agentOn('h2');
      const put = await h.call('PUT', `/v2.0/agents/${h2.id}`, {
        agent: { admin_state_up: false },
      });
      assert.equal(put.status, 200);
      const a = await h.fullRouter('a');
      await routerChanged(h.deps, a.id);
      assert.deepEqual(await h.hostsOf(a.id), ['h3']);
      await routerChanged(h.deps, GHOST);
      assert.deepEqual(await h.hostsOf(a.id), ['h3']);
    });

    test('the sweep moves a router off a dead agent, ports first, and both agents hear', async () => {
      await h.report('h1', 'h2');
      const a = await h.fullRouter('a');
      await routerChanged(h.deps, a.id);
      assert.deepEqual(await h.hostsOf(a.id), ['h1']);
      assert.ok(await h.routerInfo('h1', a.id));
      const memory = newL3SweepMemory();

      h.advance(L3_DOWN / 2);
      await h.report('h2');
      assert.deepEqual(await runL3Sweep(h.deps, memory), [], 'h1 is not dead yet');
      h.advance(L3_DOWN / 2 + 1);
      await h.report('h2');
      h.received.length = 0;
      // The real broker, with the order of what is sent recorded: the fence comes first.
      const sent: string[] = [];
      const recording: L3Deps = {
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
      const moved = await runL3Sweep(recording, memory);
      assert.deepEqual(sent.slice(0, 2).sort(), a.ports.map((p) => `${OVS_FANOUT} ${p}`).sort());
      assert.deepEqual(sent.slice(2).sort(), [`l3_agent.h1 ${a.id}`, `l3_agent.h2 ${a.id}`]);
      assert.deepEqual(moved, [
        { routerId: a.id, from: 'h1', to: 'h2', moved: true, ports: [...a.ports].sort() },
      ]);
      assert.deepEqual(await h.hostsOf(a.id), ['h2']);
      assert.deepEqual(
        await h.portHosts(a.ports),
        ['h2'],
        'the fence: ports bound to the new host',
      );
      await h.waitPortHints(a.ports);
      await h.waitRouterHint('h2', a.id);
      await h.waitRouterHint('h1', a.id);
      assert.equal(await h.routerInfo('h1', a.id), null);
      assert.deepEqual(await h.activeRouters('h1'), []);
      assert.equal((await h.routerInfo('h2', a.id))?.gw_port?.id, a.gw.id);

      // Nobody alive to take it: the binding stays.
      h.advance(L3_DOWN + 1);
      assert.deepEqual(await runL3Sweep(h.deps, memory), []);
      assert.deepEqual(await h.hostsOf(a.id), ['h2']);

      // Both back, h2 admin-down: the router moves to h1.
      await h.report('h1', 'h2');
      const h2 = await h.agentOn('h2');
      await h.call('PUT', `/v2.0/agents/${h2.id}`, { agent: { admin_state_up: false } });
      const back = await runL3Sweep(h.deps, memory);
      assert.deepEqual(
        back.map((m) => [m.from, m.to]),
        [['h2', 'h1']],
      );
      assert.deepEqual(await h.portHosts(a.ports), ['h1']);

      // allow_automatic_failover = false: a dead agent keeps its routers.
      h.settings.allowAutomaticFailover = false;
      await h.call('PUT', `/v2.0/agents/${h2.id}`, { agent: { admin_state_up: true } });
      h.advance(L3_DOWN + 1);
      await h.report('h2');
      const before = await bindingSnapshot(h.db);
      assert.deepEqual(await runL3Sweep(h.deps, memory), []);
      assert.deepEqual(await bindingSnapshot(h.db), before);
    });

    test('a deleted agent takes its bindings along; the sweep rehosts its routers and its host hears', async () => {
      await h.report('h1', 'h2');
      const a = await h.fullRouter('a');
      await routerChanged(h.deps, a.id);
      const h1 = await h.agentOn('h1');
      assert.equal((await h.call('DELETE', `/v2.0/agents/${h1.id}`)).status, 204);
      assert.deepEqual(await h.hostsOf(a.id), [], 'the binding went with the agent');
      assert.deepEqual(await h.portHosts(a.ports), ['h1'], 'the ports stay until it moves');
      const memory = newL3SweepMemory();
      assert.deepEqual(await runL3Sweep(h.deps, memory), [], 'first sighting');
      h.received.length = 0;
      assert.deepEqual(await runL3Sweep(h.deps, memory), [
        { routerId: a.id, from: 'h1', to: 'h2', moved: true, ports: [...a.ports].sort() },
      ]);
      assert.deepEqual(await h.portHosts(a.ports), ['h2']);
      await h.waitPortHints(a.ports);
      await h.waitRouterHint('h2', a.id);
      await h.waitRouterHint('h1', a.id);
      assert.equal(await h.routerInfo('h1', a.id), null, 'h1 serves nothing for it');
    });

    test('a deleted router: the hosts read before the delete hear {deleted: true}, once each', async () => {
      await h.report('h1', 'h2');
      const a = await h.fullRouter('a');
      await routerChanged(h.deps, a.id);
      const hosts = await l3HostsOf(h.db, a.id);
      assert.deepEqual(hosts, ['h1']);
      // The scheduling's own hints land first (deliveries are asynchronous), then only
      // deletion hints are counted.
      await h.waitRouterHint('h1', a.id);
      h.received.length = 0;
      await routerDeleted(h.deps, a.id, [...hosts, 'h3', 'h3', '']);
      const hints = () =>
        h.received
          .filter((r) => r.message.method === 'hint' && r.message.args.deleted === true)
          .map((r) => [r.queue, r.message.args])
          .sort();
      await waitFor('both deletion hints', () => hints().length === 2);
      assert.deepEqual(hints(), [
        ['l3_agent.h1', { resource: 'router', id: a.id, deleted: true }],
        ['l3_agent.h3', { resource: 'router', id: a.id, deleted: true }],
      ]);
    });

    test('the sweep binds an unhosted router on its second sighting and rebinds stray ports', async () => {
      const a = await h.fullRouter('a');
      await routerChanged(h.deps, a.id);
      assert.deepEqual(await h.hostsOf(a.id), [], 'no L3 agent yet');
      await h.report('h1');
      const memory = newL3SweepMemory();
      assert.deepEqual(
        await runL3Sweep(h.deps, memory),
        [],
        'first sighting: left for an operator',
      );
      const [placed] = await runL3Sweep(h.deps, memory);
      assert.equal(placed?.to, 'h1');
      assert.deepEqual(await h.portHosts(a.ports), ['h1']);
      await h.db.query("UPDATE ports SET host_id = 'elsewhere' WHERE id = ?", [a.iface.id]);
      h.received.length = 0;
      assert.deepEqual(await runL3Sweep(h.deps, memory), [
        { routerId: a.id, from: null, to: 'h1', moved: false, ports: [a.iface.id] },
      ]);
      await h.waitPortHints([a.iface.id]);
      await h.waitRouterHint('h1', a.id);
    });

    test('two replicas scheduling at once never double-bind', async () => {
      const routers: string[] = [];
      for (let i = 0; i < 16; i++) {
        const id = await seedRouter(h.db, { name: `r${i}` });
        await seedGateway(h.db, id, h.ext.net.id);
        routers.push(id);
      }
      await h.report('h1', 'h2');
      const db2 = engine === 'postgres' ? openDb(h.dbUrl) : h.db;
      try {
        const deps2: L3Deps = { ...h.deps, db: db2 };
        const memory = newL3SweepMemory();
        memory.unhosted = new Set(routers);
        await Promise.all([
          runL3Sweep(h.deps, memory),
          ...routers.map((id) => routerChanged(deps2, id)),
        ]);
      } finally {
        if (db2 !== h.db) await db2.close();
      }
      const counts: Record<string, number> = {};
      for (const id of routers) {
        const hosts = await h.hostsOf(id);
        assert.equal(hosts.length, 1);
        const host = hosts[0] as string;
        counts[host] = (counts[host] ?? 0) + 1;
        const gw = await h.db.query<{ host_id: string }>(
          'SELECT p.host_id FROM ports p JOIN routers r ON r.gw_port_id = p.id WHERE r.id = ?',
          [id],
        );
        assert.deepEqual(
          gw.map((g) => g.host_id),
          hosts,
        );
      }
      assert.deepEqual(counts, { h1: 8, h2: 8 }, 'spread evenly');
    });
  });
}
