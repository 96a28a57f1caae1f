/**
 * The ovs agent's pure planning: local VLAN allocation and adoption, the dead VLAN, the
 * tunnel mesh and flow tables (desired.ts), and the OVSDB diff (plan.ts) that is empty
 * once OVS matches.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEAD_VLAN,
  desiredOvs,
  type OvsSettings,
  portStatuses,
  tunnelName,
} from '../../agents/ovs/desired.ts';
import type { OvsPort, OvsState } from '../../agents/ovs/observe.ts';
import { type OvsStep, planOvs } from '../../agents/ovs/plan.ts';
import type { DeviceDetails } from '../../contracts/l2.ts';
import type { OvsdbOperation } from '../../host/ovs/ovsdb-types.ts';

const S: OvsSettings = {
  intBridge: 'br-int',
  tunBridge: 'br-tun',
  datapathType: 'netdev',
  localIp: '10.250.0.1',
  tunnelTypes: ['vxlan', 'gre'],
};
const NET_A = 'aaaaaaaa-0000-4000-8000-000000000001';
const NET_B = 'bbbbbbbb-0000-4000-8000-000000000002';
const TARGET = { cookie: '0x1', rundir: '/run/ovs' };
const portId = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function vmPort(
  name: string,
  ifaceId: string,
  tag: number | null = null,
  otherConfig = {},
): OvsPort {
  return {
    uuid: `uuid-${name}`,
    name,
    bridge: 'br-int',
    tag,
    otherConfig,
    interfaces: [
      {
        uuid: `if-${name}`,
        name,
        type: 'internal',
        ofport: 5,
        options: {},
        externalIds: { 'iface-id': ifaceId },
      },
    ],
  };
}

function stateWith(ports: OvsPort[]): OvsState {
  return {
    rootUuid: 'root',
    curCfg: 1,
    nextCfg: 1,
    bridges: new Map(),
    ports: new Map(ports.map((p) => [p.name, p])),
  };
}

const detail = (
  n: number,
  net: string,
  seg: number,
  extra: Partial<DeviceDetails> = {},
): DeviceDetails => ({
  device: portId(n),
  network_id: net,
  network_type: 'vxlan',
  physical_network: null,
  segmentation_id: seg,
  mac_address: `fa:16:3e:00:00:0${n}`,
  admin_state_up: true,
  device_owner: 'compute:nova',
  fixed_ips: [],
  port_security_enabled: false,
  security_groups: [],
  allowed_address_pairs: [],
  ...extra,
});

describe('desiredOvs', () => {
  test('networks get the lowest free VLAN; unknown and admin-down ports sit on the dead VLAN', () => {
    const state = stateWith([
      vmPort('tap1', portId(1)),
      vmPort('tap2', portId(2)),
      vmPort('tap3', portId(3)),
      vmPort('tap4', 'not-a-port'),
      vmPort('tap5', portId(5)),
    ]);
    const details = new Map([
      [portId(1), detail(1, NET_A, 100)],
      [portId(2), detail(2, NET_B, 200)],
      [portId(3), detail(3, NET_A, 100)],
      [portId(5), detail(5, NET_B, 200, { admin_state_up: false })],
    ]);
    const d = desiredOvs(S, state, details, []);
    assert.equal(d.ports.get('tap1')?.tag, d.ports.get('tap3')?.tag, 'one VLAN per network');
    assert.notEqual(d.ports.get('tap1')?.tag, d.ports.get('tap2')?.tag);
    assert.deepEqual([...d.lvids.values()].sort(), [1, 2]);
    assert.equal(d.ports.get('tap4')?.tag, DEAD_VLAN);
    assert.equal(d.ports.get('tap5')?.tag, DEAD_VLAN);
    const intFlows = d.flows.get('br-int') ?? [];
    assert.ok(intFlows.includes('table=0,priority=10,in_port=tap4,actions=drop'));
    assert.ok(intFlows.includes('table=0,priority=10,in_port=tap5,actions=drop'));
    assert.equal(d.ports.get('tap1')?.otherConfig.net_uuid, NET_A);
  });

  test('a network keeps the VLAN its ports already carry (restart adopts, never retags)', () => {
    const state = stateWith([
      vmPort('tap1', portId(1), 7, { net_uuid: NET_A }),
      vmPort('tap2', portId(2)),
    ]);
    const details = new Map([
      [portId(1), detail(1, NET_A, 100)],
      [portId(2), detail(2, NET_B, 200)],
    ]);
    const d = desiredOvs(S, state, details, []);
    assert.equal(d.lvids.get(NET_A), 7);
    assert.equal(d.lvids.get(NET_B), 1);
  });

  test('tunnels to every peer of a shared type, named by the hex IP; flows flood to them', () => {
    const state = stateWith([vmPort('tap1', portId(1))]);
    const details = new Map([[portId(1), detail(1, NET_A, 100)]]);
    const peers = [
      { host: 'h1', tunnel_ip: '10.250.0.1', tunnel_types: ['vxlan' as const] },
      { host: 'h2', tunnel_ip: '10.250.0.2', tunnel_types: ['vxlan' as const] },
      { host: 'h3', tunnel_ip: '10.250.0.3', tunnel_types: ['gre' as const, 'vxlan' as const] },
    ];
    const d = desiredOvs(S, state, details, peers);
    assert.equal(tunnelName('vxlan', '10.250.0.2'), 'vxlan-0afa0002');
    assert.deepEqual([...d.tunnels.keys()].sort(), [
      'gre-0afa0003',
      'vxlan-0afa0002',
      'vxlan-0afa0003',
    ]);
    const tun = d.flows.get('br-tun') ?? [];
    assert.ok(
      tun.includes(
        'table=1,priority=1,dl_vlan=1,actions=strip_vlan,set_tunnel:100,output:vxlan-0afa0002,output:vxlan-0afa0003',
      ),
      tun.join('\n'),
    );
    assert.ok(
      tun.includes('table=4,priority=1,tun_id=100,actions=mod_vlan_vid:1,output:patch-int'),
    );
    assert.ok(tun.includes('table=0,priority=1,in_port=gre-0afa0003,actions=resubmit(,3)'));
  });

  test('port status: up when admin-up, down when admin-down, nothing for unknown ports', () => {
    const state = stateWith([
      vmPort('tap1', portId(1)),
      vmPort('tap2', portId(2)),
      vmPort('tap3', portId(3)),
    ]);
    const details = new Map([
      [portId(1), detail(1, NET_A, 100)],
      [portId(2), detail(2, NET_A, 100, { admin_state_up: false })],
    ]);
    assert.deepEqual(
      [...portStatuses(state, 'br-int', details)],
      [
        [portId(1), 'up'],
        [portId(2), 'down'],
      ],
    );
  });

  test('no local_ip: no tunnels', () => {
    const d = desiredOvs({ ...S, localIp: null }, stateWith([]), new Map(), [
      { host: 'h2', tunnel_ip: '10.250.0.2', tunnel_types: ['vxlan'] },
    ]);
    assert.equal(d.tunnels.size, 0);
  });
});

/** The plan's one OVSDB transaction (empty when there is none). */
function opsOf(steps: OvsStep[]): OvsdbOperation[] {
  const ovsdb = steps.filter((s) => s.kind === 'ovsdb');
  assert.ok(ovsdb.length <= 1, 'one OVSDB transaction at most');
  assert.ok(ovsdb.every((s) => s.applied && s.why));
  return ovsdb[0]?.ops ?? [];
}

