/**
 * The agent's side of the firewall (l2.ts, sg-info.ts): security_group_info is asked for
 * the groups of the filtered ports, once, until a hint or a resync forgets it; its answer
 * is parsed item by item (a bad rule or member is left out and logged, its neighbours
 * stay); a failed call fails the sync before any flow is written (the old flows stay).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pino from 'pino';
import type { OvsSettings } from '../../agents/ovs/desired.ts';
import { createL2 } from '../../agents/ovs/l2.ts';
import { applyUpdates, emptyReplica } from '../../agents/ovs/observe.ts';
import { parseSgInfo } from '../../agents/ovs/sg-info.ts';
import type { FirewallRule } from '../../contracts/l2.ts';
import { DeviceDetails } from '../../contracts/l2.ts';
import type { CommandSpec } from '../../core/exec.ts';
import { FakeOvsdb } from '../helpers/fake-ovsdb.ts';
import { DEF, fwDetail, fwRule, uuid } from '../helpers/firewall-fixtures.ts';

const S: OvsSettings = {
  intBridge: 'br-int',
  tunBridge: 'br-tun',
  datapathType: 'netdev',
  localIp: null,
  tunnelTypes: [],
};
/** A run directory whose ovs-vswitchd control socket is the fixed name (as the lab's). */
const RUNDIR = mkdtempSync(join(tmpdir(), 'kumo-ovs-l2-'));
writeFileSync(join(RUNDIR, 'ovs-vswitchd.ctl'), '');
const OTHER = 'eeeeeeee-0000-4000-8000-000000000001';
const detail = fwDetail;
const rule = (n: number, extra: Partial<FirewallRule> = {}) =>
  fwRule(n, { protocol: 6, port_range_min: 22, port_range_max: 22, ...extra });

function harness(sgReply: () => unknown) {
  const lines: string[] = [];
  const calls: { method: string; args: Record<string, unknown> }[] = [];
  const commands: CommandSpec[] = [];
  const replica = emptyReplica();
  applyUpdates(replica, {
    Bridge: {
      b1: {
        new: {
          name: 'br-int',
          ports: [
            'set',
            [
              ['uuid', 'p1'],
              ['uuid', 'p2'],
            ],
          ],
        },
      },
    },
    Port: {
      p1: { new: { name: 'tap1', interfaces: ['uuid', 'i1'] } },
      p2: { new: { name: 'tap2', interfaces: ['uuid', 'i2'] } },
    },
    Interface: {
      i1: { new: { name: 'tap1', ofport: 7, external_ids: ['map', [['iface-id', uuid(1)]]] } },
      i2: { new: { name: 'tap2', ofport: 8, external_ids: ['map', [['iface-id', uuid(2)]]] } },
    },
  });
  const l2 = createL2({
    settings: S,
    host: 'h1',
    cookie: '0x1',
    rundir: RUNDIR,
    broker: {
      call: async (_topic: string, method: string, args: Record<string, unknown>) => {
        calls.push({ method, args });
        if (method === 'get_devices_details')
          return {
            devices: [detail(1), detail(2, { port_security_enabled: false, security_groups: [] })],
            unknown: [],
          };
        if (method === 'security_group_info') return sgReply();
        return { updated: 1 };
      },
    } as never,
    runner: {
      run: async (c: CommandSpec) => {
        commands.push(c);
        return { stdout: '', stderr: '' } as never;
      },
    },
    log: pino({ level: 'warn' }, { write: (l: string) => lines.push(l) }),
    replica: () => replica,
    ovsdb: async () => new FakeOvsdb(),
  });
  const sgCalls = () => calls.filter((c) => c.method === 'security_group_info');
  const brInt = () => commands.filter((c) => c.argv.some((a) => a.endsWith('/br-int.mgmt')));
  const flushes = () =>
    commands.filter((c) => c.argv.includes('dpctl/flush-conntrack')).map((c) => c.argv);
  return { l2, lines, sgCalls, brInt, flushes, replica };
}

const GOOD = () => ({
  groups: [
    {
      id: DEF,
      rules: [
        rule(1),
        rule(2, { protocol: 58 }),
        { id: 'x' },
        rule(3, { port_range_min: 80, port_range_max: 80 }),
      ],
    },
  ],
  members: [{ id: OTHER, ips: ['10.0.0.9', 'not-an-ip'] }],
});

