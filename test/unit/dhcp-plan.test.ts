/**
 * The DHCP agent's pure planning: an empty plan when the host matches, a stale OVS port
 * cleared before re-plugging, files written but never signalled are reloaded, and a
 * network not served here is torn down completely.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DesiredDhcp, type DhcpSettings, desiredDhcp } from '../../agents/dhcp/desired.ts';
import type { ObservedDhcp } from '../../agents/dhcp/observe.ts';
import { planDhcp } from '../../agents/dhcp/plan.ts';
import type { DhcpNetwork } from '../../contracts/dhcp.ts';

const S: DhcpSettings = {
  stateRoot: '/var/lib/kumo/dhcp',
  leaseSeconds: 86400,
  intBridge: 'br-int',
  ovsdbConnection: 'unix:/var/run/openvswitch/db.sock',
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
    taps: [
      { name: d.device, ifindex: 5, mac: d.mac, mtu: d.mtu, up: true, peer: undefined, addrs },
    ],
    files: { ...d.files },
    pid: 4242,
    argv: [...d.argv],
    stateDirExists: true,
    servedDigest: d.digest,
  };
}

describe('planDhcp', () => {
  const d = desiredDhcp(network, S) as DesiredDhcp;

  test('a host that matches gets an empty plan', () => {
    assert.equal(d.device, 'tap33333333-33');
    assert.deepEqual(planDhcp(d, matching(d), S, NET), []);
  });

  test('a missing tap: the stale OVS port is deleted before the port is added again', () => {
    const o = { ...matching(d), taps: [] };
    const argvs = planDhcp(d, o, S, NET).flatMap((st) =>
      st.kind === 'command' ? [st.spec.argv.join(' ')] : [],
    );
    const del = argvs.findIndex((a) => a.includes(`del-port br-int ${d.device}`));
    const add = argvs.findIndex((a) => a.includes(`add-port br-int ${d.device}`));
    assert.ok(del >= 0 && add > del, argvs.join('\n'));
    assert.ok(argvs.some((a) => a.includes(`link set dev ${d.device} netns qdhcp-${NET}`)));
  });

  test('files already on disk but never signalled are reloaded; changed addresses restart', () => {
    const steps = planDhcp(d, { ...matching(d), servedDigest: null }, S, NET);
    assert.deepEqual(
      steps.map((st) => (st.kind === 'dnsmasq' ? st.action : st.kind)),
      ['reload'],
    );
    const moved = matching(d);
    moved.taps[0]?.addrs.splice(0, 1, {
      version: 4,
      address: '10.0.0.9',
      prefix: 24,
      cidr: '10.0.0.9/24',
      scope: 'global',
    });
    const kinds = planDhcp(d, moved, S, NET).map((st) =>
      st.kind === 'dnsmasq' ? st.action : st.kind,
    );
    assert.deepEqual(kinds, ['command', 'restart']);
  });

  test('a network not served here loses dnsmasq, OVS port, namespace and state', () => {
    const steps = planDhcp(desiredDhcp(null, S), matching(d), S, NET);
    assert.deepEqual(
      steps.map((st) =>
        st.kind === 'dnsmasq'
          ? `dnsmasq ${st.action}`
          : st.kind === 'command'
            ? st.spec.argv.slice(0, 4).join(' ')
            : st.kind,
      ),
      [
        'dnsmasq stop',
        `ovs-vsctl --db=${S.ovsdbConnection} --timeout=10 --if-exists`,
        `ip netns del qdhcp-${NET}`,
        'rmdir',
      ],
    );
    assert.deepEqual(
      planDhcp(
        null,
        { ...matching(d), netnsExists: false, taps: [], pid: null, stateDirExists: false },
        S,
        NET,
      ),
      [],
    );
  });
});
