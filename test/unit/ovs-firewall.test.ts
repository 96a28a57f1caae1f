/**
 * The firewall's pure flow generation (agents/ovs/firewall.ts, sg-flows.ts, sg-match.ts):
 * the seed rules, the default group's remote-group conjunctions, port ranges as masks,
 * IPv6, allowed address pairs, unfiltered ports, a rule left out, determinism.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { desiredOvs, type OvsSettings } from '../../agents/ovs/desired.ts';
import { type FilteredPort, firewallFlows, linkLocal } from '../../agents/ovs/firewall.ts';
import type { OvsPort, OvsState } from '../../agents/ovs/observe.ts';
import type { SgInfo } from '../../agents/ovs/sg-flows.ts';
import { portMasks } from '../../agents/ovs/sg-match.ts';
import type { FirewallRule } from '../../contracts/l2.ts';
import { DEF, fwDetail, fwRule, SEED, uuid } from '../helpers/firewall-fixtures.ts';

const rule = fwRule;
const tcp = (n: number, min: number, max = min, extra: Partial<FirewallRule> = {}) =>
  rule(n, { protocol: 6, port_range_min: min, port_range_max: max, ...extra });
const port = (n: number, groups: string[], extra: Partial<FilteredPort> = {}): FilteredPort => ({
  id: uuid(n),
  name: `tap${n}`,
  ofport: n,
  vlan: 1,
  mac: `fa:16:3e:00:00:0${n}`,
  fixedIps: [`10.0.0.${n}`],
  pairs: [],
  groups,
  ...extra,
});
const sgOf = (rules: [string, FirewallRule[]][], members: [string, string[]][] = []): SgInfo => ({
  rules: new Map(rules),
  members: new Map(members),
});
const table = (flows: string[], t: number) => flows.filter((f) => f.startsWith(`table=${t},`));

describe('firewall flows', () => {
  test('the seed rules: ICMP, TCP 22 and TCP 80 from anywhere, egress any', () => {
    const sg = sgOf([
      [
        SEED,
        [
          rule(1, { direction: 'egress' }),
          rule(2, { protocol: 1, remote_ip_prefix: '0.0.0.0/0' }),
          tcp(3, 22, 22, { remote_ip_prefix: '0.0.0.0/0' }),
          tcp(4, 80, 80, { remote_ip_prefix: '0.0.0.0/0' }),
        ],
      ],
    ]);
    const { flows, rejected } = firewallFlows([port(5, [SEED])], sg);
    assert.deepEqual(rejected, []);
    const rules = (t: number) => table(flows, t).filter((f) => f.includes('priority=70'));
    assert.deepEqual(rules(82), [
      'table=82,priority=70,icmp,reg5=5,ct_state=+trk-inv-rel-rpl,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
      'table=82,priority=70,tcp,tp_dst=22,reg5=5,ct_state=+trk-inv-rel-rpl,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
      'table=82,priority=70,tcp,tp_dst=80,reg5=5,ct_state=+trk-inv-rel-rpl,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
    ]);
    assert.deepEqual(rules(72), [
      'table=72,priority=70,ip,reg5=5,ct_state=+trk-inv-rel-rpl,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),resubmit(,94)',
    ]);
    assert.ok(flows.includes('table=81,priority=90,ip,reg5=5,actions=ct(table=82,zone=5)'));
    assert.ok(
      flows.includes(
        'table=72,priority=40,ct_state=+trk+est-rel-rpl,ip,actions=ct(commit,zone=NXM_NX_REG5[0..15],exec(set_field:0x1->ct_mark))',
      ),
      'a connection no rule allows any more is marked',
    );
    assert.ok(
      !flows.some((f) => /ct_mark=0x1,actions=drop/.test(f)),
      'a marked connection is not dropped before the rules: a rule allowing it again revives it',
    );
    for (const t of [72, 82]) {
      const replies = table(flows, t).filter((f) => f.includes('priority=90'));
      assert.ok(replies.length > 0 && replies.every((f) => f.includes('ct_mark=0,')));
      assert.ok(table(flows, t).includes(`table=${t},priority=0,actions=drop`));
    }
  });

  test('a remote group with several members becomes a conjunction; shared dimensions merge', () => {
    const sg = sgOf(
      [
        [
          DEF,
          [
            rule(1, { direction: 'egress' }),
            rule(2, { remote_group_id: DEF }),
            tcp(3, 22, 22, { remote_group_id: DEF }),
          ],
        ],
      ],
      [[DEF, ['10.0.0.5', '10.0.0.6', 'fd00::5']]],
    );
    const { flows } = firewallFlows([port(5, [DEF])], sg);
    const conj = table(flows, 82).filter((f) => f.includes('priority=71'));
    assert.deepEqual(conj, [
      'table=82,priority=71,conj_id=1,ip,reg5=5,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
      'table=82,priority=71,conj_id=2,ip,reg5=5,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
      'table=82,priority=71,ip,reg5=5,ct_state=+trk-inv-rel-rpl,actions=conjunction(1,2/2)',
      'table=82,priority=71,ip,reg5=5,ct_state=+trk-inv-rel-rpl,nw_src=10.0.0.5,actions=conjunction(1,1/2),conjunction(2,1/2)',
      'table=82,priority=71,ip,reg5=5,ct_state=+trk-inv-rel-rpl,nw_src=10.0.0.6,actions=conjunction(1,1/2),conjunction(2,1/2)',
      'table=82,priority=71,tcp,tp_dst=22,reg5=5,ct_state=+trk-inv-rel-rpl,actions=conjunction(2,2/2)',
    ]);
    assert.ok(!flows.some((f) => f.includes('fd00::5')), 'an IPv6 member is not in an IPv4 rule');
  });

  test('one member and one port mask stay a plain flow; no member, no flow', () => {
    const sg = sgOf(
      [[DEF, [tcp(1, 22, 22, { remote_group_id: DEF }), rule(2, { remote_group_id: SEED })]]],
      [[DEF, ['10.0.0.5']]],
    );
    const rules = firewallFlows([port(5, [DEF])], sg).flows.filter((f) =>
      /priority=7[01],/.test(f),
    );
    assert.deepEqual(rules, [
      'table=82,priority=70,tcp,tp_dst=22,reg5=5,ct_state=+trk-inv-rel-rpl,nw_src=10.0.0.5,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
    ]);
  });

  test('port ranges become prefix masks covering exactly the range', () => {
    assert.deepEqual(portMasks(80, 80), ['80']);
    assert.deepEqual(portMasks(80, 95), ['0x50/0xfff0']);
    assert.deepEqual(portMasks(5, 12), ['5', '0x6/0xfffe', '0x8/0xfffc', '12']);
    assert.deepEqual(portMasks(0, 65535), []);
    for (const [min, max] of [
      [1, 65535],
      [1000, 1999],
      [8000, 8080],
    ] as const) {
      const masks = portMasks(min, max).map((m): [number, number] => {
        const [v = '', mask = '0xffff'] = m.split('/');
        return [Number(v), Number(mask)];
      });
      for (let p = 0; p <= 65535; p++) {
        const hits = masks.filter(([v, mask]) => (p & mask) === v).length;
        assert.equal(hits, p >= min && p <= max ? 1 : 0, `port ${p} of ${min}-${max}`);
      }
    }
    const flows = firewallFlows([port(5, [SEED])], sgOf([[SEED, [tcp(1, 80, 95)]]])).flows;
    assert.ok(flows.some((f) => f.includes('tcp,tp_dst=0x50/0xfff0,reg5=5')));
  });

  test('IPv6: ICMP means ICMPv6, ipv6_src remotes, link-local and neighbour discovery', () => {
    const sg = sgOf([
      [
        SEED,
        [
          rule(1, {
            ethertype: 'IPv6',
            protocol: 1,
            port_range_min: 128,
            remote_ip_prefix: 'fd00::/64',
          }),
          tcp(2, 22, 22, { ethertype: 'IPv6' }),
        ],
      ],
    ]);
    const p = port(5, [SEED], { fixedIps: ['10.0.0.5', 'fd00::5'] });
    const { flows } = firewallFlows([p], sg);
    assert.equal(linkLocal('fa:16:3e:00:00:05'), 'fe80::f816:3eff:fe00:5');
    assert.ok(
      flows.includes(
        'table=82,priority=70,icmp6,icmp_type=128,reg5=5,ct_state=+trk-inv-rel-rpl,ipv6_src=fd00::/64,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
      ),
    );
    assert.ok(
      flows.includes(
        'table=82,priority=70,tcp6,tp_dst=22,reg5=5,ct_state=+trk-inv-rel-rpl,actions=ct(commit,zone=5,exec(set_field:0->ct_mark)),output:5',
      ),
    );
    for (const ip of ['fd00::5', 'fe80::f816:3eff:fe00:5']) {
      assert.ok(
        flows.includes(
          `table=71,priority=65,ipv6,in_port=5,dl_src=fa:16:3e:00:00:05,ipv6_src=${ip},actions=ct(table=72,zone=5)`,
        ),
      );
      assert.ok(
        flows.includes(
          `table=71,priority=95,icmp6,in_port=5,dl_src=fa:16:3e:00:00:05,icmp_type=136,nd_target=${ip},actions=resubmit(,94)`,
        ),
      );
    }
    assert.ok(
      flows.includes('table=71,priority=100,icmp6,in_port=5,icmp_type=134,actions=drop'),
      'no router advertisements',
    );
  });

  test('anti-spoofing: own MAC+IPs and allowed pairs only; no DHCP server', () => {
    const pairs = [{ mac_address: 'fa:16:3e:00:00:77', ip_address: '10.0.1.0/24' }];
    const { flows } = firewallFlows([port(5, [], { pairs })], sgOf([]));
    assert.deepEqual(
      table(flows, 71).filter((f) => f.includes('arp') || f.includes(',ip,')),
      [
        'table=71,priority=65,ip,in_port=5,dl_src=fa:16:3e:00:00:05,nw_src=10.0.0.5,actions=ct(table=72,zone=5)',
        'table=71,priority=65,ip,in_port=5,dl_src=fa:16:3e:00:00:77,nw_src=10.0.1.0/24,actions=ct(table=72,zone=5)',
        'table=71,priority=90,arp,in_port=5,dl_src=fa:16:3e:00:00:05,arp_sha=fa:16:3e:00:00:05,arp_spa=10.0.0.5,actions=resubmit(,94)',
        'table=71,priority=90,arp,in_port=5,dl_src=fa:16:3e:00:00:77,arp_sha=fa:16:3e:00:00:77,arp_spa=10.0.1.0/24,actions=resubmit(,94)',
      ],
    );
    assert.ok(
      flows.includes('table=71,priority=100,udp,in_port=5,tp_src=67,tp_dst=68,actions=drop'),
    );
    assert.deepEqual(
      table(flows, 71).filter((f) => f.includes('tp_dst=67')),
      [
        'table=71,priority=95,udp,in_port=5,dl_src=fa:16:3e:00:00:05,nw_src=0.0.0.0,tp_src=68,tp_dst=67,actions=resubmit(,94)',
        'table=71,priority=95,udp,in_port=5,dl_src=fa:16:3e:00:00:05,nw_src=10.0.0.5,tp_src=68,tp_dst=67,actions=resubmit(,94)',
        'table=71,priority=95,udp,in_port=5,dl_src=fa:16:3e:00:00:77,nw_src=10.0.1.0/24,tp_src=68,tp_dst=67,actions=resubmit(,94)',
      ],
      'a DHCP client sends from nothing or its own addresses only',
    );
    const solicits = table(flows, 71).filter((f) => f.includes('icmp_type=135'));
    assert.deepEqual(
      solicits,
      [
        'table=71,priority=95,icmp6,in_port=5,dl_src=fa:16:3e:00:00:05,ipv6_src=::,icmp_type=135,actions=resubmit(,94)',
        `table=71,priority=95,icmp6,in_port=5,dl_src=fa:16:3e:00:00:05,ipv6_src=${linkLocal('fa:16:3e:00:00:05')},icmp_type=135,actions=resubmit(,94)`,
      ],
      'a neighbour solicitation from its link-local address or :: (DAD), never another’s',
    );
    assert.ok(flows.includes('table=71,priority=0,actions=drop'));
  });

  test('a broadcast or multicast frame for a port’s own address goes through its ingress only', () => {
    const vip = { mac_address: 'fa:16:3e:00:00:77', ip_address: '10.0.0.50' };
    const pairs = [vip, { mac_address: 'fa:16:3e:00:00:77', ip_address: '10.0.1.0/24' }];
    const ports = [
      port(5, [], { pairs, fixedIps: ['10.0.0.5', 'fd00::5'] }),
      port(6, [], { pairs: [vip] }),
    ];
    const group = table(firewallFlows(ports, sgOf([])).flows, 60).filter((f) =>
      f.includes('priority=90'),
    );
    const g = 'dl_dst=01:00:00:00:00:00/01:00:00:00:00:00';
    const to5 = (m: string) => [
      `table=60,priority=90,reg6=1,${m},dl_vlan=1,actions=strip_vlan,set_field:5->reg5,resubmit(,81)`,
      `table=60,priority=90,reg6=1,${m},vlan_tci=0x0000/0x1000,actions=set_field:5->reg5,resubmit(,81)`,
      `table=60,priority=90,reg6=1,${m},vlan_tci=0x1000/0x1fff,actions=strip_vlan,set_field:5->reg5,resubmit(,81)`,
    ];
    for (const m of [`ip,${g},nw_dst=10.0.0.5`, `ipv6,${g},ipv6_dst=fd00::5`])
      for (const f of to5(m)) assert.ok(group.includes(f), f);
    assert.ok(
      group.includes(`table=60,priority=90,reg6=1,ip,${g},nw_dst=10.0.0.50,actions=drop`),
      'an address two local ports own: such frames are dropped',
    );
    assert.ok(!group.some((f) => f.includes('10.0.1.0')), 'a prefix pair is left to NORMAL');
  });

  test('frames for a pair’s own MAC go through the claiming port’s ingress; a shared one is dropped', () => {
    const vmac = { mac_address: 'fa:16:3e:00:00:77', ip_address: '10.0.0.50' };
    const shared = { mac_address: 'fa:16:3e:00:00:88', ip_address: '10.0.0.60' };
    const onB = { mac_address: 'fa:16:3e:00:00:06', ip_address: '10.0.0.70' };
    const ports = [port(5, [], { pairs: [vmac, shared, onB] }), port(6, [], { pairs: [shared] })];
    const t60 = table(firewallFlows(ports, sgOf([])).flows, 60);
    for (const f of [
      'table=60,priority=95,reg6=1,dl_dst=fa:16:3e:00:00:77,dl_vlan=1,actions=strip_vlan,set_field:5->reg5,resubmit(,81)',
      'table=60,priority=95,reg6=1,dl_dst=fa:16:3e:00:00:77,vlan_tci=0x0000/0x1000,actions=set_field:5->reg5,resubmit(,81)',
      'table=60,priority=95,reg6=1,dl_dst=fa:16:3e:00:00:77,vlan_tci=0x1000/0x1fff,actions=strip_vlan,set_field:5->reg5,resubmit(,81)',
      'table=60,priority=95,reg6=1,dl_dst=fa:16:3e:00:00:88,actions=drop',
    ])
      assert.ok(t60.includes(f), f);
    assert.ok(
      !t60.some((f) => f.includes('dl_dst=fa:16:3e:00:00:06') && f.includes('set_field:5->reg5')),
      'another local port’s own MAC stays that port’s, whatever pairs claim it',
    );
  });

  test('a rule that cannot be expressed is left out and named; its neighbours stay', () => {
    const bad = [
      rule(1, { protocol: 58 }),
      tcp(2, 90, 80),
      rule(3, { remote_ip_prefix: 'fd00::/64' }),
      rule(4, { protocol: 47, port_range_min: 1, port_range_max: 2 }),
      rule(5, { protocol: 1, port_range_max: 3 }),
    ];
    const sg = sgOf([[SEED, [...bad, tcp(9, 22)]]]);
    const { flows, rejected } = firewallFlows([port(5, [SEED]), port(6, [SEED])], sg);
    assert.deepEqual(
      rejected.map((r) => r.rule),
      bad.map((r) => r.id),
      'each once, though two ports use the group',
    );
    assert.match(rejected[1]?.reason ?? '', /port_range_min is greater/);
    const rules = flows.filter((f) => f.includes('priority=70'));
    assert.deepEqual(rules.length, 2, 'TCP 22 for each port');
    assert.ok(rules.every((f) => f.includes('tcp,tp_dst=22')));
  });

  test('same input, same sorted flows; no two flows share a match and priority', () => {
    const sg = sgOf(
      [
        [
          DEF,
          [
            rule(1, { direction: 'egress' }),
            rule(2, { remote_group_id: DEF }),
            tcp(3, 1000, 1999, { remote_group_id: DEF }),
          ],
        ],
      ],
      [[DEF, ['10.0.0.6', '10.0.0.5', '10.0.0.7']]],
    );
    const ports = [port(5, [DEF]), port(6, [DEF]), port(7, [DEF, DEF])];
    const a = firewallFlows(ports, sg).flows;
    const b = firewallFlows([...ports].reverse(), sg).flows;
    assert.deepEqual(a, b);
    assert.deepEqual(a, [...a].sort());
    const keys = a.map((f) => f.slice(0, f.indexOf(',actions=')));
    assert.equal(new Set(keys).size, keys.length);
  });
});

describe('br-int with the firewall (desiredOvs)', () => {
  const S: OvsSettings = {
    intBridge: 'br-int',
    tunBridge: 'br-tun',
    datapathType: 'netdev',
    localIp: null,
    tunnelTypes: [],
  };
  const vm = (n: number, ofport: number | null): OvsPort => ({
    uuid: `p${n}`,
    name: `tap${n}`,
    bridge: 'br-int',
    tag: null,
    otherConfig: {},
    interfaces: [
      {
        uuid: `i${n}`,
        name: `tap${n}`,
        type: 'internal',
        ofport,
        options: {},
        externalIds: { 'iface-id': uuid(n) },
      },
    ],
  });
  const detail = fwDetail;
  const state = (ports: OvsPort[]): OvsState => ({
    rootUuid: 'r',
    curCfg: 1,
    nextCfg: 1,
    bridges: new Map(),
    ports: new Map(ports.map((p) => [p.name, p])),
  });

  test('filtered ports enter table 71; port security off, network:* ports go straight to dispatch', () => {
    const details = new Map([
      [uuid(1), detail(1, {})],
      [uuid(2), detail(2, { port_security_enabled: false, security_groups: [] })],
      [uuid(3), detail(3, { device_owner: 'network:router_interface' })],
      [uuid(4), detail(4, {})],
    ]);
    const d = desiredOvs(S, state([vm(1, 11), vm(2, 12), vm(3, 13), vm(4, null)]), details, []);
    const t0 = table(d.flows.get('br-int') ?? [], 0);
    assert.deepEqual(t0, [
      'table=0,priority=0,actions=drop',
      'table=0,priority=1,in_port=patch-tun,dl_vlan=1,actions=set_field:1->reg6,resubmit(,60)',
      'table=0,priority=100,in_port=11,actions=set_field:1->reg6,set_field:11->reg5,resubmit(,71)',
      'table=0,priority=100,in_port=12,actions=set_field:1->reg6,resubmit(,60)',
      'table=0,priority=100,in_port=13,actions=set_field:1->reg6,resubmit(,60)',
    ]);
    assert.deepEqual(
      [...d.filtered.keys()],
      [uuid(1)],
      'a port without an ofport yet gets no pipeline',
    );
    const flows = d.flows.get('br-int') ?? [];
    assert.ok(
      !flows.some((f) => f.includes('reg5=12') || f.includes('table=71,priority=65,ip,in_port=12')),
    );
    assert.deepEqual(
      table(flows, 60).filter((f) => f.includes('dl_dst=fa:')),
      [
        'table=60,priority=100,reg6=1,dl_dst=fa:16:3e:00:00:01,dl_vlan=1,actions=strip_vlan,set_field:11->reg5,resubmit(,81)',
        'table=60,priority=100,reg6=1,dl_dst=fa:16:3e:00:00:01,vlan_tci=0x0000/0x1000,actions=set_field:11->reg5,resubmit(,81)',
        'table=60,priority=100,reg6=1,dl_dst=fa:16:3e:00:00:01,vlan_tci=0x1000/0x1fff,actions=strip_vlan,set_field:11->reg5,resubmit(,81)',
      ],
    );
  });
});
