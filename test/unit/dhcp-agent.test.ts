/**
 * The DHCP agent's `network` kind through the kit's reconciler, with a FakeRunner
 * (expected argv → scripted output) and a FakeOvsdb passed in (no module patching):
 * what a new network runs, exactly and in order; that the same host state runs nothing;
 * that a dnsmasq that cannot start is reported ERROR with its stderr and nothing is
 * marked served; and a teardown. Files go to a temp dir; "dnsmasq" is a stand-in process
 * carrying the network's --pid-file= (the real dnsmasq has its own tests).
 *
 * Where the host state comes from a command the FakeRunner only pretended to run (the
 * namespace, the link's MAC, MTU and addresses, dnsmasq's command line), the test fills
 * it into what observe saw, as the host would have it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { networkKind, networkStatus } from '../../agents/dhcp/agent.ts';
import { type DesiredDhcp, type DhcpSettings, desiredDhcp } from '../../agents/dhcp/desired.ts';
import type { ObservedDhcp } from '../../agents/dhcp/observe.ts';
import { type DhcpNetwork, parseNetworkInfo } from '../../contracts/dhcp.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import { CommandError, type CommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler } from '../../core/reconciler.ts';
import { createStatusReporter, type StatusReporter } from '../../core/status.ts';
import type { LinkInfo } from '../../host/ip/link.ts';
import { tempDir } from '../helpers/env.ts';
import { FakeOvsdb } from '../helpers/fake-ovsdb.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';

const tmp = tempDir('kumo-dhcp-agent-');
const S: DhcpSettings = {
  stateRoot: join(tmp.path, 'dhcp'),
  leaseSeconds: 86400,
  intBridge: 'br-int',
  netnsPrefix: 'kdt-',
  vswitchdNetns: 'kdt-vswitchd',
};
const SUBNET = '22222222-2222-4222-8222-222222222222';

const networkOf = (id: string, portId: string): DhcpNetwork => ({
  id,
  revision_number: 1,
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
  ports: [
    {
      id: '44444444-4444-4444-8444-444444444444',
      mac_address: 'fa:16:3e:00:00:11',
      device_owner: 'compute:nova',
      fixed_ips: [{ subnet_id: SUBNET, ip_address: '10.0.0.11' }],
    },
  ],
  dhcp_port: {
    id: portId,
    mac_address: 'fa:16:3e:00:00:02',
    device_owner: 'network:dhcp',
    fixed_ips: [{ subnet_id: SUBNET, ip_address: '10.0.0.2' }],
  },
});

const standIns: ChildProcess[] = [];
after(() => {
  for (const p of standIns) p.kill('SIGKILL');
  tmp.cleanup();
});

/** The FakeRunner, plus what dnsmasq would do once it ran: a daemon writing its pid file. */
function hostRunner(fake: FakeRunner, d: DesiredDhcp): CommandRunner {
  return {
    async run(spec) {
      const result = await fake.run(spec);
      if (spec.argv[0] === 'dnsmasq') {
        const pidfile = `${d.stateDir}/pid`;
        const p = spawn(process.execPath, [
          '-e',
          'setInterval(() => {}, 1 << 30)',
          '--',
          `--pid-file=${pidfile}`,
        ]);
        standIns.push(p);
        writeFileSync(pidfile, `${p.pid}\n`);
      }
      return result;
    },
  };
}

/** The tap as the plan's ip -batch left it. */
const tapOf = (d: DesiredDhcp): LinkInfo => ({
  name: d.device,
  ifindex: 7,
  mac: d.mac,
  mtu: d.mtu,
  up: true,
  peer: undefined,
  addrs: [{ version: 4, address: '10.0.0.2', prefix: 24, cidr: '10.0.0.2/24', scope: 'global' }],
});

