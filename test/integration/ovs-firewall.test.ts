/**
 * The conntrack firewall (agents/ovs/firewall.ts) on a real ovs-vswitchd (userspace
 * datapath) with real traffic between stand-in VMs in namespaces. No agent runs: the
 * flows come from the agent's pure desiredOvs (hand-made device details and group info)
 * and are installed with the agent's own replace-flows command, as a sync would.
 *
 * Ports on one VXLAN network over two hosts: on h1 A (seed rules: ICMP, TCP 22, TCP 80
 * from anywhere), B and D (the default group: ingress from its members; B has an allowed
 * address pair), C (port security off); on h2 E (the default group).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { desiredOvs, type OvsSettings, tunnelName } from '../../agents/ovs/desired.ts';
import type { OvsPort, OvsState } from '../../agents/ovs/observe.ts';
import type { SgInfo } from '../../agents/ovs/sg-flows.ts';
import type { DeviceDetails, FirewallRule } from '../../contracts/l2.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { flushZoneCommand, vswitchdControl } from '../../host/ovs/appctl.ts';
import { replaceFlowsCommand } from '../../host/ovs/ofctl.ts';
import { DEF, fwRule, NET, SEED, uuid } from '../helpers/firewall-fixtures.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';
import { stopPeers, tcpConnect, tcpServer } from '../helpers/tcp-peer.ts';

const S: OvsSettings = {
  intBridge: 'br-int',
  tunBridge: 'br-tun',
  datapathType: 'netdev',
  localIp: null,
  tunnelTypes: ['vxlan'],
};
const rule = fwRule;
const SEED_RULES = [
  rule(1, { direction: 'egress' }),
  rule(2, { protocol: 1, remote_ip_prefix: '0.0.0.0/0' }),
  rule(3, { protocol: 6, port_range_min: 22, port_range_max: 22, remote_ip_prefix: '0.0.0.0/0' }),
  rule(4, { protocol: 6, port_range_min: 80, port_range_max: 80, remote_ip_prefix: '0.0.0.0/0' }),
];
const DEF_RULES = [
  rule(5, { direction: 'egress' }),
  rule(6, { remote_group_id: DEF }),
  rule(8, { protocol: 6, port_range_min: 8080, port_range_max: 8080, remote_group_id: DEF }),
];
const PORTS = {
  A: { n: 1, ip: '10.0.0.1', groups: [SEED], security: true, host: 0 },
  B: { n: 2, ip: '10.0.0.2', groups: [DEF], security: true, host: 0 },
  D: { n: 3, ip: '10.0.0.3', groups: [DEF], security: true, host: 0 },
  C: { n: 4, ip: '10.0.0.10', groups: [], security: false, host: 0 },
  E: { n: 5, ip: '10.0.0.5', groups: [DEF], security: true, host: 1 },
} as const;
type Name = keyof typeof PORTS;
const mac = (n: number) => `fa:16:3e:00:00:0${n}`;
const PAIR_IP = '10.0.0.60';

let lab: Lab;
let host: LabHost;
/** Ports whose group membership the test changed (else PORTS' groups). */
const groupsNow = new Map<Name, string[]>();
const eps = new Map<Name, Endpoint>();
const ofports = new Map<string, number>();
const runner = createCommandRunner();
let sg: SgInfo;

function details(): Map<string, DeviceDetails> {
  const out = new Map<string, DeviceDetails>();
  for (const [name, p] of Object.entries(PORTS)) {
    out.set(uuid(p.n), {
      device: uuid(p.n),
      network_id: NET,
      network_type: 'vxlan',
      physical_network: null,
      segmentation_id: 100,
      mac_address: mac(p.n),
      admin_state_up: true,
      device_owner: 'compute:nova',
      fixed_ips: [p.ip],
      port_security_enabled: p.security,
      security_groups: [...(groupsNow.get(name as Name) ?? p.groups)],
      allowed_address_pairs: name === 'B' ? [{ mac_address: mac(p.n), ip_address: PAIR_IP }] : [],
    });
  }
  return out;
}

