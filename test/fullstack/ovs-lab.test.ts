/**
 * kumo-ovs-agent on the multi-host lab: real ovsdb-server/ovs-vswitchd per host, real
 * kumo-api, one agent process per host. Two networks (VXLAN and GRE, both segment 1)
 * share 10.0.0.0/24 and stay apart; the tunnel mesh follows hosts joining and leaving; an
 * agent killed while traffic flows is restarted without losing it; a deleted port loses
 * its VLAN and flows (table 4: from VXLAN tunnels).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Network, Port } from '../../contracts/network.ts';
import { Cluster, ovsOf, type Proc } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';

describe('kumo-ovs-agent on a two-host lab', { timeout: 300_000 }, () => {
  let lab: Lab;
  let c: Cluster;
  const agents = new Map<string, Proc>();
  const eps = new Map<string, Endpoint>();
  const ports = new Map<string, Port>();

  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const res = await c.http('POST', path, { [key]: body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return (res.body as Record<string, T>)[key] as T;
  };
  const hostName = (h: LabHost) => `lab-${lab.prefix}-${h.name}`;
  const startAgent = (h: LabHost) => {
    const proc = c.startAgentOn('ovs', hostName(h), ovsOf(h));
    agents.set(h.name, proc);
    return proc;
  };
  const tunnelsOf = async (h: LabHost) =>
    (await h.vsctl(['list-ports', 'br-tun']))
      .split('\n')
      .filter((p) => /^vxlan-/.test(p))
      .sort();
  const ping = (from: Endpoint, ip: string, count = 3) =>
    lab.exec(from.netns, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', ip]);
  const flowsOf = async (h: LabHost, bridge: string) =>
    (await h.ofctl(['dump-flows', '--names', '--no-stats', `unix:${h.dir}/${bridge}.mgmt`]))
      .split('\n')
      .map((l) => l.trim().replace(/cookie=0x[0-9a-f]+,?\s*/, ''))
      .filter((l) => l && !l.startsWith('NXST') && !l.startsWith('OFPST'))
      .sort();

  before(async () => {
    lab = await createLab({ hosts: 2 });
    c = await Cluster.create('sqlite');
    await c.startApi();
    for (const h of lab.hosts) startAgent(h);
    await waitFor(
      'br-int and br-tun on both hosts',
      async () => {
        for (const h of lab.hosts) if (!/br-tun/.test(await h.vsctl(['list-br']))) return false;
        return true;
      },
      30_000,
      200,
    );
    const nets: Network[] = [];
    for (const [name, type] of [
      ['net-a', 'vxlan'],
      ['net-b', 'gre'],
    ]) {
      const net = await post<Network>('/v2.0/networks', 'network', {
        name,
        'provider:network_type': type,
      });
      await post('/v2.0/subnets', 'subnet', {
        network_id: net.id,
        cidr: '10.0.0.0/24',
        ip_version: 4,
      });
      nets.push(net);
    }
    const [h1, h2] = lab.hosts as [LabHost, LabHost];
    const layout: [string, Network, LabHost, string][] = [
      ['a1', nets[0] as Network, h1, '10.0.0.11'],
      ['a2', nets[0] as Network, h2, '10.0.0.12'],
      ['b1', nets[1] as Network, h2, '10.0.0.11'],
      ['b2', nets[1] as Network, h1, '10.0.0.12'],
    ];
    for (const [name, net, host, ip] of layout) {
      const port = await post<Port>('/v2.0/ports', 'port', {
        name,
        network_id: net.id,
        fixed_ips: [{ ip_address: ip }],
      });
      ports.set(name, port);
      eps.set(
        name,
        await lab.endpoint(host, { ifaceId: port.id, mac: port.mac_address, cidr: `${ip}/24` }),
      );
    }
    await waitFor(
      'all four ports ACTIVE',
      async () => {
        const res = await c.http('GET', '/v2.0/ports');
        return (
          (res.body as { ports: Port[] }).ports.filter((p) => p.status === 'ACTIVE').length === 4
        );
      },
      30_000,
      200,
    );
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test('endpoints on one network ping across hosts; the other network with the same cidr is never reached', async () => {
    const a1 = eps.get('a1') as Endpoint;
    assert.match(await ping(a1, '10.0.0.12'), / 0% packet loss/);
    const neigh = await lab.exec(a1.netns, ['ip', 'neigh', 'show', '10.0.0.12']);
    assert.match(
      neigh,
      new RegExp(ports.get('a2')?.mac_address as string),
      'reached a2, not b2 on the same host',
    );
    const b1 = eps.get('b1') as Endpoint;
    assert.match(await ping(b1, '10.0.0.12'), / 0% packet loss/);
    assert.match(
      await lab.exec(b1.netns, ['ip', 'neigh', 'show', '10.0.0.12']),
      new RegExp(ports.get('b2')?.mac_address as string),
    );
    const port = (await c.http('GET', `/v2.0/ports/${ports.get('a1')?.id}`)).body as { port: Port };
    assert.equal(port.port['binding:host_id'], hostName(lab.hosts[0] as LabHost));
  });

  test('a third host joins: the mesh grows on every host; it leaves: its tunnels go', async () => {
    const h3 = await lab.addHost();
    const proc = startAgent(h3);
    await waitFor(
      'a full mesh of three',
      async () => {
        for (const h of lab.hosts) if ((await tunnelsOf(h)).length !== 2) return false;
        return true;
      },
      30_000,
      200,
    );
    assert.deepEqual(await tunnelsOf(lab.hosts[0] as LabHost), [
      'vxlan-0afa0002',
      'vxlan-0afa0003',
    ]);
    await c.stop(proc, 'SIGTERM');
    const row = (await c.http('GET', `/v2.0/agents?host=${hostName(h3)}`)).body as {
      agents: { id: string }[];
    };
    assert.equal((await c.http('DELETE', `/v2.0/agents/${row.agents[0]?.id}`)).status, 204);
    await waitFor(
      "the third host's tunnels gone",
      async () => {
        for (const h of lab.hosts.slice(0, 2)) if ((await tunnelsOf(h)).length !== 1) return false;
        return true;
      },
      30_000,
      200,
    );
    await lab.removeHost(h3);
  });

  test('kill -9 of an agent and a restart while a ping runs: no reply lost, flows converge', async () => {
    const [h1] = lab.hosts as [LabHost];
    const before = { int: await flowsOf(h1, 'br-int'), tun: await flowsOf(h1, 'br-tun') };
    const pinging = ping(eps.get('a1') as Endpoint, '10.0.0.12', 30);
    await new Promise((r) => setTimeout(r, 1000));
    await c.stop(agents.get('h1'), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    const proc = startAgent(h1);
    await waitFor('the restarted agent to sync', () =>
      /port status reported|ovsdb monitor established/.test(
        c.log(`kumo-ovs-agent-${hostName(h1)}`),
      ),
    );
    const out = await pinging;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    assert.ok(m, out);
    assert.ok(Number(m[1]) - Number(m[2]) <= 1, `lost at most one reply: ${m[0]}`);
    await waitFor(
      'flows converge to the same set',
      async () => {
        const now = { int: await flowsOf(h1, 'br-int'), tun: await flowsOf(h1, 'br-tun') };
        return JSON.stringify(now) === JSON.stringify(before);
      },
      20_000,
      300,
    );
    assert.equal(proc.child.exitCode, null);
    const syncs = c
      .log(`kumo-ovs-agent-${hostName(h1)}`)
      .split('\n')
      .filter((l) => l.includes(`"pid":${proc.child.pid},`) && l.includes('"msg":"l2 sync"'));
    assert.ok(syncs.length > 0, 'the restarted agent synced');
    assert.ok(
      syncs.every((l) => l.includes('"ops":0,')),
      `a restart changes nothing in OVSDB:\n${syncs.join('\n')}`,
    );
  });

  test("deleting a port puts it on the dead VLAN and drops its network's flows on that host", async () => {
    const [, h2] = lab.hosts as [LabHost, LabHost];
    const a2 = ports.get('a2') as Port;
    const vlanOfA = (await h2.vsctl(['get', 'Port', 'ep2', 'tag'])).trim();
    assert.equal((await c.http('DELETE', `/v2.0/ports/${a2.id}`)).status, 204);
    await waitFor(
      'the dead VLAN on the deleted port',
      async () => (await h2.vsctl(['get', 'Port', 'ep2', 'tag'])).trim() === '4095',
      20_000,
      200,
    );
    const seg = (
      (await c.http('GET', `/v2.0/networks/${a2.network_id}`)).body as { network: Network }
    ).network['provider:segmentation_id'];
    const key = `tun_id=0x${Number(seg).toString(16)}`;
    await waitFor(
      "net-a's flows gone from h2 and a drop flow for the dead port",
      async () => {
        const tun = await flowsOf(h2, 'br-tun');
        const int = await flowsOf(h2, 'br-int');
        return (
          !tun.some((f) => f.includes('table=4,') && f.includes(key)) &&
          int.some((f) => /in_port="?ep2"?/.test(f) && /actions=drop/.test(f))
        );
      },
      20_000,
      200,
    );
    const net = await post<Network>('/v2.0/networks', 'network', { name: 'net-c' });
    await post('/v2.0/subnets', 'subnet', {
      network_id: net.id,
      cidr: '10.1.0.0/24',
      ip_version: 4,
    });
    const pc = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
    const ep = await lab.endpoint(h2, {
      ifaceId: pc.id,
      mac: pc.mac_address,
      cidr: `${pc.fixed_ips[0]?.ip_address}/24`,
    });
    await waitFor(
      "the new network's port tagged",
      async () => (await h2.vsctl(['get', 'Port', ep.name, 'tag'])).trim() !== '[]',
    );
    assert.equal(
      (await h2.vsctl(['get', 'Port', ep.name, 'tag'])).trim(),
      vlanOfA,
      "net-a's VLAN was reclaimed and reused",
    );
    await assert.rejects(
      ping(eps.get('a1') as Endpoint, '10.0.0.12', 2),
      'a1 no longer reaches the deleted port',
    );
  });
});