function agentOf(opts: {
  runner: CommandRunner;
  ovsdb: FakeOvsdb;
  network: DhcpNetwork | null;
  reporter: StatusReporter<ResourceStatus>;
  host?: Partial<ObservedDhcp>;
}) {
  const { reporter } = opts;
  const kind = networkKind({
    settings: S,
    runner: opts.runner,
    log: silentLogger(),
    ovsdb: async () => opts.ovsdb,
    getNetwork: async () => parseNetworkInfo({ network: structuredClone(opts.network) }),
    status: networkStatus(reporter, silentLogger()),
  });
  const observe = async (id: string, d: DesiredDhcp | null) => ({
    ...(await kind.observe(id, d)),
    ...opts.host,
  });
  return createReconciler({ log: silentLogger(), kinds: { network: { ...kind, observe } } });
}

describe('kumo-dhcp-agent network kind (FakeRunner, FakeOvsdb)', () => {
  const NET = '11111111-1111-4111-8111-111111111111';
  const network = networkOf(NET, '33333333-3333-4333-8333-333333333333');
  const d = desiredDhcp(network, S) as DesiredDhcp;
  const NS = `kdt-qdhcp-${NET}`;
  const sent: ResourceStatus[][] = [];
  const reporter = createStatusReporter<ResourceStatus>({
    send: async (changes) => void sent.push(changes.map((c) => c.value)),
  });
  const ovsdb = new FakeOvsdb();

  test('a new network runs exactly: namespace, plug, move, one ip -batch (lo up first), files, dnsmasq', async () => {
    const fake = new FakeRunner().expect(
      { argv: ['ip', 'netns', 'add', NS] },
      { argv: ['ip', '-n', 'kdt-vswitchd', 'link', 'set', 'dev', d.device, 'netns', NS] },
      {
        argv: ['ip', '-n', NS, '-batch', '-'],
        stdin: [
          'link set dev lo up',
          `link set dev ${d.device} address fa:16:3e:00:00:02`,
          `link set dev ${d.device} mtu 1450`,
          `link set dev ${d.device} up`,
          `addr replace 10.0.0.2/24 dev ${d.device}`,
          '',
        ].join('\n'),
      },
      { argv: d.argv, netns: NS },
    );
    const agent = agentOf({ runner: hostRunner(fake, d), ovsdb, network, reporter });
    await agent.reconcile('network', NET);
    fake.verify();

    const [plug, ...more] = ovsdb.writes();
    assert.deepEqual(more, [], 'one OVSDB write');
    const iface = plug?.find((op) => op.op === 'insert' && op.table === 'Interface');
    assert.deepEqual(iface?.op === 'insert' && iface.row, {
      name: d.device,
      type: 'internal',
      external_ids: [
        'map',
        [
          ['iface-id', d.portId],
          ['attached-mac', d.mac],
          ['iface-status', 'active'],
        ],
      ],
      mac: d.mac,
      mtu_request: 1450,
    });
    assert.ok(
      plug?.some((op) => op.op === 'mutate' && op.table === 'Open_vSwitch'),
      'applied: next_cfg bumped, so ovs-vswitchd made the device before the move',
    );
    const file = (name: string) => readFileSync(join(d.stateDir, name), 'utf8');
    assert.equal(file('host'), d.files.hosts);
    assert.equal(file('addn_hosts'), d.files.addnHosts);
    assert.equal(file('opts'), d.files.opts);
    assert.equal(file('served'), `${d.digest}\n`);
    assert.deepEqual(sent, [[{ resource: 'network', id: NET, status: 'ACTIVE' }]]);
  });

  test('the same host state again runs nothing, writes nothing and re-sends no status', async () => {
    ovsdb.addPort('br-int', d.device, { 'iface-id': d.portId, 'attached-mac': d.mac });
    const writes = ovsdb.writes().length;
    const fake = new FakeRunner();
    const host = { netnsExists: true, links: [tapOf(d)], argv: d.argv };
    const agent = agentOf({ runner: fake, ovsdb, network, reporter, host });
    await agent.reconcile('network', NET);
    fake.verify();
    assert.deepEqual(fake.calls, []);
    assert.equal(ovsdb.writes().length, writes);
    assert.equal(sent.length, 1);
  });

  test('a network no longer served here: dnsmasq stopped, port unplugged, namespace and state removed', async () => {
    const [standIn] = standIns;
    const uuid = ovsdb.addPort('br-int', 'tapgone', {});
    const fake = new FakeRunner().expect({ argv: ['ip', 'netns', 'del', NS] });
    const host = { netnsExists: true, links: [tapOf(d)] };
    const agent = agentOf({ runner: fake, ovsdb, network: null, reporter, host });
    await agent.reconcile('network', NET);
    fake.verify();
    const unplug = ovsdb.writes().at(-1);
    const del = unplug?.find((op) => op.op === 'mutate' && op.table === 'Bridge');
    assert.ok(del?.op === 'mutate');
    assert.deepEqual(del.where, [['name', '==', 'br-int']]);
    assert.ok(!JSON.stringify(del.mutations).includes(uuid), 'only the observed tap’s port');
    assert.ok(standIn);
    if (standIn.exitCode === null && standIn.signalCode === null) await once(standIn, 'exit');
    assert.equal(standIn.signalCode, 'SIGTERM', 'dnsmasq was stopped');
    assert.ok(!existsSync(d.stateDir));
    assert.deepEqual(sent.at(-1), [{ resource: 'network', id: NET, status: 'ACTIVE' }]);
  });

  test('dnsmasq cannot start: ERROR with its stderr, nothing marked served, the error rethrown', async () => {
    const BAD = '55555555-5555-4555-8555-555555555555';
    const bad = desiredDhcp(
      networkOf(BAD, '66666666-6666-4666-8666-666666666666'),
      S,
    ) as DesiredDhcp;
    const NS2 = `kdt-qdhcp-${BAD}`;
    const stderr =
      'dnsmasq: failed to create listening socket for 10.0.0.2: Address already in use\n';
    const fake = new FakeRunner().expect(
      { argv: ['ip', 'netns', 'add', NS2] },
      { argv: ['ip', '-n', 'kdt-vswitchd', 'link', 'set', 'dev', bad.device, 'netns', NS2] },
      { argv: ['ip', '-n', NS2, '-batch', '-'] },
      { argv: bad.argv, netns: NS2, fail: { exitCode: 2, stderr } },
    );
    const network2 = networkOf(BAD, '66666666-6666-4666-8666-666666666666');
    const agent = agentOf({ runner: fake, ovsdb, network: network2, reporter });
    await assert.rejects(agent.reconcile('network', BAD), CommandError);
    fake.verify();
    assert.deepEqual(sent.at(-1), [
      {
        resource: 'network',
        id: BAD,
        status: 'ERROR',
        reason: `dnsmasq in ${NS2} exited 2: ${stderr.trim()}`,
      },
    ]);
    assert.ok(existsSync(join(bad.stateDir, 'host')), 'the files were written');
    assert.ok(!existsSync(join(bad.stateDir, 'served')), 'but nothing is marked served');
  });
});