function state(h: LabHost): OvsState {
  const ports = new Map<string, OvsPort>();
  for (const [name, ep] of eps) {
    if (ep.host !== h) continue;
    const iface = {
      uuid: `if-${ep.name}`,
      name: ep.name,
      type: 'internal',
      ofport: ofports.get(ep.name) ?? null,
      options: {},
      externalIds: { 'iface-id': uuid(PORTS[name].n) },
    };
    ports.set(ep.name, {
      uuid: `p-${ep.name}`,
      name: ep.name,
      bridge: 'br-int',
      tag: null,
      otherConfig: {},
      interfaces: [iface],
    });
  }
  return { rootUuid: 'root', curCfg: 1, nextCfg: 1, bridges: new Map(), ports };
}

/** What a sync would install on each host's br-int and br-tun now; returns host 1's br-int. */
async function apply(): Promise<string[]> {
  const out: string[][] = [];
  for (const h of lab.hosts) {
    const settings = { ...S, localIp: h.ip };
    const peers = lab.hosts.map((p) => ({
      host: p.name,
      tunnel_ip: p.ip,
      tunnel_types: ['vxlan' as const],
    }));
    const d = desiredOvs(settings, state(h), details(), peers, sg);
    for (const bridge of ['br-int', 'br-tun']) {
      const flows = (d.flows.get(bridge) ?? []).map((f) => `cookie=0x1,${f}`);
      await runner.run(replaceFlowsCommand(h.dir, bridge, flows));
    }
    out.push(d.flows.get('br-int') ?? []);
  }
  return out[0] ?? [];
}

const dump = async () =>
  (await host.ofctl(['-O', 'OpenFlow14', 'dump-flows', '--no-stats', 'br-int']))
    .split('\n')
    .filter((l) => l.includes('actions='))
    .sort();

const ping = (from: Name, to: string, source?: string) =>
  lab
    .exec(eps.get(from)?.netns as string, [
      'ping',
      '-c1',
      '-W1',
      ...(source ? ['-I', source] : []),
      to,
    ])
    .then(
      () => true,
      () => false,
    );

const connects = (from: Name, to: Name, port: number) =>
  tcpConnect(eps.get(from)?.netns as string, PORTS[to].ip, port, 1500).then(
    (c) => {
      c.close();
      return true;
    },
    () => false,
  );

async function serve(on: Name, ports: number[]) {
  for (const port of ports) await tcpServer(eps.get(on)?.netns as string, port);
}

async function wire(h: LabHost, peer: LabHost) {
  const tunnel = tunnelName('vxlan', peer.ip);
  await h.vsctl(
    [
      'add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure',
      '-- add-br br-tun -- set bridge br-tun datapath_type=netdev fail_mode=secure',
      '-- add-port br-int patch-tun -- set Interface patch-tun type=patch options:peer=patch-int',
      '-- add-port br-tun patch-int -- set Interface patch-int type=patch options:peer=patch-tun',
      `-- add-port br-tun ${tunnel} -- set Interface ${tunnel} type=vxlan`,
      `options:remote_ip=${peer.ip} options:local_ip=${h.ip} options:key=flow`,
    ]
      .join(' ')
      .split(' '),
  );
}

/** Sends 5 raw UDP frames from `from` to `to`:9999, 802.1Q priority-tagged (VLAN 0) or not. */
const RAW_UDP = `import socket,struct,sys
ifn,sm,dm,si,di,msg,tag=sys.argv[1:8]
def ck(b):
    s=sum(struct.unpack('!10H',b)); s=(s>>16)+(s&0xffff); s+=s>>16; return ~s&0xffff
data=msg.encode(); udp=struct.pack('!HHHH',40000,9999,8+len(data),0)+data
ip=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(udp),1,0,64,17,0,socket.inet_aton(si),socket.inet_aton(di))
ip=ip[:10]+struct.pack('!H',ck(ip))+ip[12:]
mac=lambda m: bytes.fromhex(m.replace(':',''))
vlan=struct.pack('!HH',0x8100,0) if tag=='tagged' else b''
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW); s.bind((ifn,0))
for _ in range(5): s.send(mac(dm)+mac(sm)+vlan+struct.pack('!H',0x0800)+ip+udp)`;

