/**
 * The L3 agent's NAT model and host tools against the real ones (iptables 1.8 nf_tables,
 * conntrack-tools, iputils-arping, procps sysctl), in namespaces this test creates and
 * deletes (needs root): a router namespace R with a gateway veth `qg-kt` to an "outside"
 * namespace E (203.0.113.0/24, a documentation range) and two interfaces to hosts A
 * (10.0.0.0/24) and B (10.0.1.0/24). Nothing touches the root namespace.
 *
 * Under test: natModel through host/iptables applyIptables converges (a second apply runs
 * only iptables-save), one changed floating IP is one restore, foreign rules survive; the
 * rules do what Neutron's do, read from R's conntrack table (original and reply tuples):
 * DNAT in from outside and from R itself, SNAT out to the floating IP or the gateway IP,
 * no SNAT between internal subnets, hairpin SNAT to the gateway; conntrack -D by floating
 * IP removes exactly its connections and succeeds when there are none; a gratuitous ARP
 * updates the outside's stale neighbour entry; ip_forward is 0 in a fresh namespace and
 * 1 after ipForwardCommand, IPv6 forwarding likewise (one process reads or sets both); a
 * namespace's links and `proto static` routes (onlink, IPv6) come from one `ip -batch`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { L3_CHAIN_PREFIX, type NatInput, natModel } from '../../agents/l3/nat.ts';
import { type CommandRunner, type CommandSpec, createCommandRunner } from '../../core/exec.ts';
import { garpCommand } from '../../host/arping/arping.ts';
import { conntrackDeleteCommands } from '../../host/conntrack/conntrack.ts';
import { listLinksAndStaticRoutes } from '../../host/ip/route.ts';
import { applyIptables } from '../../host/iptables/apply.ts';
import { ipForwardCommand, observeIpForward } from '../../host/sysctl/sysctl.ts';

const real = createCommandRunner();
const TAG = `kt${randomBytes(3).toString('hex')}`;
const R = `${TAG}-nat`;
const E = `${TAG}-ext`;
const A = `${TAG}-a`;
const B = `${TAG}-b`;
const QG = 'qg-kt';
const GW = '203.0.113.2';
const OUTSIDE = '203.0.113.1';
const FIP = '203.0.113.10';

const ran: string[] = [];
const runner: CommandRunner = {
  run(spec: CommandSpec) {
    ran.push(spec.argv.join(' '));
    return real.run(spec);
  },
};

const ip = (...argv: string[]) => real.run({ argv: ['ip', ...argv] });
const inNs = (netns: string, ...argv: string[]) => real.run({ argv, netns });
const ping = (netns: string, to: string, ...opts: string[]) =>
  inNs(netns, 'ping', '-c', '1', '-W', '1', '-n', '-q', ...opts, to);
const lines = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
const save = async () => lines((await inNs(R, 'iptables-save')).stdout);

const NAT: NatInput = {
  qgDevice: QG,
  gatewayIp: GW,
  enableSnat: true,
  internalCidrs: ['10.0.0.0/24', '10.0.1.0/24'],
  floatingIps: [
    { floatingIp: FIP, fixedIp: '10.0.0.5' },
    { floatingIp: '203.0.113.11', fixedIp: '10.0.1.5' },
  ],
};

async function apply(input: NatInput) {
  ran.length = 0;
  const steps = await applyIptables(runner, natModel(input), R);
  return { steps, ran: [...ran] };
}

interface Flow {
  src: string;
  dst: string;
  replySrc: string;
  replyDst: string;
}

/** R's ICMP connections: original and reply tuples. */
async function flows(): Promise<Flow[]> {
  const { stdout } = await inNs(R, 'conntrack', '-L', '-p', 'icmp');
  return lines(stdout).map((l) => {
    const [src = '', dst = '', replySrc = '', replyDst = ''] = [
      ...l.matchAll(/(?:src|dst)=(\S+)/g),
    ].map((m) => m[1] as string);
    return { src, dst, replySrc, replyDst };
  });
}

const flow = async (src: string, dst: string) =>
  (await flows()).find((f) => f.src === src && f.dst === dst);

