/**
 * kumo-l3-agent on the multi-host lab, with real agents and kumo-api: two network hosts
 * (OVS + L3 agents, br-ex patched to the "outside world" namespace on 203.0.113.0/24)
 * and two compute-side hosts (OVS agents; endpoints stand in for VMs). Two tenant
 * networks on one router: their endpoints reach each other through the qrouter
 * namespace, reach the outside as the router's gateway IP, and with a floating IP are
 * reachable from outside (ping and TCP) and leave as the floating IP; disassociation
 * cuts both ways, an open connection included. A kill -9 of the hosting L3 agent during
 * a 100 ms ping loses nothing and the restarted agent applies nothing; manual rehosting
 * with `kumo` and `openstack network agent … router --l3` moves the router and its traffic;
 * bad input (a newline in a route, an off-subnet nexthop, an address outside the subnet,
 * a control character in a name) is a 400 and changes nothing in the API or in any
 * qrouter namespace's iptables.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { Cluster, ovsOf, type Proc } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';
import { openDefaultGroup } from '../helpers/sg-open.ts';
import { sourceSeen, stopPeers, tcpConnect, tcpServer } from '../helpers/tcp-peer.ts';

const OUTSIDE_IP = '203.0.113.1';
const SERVER_PORT = 7000;

interface Router {
  id: string;
  external_gateway_info: { external_fixed_ips: { ip_address: string }[] } | null;
}
interface FloatingIp {
  id: string;
  floating_ip_address: string;
  status: string;
  port_id: string | null;
}

describe('kumo-l3-agent on a four-host lab', { timeout: 600_000 }, () => {
  let lab: Lab;
  let c: Cluster;
  let outside: string;
  let router: Router;
  let epA: Endpoint;
  let epB: Endpoint;
  let fip: FloatingIp;
  let portA: Port;
  let publicId: string;
  const l3 = new Map<string, Proc>();

  const hostName = (h: LabHost) => `lab-${lab.prefix}-${h.name}`;
  const network = () => lab.hosts.slice(0, 2);
  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const res = await c.http('POST', path, { [key]: body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return (res.body as Record<string, T>)[key] as T;
  };
  const put = async (path: string, body: unknown) => {
    const res = await c.http('PUT', path, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as Record<string, unknown>;
  };
  const ping = (ns: string, ip: string, count = 3) =>
    lab.exec(ns, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', ip]).then(
      () => true,
      () => false,
    );
  const hostingAgent = async () => {
    const res = await c.http('GET', `/v2.0/routers/${router.id}/l3-agents`);
    return ((res.body as { agents: Agent[] }).agents[0] ?? null) as Agent | null;
  };
  const labHostOf = (agent: Agent) => {
    const h = network().find((x) => hostName(x) === agent.host);
    if (!h) throw new Error(`no lab host for ${agent.host}`);
    return h;
  };
  /** Network hosts carry physnet `public` on br-ex (every agent there reads one config). */
  const configOf = (h: LabHost) =>
    network().includes(h) ? ['[ovs]', 'bridge_mappings = public:br-ex'] : [];
  const startL3 = (h: LabHost) =>
    l3.set(h.name, c.startAgentOn('l3', hostName(h), ovsOf(h), configOf(h)));
  const gatewayIp = () => router.external_gateway_info?.external_fixed_ips[0]?.ip_address ?? '';

  before(async () => {
    lab = await createLab({ hosts: 4 });
    outside = (await lab.outside()).netns;
    c = await Cluster.create('sqlite');
    await c.startApi();
    for (const h of lab.hosts) c.startAgentOn('ovs', hostName(h), ovsOf(h), configOf(h));
    for (const h of network()) {
      await lab.connectOutside(h, 'br-ex');
      startL3(h);
    }
    await waitFor('two L3 agents alive', async () => {
      const res = await c.http('GET', '/v2.0/agents?agent_type=L3%20agent&alive=true');
      return (res.body as { agents: Agent[] }).agents.length === 2;
    });
    const pub = await post<Network>('/v2.0/networks', 'network', {
      name: 'public',
      'router:external': true,
      'provider:network_type': 'flat',
      'provider:physical_network': 'public',
    });
    const pubSubnet = await post<Subnet>('/v2.0/subnets', 'subnet', {
      network_id: pub.id,
      cidr: '203.0.113.0/24',
      gateway_ip: OUTSIDE_IP,
      allocation_pools: [{ start: '203.0.113.10', end: '203.0.113.200' }],
      enable_dhcp: false,
    });
    publicId = pub.id;
    router = await post<Router>('/v2.0/routers', 'router', {
      name: 'r1',
      external_gateway_info: { network_id: pub.id },
    });
    assert.ok(pubSubnet.id);
    const eps: Endpoint[] = [];
    for (const [i, h] of [lab.hosts[2], lab.hosts[3]].entries()) {
      const net = await post<Network>('/v2.0/networks', 'network', { name: `net-${i}` });
      const sub = await post<Subnet>('/v2.0/subnets', 'subnet', {
        network_id: net.id,
        cidr: `10.0.${i + 1}.0/24`,
        enable_dhcp: false,
      });
      await put(`/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: sub.id });
      const port = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
      // The outside world is no member of the port's default group: open it, as the seed does.
      await openDefaultGroup(c, port.project_id);
      const ip = port.fixed_ips[0]?.ip_address;
      const ep = await lab.endpoint(h as LabHost, {
        ifaceId: port.id,
        mac: port.mac_address,
        cidr: `${ip}/24`,
      });
      await lab.exec(ep.netns, ['ip', 'route', 'add', 'default', 'via', `10.0.${i + 1}.1`]);
      eps.push(ep);
      if (i === 0) portA = port;
    }
    [epA, epB] = eps as [Endpoint, Endpoint];
    await tcpServer(outside, SERVER_PORT);
    await tcpServer(epA.netns, SERVER_PORT);
  });
  after(async () => {
    stopPeers();
    await c?.cleanup();
    await lab?.destroy();
  });

  test('two tenant networks on one router reach each other through the qrouter namespace', async () => {
    await waitFor('A pings B', () => ping(epA.netns, epB.ip, 1), 60_000, 500);
    assert.ok(await ping(epB.netns, epA.ip));
  });

  test('an endpoint reaches the outside, which sees the router gateway IP as the source', async () => {
    await waitFor('A pings the outside', () => ping(epA.netns, OUTSIDE_IP, 1), 30_000, 500);
    assert.equal(await sourceSeen(epA.netns, OUTSIDE_IP, SERVER_PORT), gatewayIp());
  });

  test('a floating IP makes an endpoint reachable from outside and its traffic leaves as the floating IP', async () => {
    fip = await post<FloatingIp>('/v2.0/floatingips', 'floatingip', {
      floating_network_id: publicId,
      port_id: portA.id,
    });
    await waitFor(
      'outside pings the floating IP',
      () => ping(outside, fip.floating_ip_address, 1),
      30_000,
      500,
    );
    assert.equal(await sourceSeen(outside, fip.floating_ip_address, SERVER_PORT), OUTSIDE_IP);
    assert.equal(await sourceSeen(epA.netns, OUTSIDE_IP, SERVER_PORT), fip.floating_ip_address);
    await waitFor('the floating IP ACTIVE', async () => {
      const res = await c.http('GET', `/v2.0/floatingips/${fip.id}`);
      return (res.body as { floatingip: FloatingIp }).floatingip.status === 'ACTIVE';
    });
  });

  test('disassociation cuts both ways, including a connection that was open', async () => {
    const open = await tcpConnect(outside, fip.floating_ip_address, SERVER_PORT);
    assert.equal(await open.ask(), `from=${OUTSIDE_IP}`);
    await put(`/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: null } });
    await waitFor(
      'the floating IP unreachable',
      async () => !(await ping(outside, fip.floating_ip_address, 1)),
      30_000,
      500,
    );
    assert.equal(await open.ask(2000), null, 'the open connection stopped');
    open.close();
    assert.equal(await sourceSeen(epA.netns, OUTSIDE_IP, SERVER_PORT), gatewayIp());
  });

  /** A `ping -i 0.1` from outside to the floating IP for `seconds`: [sent, received]. */
  const pingRun = async (seconds: number) => {
    const out = await lab
      .exec(outside, ['ping', '-i', '0.1', '-w', String(seconds), fip.floating_ip_address])
      .catch((e: Error) => e.message);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    assert.ok(m, out);
    return [Number(m[1]), Number(m[2])];
  };

  const associate = async () => {
    await put(`/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: portA.id } });
    await waitFor(
      'outside pings the floating IP',
      () => ping(outside, fip.floating_ip_address, 1),
      30_000,
      500,
    );
  };

  test('kill -9 of the hosting L3 agent during a 100 ms ping loses nothing; the restarted agent applies nothing', async () => {
    await associate();
    const agent = (await hostingAgent()) as Agent;
    const h = labHostOf(agent);
    const run = pingRun(8);
    await new Promise((r) => setTimeout(r, 1500));
    await c.stop(l3.get(h.name), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    startL3(h);
    const proc = l3.get(h.name) as Proc;
    const mine = () =>
      c
        .log(`kumo-l3-agent-${hostName(h)}`)
        .split('\n')
        .filter((l) => l.includes(`"pid":${proc.child.pid},`));
    const [sent, received] = await run;
    assert.equal(received, sent, 'no ping lost');
    await waitFor('the restarted agent to register', () =>
      mine().some((l) => l.includes('registered with start_flag')),
    );
    // Its served count comes back only once its resync has reconciled the router.
    await waitFor('the restarted agent to have reconciled the router', async () => {
      const res = await c.http('GET', `/v2.0/agents/${agent.id}`);
      const now = (res.body as { agent: Agent }).agent;
      return now.started_at !== agent.started_at && now.configurations.routers === 1;
    });
    assert.ok(
      !mine().some((l) => l.includes('"msg":"step"')),
      `the restart changed nothing:\n${mine().join('\n')}`,
    );
  });

  /** Moves the router from its agent to the other one with `move`; traffic follows. */
  const rehost = async (move: (from: Agent, to: Agent) => Promise<void>) => {
    const from = (await hostingAgent()) as Agent;
    const agents = await c.http('GET', '/v2.0/agents?agent_type=L3%20agent');
    const to = (agents.body as { agents: Agent[] }).agents.find((a) => a.id !== from.id) as Agent;
    await move(from, to);
    await waitFor(
      'the router hosted by the other agent',
      async () => (await hostingAgent())?.id === to.id,
    );
    await waitFor(
      'outside pings the floating IP again',
      () => ping(outside, fip.floating_ip_address, 1),
      30_000,
      500,
    );
    assert.equal(await sourceSeen(outside, fip.floating_ip_address, SERVER_PORT), OUTSIDE_IP);
    const oldNs = `${hostName(labHostOf(from)).slice(-8)}-qrouter-${router.id}`;
    await waitFor('the old copy removed', async () => !existsSync(`/run/netns/${oldNs}`));
  };

  test('manual rehosting with the kumo CLI moves the router and its traffic follows', async () => {
    await rehost(async (from, to) => {
      const rm = await c.kumo(['l3-agent-router-remove', from.id, router.id]);
      assert.equal(rm.code, 0, rm.stderr);
      const add = await c.kumo(['l3-agent-router-add', to.id, router.id]);
      assert.equal(add.code, 0, add.stderr);
    });
  });

  test('manual rehosting with openstack network agent remove/add router --l3', async () => {
    await rehost(async (from, to) => {
      await c.openstack(['network', 'agent', 'remove', 'router', '--l3', from.id, router.id]);
      await c.openstack(['network', 'agent', 'add', 'router', '--l3', to.id, router.id]);
    });
  });

  /** iptables-save of every qrouter namespace on the network hosts. */
  const routerRules = async () => {
    const out: string[] = [];
    for (const h of network()) {
      const ns = `${hostName(h).slice(-8)}-qrouter-${router.id}`;
      if (existsSync(`/run/netns/${ns}`))
        out.push((await lab.exec(ns, ['iptables-save'])).replace(/^#.*$/gm, ''));
    }
    return out;
  };

  test('bad input → 400 and nothing changes in the API or in any namespace', async () => {
    const url = `/v2.0/routers/${router.id}`;
    const before = {
      router: (await c.http('GET', url)).body,
      fips: (await c.http('GET', '/v2.0/floatingips')).body,
      rules: await routerRules(),
    };
    assert.ok(before.rules.length > 0, 'the router is served somewhere');
    const bad: [string, string, unknown][] = [
      ['PUT', url, { router: { routes: [{ destination: '10.9.0.0/24\n', nexthop: '10.0.1.5' }] } }],
      [
        'PUT',
        url,
        { router: { routes: [{ destination: '10.9.0.0/24', nexthop: '192.168.77.1' }] } },
      ],
      ['PUT', url, { router: { name: 'bad\u0001name' } }],
      [
        'PUT',
        url,
        {
          router: {
            external_gateway_info: {
              network_id: publicId,
              external_fixed_ips: [{ ip_address: '198.51.100.7' }],
            },
          },
        },
      ],
      [
        'POST',
        '/v2.0/floatingips',
        { floatingip: { floating_network_id: publicId, floating_ip_address: '198.51.100.8' } },
      ],
      ['PUT', `/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: `${portA.id}\n` } }],
    ];
    for (const [method, path, body] of bad) {
      const res = await c.http(method, path, body);
      assert.equal(
        res.status,
        400,
        `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual((await c.http('GET', url)).body, before.router);
    assert.deepEqual((await c.http('GET', '/v2.0/floatingips')).body, before.fips);
    assert.deepEqual(await routerRules(), before.rules);
  });
});
