/**
 * The ovs agent's tunnel peers (agents/ovs/l2.ts): a peer the contract refuses (an
 * endpoint stored with no tunnel types comes back as `tunnel_types: [""]`) is left out
 * and the other peers still get their tunnels, where the whole sync used to fail on every
 * host; and, as Neutron's agent, no tunnel types configured means no tunnel_sync at all,
 * so such an endpoint is never recorded. Found by
 * test/integration/renderers-property-agents.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createL2, tunnelPeers } from '../../agents/ovs/l2.ts';
import { emptyReplica } from '../../agents/ovs/observe.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { FakeOvsdb } from '../helpers/fake-ovsdb.ts';

const GOOD = { host: 'h2', tunnel_ip: '10.0.0.2', tunnel_types: ['vxlan'] };
const POISONED = { host: 'h3', tunnel_ip: '10.0.0.3', tunnel_types: [''] };

function agent(tunnelTypes: ('vxlan' | 'gre')[]) {
  const calls: string[] = [];
  const ovsdb = new FakeOvsdb();
  const runner: CommandRunner = { run: async () => ({ stdout: '', stderr: '' }) as never };
  const l2 = createL2({
    settings: {
      intBridge: 'br-int',
      tunBridge: 'br-tun',
      datapathType: 'system',
      localIp: '10.0.0.1',
      tunnelTypes,
    },
    host: 'h1',
    cookie: '0x1',
    rundir: '/run/openvswitch',
    broker: {
      call: async (_topic: string, method: string) => {
        calls.push(method);
        return method === 'tunnel_sync' ? { peers: [POISONED, GOOD] } : {};
      },
    } as never,
    runner,
    log: silentLogger(),
    replica: emptyReplica,
    ovsdb: async () => ovsdb,
  });
  return { l2, calls, ovsdb };
}

describe('ovs agent tunnel peers', () => {
  test('a peer the contract refuses is left out with its reason; the others are kept', () => {
    const { peers, rejected } = tunnelPeers({ peers: [POISONED, GOOD] });
    assert.deepEqual(peers, [GOOD]);
    assert.equal(rejected.length, 1);
    assert.deepEqual(rejected[0]?.peer, POISONED);
    assert.match(rejected[0]?.reason ?? '', /peers\[0\]\.tunnel_types\[0\]/);
    assert.throws(() => tunnelPeers({ peers: 'nope' }), /peers/);
  });

  test('a poisoned peer does not stop the sync: the good peer gets its tunnel', async () => {
    const { l2, calls, ovsdb } = agent(['vxlan']);
    await l2.reconcile('l2', 'sync');
    assert.deepEqual(calls, ['tunnel_sync']);
    const ops = JSON.stringify(ovsdb.transactions);
    assert.match(ops, /vxlan-0a000002/, 'the tunnel to h2 is made');
    assert.doesNotMatch(ops, /0a000003/, 'none to the poisoned h3');
  });

  test('no tunnel types: no tunnel_sync (the endpoint is not recorded), no tunnels', async () => {
    const { l2, calls, ovsdb } = agent([]);
    await l2.reconcile('l2', 'sync');
    assert.deepEqual(calls, []);
    assert.ok(ovsdb.transactions.length > 0, 'the bridges are still made');
    assert.doesNotMatch(JSON.stringify(ovsdb.transactions), /vxlan-|gre-/);
  });
});