/** A veth `left` in `ns1` ↔ `right` in `ns2`, both up, with one address each. */
async function link(
  ns1: string,
  left: string,
  cidr1: string,
  ns2: string,
  right: string,
  cidr2: string,
) {
  await ip('link', 'add', left, 'netns', ns1, 'type', 'veth', 'peer', 'name', right, 'netns', ns2);
  await inNs(ns1, 'ip', 'addr', 'add', cidr1, 'dev', left);
  await inNs(ns2, 'ip', 'addr', 'add', cidr2, 'dev', right);
  await inNs(ns1, 'ip', 'link', 'set', left, 'up');
  await inNs(ns2, 'ip', 'link', 'set', right, 'up');
}

describe('L3 NAT and host tools in namespaces', () => {
  let handMade: string[] = [];

  before(async () => {
    for (const ns of [R, E, A, B]) await ip('netns', 'add', ns);
    await link(R, QG, `${GW}/24`, E, 'ext0', `${OUTSIDE}/24`);
    await inNs(R, 'ip', 'addr', 'add', `${FIP}/32`, 'dev', QG);
    await inNs(R, 'ip', 'addr', 'add', '203.0.113.11/32', 'dev', QG);
    await link(R, 'qr-a', '10.0.0.1/24', A, 'eth0', '10.0.0.5/24');
    await inNs(A, 'ip', 'addr', 'add', '10.0.0.6/24', 'dev', 'eth0');
    await link(R, 'qr-b', '10.0.1.1/24', B, 'eth0', '10.0.1.5/24');
    await inNs(B, 'ip', 'addr', 'add', '10.0.1.6/24', 'dev', 'eth0');
    await inNs(A, 'ip', 'route', 'add', 'default', 'via', '10.0.0.1');
    await inNs(B, 'ip', 'route', 'add', 'default', 'via', '10.0.1.1');
    await inNs(R, 'iptables', '-t', 'nat', '-N', 'foreign-nat');
    await inNs(
      R,
      'iptables',
      '-t',
      'nat',
      '-A',
      'foreign-nat',
      '-s',
      '192.0.2.0/24',
      '-j',
      'RETURN',
    );
    await inNs(R, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-j', 'foreign-nat');
    await inNs(R, 'iptables', '-A', 'FORWARD', '-s', '198.51.100.0/24', '-j', 'DROP');
    handMade = (await save()).filter((l) => !l.includes(L3_CHAIN_PREFIX));
  });

  after(async () => {
    for (const ns of [R, E, A, B]) await ip('netns', 'del', ns).catch(() => {});
  });

  test('sysctl: ip_forward is off in a fresh namespace, on after ipForwardCommand', async () => {
    assert.equal(await observeIpForward(runner, R), false);
    await runner.run(ipForwardCommand(R));
    assert.equal(await observeIpForward(runner, R), true);
    assert.equal(await observeIpForward(runner, E), false, 'per namespace');
  });

  test('sysctl: IPv4 and IPv6 forwarding read and set by one process each', async () => {
    const V = `${TAG}-v6`;
    await ip('netns', 'add', V);
    try {
      ran.length = 0;
      assert.equal(await observeIpForward(runner, V, [4, 6]), false);
      await runner.run(ipForwardCommand(V, [4, 6]));
      assert.equal(await observeIpForward(runner, V, [4, 6]), true);
      assert.equal(ran.length, 3, ran.join('; '));
      const v6 = await inNs(V, 'sysctl', '-n', 'net.ipv6.conf.all.forwarding');
      assert.equal(v6.stdout.trim(), '1');
    } finally {
      await ip('netns', 'del', V).catch(() => {});
    }
  });

  test('links and static routes of a namespace from one ip -j -batch, onlink and IPv6 included', async () => {
    const V = `${TAG}-rt`;
    await ip('netns', 'add', V);
    try {
      const inV = (...args: string[]) => ip('-n', V, ...args);
      await inV('link', 'add', 'qg-rt', 'type', 'veth', 'peer', 'name', 'qr-rt');
      for (const dev of ['qg-rt', 'qr-rt']) await inV('link', 'set', dev, 'up');
      await inV('addr', 'add', '10.7.0.1/24', 'dev', 'qr-rt');
      await inV('addr', 'add', '2001:db8:7::1/64', 'dev', 'qr-rt', 'nodad');
      await inV('route', 'add', '10.8.0.0/16', 'via', '10.7.0.2', 'proto', 'static');
      await inV('route', 'add', '2001:db8:8::/64', 'via', '2001:db8:7::2', 'proto', 'static');
      const gw = ['via', '198.51.100.1', 'dev', 'qg-rt', 'onlink', 'proto', 'static'];
      await inV('route', 'add', 'default', ...gw);
      await inV('route', 'add', '10.6.0.0/16', 'via', '10.7.0.3');
      ran.length = 0;
      const got = await listLinksAndStaticRoutes(runner, V);
      assert.equal(ran.length, 1);
      const qr = got.links.find((l) => l.name === 'qr-rt');
      assert.deepEqual(
        qr?.addrs
          .filter((a) => a.scope === 'global')
          .map((a) => a.cidr)
          .sort(),
        ['10.7.0.1/24', '2001:db8:7::1/64'],
      );
      const sorted = [...got.routes].sort((a, b) => (a.destination < b.destination ? -1 : 1));
      assert.deepEqual(sorted, [
        { destination: '0.0.0.0/0', via: '198.51.100.1', dev: 'qg-rt', onlink: true },
        { destination: '10.8.0.0/16', via: '10.7.0.2', dev: 'qr-rt' },
        { destination: '2001:db8:8::/64', via: '2001:db8:7::2', dev: 'qr-rt' },
      ]);
    } finally {
      await ip('netns', 'del', V).catch(() => {});
    }
  });

  test('natModel applies in one restore; iptables-save shows it; again runs nothing', async () => {
    const first = await apply(NAT);
    assert.deepEqual(first.ran, ['iptables-save', 'iptables-restore --noflush']);
    const text = await save();
    for (const line of [
      '-A PREROUTING -j kumo-l3-PREROUTING',
      '-A OUTPUT -j kumo-l3-OUTPUT',
      '-A POSTROUTING -j kumo-l3-POSTROUTING',
      `-A kumo-l3-PREROUTING -d ${FIP}/32 -j DNAT --to-destination 10.0.0.5`,
      `-A kumo-l3-OUTPUT -d ${FIP}/32 -j DNAT --to-destination 10.0.0.5`,
      `-A kumo-l3-POSTROUTING ! -o ${QG} -m conntrack ! --ctstate DNAT -j ACCEPT`,
      '-A kumo-l3-POSTROUTING -j kumo-l3-snat',
      `-A kumo-l3-snat -s 10.0.0.5/32 -j SNAT --to-source ${FIP}`,
      `-A kumo-l3-snat -s 10.0.1.0/24 -o ${QG} -j SNAT --to-source ${GW}`,
      `-A kumo-l3-snat -s 10.0.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source ${GW}`,
    ])
      assert.ok(text.includes(line), `${line} in\n${text.join('\n')}`);
    const again = await apply(NAT);
    assert.deepEqual(again.steps, []);
    assert.deepEqual(again.ran, ['iptables-save']);
    assert.deepEqual(await save(), text);
  });

  test('the rules NAT as Neutron does, read from the conntrack tuples', async () => {
    await ping(E, FIP);
    assert.deepEqual(
      await flow(OUTSIDE, FIP),
      {
        ...{ src: OUTSIDE, dst: FIP, replySrc: '10.0.0.5', replyDst: OUTSIDE },
      },
      'in to the floating IP: DNAT, the outside source kept',
    );
    await ping(A, OUTSIDE);
    assert.equal((await flow('10.0.0.5', OUTSIDE))?.replyDst, FIP, 'out: SNAT to the floating IP');
    await ping(A, OUTSIDE, '-I', '10.0.0.6');
    assert.equal(
      (await flow('10.0.0.6', OUTSIDE))?.replyDst,
      GW,
      'out without one: the gateway IP',
    );
    await ping(A, '10.0.1.5');
    assert.equal((await flow('10.0.0.5', '10.0.1.5'))?.replyDst, '10.0.0.5', 'internal: no SNAT');
    await ping(B, FIP);
    assert.equal((await flow('10.0.1.5', FIP))?.replyDst, '203.0.113.11', 'hairpin: own FIP first');
    await ping(B, FIP, '-I', '10.0.1.6');
    assert.deepEqual(
      await flow('10.0.1.6', FIP),
      { src: '10.0.1.6', dst: FIP, replySrc: '10.0.0.5', replyDst: GW },
      'hairpin without a floating IP: DNAT and SNAT to the gateway',
    );
    await ping(R, FIP);
    assert.equal((await flow(FIP, FIP))?.replySrc, '10.0.0.5', 'from the router: OUTPUT DNAT');
  });

  test('one changed floating IP is one restore; foreign rules untouched', async () => {
    const moved: NatInput = {
      ...NAT,
      floatingIps: [NAT.floatingIps[0], { floatingIp: '203.0.113.12', fixedIp: '10.0.1.5' }],
    } as NatInput;
    const { steps, ran: cmds } = await apply(moved);
    assert.deepEqual(cmds, ['iptables-save', 'iptables-restore --noflush']);
    assert.match(
      steps[0]?.why ?? '',
      /^nat: kumo-l3-PREROUTING rules differ, kumo-l3-OUTPUT rules differ, kumo-l3-snat rules differ$/,
    );
    const text = await save();
    assert.ok(
      text.includes('-A kumo-l3-PREROUTING -d 203.0.113.12/32 -j DNAT --to-destination 10.0.1.5'),
    );
    assert.ok(!text.some((l) => l.includes('203.0.113.11')), text.join('\n'));
    assert.deepEqual(
      text.filter((l) => !l.includes(L3_CHAIN_PREFIX)),
      handMade,
    );
    assert.deepEqual((await apply(moved)).steps, []);
  });

  test('conntrack -D by floating IP: its connections go, others stay; none left is success', async () => {
    await ping(E, FIP);
    await ping(A, OUTSIDE);
    await ping(A, OUTSIDE, '-I', '10.0.0.6');
    // The SNATed connection's original source is the fixed IP: `-s FIP` cannot find it,
    // the reply destination (`-q FIP`) does.
    assert.equal((await flow('10.0.0.5', OUTSIDE))?.replyDst, FIP);
    const touches = (f: Flow) => f.dst === FIP || f.replyDst === FIP;
    assert.ok((await flows()).filter(touches).length >= 2);
    for (const spec of conntrackDeleteCommands(FIP, R)) await runner.run(spec);
    const left = await flows();
    assert.deepEqual(left.filter(touches), []);
    assert.ok(
      left.some((f) => f.src === '10.0.0.6' && f.replyDst === GW),
      'other flows stay',
    );
    for (const spec of conntrackDeleteCommands(FIP, R)) {
      const r = await runner.run(spec);
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, /0 flow entries have been deleted/);
    }
  });

  test('a gratuitous ARP replaces the outside neighbour entry for the floating IP', async () => {
    const mac = JSON.parse((await inNs(R, 'ip', '-j', 'link', 'show', QG)).stdout)[0].address;
    await inNs(
      E,
      'ip',
      'neigh',
      'replace',
      FIP,
      'lladdr',
      '02:00:00:00:00:99',
      'dev',
      'ext0',
      'nud',
      'stale',
    );
    const neigh = async () =>
      JSON.parse((await inNs(E, 'ip', '-j', 'neigh', 'show', FIP, 'dev', 'ext0')).stdout)[0]
        ?.lladdr;
    assert.equal(await neigh(), '02:00:00:00:00:99');
    const r = await runner.run(garpCommand({ device: QG, ip: FIP, count: 1, netns: R }));
    assert.equal(r.exitCode, 0);
    assert.equal(await neigh(), mac);
  });

  test('arping for an address that is not on the device fails', async () => {
    await assert.rejects(
      runner.run(garpCommand({ device: QG, ip: '203.0.113.99', count: 1, netns: R })),
      /Cannot assign requested address/,
    );
  });
});
