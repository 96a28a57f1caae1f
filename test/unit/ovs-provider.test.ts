/**
 * Provider networks in the ovs agent's pure planning: [ovs] bridge_mappings give each
 * physical bridge Neutron's patch ports and VLAN translations (flat: untagged, vlan: its
 * id), exact flow for flow; networks on unmapped physical networks stay on br-int; the
 * tunnel path is the same with or without mappings; the plan never removes a port it does
 * not own from a physical bridge.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { desiredOvs, type OvsSettings } from '../../agents/ovs/desired.ts';
import { createL2 } from '../../agents/ovs/l2.ts';
import type { OvsBridge, OvsPort, OvsState } from '../../agents/ovs/observe.ts';
import { applyUpdates, emptyReplica } from '../../agents/ovs/observe.ts';
import { interfaceName } from '../../agents/ovs/physical.ts';
import { type OvsStep, planOvs } from '../../agents/ovs/plan.ts';
import type { DeviceDetails } from '../../contracts/l2.ts';
import type { OvsdbOperation } from '../../host/ovs/ovsdb-types.ts';
import { FakeOvsdb } from '../helpers/fake-ovsdb.ts';

const BASE: OvsSettings = {
  intBridge: 'br-int',
  tunBridge: 'br-tun',
  datapathType: 'netdev',
  localIp: '10.250.0.1',
  tunnelTypes: ['vxlan'],
};
const S: OvsSettings = { ...BASE, bridgeMappings: [['public', 'br-ex']] };
const TARGET = { cookie: '0x1', rundir: '/run/ovs' };
const PEERS = [{ host: 'h2', tunnel_ip: '10.250.0.2', tunnel_types: ['vxlan' as const] }];
const net = (n: number) => `aaaaaaaa-0000-4000-8000-00000000000${n}`;
/** br-int's flows for the physical patch (and the drop base), without the firewall's. */
const providerPart = (d: ReturnType<typeof desiredOvs>) =>
  d.flows
    .get('br-int')
    ?.filter((f) => f === 'table=0,priority=0,actions=drop' || f.includes('int-br-ex'));
const portId = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function port(name: string, bridge: string, type: string, extra: Partial<OvsPort> = {}): OvsPort {
  const iface = { uuid: `if-${name}`, name, type, ofport: 2, options: {}, externalIds: {} };
  return {
    uuid: `uuid-${name}`,
    name,
    bridge,
    tag: null,
    otherConfig: {},
    interfaces: [iface],
    ...extra,
  };
}
const vm = (n: number) => {
  const p = port(`tap${n}`, 'br-int', 'internal');
  (p.interfaces[0] as { externalIds: Record<string, string> }).externalIds = {
    'iface-id': portId(n),
  };
  return p;
};
const patchPort = (name: string, bridge: string, peer: string) => {
  const p = port(name, bridge, 'patch');
  (p.interfaces[0] as { options: Record<string, string> }).options = { peer };
  return p;
};
const bridge = (name: string, failMode: string | null = 'secure'): OvsBridge => ({
  uuid: `br-${name}`,
  name,
  failMode,
  datapathType: 'netdev',
  ports: [],
});
function stateWith(ports: OvsPort[], bridges: OvsBridge[] = []): OvsState {
  return {
    rootUuid: 'root',
    curCfg: 1,
    nextCfg: 1,
    bridges: new Map(bridges.map((b) => [b.name, b])),
    ports: new Map(ports.map((p) => [p.name, p])),
  };
}
const detail = (n: number, network: number, seg: Partial<DeviceDetails>): DeviceDetails => ({
  device: portId(n),
  network_id: net(network),
  network_type: 'vxlan',
  physical_network: null,
  segmentation_id: null,
  mac_address: `fa:16:3e:00:00:0${n}`,
  admin_state_up: true,
  device_owner: 'compute:nova',
  fixed_ips: [],
  port_security_enabled: false,
  security_groups: [],
  allowed_address_pairs: [],
  ...seg,
});

/** tap1: flat on public (VLAN 1), tap2: vlan 101 on public (2), tap3: vxlan 7 (3),
 * tap4: flat on `other`, not mapped here (4). */
