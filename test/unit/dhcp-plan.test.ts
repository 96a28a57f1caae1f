/**
 * The DHCP agent's pure planning, in the kit's Step shapes: an empty plan when the host
 * matches, a stale OVS port cleared (its own applied transaction) before the port is
 * plugged again in one applied transaction carrying iface-id, attached-mac, MAC and MTU,
 * files written but never signalled are reloaded (SIGHUP, then the served marker), and a
 * network not served here is torn down completely. Leases: the leases-file parser drops
 * every line with a field that fails its pattern; a lease no host entry accounts for is
 * released after the reload (IPv4 by (MAC, IP), IPv6 by address and previous MAC), and a
 * second plan over the leases file dnsmasq then writes releases nothing.
 */
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { describe, test } from 'node:test';
import { type DesiredDhcp, type DhcpSettings, desiredDhcp } from '../../agents/dhcp/desired.ts';
import type { ObservedDhcp } from '../../agents/dhcp/observe.ts';
import { planDhcp } from '../../agents/dhcp/plan.ts';
import type { Step } from '../../agents/lib/steps.ts';
import type { DhcpNetwork } from '../../contracts/dhcp.ts';
import { parseLeases } from '../../host/dnsmasq/leases.ts';
import type { ObservedPort } from '../../host/ovs/ports.ts';

const S: DhcpSettings = {
  stateRoot: '/var/lib/kumo/dhcp',
  leaseSeconds: 86400,
  intBridge: 'br-int',
  netnsPrefix: '',
};
const NET = '11111111-1111-4111-8111-111111111111';
const SUBNET = '22222222-2222-4222-8222-222222222222';
const DHCP_PORT = '33333333-3333-4333-8333-333333333333';

const network: DhcpNetwork = {
  id: NET,
  revision_number: 3,
  mtu: 1450,
  subnets: [
    {
      id: SUBNET,
      cidr: '10.0.0.0/24',
      ip_version: '4',
      gateway_ip: '10.0.0.1',
      enable_dhcp: true,
      dns_nameservers: [],
      host_routes: [],
      routed: false,
    },
  ],
  ports: [],
  dhcp_port: {
    id: DHCP_PORT,
    mac_address: 'fa:16:3e:00:00:02',
    device_owner: 'network:dhcp',
    fixed_ips: [{ subnet_id: SUBNET, ip_address: '10.0.0.2' }],
  },
};

const row = (name: string): ObservedPort => ({
  uuid: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  name,
  bridge: 'br-int',
  ifaceId: DHCP_PORT,
  attachedMac: 'fa:16:3e:00:00:02',
  vmUuid: null,
});

function matching(d: DesiredDhcp): ObservedDhcp {
  const addrs = d.addresses.map((cidr) => ({
    version: 4 as const,
    address: cidr.split('/')[0] as string,
    prefix: 24,
    cidr,
    scope: 'global',
  }));
  return {
    netnsExists: true,
    links: [
      { name: d.device, ifindex: 5, mac: d.mac, mtu: d.mtu, up: true, peer: undefined, addrs },
    ],
    ovsPorts: [row(d.device)],
    files: { ...d.files },
    leases: null,
    pid: 4242,
    argv: [...d.argv],
    stateDirExists: true,
    servedDigest: d.digest,
    proxy: {
      dir: `${d.stateDir}/metadata-proxy`,
      dirExists: false,
      config: null,
      loaded: null,
      pid: null,
      inNetns: false,
    },
  };
}

const plugs = (st: Step) =>
  st.kind === 'ovsdb' && st.ops.some((op) => op.op === 'insert' && op.table === 'Interface');

/** A step as one line: commands by netns and argv, dnsmasq actions, files by name. */
function show(st: Step): string {
  switch (st.kind) {
    case 'command':
      return `${st.spec.netns ? `${st.spec.netns} ` : ''}${st.spec.argv.join(' ')}`;
    case 'daemon':
      return `dnsmasq ${st.action}`;
    case 'signal':
      return `dnsmasq ${st.signal}`;
    case 'file':
      return `file ${basename(st.path)}`;
    case 'ovsdb':
      return `ovsdb ${plugs(st) ? 'plug' : 'unplug'}${st.applied ? ' applied' : ''}`;
    default:
      return st.kind;
  }
}
const describeSteps = (steps: Step[]) => steps.map(show);