/** Whether `to` hears `marker` on UDP 9999 when `from` sends it in raw frames (to `dstMac`). */
async function udpHeard(
  from: Name,
  to: Name,
  marker: string,
  tag: 'tagged' | 'untagged',
  dstMac = mac(PORTS[to].n),
) {
  const [src, dst] = [eps.get(from) as Endpoint, eps.get(to) as Endpoint];
  const heard = lab.exec(dst.netns, ['sh', '-c', 'timeout 2 socat -u UDP4-RECV:9999 STDOUT; true']);
  await sleep(300);
  const args = [src.name, mac(PORTS[from].n), dstMac, PORTS[from].ip, PORTS[to].ip, marker, tag];
  await lab.exec(src.netns, ['python3', '-c', RAW_UDP, ...args]);
  return (await heard).includes(marker);
}

before(async () => {
  lab = await createLab({ hosts: 2 });
  const [h1, h2] = lab.hosts as [LabHost, LabHost];
  host = h1;
  await wire(h1, h2);
  await wire(h2, h1);
  for (const [name, p] of Object.entries(PORTS) as [Name, (typeof PORTS)[Name]][]) {
    const h = p.host === 0 ? h1 : h2;
    const ep = await lab.endpoint(h, { ifaceId: uuid(p.n), mac: mac(p.n), cidr: `${p.ip}/24` });
    eps.set(name, ep);
    await h.vsctl(['set', 'Port', ep.name, 'tag=1']);
    ofports.set(ep.name, Number((await h.vsctl(['get', 'Interface', ep.name, 'ofport'])).trim()));
  }
  sg = {
    rules: new Map([
      [SEED, [...SEED_RULES]],
      [DEF, [...DEF_RULES]],
    ]),
    members: new Map([[DEF, [PORTS.B.ip, PAIR_IP, PORTS.D.ip, PORTS.E.ip]]]),
  };
  await apply();
  await serve('A', [22, 80, 8080]);
  await serve('D', [8080]);
  await serve('C', [8080]);
  await serve('E', [8080]);
});

after(async () => {
  stopPeers();
  await lab?.destroy();
});