const STATE = stateWith([vm(1), vm(2), vm(3), vm(4)]);
const DETAILS = new Map([
  [portId(1), detail(1, 1, { network_type: 'flat', physical_network: 'public' })],
  [
    portId(2),
    detail(2, 2, { network_type: 'vlan', physical_network: 'public', segmentation_id: 101 }),
  ],
  [portId(3), detail(3, 3, { segmentation_id: 7 })],
  [portId(4), detail(4, 4, { network_type: 'flat', physical_network: 'other' })],
]);

function opsOf(steps: OvsStep[]): OvsdbOperation[] {
  return steps.flatMap((s) => (s.kind === 'ovsdb' ? s.ops : []));
}

describe('bridge_mappings in desiredOvs', () => {
  test("patch port names are Neutron's: int-/phy- + bridge, hashed past 15 characters", () => {
    assert.equal(interfaceName('br-ex', 'int-'), 'int-br-ex');
    assert.equal(interfaceName('br-ex', 'phy-'), 'phy-br-ex');
    // neutron_lib get_interface_name: prefix + name[:5] + sha1(name)[:6]
    assert.equal(interfaceName('br-provider-1', 'int-'), 'int-br-pr53399e');
    assert.equal(interfaceName('br-provider-1', 'phy-'), 'phy-br-pr53399e');
  });

  test('flat and vlan networks get exact translations on br-int and the physical bridge', () => {
    const d = desiredOvs(S, STATE, DETAILS, PEERS);
    assert.deepEqual(
      [...d.lvids],
      [
        [net(1), 1],
        [net(2), 2],
        [net(3), 3],
        [net(4), 4],
      ],
    );
    assert.deepEqual(providerPart(d), [
      'table=0,priority=0,actions=drop',
      'table=0,priority=2,in_port=int-br-ex,actions=drop',
      'table=0,priority=3,in_port=int-br-ex,vlan_tci=0x0000/0x1fff,actions=mod_vlan_vid:1,set_field:1->reg6,resubmit(,60)',
      'table=0,priority=3,in_port=int-br-ex,dl_vlan=101,actions=mod_vlan_vid:2,set_field:2->reg6,resubmit(,60)',
    ]);
    assert.deepEqual(d.flows.get('br-ex'), [
      'table=0,priority=0,actions=NORMAL',
      'table=0,priority=2,in_port=phy-br-ex,actions=drop',
      'table=0,priority=4,in_port=phy-br-ex,dl_vlan=1,actions=strip_vlan,NORMAL',
      'table=0,priority=4,in_port=phy-br-ex,dl_vlan=2,actions=mod_vlan_vid:101,NORMAL',
    ]);
    assert.deepEqual(
      d.bridges.map((b) => [b.name, b.failMode, b.datapathType]),
      [
        ['br-int', 'secure', 'netdev'],
        ['br-tun', 'secure', 'netdev'],
        ['br-ex', 'secure', 'netdev'],
      ],
    );
    assert.deepEqual(d.physical, [
      { physnet: 'public', bridge: 'br-ex', intPort: 'int-br-ex', phyPort: 'phy-br-ex' },
    ]);
    assert.deepEqual(d.unmapped, ['other'], 'the flat network on `other` stays local');
    assert.equal(d.ports.get('tap4')?.tag, 4, 'and its port still gets a local VLAN');
  });

  test('the tunnel path is byte-for-byte the same with and without mappings', () => {
    const without = desiredOvs(BASE, STATE, DETAILS, PEERS);
    const withMap = desiredOvs(S, STATE, DETAILS, PEERS);
    assert.deepEqual(withMap.flows.get('br-tun'), without.flows.get('br-tun'));
    assert.deepEqual([...without.flows.keys()], ['br-int', 'br-tun']);
    assert.deepEqual(providerPart(without), ['table=0,priority=0,actions=drop']);
    assert.deepEqual(without.physical, []);
    assert.deepEqual(without.unmapped, ['other', 'public']);
    assert.deepEqual(withMap.ports, without.ports, 'ports are tagged the same');
  });

  test('a mapped bridge with no network here drops everything from its patch', () => {
    const d = desiredOvs(S, stateWith([]), new Map(), []);
    assert.deepEqual(providerPart(d), [
      'table=0,priority=0,actions=drop',
      'table=0,priority=2,in_port=int-br-ex,actions=drop',
    ]);
    assert.deepEqual(d.flows.get('br-ex'), [
      'table=0,priority=0,actions=NORMAL',
      'table=0,priority=2,in_port=phy-br-ex,actions=drop',
    ]);
  });

  test('a VLAN id outside 1-4094, an admin-down or an unknown port gets no translation', () => {
    const state = stateWith([vm(1), vm(2), vm(5)]);
    const details = new Map([
      [
        portId(1),
        detail(1, 1, { network_type: 'vlan', physical_network: 'public', segmentation_id: 5000 }),
      ],
      [
        portId(2),
        detail(2, 2, { network_type: 'flat', physical_network: 'public', admin_state_up: false }),
      ],
    ]);
    const d = desiredOvs(S, state, details, []);
    assert.deepEqual(d.flows.get('br-ex'), [
      'table=0,priority=0,actions=NORMAL',
      'table=0,priority=2,in_port=phy-br-ex,actions=drop',
    ]);
    assert.deepEqual(d.unmapped, ['public']);
    assert.deepEqual(
      [d.ports.get('tap2')?.tag, d.ports.get('tap5')?.tag],
      [4095, 4095],
      'admin-down and unknown (bound elsewhere) ports are dead',
    );
    assert.ok(d.flows.get('br-int')?.includes('table=0,priority=10,in_port=tap5,actions=drop'));
  });
});