describe('planOvs', () => {
  test('an empty host gets both bridges, patch ports and tunnels in one applied transaction, then one replace-flows per bridge', () => {
    const peers = [{ host: 'h2', tunnel_ip: '10.250.0.2', tunnel_types: ['vxlan' as const] }];
    const state = stateWith([]);
    const steps = planOvs(S, desiredOvs(S, state, new Map(), peers), state, TARGET);
    const inserted = opsOf(steps).flatMap((o) =>
      o.op === 'insert' ? [`${o.table}:${String(o.row.name)}`] : [],
    );
    assert.ok(inserted.includes('Bridge:br-int') && inserted.includes('Bridge:br-tun'));
    assert.ok(inserted.includes('Interface:patch-tun') && inserted.includes('Interface:patch-int'));
    assert.ok(inserted.includes('Interface:vxlan-0afa0002'));
    const named = new Set(opsOf(steps).flatMap((o) => (o.op === 'insert' ? [o['uuid-name']] : [])));
    assert.equal(named.size, inserted.length, 'named-uuids are unique within the transaction');
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['ovsdb', 'flows'],
    );
    const flows = steps.flatMap((s) => (s.kind === 'flows' ? s.commands : []));
    assert.deepEqual(
      flows.map((f) => f.argv.at(-2)),
      ['unix:/run/ovs/br-int.mgmt', 'unix:/run/ovs/br-tun.mgmt'],
    );
    assert.ok(flows.every((f) => f.argv.includes('replace-flows') && f.argv.includes('--bundle')));
    const lines = flows.flatMap((f) =>
      String(f.stdin ?? '')
        .trimEnd()
        .split('\n'),
    );
    assert.ok(lines.every((l) => l.startsWith('cookie=0x1,')));
  });

  test('a bad bridge name is refused before any op is built', () => {
    const bad = { ...S, intBridge: 'br;rm -rf' };
    const state = stateWith([]);
    assert.throws(() => planOvs(bad, desiredOvs(bad, state, new Map(), []), state, TARGET), {
      name: 'InvalidNameError',
      message: /invalid bridge name/,
    });
  });

  test('when OVS already matches, the transaction is empty; a stale tunnel is removed', () => {
    const peers = [{ host: 'h2', tunnel_ip: '10.250.0.2', tunnel_types: ['vxlan' as const] }];
    const tunnel = (name: string, remote: string): OvsPort => ({
      uuid: `uuid-${name}`,
      name,
      bridge: 'br-tun',
      tag: null,
      otherConfig: {},
      interfaces: [
        {
          uuid: `if-${name}`,
          name,
          type: 'vxlan',
          ofport: 3,
          externalIds: {},
          options: { remote_ip: remote, local_ip: S.localIp as string, key: 'flow' },
        },
      ],
    });
    const patch = (name: string, bridge: string, peer: string): OvsPort => ({
      uuid: `uuid-${name}`,
      name,
      bridge,
      tag: null,
      otherConfig: {},
      interfaces: [
        { uuid: `if-${name}`, name, type: 'patch', ofport: 1, externalIds: {}, options: { peer } },
      ],
    });
    const bridge = (name: string) => ({
      uuid: `br-${name}`,
      name,
      failMode: 'secure',
      datapathType: 'netdev',
      ports: [],
    });
    const tagged = vmPort('tap1', portId(1), 1, {
      net_uuid: NET_A,
      network_type: 'vxlan',
      segmentation_id: '100',
    });
    const state: OvsState = {
      ...stateWith([
        tagged,
        patch('patch-tun', 'br-int', 'patch-int'),
        patch('patch-int', 'br-tun', 'patch-tun'),
        tunnel('vxlan-0afa0002', '10.250.0.2'),
      ]),
      bridges: new Map([
        ['br-int', bridge('br-int')],
        ['br-tun', bridge('br-tun')],
      ]),
    };
    const details = new Map([[portId(1), detail(1, NET_A, 100)]]);
    const matched = planOvs(S, desiredOvs(S, state, details, peers), state, TARGET);
    assert.deepEqual(
      matched.map((s) => s.kind),
      ['flows'],
      'no transaction; flows are replaced in place',
    );
    state.ports.set('vxlan-0afa0009', tunnel('vxlan-0afa0009', '10.250.0.9'));
    const ops = opsOf(planOvs(S, desiredOvs(S, state, details, peers), state, TARGET));
    assert.deepEqual(ops, [
      {
        op: 'mutate',
        table: 'Bridge',
        where: [['name', '==', 'br-tun']],
        mutations: [['ports', 'delete', ['set', [['uuid', 'uuid-vxlan-0afa0009']]]]],
      },
    ]);
  });

  test('a new port is tagged; a port gone since desired was computed is left alone', () => {
    const state = stateWith([vmPort('tap1', portId(1)), vmPort('tap2', portId(2))]);
    const details = new Map([
      [portId(1), detail(1, NET_A, 100)],
      [portId(2), detail(2, NET_A, 100)],
    ]);
    const desired = desiredOvs(S, state, details, []);
    state.ports.delete('tap2');
    const updates = opsOf(planOvs(S, desired, state, TARGET)).filter(
      (o) => o.op === 'update' && o.table === 'Port',
    );
    assert.deepEqual(updates, [
      {
        op: 'update',
        table: 'Port',
        where: [['_uuid', '==', ['uuid', 'uuid-tap1']]],
        row: {
          tag: 1,
          other_config: [
            'map',
            [
              ['net_uuid', NET_A],
              ['network_type', 'vxlan'],
              ['segmentation_id', '100'],
            ],
          ],
        },
      },
    ]);
  });
});