describe('security_group_info in the agent', () => {
  test('asked once for the filtered ports’ groups; a bad rule is left out, its neighbours stay', async () => {
    const h = harness(GOOD);
    await h.l2.reconcile('l2', 'sync');
    await h.l2.reconcile('l2', 'sync');
    assert.deepEqual(
      h.sgCalls().map((c) => c.args),
      [{ host: 'h1', security_groups: [DEF] }],
      'one call, the filtered port’s group only, cached for the next sync',
    );
    const flows = String(h.brInt().at(-1)?.stdin ?? '');
    assert.match(flows, /tcp,tp_dst=22,reg5=7,/);
    assert.match(flows, /tcp,tp_dst=80,reg5=7,/);
    assert.doesNotMatch(flows, /reg5=8/, 'port security off: no pipeline');
    const warned = h.lines.map((l) => JSON.parse(l));
    assert.ok(
      warned.some((w) => w.id === 'x' && /UUID/.test(w.reason)),
      'the malformed rule',
    );
    assert.ok(
      warned.some((w) => w.id === 'ips-1'),
      'the bad member address',
    );
    assert.ok(
      warned.some((w) => w.rule === uuid(102) && /ICMPv6/.test(w.reason)),
      'the inexpressible rule',
    );
    assert.equal(
      warned.filter((w) => w.rule === uuid(102)).length,
      1,
      'logged once, not on every sync',
    );
  });

  test('a security_group hint, a hint for a port here and a resync each ask again', async () => {
    const h = harness(GOOD);
    await h.l2.reconcile('l2', 'sync');
    h.l2.forgetGroups();
    await h.l2.reconcile('l2', 'sync');
    h.l2.forgetPort(uuid(2));
    await h.l2.reconcile('l2', 'sync');
    h.l2.forget();
    await h.l2.reconcile('l2', 'sync');
    assert.equal(h.sgCalls().length, 4);
    h.l2.forgetPort(uuid(9));
    await h.l2.reconcile('l2', 'sync');
    assert.equal(h.sgCalls().length, 4, 'a hint for another host’s port costs no new call');
  });

  test('a filtered port that leaves (renumbered, then removed) has its zone flushed once', async () => {
    const h = harness(GOOD);
    await h.l2.reconcile('l2', 'sync');
    assert.deepEqual(h.flushes(), [], 'nothing left yet');
    applyUpdates(h.replica, { Interface: { i1: { new: { ofport: 9 } } } });
    await h.l2.reconcile('l2', 'sync');
    const flush = (zone: number) => [
      'ovs-appctl',
      '-t',
      join(RUNDIR, 'ovs-vswitchd.ctl'),
      'dpctl/flush-conntrack',
      `zone=${zone}`,
    ];
    assert.deepEqual(h.flushes(), [flush(7)], 'the old ofport’s zone, after the new flows');
    const lastFlows = h.brInt().at(-1)?.stdin ?? '';
    assert.match(String(lastFlows), /zone=9/);
    await h.l2.reconcile('l2', 'sync');
    assert.deepEqual(h.flushes(), [flush(7)], 'once');
    applyUpdates(h.replica, { Port: { p1: {} }, Interface: { i1: {} } });
    await h.l2.reconcile('l2', 'sync');
    assert.deepEqual(h.flushes(), [flush(7), flush(9)], 'a port that left the bridge');
  });

  test('a failed or malformed answer fails the sync before any flow is written', async () => {
    const cases: [() => unknown, RegExp][] = [
      [
        () => {
          throw new Error('rpc timeout');
        },
        /rpc timeout/,
      ],
      [() => ({ groups: 'nope', members: [] }), /groups: must be an array/],
    ];
    for (const [reply, why] of cases) {
      const h = harness(reply);
      const thrown = await h.l2.reconcile('l2', 'sync').then(
        () => '',
        (e: Error) => e.message,
      );
      // A call that failed is retried (rethrown); a malformed answer is a permanent failure, logged.
      const logged = h.lines.map((l) => JSON.parse(l).err ?? '').join(' ');
      assert.match(`${thrown} ${logged}`, why);
      assert.equal(h.sgCalls().length, 1);
      assert.deepEqual(h.brInt(), [], 'the flows in place stay');
    }
  });

  test('a fixed IP must be one canonical address: a prefix would let the port spoof it all', () => {
    assert.deepEqual(DeviceDetails.parse(detail(1, { fixed_ips: ['fd00::5'] })).fixed_ips, [
      'fd00::5',
    ]);
    for (const bad of ['10.0.0.0/24', '10.0.0.5/32', 'fd00::/64', 'FD00::5', '10.0.0.05'])
      assert.throws(
        () => DeviceDetails.parse(detail(1, { fixed_ips: [bad] })),
        /fixed_ips\[0\]/,
        bad,
      );
  });

  test('parseSgInfo keeps what is valid, item by item', () => {
    const { info, rejected } = parseSgInfo({
      groups: [
        { id: DEF, rules: [rule(1), { ...rule(2), remote_ip_prefix: '10.0.0.1/8' }] },
        { id: 'bad' },
      ],
      members: [{ id: DEF, ips: ['10.0.0.1', '10.0.0.0/24', 'fd00::1', '10.0.0.1/8'] }],
    });
    assert.deepEqual(
      info.rules.get(DEF)?.map((r) => r.id),
      [uuid(101)],
    );
    assert.deepEqual(info.members.get(DEF), ['10.0.0.1', '10.0.0.0/24', 'fd00::1']);
    assert.deepEqual(
      rejected.map((r) => r.id),
      ['groups-1', uuid(102), 'ips-3'],
    );
    assert.throws(() => parseSgInfo(null), /must be an object/);
  });
});