describe('router ports (qr-/qg-) are ordinary br-int ports', () => {
  const routerPort = (name: string, n: number) => {
    const p = vm(n);
    p.name = name;
    return p;
  };
  test('a qg- port on the flat external network is translated; one bound elsewhere is dead', () => {
    const state = stateWith([routerPort('qg-00000000001', 1), routerPort('qr-00000000002', 2)]);
    const details = new Map([
      [portId(1), detail(1, 1, { network_type: 'flat', physical_network: 'public' })],
    ]);
    const d = desiredOvs(S, state, details, []);
    assert.equal(d.ports.get('qg-00000000001')?.tag, 1);
    assert.ok(
      d.flows
        .get('br-ex')
        ?.includes('table=0,priority=4,in_port=phy-br-ex,dl_vlan=1,actions=strip_vlan,NORMAL'),
    );
    assert.equal(d.ports.get('qr-00000000002')?.tag, 4095, 'the API answered unknown: fenced');
    assert.ok(
      d.flows.get('br-int')?.includes('table=0,priority=10,in_port=qr-00000000002,actions=drop'),
    );
  });
});

describe('bridge_mappings in planOvs', () => {
  test('an empty host gets br-ex with phy-br-ex, and int-br-ex on br-int, in one transaction', () => {
    const state = stateWith([]);
    const steps = planOvs(S, desiredOvs(S, state, new Map(), []), state, TARGET);
    const ifaces = opsOf(steps).flatMap((o) =>
      o.op === 'insert' && o.table === 'Interface' ? [[o.row.name, o.row.type, o.row.options]] : [],
    );
    assert.deepEqual(
      ifaces.filter(([name]) => /^(int|phy)-/.test(String(name))),
      [
        ['int-br-ex', 'patch', ['map', [['peer', 'phy-br-ex']]]],
        ['phy-br-ex', 'patch', ['map', [['peer', 'int-br-ex']]]],
      ],
    );
    const bridges = opsOf(steps).flatMap((o) =>
      o.op === 'insert' && o.table === 'Bridge' ? [[o.row.name, o.row.fail_mode]] : [],
    );
    assert.deepEqual(bridges, [
      ['br-int', 'secure'],
      ['br-tun', 'secure'],
      ['br-ex', 'secure'],
    ]);
    const flows = steps.flatMap((s) => (s.kind === 'flows' ? s.commands : []));
    assert.deepEqual(
      flows.map((f) => f.argv.at(-2)),
      ['unix:/run/ovs/br-int.mgmt', 'unix:/run/ovs/br-tun.mgmt', 'unix:/run/ovs/br-ex.mgmt'],
    );
  });

  test("the operator's br-ex is adopted: secure, patched, its uplink and other ports untouched", () => {
    const state = stateWith(
      [
        patchPort('patch-tun', 'br-int', 'patch-int'),
        patchPort('patch-int', 'br-tun', 'patch-tun'),
        port('eth-out', 'br-ex', ''),
        port('gre-0afa0009', 'br-ex', 'gre'),
        port('int-br-foo', 'br-ex', 'patch'),
      ],
      [bridge('br-int'), bridge('br-tun'), bridge('br-ex', null)],
    );
    const ops = opsOf(planOvs(S, desiredOvs(S, state, new Map(), []), state, TARGET));
    const brEx = ops.filter((o) => 'where' in o && JSON.stringify(o.where).includes('br-ex'));
    assert.deepEqual(
      brEx.map((o) => o.op),
      ['update', 'mutate'],
    );
    assert.deepEqual(brEx[0], {
      op: 'update',
      table: 'Bridge',
      where: [['_uuid', '==', ['uuid', 'br-br-ex']]],
      row: { fail_mode: 'secure', datapath_type: 'netdev' },
    });
    assert.ok(
      ops.every((o) => o.op !== 'mutate' || !JSON.stringify(o).includes('"delete"')),
      'nothing is removed from any bridge',
    );
  });

  test('once OVS matches only flows are replaced; an unmapped bridge loses its br-int patch', () => {
    const ports = [
      patchPort('patch-tun', 'br-int', 'patch-int'),
      patchPort('patch-int', 'br-tun', 'patch-tun'),
      patchPort('int-br-ex', 'br-int', 'phy-br-ex'),
      patchPort('phy-br-ex', 'br-ex', 'int-br-ex'),
      port('eth-out', 'br-ex', ''),
    ];
    const state = stateWith(ports, [bridge('br-int'), bridge('br-tun'), bridge('br-ex')]);
    const steps = planOvs(S, desiredOvs(S, state, new Map(), []), state, TARGET);
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['flows'],
    );
    const unmapped = planOvs(BASE, desiredOvs(BASE, state, new Map(), []), state, TARGET);
    assert.deepEqual(opsOf(unmapped), [
      {
        op: 'mutate',
        table: 'Bridge',
        where: [['name', '==', 'br-int']],
        mutations: [['ports', 'delete', ['set', [['uuid', 'uuid-int-br-ex']]]]],
      },
    ]);
  });
});