describe('ovs firewall on a real switch', () => {
  test('the seed rules allow exactly ICMP, TCP 22 and TCP 80 from anywhere', async () => {
    assert.equal(await ping('C', PORTS.A.ip), true, 'ICMP');
    assert.equal(await connects('C', 'A', 22), true, 'TCP 22');
    assert.equal(await connects('C', 'A', 80), true, 'TCP 80');
    assert.equal(await connects('C', 'A', 8080), false, 'TCP 8080 is refused');
    assert.equal(await connects('B', 'A', 8080), false, 'from a filtered port too');
  });

  test('the default group lets its members reach each other and blocks non-members', async () => {
    assert.equal(await connects('B', 'D', 8080), true, 'member to member');
    assert.equal(await ping('D', PORTS.B.ip), true, 'any protocol between members');
    assert.equal(await connects('C', 'D', 8080), false, 'port security off is no membership');
    assert.equal(await connects('A', 'D', 8080), false, 'another group');
    assert.equal(await ping('A', PORTS.D.ip), false);
  });

  test('across hosts (VXLAN): members reach each other, non-members do not', async () => {
    assert.equal(await connects('B', 'E', 8080), true, 'member to member, tunnel in');
    assert.equal(await connects('E', 'D', 8080), true, 'member to member, tunnel out');
    assert.equal(await connects('A', 'E', 8080), false, 'another group');
    assert.equal(await ping('C', PORTS.E.ip), false, 'port security off is no membership');
    assert.equal(await ping('E', PORTS.A.ip), true, "the seed's ICMP from another host");
  });

  test('a remote_group_id rule follows membership as a port leaves and joins', async () => {
    const members = sg.members.get(DEF) ?? [];
    groupsNow.set('B', [SEED]);
    sg = {
      ...sg,
      members: new Map(sg.members).set(
        DEF,
        members.filter((m) => m !== PORTS.B.ip && m !== PAIR_IP),
      ),
    };
    await apply();
    assert.equal(await connects('B', 'E', 8080), false, 'B left: E refuses it');
    assert.equal(await connects('D', 'E', 8080), true, 'D is still a member');
    groupsNow.delete('B');
    sg = { ...sg, members: new Map(sg.members).set(DEF, members) };
    await apply();
    assert.equal(await connects('B', 'E', 8080), true, 'B joined again');
  });

  test('a spoofed source IP or MAC is dropped; an allowed address pair passes', async () => {
    const b = eps.get('B') as Endpoint;
    const a = eps.get('A') as Endpoint;
    // A knows where each address is, so only B's own packets decide (not ARP).
    const neigh = (ip: string, lladdr: string) =>
      lab.exec(a.netns, ['ip', 'neigh', 'replace', ip, 'lladdr', lladdr, 'dev', a.name]);
    for (const ip of ['10.0.0.50', PAIR_IP]) {
      await lab.exec(b.netns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', b.name]);
      await neigh(ip, b.mac);
    }
    assert.equal(await ping('B', PORTS.A.ip, '10.0.0.50'), false, 'spoofed source IP');
    assert.equal(await ping('B', PORTS.A.ip, PAIR_IP), true, 'the allowed pair');
    const spoofed = 'fa:16:3e:00:00:99';
    await lab.exec(b.netns, ['ip', 'link', 'set', b.name, 'address', spoofed]);
    await neigh(PORTS.B.ip, spoofed);
    try {
      assert.equal(await ping('B', PORTS.A.ip), false, 'spoofed source MAC');
    } finally {
      await lab.exec(b.netns, ['ip', 'link', 'set', b.name, 'address', b.mac]);
      await neigh(PORTS.B.ip, b.mac);
    }
    assert.equal(await ping('B', PORTS.A.ip), true, 'its own MAC and address');
  });

  test('an ARP reply for an address the port does not own is dropped', async () => {
    const d = eps.get('D') as Endpoint;
    await lab.exec(d.netns, ['ip', 'addr', 'add', '10.0.0.70/24', 'dev', d.name]);
    assert.equal(await ping('C', '10.0.0.70'), false, 'no answer through the firewall');
    const neigh = await lab.exec(eps.get('C')?.netns as string, [
      'ip',
      'neigh',
      'show',
      '10.0.0.70',
    ]);
    assert.doesNotMatch(neigh, /lladdr/, 'C never learned a MAC for it');
  });

  test('a priority-tagged (VLAN 0) or broadcast frame reaches a filtered port only through its rules', async () => {
    const members = sg.members;
    try {
      sg = { ...sg, members: new Map(members).set(DEF, [...(members.get(DEF) ?? []), PORTS.C.ip]) };
      await apply();
      assert.equal(await udpHeard('C', 'D', 'tagged-member', 'tagged'), true, 'C as a member');
      const all = 'ff:ff:ff:ff:ff:ff';
      assert.equal(await udpHeard('C', 'D', 'group-member', 'untagged', all), true, 'broadcast');
      sg = { ...sg, members };
      await apply();
      assert.equal(await udpHeard('C', 'D', 'plain-outsider', 'untagged'), false, 'C outside');
      assert.equal(await udpHeard('C', 'D', 'tagged-outsider', 'tagged'), false, 'tagged too');
      for (const group of ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:fb'])
        assert.equal(
          await udpHeard('C', 'D', `group-outsider-${group}`, 'untagged', group),
          false,
          `in a frame for ${group}`,
        );
    } finally {
      sg = { ...sg, members };
      await apply();
    }
  });

  test('a port with port security off passes everything, spoofed or not', async () => {
    const c = eps.get('C') as Endpoint;
    await lab.exec(c.netns, ['ip', 'addr', 'add', '10.0.0.99/24', 'dev', c.name]);
    assert.equal(await ping('C', PORTS.A.ip, '10.0.0.99'), true, 'a source IP not its own');
    assert.equal(await connects('B', 'C', 8080), true, 'any port in');
  });

  test('removing a rule cuts an established connection; adding one leaves them alone', async () => {
    const c = eps.get('C') as Endpoint;
    const ssh = await tcpConnect(c.netns, PORTS.A.ip, 22);
    const web = await tcpConnect(c.netns, PORTS.A.ip, 80);
    try {
      assert.match((await ssh.ask()) ?? '', /^from=/);
      assert.match((await web.ask()) ?? '', /^from=/);
      const before = await apply();
      sg = {
        ...sg,
        rules: new Map(sg.rules).set(
          SEED,
          SEED_RULES.filter((r) => r !== SEED_RULES[2]),
        ),
      };
      const after = await apply();
      assert.ok(before.length > after.length, 'the rule flow is gone');
      assert.equal(await ssh.ask(1500), null, 'the established TCP 22 connection is cut');
      assert.equal(await connects('C', 'A', 22), false, 'and no new one is made');
      assert.match((await web.ask()) ?? '', /^from=/, 'TCP 80 goes on');
      const extra = rule(7, { protocol: 6, port_range_min: 8080, port_range_max: 8080 });
      sg = { ...sg, rules: new Map(sg.rules).set(SEED, [...(sg.rules.get(SEED) ?? []), extra]) };
      await apply();
      assert.match((await web.ask()) ?? '', /^from=/, 'adding a rule leaves TCP 80 alone');
      assert.equal(await connects('C', 'A', 8080), true, 'and the new rule admits 8080');
    } finally {
      ssh.close();
      web.close();
    }
  });

  test('a rule removed then added again revives the stream it cut (one ping id throughout)', async () => {
    const seed = sg.rules.get(SEED) ?? [];
    const setSeed = (rules: readonly FirewallRule[]) => {
      sg = { ...sg, rules: new Map(sg.rules).set(SEED, rules) };
    };
    const c = eps.get('C') as Endpoint;
    const pinging = lab.exec(c.netns, ['sh', '-c', `ping -n -i 0.2 -w 9 ${PORTS.A.ip} || true`]);
    await sleep(2000);
    setSeed(seed.filter((r) => r.protocol !== 1));
    await apply();
    await sleep(2500);
    setSeed(seed);
    await apply();
    const out = await pinging;
    const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
    const sent = Number(/(\d+) packets transmitted/.exec(out)?.[1]);
    assert.ok(
      seqs.some((q) => q <= 5),
      `answered before the removal: ${seqs}`,
    );
    assert.ok(Math.max(...seqs) >= sent - 3, `answered again once re-added: ${seqs} of ${sent}`);
    const gaps = seqs.slice(1).map((q, i) => q - (seqs[i] ?? q));
    assert.ok(Math.max(...gaps) >= 6, `cut while the rule was gone: ${seqs}`);
  });

  test('the same input installs the same flows (replace-flows is a no-op)', async () => {
    const first = await dump();
    await apply();
    assert.deepEqual(await dump(), first);
    assert.ok(
      first.some((f) => f.includes('resubmit(,71)')),
      'table 0 is compared too',
    );
    assert.ok(
      first.some((f) => f.includes('conjunction(')),
      'the default group uses conjunctions',
    );
  });

  test('the agent’s flush command empties a departed port’s conntrack zone, only that one', async () => {
    const appctl = ['ovs-appctl', '-t', join(host.dir, 'ovs-vswitchd.ctl')];
    const zone = ofports.get(eps.get('A')?.name as string) as number;
    const other = ofports.get(eps.get('B')?.name as string) as number;
    const conntrack = async (z: number) =>
      (await runner.run({ argv: [...appctl, 'dpctl/dump-conntrack', `zone=${z}`] })).stdout
        .split('\n')
        .filter((l) => l.includes(`zone=${z}`));
    const conn = await tcpConnect(eps.get('C')?.netns as string, PORTS.A.ip, 80);
    try {
      assert.match((await conn.ask()) ?? '', /^from=/);
      assert.equal(await ping('D', PORTS.B.ip), true);
      assert.ok((await conntrack(zone)).length > 0, 'A has tracked connections');
      const fromD = `src=${PORTS.D.ip},dst=${PORTS.B.ip}`;
      const dToB = async () =>
        (await conntrack(other)).filter((l) => l.startsWith('icmp,') && l.includes(fromD));
      assert.ok((await dToB()).length > 0, 'B’s zone tracks the ping D just sent');
      await runner.run(flushZoneCommand(vswitchdControl(host.dir), zone));
      assert.deepEqual(await conntrack(zone), [], 'A’s zone is empty');
      // Only the entry just made is compared: older ones in B's zone may time out meanwhile.
      assert.ok((await dToB()).length > 0, 'B’s zone is untouched');
    } finally {
      conn.close();
    }
  });
});
