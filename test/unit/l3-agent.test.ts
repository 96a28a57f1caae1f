/**
 * The L3 agent's `router` kind through the kit's reconciler, with a FakeRunner (expected
 * argv → scripted output) and a FakeOvsdb passed in (no module patching): what a new router
 * runs, exactly and in order; that a host in order (observed through scripted `ip -j`,
 * `sysctl` and `iptables-save` output) runs nothing but its three observations; IPv6
 * forwarding; a removed floating IP; teardown, a foreign namespace and another host's
 * marker left alone; a failed command reported ERROR with its stderr.
 *
 * The iptables input expected is rendered from agents/l3/nat.ts's own model (another
 * module's rules, tested on their own), so these tests pin the agent's sequencing, not
 * the NAT rules.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type DesiredRouter, desiredRouter } from '../../agents/l3/desired.ts';
import { emptyIptables, ownedRouterIds } from '../../agents/l3/observe.ts';
import { CommandError } from '../../core/exec.ts';
import { conntrackDeleteCommands } from '../../host/conntrack/conntrack.ts';
import { render } from '../../host/iptables/render.ts';
import { ipForwardCommand } from '../../host/sysctl/sysctl.ts';
import {
  addrJson,
  expected,
  garps,
  harness,
  ID,
  NS,
  observed,
  ovsdbWithPorts,
  QG,
  QR_A,
  QR_B,
  routerOf,
  S,
  uuid,
} from '../helpers/l3-agent-kit.ts';

describe('kumo-l3-agent router kind (FakeRunner, FakeOvsdb)', () => {
  const router = routerOf(ID);
  const d = desiredRouter(router, S) as DesiredRouter;

  test('a new router runs exactly: marker, namespace, plug, move, one batch, forwarding, one restore, GARPs, statuses', async () => {
    const h = harness(router);
    h.runner.expect(
      { argv: ['ip', 'netns', 'add', NS] },
      {
        argv: ['ip', '-n', 'klt-vswitchd', '-batch', '-'],
        stdin: [QR_A, QR_B, QG].map((dev) => `link set dev ${dev} netns ${NS}\n`).join(''),
      },
      {
        argv: ['ip', '-n', NS, '-batch', '-'],
        stdin: [
          'link set dev lo up',
          ...[
            [QR_A, 'fa:16:3e:00:0a:01', '10.1.0.1/24'],
            [QR_B, 'fa:16:3e:00:0b:01', '10.2.0.1/24'],
          ].flatMap(([dev, mac, cidr]) => [
            `link set dev ${dev} address ${mac}`,
            `link set dev ${dev} mtu 1450`,
            `link set dev ${dev} up`,
            `addr replace ${cidr} dev ${dev}`,
          ]),
          `link set dev ${QG} address fa:16:3e:00:0c:01`,
          `link set dev ${QG} mtu 1500`,
          `link set dev ${QG} up`,
          `addr replace 203.0.113.10/24 dev ${QG}`,
          `addr replace 203.0.113.20/32 dev ${QG}`,
          `route replace 0.0.0.0/0 via 203.0.113.1 dev ${QG} proto static`,
          'route replace 10.9.0.0/16 via 10.2.0.50 proto static',
          '',
        ].join('\n'),
      },
      expected(ipForwardCommand(NS)),
      {
        argv: ['iptables-restore', '--noflush'],
        netns: NS,
        stdin: render(d.iptables, emptyIptables()),
      },
      ...garps(['203.0.113.10', '203.0.113.20']),
    );
    await h.reconcile();
    h.runner.verify();
    assert.equal(readFileSync(join(S.stateRoot, ID, 'host'), 'utf8'), 'net1\n', 'marker');
    const [plug, ...more] = h.ovsdb.writes();
    assert.deepEqual(more, [], 'one OVSDB write plugs every port');
    const inserted = plug?.filter((op) => op.op === 'insert' && op.table === 'Interface');
    assert.deepEqual(
      inserted?.map((op) => op.op === 'insert' && op.row.name),
      [QR_A, QR_B, QG],
    );
    assert.deepEqual(h.fipCalls, [[{ id: router.floating_ips[0]?.id, status: 'ACTIVE' }]]);
    assert.deepEqual(h.sent, [[{ resource: 'router', id: ID, status: 'ACTIVE' }]]);
  });

  test('a host in order (a restarted agent) runs only its observation and reports no floating IP', async () => {
    const served = structuredClone(router);
    for (const f of served.floating_ips) f.status = 'ACTIVE';
    mkdirSync(join(S.stateRoot, ID), { recursive: true });
    writeFileSync(join(S.stateRoot, ID, 'host'), 'net1\n');
    const h = harness(served, { netns: true, ovsdb: ovsdbWithPorts(d) });
    h.runner.expect(...observed(d));
    await h.reconcile();
    assert.equal(h.runner.calls.length, 3, 'ip -j -batch, sysctl -n, iptables-save: no more');
    assert.equal(h.ovsdb.transactions.length, 1, 'OVSDB read in one transaction');
    h.runner.verify();
    assert.deepEqual(h.ovsdb.writes(), []);
    assert.deepEqual(h.fipCalls, []);
    assert.deepEqual(h.sent, [[{ resource: 'router', id: ID, status: 'ACTIVE' }]]);
  });

  test('an IPv6 interface: forwarding observed and set for both families in one sysctl each', async () => {
    const dual = structuredClone(router);
    for (const f of dual.floating_ips) f.status = 'ACTIVE';
    dual.interfaces[0]?.fixed_ips.push({
      subnet_id: uuid('6'),
      ip_address: '2001:db8:1::1',
      cidr: '2001:db8:1::/64',
      gateway_ip: '2001:db8:1::1',
    });
    const d6 = desiredRouter(dual, S) as DesiredRouter;
    assert.deepEqual(d6.families, [4, 6]);
    const h = harness(dual, { netns: true, ovsdb: ovsdbWithPorts(d6) });
    const [batch, , save] = observed(d6);
    const keys = ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'];
    assert.ok(batch && save);
    h.runner.expect(batch, { argv: ['sysctl', '-n', ...keys], netns: NS, stdout: '1\n0\n' }, save, {
      argv: ['sysctl', '-w', ...keys.map((k) => `${k}=1`)],
      netns: NS,
    });
    await h.reconcile();
    h.runner.verify();
  });

  test('a removed floating IP: its /32 deleted, one restore, then conntrack -D both ways', async () => {
    const without = structuredClone(router);
    without.floating_ips = [];
    const after = desiredRouter(without, S) as DesiredRouter;
    const h = harness(without, { netns: true, ovsdb: ovsdbWithPorts(d) });
    h.runner.expect(
      ...observed(d),
      { argv: ['ip', '-n', NS, '-batch', '-'], stdin: `addr del 203.0.113.20/32 dev ${QG}\n` },
      {
        argv: ['iptables-restore', '--noflush'],
        netns: NS,
        stdin: render(after.iptables, d.iptables),
      },
      ...conntrackDeleteCommands('203.0.113.20', NS).map(expected),
    );
    await h.reconcile();
    h.runner.verify();
    assert.deepEqual(
      h.runner.calls.filter((c) => c.argv[0] === 'conntrack').map((c) => c.okExitCodes),
      [[1], [1]],
      'no entry to delete is not a failure',
    );
    assert.deepEqual(h.fipCalls, []);
  });

  test('a changed extra route: the old static route deleted first, the new one added, in the one batch', async () => {
    const moved = structuredClone(router);
    moved.routes = [{ destination: '10.8.0.0/16', nexthop: '10.2.0.51' }];
    for (const f of moved.floating_ips) f.status = 'ACTIVE';
    const h = harness(moved, { netns: true, ovsdb: ovsdbWithPorts(d) });
    h.runner.expect(...observed(d), {
      argv: ['ip', '-n', NS, '-batch', '-'],
      stdin:
        'route del 10.9.0.0/16 via 10.2.0.50 proto static\n' +
        'route replace 10.8.0.0/16 via 10.2.0.51 proto static\n',
    });
    await h.reconcile();
    h.runner.verify();
  });

  test('the gateway removed: qg- unplugged (its routes go with it), the NAT chains emptied, the floating IP’s connections forgotten', async () => {
    const internal = structuredClone(router);
    internal.gw_port = null;
    internal.floating_ips = [];
    const after = desiredRouter(internal, S) as DesiredRouter;
    const ovsdb = ovsdbWithPorts(d);
    const h = harness(internal, { netns: true, ovsdb });
    h.runner.expect(
      ...observed(d),
      {
        argv: ['iptables-restore', '--noflush'],
        netns: NS,
        stdin: render(after.iptables, d.iptables),
      },
      ...conntrackDeleteCommands('203.0.113.20', NS).map(expected),
    );
    await h.reconcile();
    h.runner.verify();
    assert.equal(after.iptables.tables.size, 0, 'no NAT without a gateway');
    const [unplug, ...more] = ovsdb.writes();
    assert.deepEqual(more, []);
    assert.equal(JSON.stringify(unplug).match(/"uuid"/g)?.length, 1, 'only qg-');
  });

  test('a failed restore: ERROR with its stderr, the error rethrown, no floating IP status sent', async () => {
    const h = harness(router, { netns: true, ovsdb: ovsdbWithPorts(d) });
    const stderr = 'iptables-restore: line 4 failed\n';
    h.runner.expect(...observed(d, emptyIptables()), {
      argv: ['iptables-restore', '--noflush'],
      netns: NS,
      fail: { exitCode: 2, stderr },
    });
    await assert.rejects(h.reconcile(), CommandError);
    h.runner.verify();
    assert.deepEqual(h.fipCalls, []);
    assert.deepEqual(h.sent, [
      [
        {
          resource: 'router',
          id: ID,
          status: 'ERROR',
          reason: `iptables-restore in ${NS} exited 2: ${stderr.trim()}`,
        },
      ],
    ]);
  });

  test('a router no longer served here: ports unplugged, namespace and state removed', async () => {
    const ovsdb = ovsdbWithPorts(d);
    const h = harness(null, { netns: true, ovsdb });
    h.runner.expect(
      { argv: ['ip', '-n', NS, '-j', 'addr', 'show'], stdout: addrJson(d) },
      {
        argv: ['ip', 'netns', 'del', NS],
      },
    );
    await h.reconcile();
    h.runner.verify();
    const [unplug, ...more] = ovsdb.writes();
    assert.deepEqual(more, []);
    const del = unplug?.find((op) => op.op === 'mutate' && op.table === 'Bridge');
    assert.ok(del?.op === 'mutate');
    assert.equal(JSON.stringify(del.mutations).match(/"uuid"/g)?.length, 3, 'its three ports');
    assert.ok(!existsSync(join(S.stateRoot, ID)), 'state removed');
    assert.deepEqual(h.sent, [[{ resource: 'router', id: ID, status: 'ACTIVE' }]]);
  });

  test('a qrouter namespace without our marker is never touched', async () => {
    const h = harness(null, { netns: true, ovsdb: ovsdbWithPorts(d) });
    await h.reconcile();
    assert.deepEqual(h.runner.calls, []);
    assert.deepEqual(h.ovsdb.transactions, [], 'not even observed');
  });

  test("another host's marker (a shared state_path): not listed by a resync, never touched", async () => {
    mkdirSync(join(S.stateRoot, ID), { recursive: true });
    writeFileSync(join(S.stateRoot, ID, 'host'), 'net2\n');
    assert.ok(!(await ownedRouterIds(S)).has(ID), 'a resync does not claim it');
    const h = harness(null, { netns: true, ovsdb: ovsdbWithPorts(d) });
    await h.reconcile();
    assert.deepEqual(h.runner.calls, []);
    assert.deepEqual(h.ovsdb.transactions, []);
    assert.equal(readFileSync(join(S.stateRoot, ID, 'host'), 'utf8'), 'net2\n', 'left as it was');
    rmSync(join(S.stateRoot, ID), { recursive: true });
  });
});