describe('planDhcp', () => {
  const d = desiredDhcp(network, S) as DesiredDhcp;

  test('a host that matches gets an empty plan', () => {
    assert.equal(d.device, 'tap33333333-33');
    assert.deepEqual(planDhcp(d, matching(d), S, NET), []);
  });

  test('a missing tap: the stale OVS port is removed before the port is plugged again', () => {
    const steps = planDhcp(d, { ...matching(d), links: [] }, S, NET);
    assert.deepEqual(describeSteps(steps), [
      'ovsdb unplug applied',
      'ovsdb plug applied',
      `ip link set dev ${d.device} netns qdhcp-${NET}`,
      `ip -n qdhcp-${NET} -batch -`,
      'dnsmasq stop',
      'dnsmasq start',
      'file served',
    ]);
    const plug = steps.find(plugs);
    assert.ok(plug?.kind === 'ovsdb');
    const iface = plug.ops.find((op) => op.op === 'insert' && op.table === 'Interface');
    assert.deepEqual(iface?.op === 'insert' && iface.row, {
      name: d.device,
      type: 'internal',
      external_ids: [
        'map',
        [
          ['iface-id', DHCP_PORT],
          ['attached-mac', d.mac],
          ['iface-status', 'active'],
        ],
      ],
      mac: d.mac,
      mtu_request: d.mtu,
    });
    const batch = steps[3];
    assert.ok(batch?.kind === 'command');
    assert.equal(
      batch.spec.stdin,
      [
        `link set dev ${d.device} address ${d.mac}`,
        `link set dev ${d.device} mtu 1450`,
        `link set dev ${d.device} up`,
        `addr replace 10.0.0.2/24 dev ${d.device}`,
        '',
      ].join('\n'),
      'MAC, MTU, up and addresses in one ip -batch',
    );
    const fresh = planDhcp(d, { ...matching(d), links: [], ovsPorts: [] }, S, NET);
    assert.deepEqual(describeSteps(fresh).slice(0, 2), [
      'ovsdb plug applied',
      `ip link set dev ${d.device} netns qdhcp-${NET}`,
    ]);
  });

  test('a replaced DHCP port: the old tap is unplugged, the new one plugged', () => {
    const old = {
      ...(matching(d).links[0] as ObservedDhcp['links'][number]),
      name: 'tap99999999-99',
    };
    const o = { ...matching(d), links: [old], ovsPorts: [row(old.name)] };
    assert.deepEqual(describeSteps(planDhcp(d, o, S, NET)).slice(0, 3), [
      'ovsdb unplug applied',
      'ovsdb plug applied',
      `ip link set dev ${d.device} netns qdhcp-${NET}`,
    ]);
  });

  test('files already on disk but never signalled are reloaded; changed addresses restart', () => {
    const steps = planDhcp(d, { ...matching(d), servedDigest: null }, S, NET);
    assert.deepEqual(describeSteps(steps), ['dnsmasq SIGHUP', 'file served']);
    const marker = steps[1];
    assert.ok(marker?.kind === 'file');
    assert.equal(marker.content, `${d.digest}\n`);
    const moved = matching(d);
    moved.links[0]?.addrs.splice(0, 1, {
      version: 4,
      address: '10.0.0.9',
      prefix: 24,
      cidr: '10.0.0.9/24',
      scope: 'global',
    });
    assert.deepEqual(describeSteps(planDhcp(d, moved, S, NET)), [
      `ip -n qdhcp-${NET} -batch -`,
      'dnsmasq stop',
      'dnsmasq start',
      'file served',
    ]);
  });

  test('a network not served here loses dnsmasq, OVS port, namespace and state', () => {
    const steps = planDhcp(desiredDhcp(null, S), matching(d), S, NET);
    assert.deepEqual(describeSteps(steps), [
      'dnsmasq stop',
      'ovsdb unplug applied',
      `ip netns del qdhcp-${NET}`,
      'remove',
    ]);
    const [, unplug, , remove] = steps;
    assert.deepEqual(unplug?.kind === 'ovsdb' && unplug.ops[0], {
      op: 'mutate',
      table: 'Bridge',
      where: [['name', '==', 'br-int']],
      mutations: [['ports', 'delete', ['set', [['uuid', row(d.device).uuid]]]]],
    });
    assert.equal(remove?.kind === 'remove' && remove.path, `${S.stateRoot}/${NET}`);
    assert.deepEqual(
      planDhcp(
        null,
        {
          ...matching(d),
          netnsExists: false,
          links: [],
          ovsPorts: [],
          pid: null,
          stateDirExists: false,
        },
        S,
        NET,
      ),
      [],
    );
  });
});

