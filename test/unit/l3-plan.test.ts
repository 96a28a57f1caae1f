/**
 * The pure L3 scheduling plan (api/scheduler/l3-plan.ts): fewest routers first, ties by
 * host name, never a dead or admin-down agent, failover only to an eligible agent (the
 * binding stays when there is none), no move without failover, `schedulable`
 * limiting which unhosted routers are bound, and a router whose gateway needs a physical
 * network going only to a host that maps it (or whose mappings are unknown).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type L3AgentInfo, pickAgent, planRouterBindings } from '../../api/scheduler/l3-plan.ts';

const agents = (): L3AgentInfo[] => [
  { id: 'a', host: 'h2', eligible: true, load: 0 },
  { id: 'b', host: 'h1', eligible: true, load: 0 },
  { id: 'c', host: 'h0', eligible: false, load: 0 },
];

describe('planRouterBindings', () => {
  test('fewest routers first, ties by host, the plan spreads as it goes', () => {
    assert.deepEqual(planRouterBindings(['r3', 'r1', 'r2'], new Map(), agents(), true), [
      { routerId: 'r1', from: null, to: 'b' },
      { routerId: 'r2', from: null, to: 'a' },
      { routerId: 'r3', from: null, to: 'b' },
    ]);
    const loaded = agents();
    (loaded[1] as L3AgentInfo).load = 5;
    assert.deepEqual(planRouterBindings(['r1'], new Map(), loaded, true), [
      { routerId: 'r1', from: null, to: 'a' },
    ]);
  });

  test('a gateway on physnet P goes only to a host mapping P (unknown mappings: allowed)', () => {
    const mapped = (physnets: string[] | null, id: string, host: string): L3AgentInfo => ({
      id,
      host,
      eligible: true,
      load: 0,
      physnets: physnets && new Set(physnets),
    });
    const hosts = [mapped([], 'a', 'h1'), mapped(['public'], 'b', 'h2'), mapped(['x'], 'c', 'h3')];
    const needs = new Map([['r1', 'public']]);
    assert.deepEqual(planRouterBindings(['r1', 'r2'], new Map(), hosts, true, undefined, needs), [
      { routerId: 'r1', from: null, to: 'b' },
      { routerId: 'r2', from: null, to: 'a' },
    ]);
    assert.deepEqual(
      planRouterBindings(['r1'], new Map(), [hosts[0] as L3AgentInfo], true, undefined, needs),
      [],
    );
    assert.equal(pickAgent([mapped(null, 'd', 'h4')], 'public')?.id, 'd');
    const bound = new Map([['r1', 'z']]);
    assert.deepEqual(
      planRouterBindings(['r1'], bound, [hosts[2] as L3AgentInfo], true, undefined, needs),
      [],
      'the binding stays',
    );
  });

  test('never a dead or admin-down agent; nothing eligible, nothing planned', () => {
    const onlyIneligible = [{ id: 'c', host: 'h0', eligible: false, load: 0 }];
    assert.deepEqual(planRouterBindings(['r1'], new Map(), onlyIneligible, true), []);
    assert.equal(pickAgent(onlyIneligible), undefined);
    for (const move of planRouterBindings(['r1', 'r2', 'r3'], new Map(), agents(), true))
      assert.notEqual(move.to, 'c');
  });

  test('failover moves a router off an ineligible agent, keeps it when none can take it', () => {
    const bound = new Map([['r1', 'c']]);
    assert.deepEqual(planRouterBindings(['r1'], bound, agents(), true), [
      { routerId: 'r1', from: 'c', to: 'b' },
    ]);
    const onlyDead = [{ id: 'c', host: 'h0', eligible: false, load: 1 }];
    assert.deepEqual(planRouterBindings(['r1'], bound, onlyDead, true), [], 'the binding stays');
    assert.deepEqual(planRouterBindings(['r1'], bound, agents(), false), [], 'failover off');
    const gone = new Map([['r1', 'deleted-agent']]);
    assert.deepEqual(planRouterBindings(['r1'], gone, agents(), true), [
      { routerId: 'r1', from: 'deleted-agent', to: 'b' },
    ]);
  });

  test('a router on an eligible agent stays; the moved router frees its load', () => {
    const list = agents();
    const bound = new Map([
      ['r1', 'a'],
      ['r2', 'c'],
    ]);
    (list[0] as L3AgentInfo).load = 1;
    (list[2] as L3AgentInfo).load = 1;
    assert.deepEqual(planRouterBindings(['r1', 'r2'], bound, list, true), [
      { routerId: 'r2', from: 'c', to: 'b' },
    ]);
    assert.deepEqual(
      list.map((x) => x.load),
      [1, 1, 0],
    );
  });

  test('schedulable limits which unhosted routers are bound, not the failover', () => {
    const bound = new Map([['r2', 'c']]);
    assert.deepEqual(
      planRouterBindings(['r1', 'r2', 'r3'], bound, agents(), true, new Set(['r3'])),
      [
        { routerId: 'r2', from: 'c', to: 'b' },
        { routerId: 'r3', from: null, to: 'a' },
      ],
    );
  });
});