describe('the agent on a host without the mapping', () => {
  test('a flat port on an unmapped physical network is served locally and logged once', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => lines.push(l) });
    const replica = emptyReplica();
    applyUpdates(replica, {
      Bridge: { b1: { new: { name: 'br-int', ports: ['uuid', 'p1'], datapath_type: 'netdev' } } },
      Port: { p1: { new: { name: 'tap1', interfaces: ['uuid', 'i1'] } } },
      Interface: {
        i1: {
          new: {
            name: 'tap1',
            type: 'internal',
            external_ids: ['map', [['iface-id', portId(1)]]],
          },
        },
      },
    });
    const ovsdb = new FakeOvsdb();
    const l2 = createL2({
      settings: { ...S, bridgeMappings: [['other', 'br-other']] },
      host: 'h1',
      cookie: '0x1',
      rundir: '/run/ovs',
      broker: {
        call: async (_topic: string, method: string) =>
          method === 'get_devices_details'
            ? { devices: [DETAILS.get(portId(1))], unknown: [] }
            : method === 'tunnel_sync'
              ? { peers: [] }
              : { updated: 1 },
      } as never,
      runner: { run: async () => ({ stdout: '', stderr: '' }) as never },
      log,
      replica: () => replica,
      ovsdb: async () => ovsdb,
    });
    await l2.reconcile('l2', 'sync');
    l2.forget();
    await l2.reconcile('l2', 'sync');
    const warned = lines.filter((l) => l.includes('no bridge mapping'));
    assert.equal(warned.length, 1, lines.join(''));
    assert.equal(JSON.parse(warned[0] as string).physnet, 'public');
    assert.match(JSON.stringify(ovsdb.transactions), /"tag",1\]|"tag":1/, 'tap1 still tagged');
  });
});