describe('kumo-dhcp-agent: one bad item is left out and reported, not its network', () => {
  const NET = '77777777-7777-4777-8777-777777777777';
  const good = networkOf(NET, '88888888-8888-4888-8888-888888888888');
  const BAD_MAC = '99999999-9999-4999-8999-999999999991';
  const ON_GATEWAY = '99999999-9999-4999-8999-999999999992';
  const poisoned = {
    ...good,
    ports: [
      ...good.ports,
      { id: BAD_MAC, mac_address: 'fa:16:3e:00:00:99\n', device_owner: '', fixed_ips: [] },
      {
        id: ON_GATEWAY,
        mac_address: 'fa:16:3e:00:00:98',
        device_owner: 'compute:nova',
        fixed_ips: [{ subnet_id: SUBNET, ip_address: '10.0.0.1' }],
      },
    ],
  };
  const sent: ResourceStatus[][] = [];
  const reporter = createStatusReporter<ResourceStatus>({
    send: async (changes) => void sent.push(changes.map((c) => c.value)),
  });
  const status = networkStatus(reporter, silentLogger());
  const report = async (raw: unknown) => {
    const info = parseNetworkInfo({ network: raw });
    const desired = desiredDhcp(info.network, S, info.rejected);
    const value = status.ok(info, desired, NET) as ResourceStatus;
    reporter.set(`network:${NET}`, value);
    await reporter.flush();
    return desired as DesiredDhcp;
  };

  test('the contract and the renderer leave their bad ports out, the status names them; good again, it lists nothing', async () => {
    const d = await report(poisoned);
    assert.equal(d.files.hosts, desiredDhcp(good, S)?.files.hosts, 'the rest is served as before');
    const last = sent.at(-1)?.[0];
    assert.equal(last?.status, 'ACTIVE');
    assert.deepEqual(
      last?.rejected?.map((r) => [r.resource, r.id]),
      [
        ['port', BAD_MAC],
        ['port', ON_GATEWAY],
      ],
    );
    assert.match(last?.rejected?.find((r) => r.id === BAD_MAC)?.reason ?? '', /mac_address/);
    assert.match(
      last?.rejected?.find((r) => r.id === ON_GATEWAY)?.reason ?? '',
      /^fixed_ips\[0\]\.ip_address: 10\.0\.0\.1 is the gateway/,
    );
    await report(good);
    assert.deepEqual(sent.at(-1), [{ resource: 'network', id: NET, status: 'ACTIVE' }]);
  });

  test('an IPv6 subnet left out (MTU under 1280) puts no IPv6 address on the tap', () => {
    const V6 = '12121212-1212-4212-8212-121212121212';
    const net = structuredClone(good);
    net.mtu = 1200;
    net.subnets.push({
      id: V6,
      cidr: '2001:db8::/64',
      ip_version: '6',
      gateway_ip: null,
      enable_dhcp: true,
      dns_nameservers: [],
      host_routes: [],
      routed: false,
    });
    net.dhcp_port?.fixed_ips.push({ subnet_id: V6, ip_address: '2001:db8::2' });
    const d = desiredDhcp(net, S) as DesiredDhcp;
    assert.deepEqual(d.addresses, ['10.0.0.2/24']);
    assert.deepEqual(
      d.rejected.map((r) => r.id),
      [V6],
    );
  });

  test('a network whose only DHCP subnet the contract left out is an error, not torn down as healthy', () => {
    const raw = structuredClone(good) as unknown as { subnets: { dns_nameservers: unknown }[] };
    (raw.subnets[0] as { dns_nameservers: unknown }).dns_nameservers = 'not a list';
    const info = parseNetworkInfo({ network: raw });
    assert.deepEqual(
      info.rejected.map((r) => r.id),
      [SUBNET],
    );
    assert.throws(
      () => desiredDhcp(info.network, S, info.rejected),
      /^ValidationError: subnets: no DHCP-enabled subnet can be served: subnet 22222222-/,
    );
    const noDhcp = structuredClone(good);
    for (const sub of noDhcp.subnets) sub.enable_dhcp = false;
    assert.equal(desiredDhcp(noDhcp, S), null, 'without DHCP subnets: nothing to serve');
  });

  test('one bad nameserver text leaves only that nameserver out, not its subnet', () => {
    const net = structuredClone(good);
    (net.subnets[0] as { dns_nameservers: string[] }).dns_nameservers = ['not-an-ip', '10.0.0.53'];
    const info = parseNetworkInfo({ network: net });
    assert.deepEqual(info.rejected, [], 'the contract keeps the subnet');
    const d = desiredDhcp(info.network, S, info.rejected) as DesiredDhcp;
    assert.match(d.files.opts, /option:dns-server,10\.0\.0\.53\n/);
    assert.deepEqual(
      d.rejected.map((r) => [r.id, r.reason.split(':')[0]]),
      [[SUBNET, 'dns_nameservers[0]']],
    );
  });
});