describe('planDhcp releases the leases no port accounts for', () => {
  const portB = {
    id: '44444444-4444-4444-8444-444444444444',
    mac_address: 'fa:16:3e:00:00:1b',
    device_owner: 'compute:nova',
    fixed_ips: [{ subnet_id: SUBNET, ip_address: '10.0.0.11' }],
  };
  const portC = {
    ...portB,
    id: '55555555-5555-4555-8555-555555555555',
    mac_address: 'fa:16:3e:00:00:12',
  };
  portC.fixed_ips = [{ subnet_id: SUBNET, ip_address: '10.0.0.12' }];
  const portA = {
    ...portB,
    id: '66666666-6666-4666-8666-666666666666',
    mac_address: 'fa:16:3e:00:00:11',
  };
  const before = desiredDhcp({ ...network, ports: [portA, portC] }, S) as DesiredDhcp;
  const after = desiredDhcp({ ...network, ports: [portB, portC] }, S) as DesiredDhcp;
  const leases = (lines: string[]) => parseLeases(lines.join('\n'));
  const A_LEASE = '1795418532 fa:16:3e:00:00:11 10.0.0.11 * 01:fa:16:3e:00:00:11';
  const C_LEASE = '1795418533 fa:16:3e:00:00:12 10.0.0.12 * *';
  const ELSEWHERE = '1795418534 fa:16:3e:00:00:99 192.168.9.9 * *';

  test('port A deleted, port B created with its IP: A’s lease is released after the reload', () => {
    const o = { ...matching(before), leases: leases([A_LEASE, C_LEASE, ELSEWHERE]) };
    assert.deepEqual(describeSteps(planDhcp(after, o, S, NET)), [
      'file host',
      'file addn_hosts',
      'dnsmasq SIGHUP',
      'file served',
      `qdhcp-${NET} dhcp_release ${after.device} 10.0.0.11 fa:16:3e:00:00:11 01:fa:16:3e:00:00:11`,
    ]);
  });

  test('convergence: over the leases file dnsmasq then writes, nothing more is planned', () => {
    assert.deepEqual(
      planDhcp(after, { ...matching(after), leases: leases([C_LEASE]) }, S, NET),
      [],
    );
    const renewed = '1795418599 fa:16:3e:00:00:1b 10.0.0.11 * *';
    const o = { ...matching(after), leases: leases([renewed, C_LEASE, ELSEWHERE]) };
    assert.deepEqual(planDhcp(after, o, S, NET), []);
  });

  test('a lease dnsmasq cannot release (no DHCP range there) is never planned', () => {
    const OFF = '88888888-8888-4888-8888-888888888888';
    const off = desiredDhcp(
      {
        ...network,
        subnets: [
          ...network.subnets,
          {
            ...(network.subnets[0] as DhcpNetwork['subnets'][number]),
            id: OFF,
            cidr: '10.1.0.0/24',
            gateway_ip: null,
            enable_dhcp: false,
          },
        ],
        dhcp_port: {
          ...(network.dhcp_port as NonNullable<DhcpNetwork['dhcp_port']>),
          fixed_ips: [
            { subnet_id: SUBNET, ip_address: '10.0.0.2' },
            { subnet_id: OFF, ip_address: '10.1.0.2' },
          ],
        },
      },
      S,
    ) as DesiredDhcp;
    assert.deepEqual(off.addresses, ['10.0.0.2/24', '10.1.0.2/24']);
    const o = { ...matching(off), leases: leases(['1 fa:16:3e:00:00:77 10.1.0.7 * *']) };
    assert.deepEqual(planDhcp(off, o, S, NET), []);
  });

  test('a dnsmasq that is not running hears the release only after it started', () => {
    const o = { ...matching(before), pid: null, argv: null, leases: leases([A_LEASE]) };
    const steps = describeSteps(planDhcp(after, o, S, NET));
    assert.deepEqual(steps.slice(0, 4), [
      'file host',
      'file addn_hosts',
      'dnsmasq start',
      'file served',
    ]);
    assert.match(steps[4] as string, /dhcp_release .* 10\.0\.0\.11 fa:16:3e:00:00:11/);
    const gone = planDhcp(null, { ...matching(after), leases: leases([A_LEASE]) }, S, NET);
    assert.ok(
      !describeSteps(gone).some((x) => x.includes('dhcp_release')),
      'teardown releases nothing',
    );
  });

  test('IPv6: released when the address is no longer granted or went to another MAC', () => {
    const SUB6 = '77777777-7777-4777-8777-777777777777';
    const v6net = (ports: DhcpNetwork['ports']): DhcpNetwork => ({
      ...network,
      subnets: [
        ...network.subnets,
        {
          id: SUB6,
          cidr: '2001:db8::/64',
          ip_version: '6',
          gateway_ip: '2001:db8::1',
          enable_dhcp: true,
          dns_nameservers: [],
          host_routes: [],
          routed: false,
        },
      ],
      ports,
      dhcp_port: {
        ...(network.dhcp_port as NonNullable<DhcpNetwork['dhcp_port']>),
        fixed_ips: [
          { subnet_id: SUBNET, ip_address: '10.0.0.2' },
          { subnet_id: SUB6, ip_address: '2001:db8::2' },
        ],
      },
    });
    const six = (p: typeof portA, ip: string) => ({
      ...p,
      fixed_ips: [{ subnet_id: SUB6, ip_address: ip }],
    });
    const was = desiredDhcp(v6net([six(portA, '2001:db8::11'), six(portC, '2001:db8::12')]), S);
    const now = desiredDhcp(v6net([six(portB, '2001:db8::11'), six(portC, '2001:db8::13')]), S);
    const lines = [
      'duid 00:01:00:01:2c:aa:bb:cc:fa:16:3e:00:00:02',
      '1 11 2001:db8::11 * 00:03:00:01:fa:16:3e:00:00:11',
      '1 12 2001:db8::12 * 00:03:00:01:fa:16:3e:00:00:12',
      '1 T13 2001:db8::14 * 00:03:00:01:fa:16:3e:00:00:14',
    ];
    const o = { ...matching(was as DesiredDhcp), leases: leases(lines) };
    const releases = describeSteps(planDhcp(now as DesiredDhcp, o, S, NET)).filter((x) =>
      x.includes('dhcp_release6'),
    );
    assert.deepEqual(
      releases.map((x) => x.split(' ').slice(4, 6).join(' ')),
      ['--ip 2001:db8::11', '--ip 2001:db8::12'],
    );
    const after6 = { ...matching(now as DesiredDhcp), leases: leases(lines.slice(0, 2)) };
    assert.deepEqual(planDhcp(now as DesiredDhcp, after6, S, NET), [], 'same MAC as before: kept');
    const noDuid = { ...o, leases: leases(lines.slice(1)) };
    const without = describeSteps(planDhcp(now as DesiredDhcp, noDuid, S, NET));
    assert.ok(!without.some((x) => x.includes('dhcp_release6')), 'no server DUID: none');
  });
});
