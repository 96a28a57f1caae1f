/**
 * Provider networks on the multi-host lab: real ovsdb-server/ovs-vswitchd per host, real
 * kumo-api (network_vlan_ranges = public:100:199) and one kumo-ovs-agent per host with
 * bridge_mappings = public:br-ex; each host's br-ex has a veth to the outside world
 * (lab.outside(): 203.0.113.1/24 on a Linux bridge, which passes tagged frames between
 * the hosts; this kernel has no 802.1Q devices, so the outside has no tagged address).
 * h1's br-ex exists before its agent starts (the operator's, adopted); h2's is made by
 * its agent and connected afterwards.
 *
 * What must hold: a flat network reaches the outside and crosses hosts through br-ex and
 * the outside bridge (its MACs are learnt there), TCP included; a vlan network crosses
 * hosts through the outside bridge tagged with its id (read off the wire; the outside's
 * untagged address never answers it) and never meets the flat network; a port bound to
 * another host sits on the dead VLAN here; a restarted agent changes nothing and loses
 * no reply.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { Cluster, ovsOf, type Proc } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';
import { firstFrameVlan } from '../helpers/lab-outside.ts';

const MAPPINGS = ['[ovs]', 'bridge_mappings = public:br-ex'];

describe('provider networks through bridge_mappings on a two-host lab', {
  timeout: 120_000,
}, () => {
  let lab: Lab;
  let c: Cluster;
  let flat: Network;
  let vlan: Network;
  const agents = new Map<string, Proc>();
  const eps = new Map<string, Endpoint>();
  const ports = new Map<string, Port>();

  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const res = await c.http('POST', path, { [key]: body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return (res.body as Record<string, T>)[key] as T;
  };
  const hosts = () => lab.hosts as [LabHost, LabHost];
  const hostName = (h: LabHost) => `lab-${lab.prefix}-${h.name}`;
  const startAgent = (h: LabHost) => {
    const proc = c.startAgentOn('ovs', hostName(h), ovsOf(h), MAPPINGS);
    agents.set(h.name, proc);
    return proc;
  };
  const ping = (from: Endpoint, ip: string, count = 2) =>
    lab.exec(from.netns, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', ip]);
  const flowsOf = async (h: LabHost, bridge: string) =>
    (await h.ofctl(['dump-flows', '--names', '--no-stats', `unix:${h.dir}/${bridge}.mgmt`]))
      .split('\n')
      .map((l) => l.trim().replace(/cookie=0x[0-9a-f]+,?\s*/, ''))
      .filter((l) => l && !l.startsWith('NXST') && !l.startsWith('OFPST'))
      .sort();
  const tagOf = async (h: LabHost, name: string) =>
    (await h.vsctl(['get', 'Port', name, 'tag'])).trim();
  const plug = async (name: string, net: Network, h: LabHost, ip: string) => {
    const port = await post<Port>('/v2.0/ports', 'port', {
      name,
      network_id: net.id,
      fixed_ips: [{ ip_address: ip }],
    });
    ports.set(name, port);
    const ep = await lab.endpoint(h, { ifaceId: port.id, mac: port.mac_address, cidr: `${ip}/24` });
    eps.set(name, ep);
    return ep;
  };
  const active = (names: string[]) =>
    waitFor(
      `${names.join(', ')} ACTIVE`,
      async () => {
        for (const n of names) {
          const r = await c.http('GET', `/v2.0/ports/${ports.get(n)?.id}`);
          if ((r.body as { port: Port }).port.status !== 'ACTIVE') return false;
        }
        return true;
      },
      30_000,
      200,
    );
  const ep = (name: string) => eps.get(name) as Endpoint;

  before(async () => {
    lab = await createLab({ hosts: 2 });
    const [h1, h2] = hosts();
    await lab.outside();
    await lab.connectOutside(h1);
    c = await Cluster.create('sqlite', undefined, [
      '[ml2]',
      'network_vlan_ranges = public:100:199',
    ]);
    await c.startApi();
    for (const h of lab.hosts) startAgent(h);
    await waitFor(
      'br-ex patched to br-int on both hosts',
      async () => {
        for (const h of lab.hosts)
          if (!/phy-br-ex/.test(await h.vsctl(['list-ports', 'br-ex']).catch(() => '')))
            return false;
        return true;
      },
      30_000,
      200,
    );
    await lab.connectOutside(h2);
    flat = await post<Network>('/v2.0/networks', 'network', {
      name: 'public',
      'provider:network_type': 'flat',
      'provider:physical_network': 'public',
    });
    vlan = await post<Network>('/v2.0/networks', 'network', {
      name: 'public-vlan',
      'provider:network_type': 'vlan',
      'provider:physical_network': 'public',
    });
    for (const [net, cidr, gw] of [
      [flat, '203.0.113.0/24', '203.0.113.1'],
      [vlan, '198.51.100.0/24', null],
    ] as const)
      await post('/v2.0/subnets', 'subnet', {
        network_id: net.id,
        cidr,
        gateway_ip: gw,
        ip_version: 4,
        enable_dhcp: false,
      });
    await plug('e1', flat, h1, '203.0.113.11');
    await plug('e2', flat, h2, '203.0.113.12');
    await plug('v1', vlan, h1, '198.51.100.11');
    await plug('v2', vlan, h2, '198.51.100.12');
    await active(['e1', 'e2', 'v1', 'v2']);
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test('the flat network reaches the outside and the other host through br-ex and the outside bridge', async () => {
    assert.equal(vlan['provider:segmentation_id'], 100, 'the lowest id of the range');
    assert.equal(flat.mtu, 1500);
    assert.match(await ping(ep('e1'), '203.0.113.1'), / 0% packet loss/);
    assert.match(await ping(ep('e1'), '203.0.113.12'), / 0% packet loss/);
    const fdb = await lab.exec(`${lab.prefix}-out`, ['bridge', 'fdb', 'show', 'br', 'br-out']);
    for (const [name, via] of [
      ['e1', 'h1-br-ex'],
      ['e2', 'h2-br-ex'],
    ] as const)
      assert.match(
        fdb,
        new RegExp(`${ports.get(name)?.mac_address} dev ${via} `),
        `${name}'s frames crossed the outside bridge from its host`,
      );
  });

  test('TCP from the flat network to the outside', async () => {
    const out = `${lab.prefix}-out`;
    const server = spawn('ip', [
      'netns',
      'exec',
      out,
      'timeout',
      '10',
      'socat',
      '-u',
      'TCP-LISTEN:7777,bind=203.0.113.1,reuseaddr',
      'STDOUT',
    ]);
    let got = '';
    server.stdout.on('data', (b: Buffer) => {
      got += b.toString();
    });
    const ended = new Promise((r) => server.on('exit', r));
    await waitFor('the listener', async () => /:7777/.test(await lab.exec(out, ['ss', '-ltn'])));
    await lab.exec(ep('e1').netns, [
      'socat',
      '-u',
      'SYSTEM:echo provider-ok',
      'TCP:203.0.113.1:7777,connect-timeout=5',
    ]);
    await ended;
    assert.equal(got.trim(), 'provider-ok');
  });

  test('the vlan network crosses hosts tagged through the outside bridge, never meeting the flat network', async () => {
    const [h1] = hosts();
    assert.match(await ping(ep('v1'), '198.51.100.12'), / 0% packet loss/);
    const seen = async (name: string, to: string) => {
      const sniffing = firstFrameVlan(
        lab.exec,
        `${lab.prefix}-out`,
        'h1-br-ex',
        ports.get(name)?.mac_address as string,
        5,
      );
      await new Promise((r) => setTimeout(r, 400));
      await ping(ep(name), to, 3);
      return sniffing;
    };
    assert.equal(await seen('v1', '198.51.100.12'), '100', 'the vlan network leaves tagged 100');
    assert.equal(await seen('e1', '203.0.113.1'), 'untagged', 'the flat network untagged');
    const fdb = await lab.exec(`${lab.prefix}-out`, ['bridge', 'fdb', 'show', 'br', 'br-out']);
    assert.match(fdb, new RegExp(`${ports.get('v1')?.mac_address} dev h1-br-ex `));
    assert.match(fdb, new RegExp(`${ports.get('v2')?.mac_address} dev h2-br-ex `));
    const e1Vlan = await tagOf(h1, ep('e1').name);
    const v1Vlan = await tagOf(h1, ep('v1').name);
    const ex = await flowsOf(h1, 'br-ex');
    assert.ok(ex.includes('priority=0 actions=NORMAL'), ex.join('\n'));
    assert.ok(ex.includes('priority=2,in_port="phy-br-ex" actions=drop'), ex.join('\n'));
    assert.ok(
      ex.includes(`priority=4,in_port="phy-br-ex",dl_vlan=${e1Vlan} actions=strip_vlan,NORMAL`),
      ex.join('\n'),
    );
    assert.ok(
      ex.includes(
        `priority=4,in_port="phy-br-ex",dl_vlan=${v1Vlan} actions=mod_vlan_vid:100,NORMAL`,
      ),
      ex.join('\n'),
    );
    const int = await flowsOf(h1, 'br-int');
    assert.ok(
      int.includes(
        `priority=3,in_port="int-br-ex",vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:${e1Vlan},load:0x${Number(e1Vlan).toString(16)}->NXM_NX_REG6[],resubmit(,60)`,
      ),
      int.join('\n'),
    );
    assert.ok(
      int.includes(
        `priority=3,in_port="int-br-ex",dl_vlan=100 actions=mod_vlan_vid:${v1Vlan},load:0x${Number(v1Vlan).toString(16)}->NXM_NX_REG6[],resubmit(,60)`,
      ),
      int.join('\n'),
    );
    // An address of the other network's subnet does not make its hosts reachable.
    await lab.exec(ep('e1').netns, ['ip', 'addr', 'add', '198.51.100.50/24', 'dev', ep('e1').name]);
    await assert.rejects(ping(ep('e1'), '198.51.100.12'), 'flat never reaches the vlan network');
    await lab.exec(ep('v1').netns, ['ip', 'addr', 'add', '203.0.113.50/24', 'dev', ep('v1').name]);
    await assert.rejects(ping(ep('v1'), '203.0.113.12'), 'vlan never reaches the flat network');
    await assert.rejects(
      ping(ep('v1'), '203.0.113.1'),
      "its frames leave tagged: the outside's untagged address never answers",
    );
  });

  test('a port bound to another host is on the dead VLAN here and reaches nothing', async () => {
    const [, h2] = hosts();
    const e1 = ports.get('e1') as Port;
    const ghost = await lab.endpoint(h2, {
      ifaceId: e1.id,
      mac: e1.mac_address,
      cidr: '203.0.113.99/24',
    });
    await waitFor(
      'the dead VLAN',
      async () => (await tagOf(h2, ghost.name)) === '4095',
      20_000,
      200,
    );
    await waitFor(
      'its drop flow',
      async () =>
        (await flowsOf(h2, 'br-int')).some((f) =>
          new RegExp(`^priority=10,in_port="?${ghost.name}"? actions=drop$`).test(f),
        ),
      20_000,
      200,
    );
    await assert.rejects(ping(ghost, '203.0.113.1'), 'the dead port reaches nothing');
    const port = (await c.http('GET', `/v2.0/ports/${e1.id}`)).body as { port: Port };
    assert.equal(port.port['binding:host_id'], hostName(hosts()[0]), 'still bound to h1');
  });

  test('agents report their bridge_mappings; a restarted agent loses no reply and changes nothing', async () => {
    const [h1] = hosts();
    const listed = (await c.http('GET', `/v2.0/agents?host=${hostName(h1)}`)).body as {
      agents: Agent[];
    };
    assert.deepEqual(listed.agents[0]?.configurations.bridge_mappings, { public: 'br-ex' });
    const before = { int: await flowsOf(h1, 'br-int'), ex: await flowsOf(h1, 'br-ex') };
    const pinging = ping(ep('e1'), '203.0.113.1', 20);
    await new Promise((r) => setTimeout(r, 800));
    await c.stop(agents.get('h1'), 'SIGKILL');
    const proc = startAgent(h1);
    await waitFor(
      'the restarted agent to sync',
      () =>
        c
          .log(`kumo-ovs-agent-${hostName(h1)}`)
          .split('\n')
          .some((l) => l.includes(`"pid":${proc.child.pid},`) && l.includes('"msg":"l2 sync"')),
      20_000,
      200,
    );
    const m = /(\d+) packets transmitted, (\d+) received/.exec(await pinging);
    assert.ok(m);
    assert.equal(m[1], m[2], `no reply lost: ${m[0]}`);
    const now = { int: await flowsOf(h1, 'br-int'), ex: await flowsOf(h1, 'br-ex') };
    assert.deepEqual(now, before, 'the same flows');
    const syncs = c
      .log(`kumo-ovs-agent-${hostName(h1)}`)
      .split('\n')
      .filter((l) => l.includes(`"pid":${proc.child.pid},`) && l.includes('"msg":"l2 sync"'));
    assert.ok(
      syncs.every((l) => l.includes('"ops":0,')),
      `a restart changes nothing in OVSDB:\n${syncs.join('\n')}`,
    );
    assert.match(
      await lab.exec(`${lab.prefix}-h1`, ['ip', 'link', 'show', 'o-br-ex']),
      /state UP|UP/,
      "the operator's uplink is still there",
    );
    assert.match(await h1.vsctl(['list-ports', 'br-ex']), /^o-br-ex$/m);
  });
});
