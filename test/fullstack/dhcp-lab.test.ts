/**
 * kumo-dhcp-agent on lab hosts with real dnsmasq and busybox udhcpc clients: a client
 * gets exactly its allocated address, gateway and DNS, also across the tunnel; a changed
 * IP is handed out on the next renewal; a deleted port gets no lease, and its lease is
 * released so that a new port given the same fixed IP (another MAC) gets the address at
 * once instead of after the 24 h lease time; a killed agent's
 * dnsmasq keeps answering; a network whose dnsmasq cannot start is reported with its
 * reason in the API's agent row and `kumo agent-show` while the other network keeps
 * serving; poisoned values written past the API (an IPv6 nameserver on an IPv4 subnet, a
 * port on the gateway address, DHCPv6 on a /56) leave only their entry out, are shown in
 * the agent row and `kumo agent-show`, and the other clients keep their leases, while an
 * IPv6 address ending in `::` is served under a valid host name; the hosting agent's
 * death moves the network to the other host and the old agent, back, tears its copy down.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDb } from '../../api/db/index.ts';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port } from '../../contracts/network.ts';
import {
  AGENT_DOWN_TIME,
  Cluster,
  ovsOf,
  REPORT_INTERVAL,
  RESYNC_INTERVAL,
  runCommand,
} from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import {
  createLab,
  dhcpLease,
  type Endpoint,
  type Lab,
  type LabHost,
  writeUdhcpcScript,
} from '../helpers/lab.ts';

describe('kumo-dhcp-agent on a lab host', { timeout: 300_000 }, () => {
  let lab: Lab;
  let c: Cluster;
  let net: Network;
  let script: string;
  let port: Port;
  let ep: Endpoint;

  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const res = await c.http('POST', path, { [key]: body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return (res.body as Record<string, T>)[key] as T;
  };
  const lease = (e: Endpoint) => dhcpLease(lab, e, script);

  before(async () => {
    lab = await createLab({ hosts: 1 });
    const host = lab.hosts[0] as LabHost;
    c = await Cluster.create('sqlite', ovsOf(host));
    script = writeUdhcpcScript(c.dir.path);
    await c.startApi();
    c.startAgent('ovs');
    c.startAgent('dhcp');
    await waitFor('the DHCP agent alive', async () => {
      const res = await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent&alive=true');
      return (res.body as { agents: Agent[] }).agents.length === 1;
    });
    net = await post<Network>('/v2.0/networks', 'network', { name: 'dhcp-net' });
    await post('/v2.0/subnets', 'subnet', {
      network_id: net.id,
      cidr: '10.20.0.0/24',
      ip_version: 4,
      dns_nameservers: ['10.20.0.53'],
    });
    port = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
    ep = await lab.endpoint(host, { ifaceId: port.id, mac: port.mac_address });
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test('a client gets exactly its address, gateway and DNS from the qdhcp dnsmasq', async () => {
    const got = await waitFor('a lease', () => lease(ep).catch(() => undefined), 40_000, 500);
    assert.equal(got.ip, port.fixed_ips[0]?.ip_address);
    assert.equal(got.router, '10.20.0.1');
    assert.equal(got.dns, '10.20.0.53');
    const dhcpPorts = (
      await c.http('GET', `/v2.0/ports?network_id=${net.id}&device_owner=network:dhcp`)
    ).body as { ports: Port[] };
    assert.equal(dhcpPorts.ports.length, 1);
    assert.equal(dhcpPorts.ports[0]?.status, 'ACTIVE', 'the L2 agent bound the DHCP port');
  });

  test('bad input (newline in a MAC or name, a quote in a DNS server) never reaches a dnsmasq file', async () => {
    const dir = join(c.dir.path, 'dhcp', net.id);
    const before = ['host', 'opts'].map((f) => readFileSync(join(dir, f), 'utf8'));
    const subnetId = port.fixed_ips[0]?.subnet_id;
    const bad = [
      c.http('POST', '/v2.0/ports', {
        port: { network_id: net.id, mac_address: 'fa:16:3e:00:00:09\nx' },
      }),
      c.http('POST', '/v2.0/ports', {
        port: { network_id: net.id, name: 'evil\ndhcp-range=0.0.0.0' },
      }),
      c.http('PUT', `/v2.0/subnets/${subnetId}`, { subnet: { dns_nameservers: ['10.20.0.53"'] } }),
      c.http('PUT', `/v2.0/ports/${port.id}`, { port: { name: "it's\nbad" } }),
    ];
    for (const res of await Promise.all(bad))
      assert.equal(res.status, 400, JSON.stringify(res.body));
    await sleep(1500);
    const after = ['host', 'opts'].map((f) => readFileSync(join(dir, f), 'utf8'));
    assert.deepEqual(after, before, 'the files are untouched');
    assert.ok(!after.join('').includes('"') && !after.join('').includes('evil'));
  });

  test('a dead dnsmasq is respawned by the periodic resync', async () => {
    const pidfile = join(c.dir.path, 'dhcp', net.id, 'pid');
    const before = readFileSync(pidfile, 'utf8').trim();
    process.kill(Number(before), 'SIGKILL');
    await waitFor(
      'a new dnsmasq',
      () => {
        const now = existsSync(pidfile) ? readFileSync(pidfile, 'utf8').trim() : '';
        return now !== '' && now !== before;
      },
      (RESYNC_INTERVAL + 5) * 1000,
      200,
    );
    const got = await waitFor(
      'a lease from it',
      () => lease(ep).catch(() => undefined),
      20_000,
      500,
    );
    assert.equal(got.ip, port.fixed_ips[0]?.ip_address);
  });

  test('a changed IP is handed out on the next renewal; a deleted port gets no lease', async () => {
    const subnet = port.fixed_ips[0]?.subnet_id;
    const res = await c.http('PUT', `/v2.0/ports/${port.id}`, {
      port: { fixed_ips: [{ subnet_id: subnet, ip_address: '10.20.0.77' }] },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await waitFor(
      'the new address',
      async () => (await lease(ep).catch(() => ({ ip: '' }))).ip === '10.20.0.77',
      30_000,
      500,
    );
    assert.equal((await c.http('DELETE', `/v2.0/ports/${port.id}`)).status, 204);
    await waitFor(
      'no lease any more',
      async () =>
        (await lease(ep).then(
          () => 'leased',
          () => 'refused',
        )) === 'refused',
      30_000,
      500,
    );
  });

  test('a deleted port’s lease is released: a new port on its fixed IP with another MAC gets it', async (t) => {
    const host = lab.hosts[0] as LabHost;
    const old = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
    const fixed = old.fixed_ips[0] as Port['fixed_ips'][number];
    const oldEp = await lab.endpoint(host, { ifaceId: old.id, mac: old.mac_address });
    const got = await waitFor(
      'a lease for the old port',
      () => lease(oldEp).catch(() => undefined),
      40_000,
      500,
    );
    assert.equal(got.ip, fixed.ip_address);
    const leases = join(c.dir.path, 'dhcp', net.id, 'leases');
    assert.ok(readFileSync(leases, 'utf8').includes(`${old.mac_address} ${fixed.ip_address} `));

    assert.equal((await c.http('DELETE', `/v2.0/ports/${old.id}`)).status, 204);
    const next = await post<Port>('/v2.0/ports', 'port', {
      network_id: net.id,
      fixed_ips: [{ subnet_id: fixed.subnet_id, ip_address: fixed.ip_address }],
    });
    assert.notEqual(next.mac_address, old.mac_address);
    const started = Date.now();
    const nextEp = await lab.endpoint(host, { ifaceId: next.id, mac: next.mac_address });
    const renewed = await waitFor(
      'a lease for the new port',
      () => lease(nextEp).catch(() => undefined),
      30_000,
      200,
    );
    t.diagnostic(`new port leased ${renewed.ip} ${Date.now() - started} ms after it was plugged`);
    assert.equal(renewed.ip, fixed.ip_address);
    const text = readFileSync(leases, 'utf8');
    assert.ok(!text.includes(old.mac_address), `the old lease is gone:\n${text}`);
    assert.ok(text.includes(`${next.mac_address} ${fixed.ip_address} `), text);
  });

  test('a network whose dnsmasq cannot start shows in the API and `kumo agent-show` with the reason; the other network keeps serving; it recovers', async () => {
    const other = await post<Network>('/v2.0/networks', 'network', { name: 'dhcp-blocked' });
    const netns = `qdhcp-${other.id}`;
    await runCommand(['ip', 'netns', 'add', netns]);
    // Another process holds TCP 53 in the namespace: dnsmasq cannot bind its DNS socket.
    const blocker = spawn('ip', ['netns', 'exec', netns, 'busybox', 'nc', '-l', '-p', '53'], {
      stdio: 'ignore',
    });
    try {
      await waitFor('the blocker listening', async () =>
        (
          await runCommand(['ip', 'netns', 'exec', netns, 'ss', '-Hltn', 'sport = :53'])
        ).stdout.trim()
          ? true
          : undefined,
      );
      await post('/v2.0/subnets', 'subnet', {
        network_id: other.id,
        cidr: '10.21.0.0/24',
        ip_version: 4,
      });
      const agentRow = async () =>
        ((await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent')).body as { agents: Agent[] })
          .agents[0] as Agent;
      const failed = await waitFor('the failure in the agent row', async () => {
        const f = (await agentRow()).configurations.failed_networks as
          | Record<string, string>
          | undefined;
        return f?.[other.id];
      });
      assert.match(failed, /dnsmasq .*exited \d+: .*Address already in use/);
      const shown = await c.kumo(['agent-show', (await agentRow()).id]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.ok(shown.stdout.includes(other.id), shown.stdout);
      assert.match(shown.stdout, /Address already in use/);
      const healthy = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
      const healthyEp = await lab.endpoint(lab.hosts[0] as LabHost, {
        ifaceId: healthy.id,
        mac: healthy.mac_address,
      });
      const got = await waitFor(
        'a lease for a new port on the healthy network',
        () => lease(healthyEp).catch(() => undefined),
        30_000,
        200,
      );
      assert.equal(got.ip, healthy.fixed_ips[0]?.ip_address);
      blocker.kill('SIGKILL');
      await waitFor(
        'the network served again and its failure cleared',
        async () =>
          (
            (await agentRow()).configurations.failed_networks as Record<string, string> | undefined
          )?.[other.id] === undefined,
        60_000,
        250,
      );
    } finally {
      blocker.kill('SIGKILL');
    }
    assert.equal((await c.http('DELETE', `/v2.0/networks/${other.id}`)).status, 204);
    await waitFor('the blocked network torn down', async () =>
      (await runCommand(['ip', 'netns', 'list'])).stdout.includes(netns) ? undefined : true,
    );
  });
  test('poisoned values (an IPv6 nameserver on an IPv4 subnet, a port on the gateway IP, DHCPv6 on a /56) leave only their entry out, shown in the API and `kumo agent-show`; the other clients keep getting leases; an IPv6 address ending in :: is served', async () => {
    const subnetId = port.fixed_ips[0]?.subnet_id as string;
    const refused = await c.http('PUT', `/v2.0/subnets/${subnetId}`, {
      subnet: { dns_nameservers: ['10.20.0.53', '2001:db8::53'] },
    });
    assert.equal(refused.status, 400, 'the API refuses it now');
    const v6 = await post<{ id: string }>('/v2.0/subnets', 'subnet', {
      network_id: net.id,
      cidr: '2001:db8:77::/64',
      ip_version: 6,
    });
    const v6Port = await post<Port>('/v2.0/ports', 'port', {
      network_id: net.id,
      fixed_ips: [{ subnet_id: v6.id, ip_address: '2001:db8:77:0:1::' }],
    });
    const steady = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
    const steadyEp = await lab.endpoint(lab.hosts[0] as LabHost, {
      ifaceId: steady.id,
      mac: steady.mac_address,
    });
    const victim = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
    const victimIp = victim.fixed_ips.find((f) => f.subnet_id === subnetId)?.ip_address as string;
    // What older data (or another writer) may hold, written past the API's checks.
    const db = openDb(c.db.url);
    const setNameservers = (dns: string[]) =>
      db.query('UPDATE subnets SET dns_nameservers = ? WHERE id = ?', [
        JSON.stringify(dns),
        subnetId,
      ]);
    const agentRow = async () =>
      ((await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent')).body as { agents: Agent[] })
        .agents[0] as Agent;
    const failures = async () => {
      const conf = (await agentRow()).configurations;
      const ports = (conf.failed_ports ?? {}) as Record<string, string>;
      const subnets = (conf.failed_subnets ?? {}) as Record<string, string>;
      return { ports, subnets, networks: conf.failed_networks };
    };
    try {
      await setNameservers(['10.20.0.53', '2001:db8::53']);
      await db.query(
        'UPDATE ipallocations SET ip_address = ? WHERE port_id = ? AND ip_address = ?',
        ['10.20.0.1', victim.id, victimIp],
      );
      const seen = await waitFor('both poisoned entries reported', async () => {
        const f = await failures();
        return f.ports[victim.id] && f.subnets[subnetId] ? f : undefined;
      });
      assert.match(seen.subnets[subnetId] as string, /dns_nameservers\[1\].*IPv4.*left out/);
      assert.match(seen.ports[victim.id] as string, /10\.20\.0\.1 is the gateway/);
      assert.equal(seen.networks, undefined, 'the network itself is served');
      assert.deepEqual(Object.keys(seen.ports), [victim.id], 'only the victim, not the IPv6 port');
      const shown = await c.kumo(['agent-show', (await agentRow()).id]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.ok(shown.stdout.includes(victim.id) && shown.stdout.includes(subnetId), shown.stdout);

      const dir = join(c.dir.path, 'dhcp', net.id);
      const hosts = readFileSync(join(dir, 'host'), 'utf8');
      assert.ok(
        hosts.includes(
          `${v6Port.mac_address},host-2001-db8-77-0-1--0.openstacklocal,[2001:db8:77:0:1::]\n`,
        ),
        hosts,
      );
      const victimLines = hosts.split('\n').filter((l) => l.startsWith(victim.mac_address));
      assert.equal(victimLines.length, 1, 'the victim keeps its good (IPv6) entry only');
      assert.ok(!hosts.includes(',10.20.0.1\n'), 'the gateway is handed to no client');
      assert.ok(!readFileSync(join(dir, 'opts'), 'utf8').includes('2001:db8::53'));
      const fresh = await post<Port>('/v2.0/ports', 'port', { network_id: net.id });
      const freshEp = await lab.endpoint(lab.hosts[0] as LabHost, {
        ifaceId: fresh.id,
        mac: fresh.mac_address,
      });
      const got = await waitFor('a lease for a port created after the poison', () =>
        lease(freshEp).catch(() => undefined),
      );
      assert.equal(got.ip, fresh.fixed_ips.find((f) => f.subnet_id === subnetId)?.ip_address);
      assert.equal(got.dns, '10.20.0.53');
      const steadyIp = steady.fixed_ips.find((f) => f.subnet_id === subnetId)?.ip_address;
      assert.equal((await lease(steadyEp)).ip, steadyIp, 'a client from before too');

      // A subnet dnsmasq would refuse to start with (DHCPv6 on a /56) is left out alone.
      await db.query('UPDATE subnets SET cidr = ? WHERE id = ?', ['2001:db8:77::/56', v6.id]);
      const short = await waitFor(
        'the /56 subnet reported',
        async () => (await failures()).subnets[v6.id],
      );
      assert.match(short, /DHCPv6 needs a prefix length of at least 64/);
      assert.equal((await failures()).networks, undefined, 'dnsmasq still runs');
      assert.equal((await lease(freshEp)).ip, got.ip, 'IPv4 clients keep their leases');
    } finally {
      await db.query('UPDATE subnets SET cidr = ? WHERE id = ?', ['2001:db8:77::/64', v6.id]);
      await setNameservers(['10.20.0.53']);
      await db.close();
      await c.http('DELETE', `/v2.0/ports/${victim.id}`);
    }
    await waitFor('the failures cleared once the values are good again', async () => {
      const f = await failures();
      return Object.keys(f.ports).length + Object.keys(f.subnets).length === 0 ? true : undefined;
    });
  });
});

describe('kumo-dhcp-agent on two lab hosts: across the tunnel, restarts, failover', {
  timeout: 300_000,
}, () => {
  let lab: Lab;
  let c: Cluster;
  let net: Network;
  let script: string;
  const clients: { port: Port; ep: Endpoint }[] = [];

  const hostName = (h: LabHost) => `dh-${lab.prefix}-${h.name}`;
  const start = (kind: 'ovs' | 'dhcp', h: LabHost) => c.startAgentOn(kind, hostName(h), ovsOf(h));
  const hosting = async (): Promise<Agent[]> =>
    ((await c.http('GET', `/v2.0/networks/${net.id}/dhcp-agents`)).body as { agents: Agent[] })
      .agents;
  const dhcpPortOf = async (host: string): Promise<Port | undefined> =>
    (
      (await c.http('GET', `/v2.0/ports?network_id=${net.id}&device_owner=network:dhcp`)).body as {
        ports: Port[];
      }
    ).ports.find((p) => p['binding:host_id'] === host);
  const dnsmasqPid = (host: string) => {
    const path = join(c.dir.path, 'hosts', host, 'dhcp', net.id, 'pid');
    return existsSync(path) ? readFileSync(path, 'utf8').trim() : '';
  };
  const netnsOf = (host: string) => `${host.slice(-8)}-qdhcp-${net.id}`;
  const netnsExists = async (name: string) =>
    (await runCommand(['ip', 'netns', 'list'])).stdout.includes(name);

  before(async () => {
    lab = await createLab({ hosts: 2 });
    c = await Cluster.create('sqlite');
    script = writeUdhcpcScript(c.dir.path);
    await c.startApi();
    for (const h of lab.hosts) {
      start('ovs', h);
      start('dhcp', h);
    }
    await waitFor('two DHCP agents alive', async () => {
      const res = await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent&alive=true');
      return (res.body as { agents: Agent[] }).agents.length === 2;
    });
    const res = await c.http('POST', '/v2.0/networks', { network: { name: 'dhcp-2' } });
    net = (res.body as { network: Network }).network;
    await c.http('POST', '/v2.0/subnets', {
      subnet: { network_id: net.id, cidr: '10.30.0.0/24', ip_version: 4 },
    });
    for (const h of lab.hosts) {
      const p = (
        (await c.http('POST', '/v2.0/ports', { port: { network_id: net.id } })).body as {
          port: Port;
        }
      ).port;
      clients.push({ port: p, ep: await lab.endpoint(h, { ifaceId: p.id, mac: p.mac_address }) });
    }
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test('a client on each host gets its own address, one of them across the tunnel', async () => {
    const [agent] = await waitFor(
      'one hosting agent',
      async () => ((await hosting()).length === 1 ? hosting() : undefined),
      20_000,
      200,
    );
    const server = await waitFor(
      'its DHCP port',
      () => dhcpPortOf(agent?.host as string),
      20_000,
      200,
    );
    for (const { port, ep } of clients) {
      const got = await waitFor(
        `a lease for ${ep.host.name}`,
        () => dhcpLease(lab, ep, script).catch(() => undefined),
        40_000,
        500,
      );
      assert.equal(got.ip, port.fixed_ips[0]?.ip_address);
      assert.equal(got.serverid, server.fixed_ips[0]?.ip_address);
    }
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`the hosting agent stopped with ${signal} and restarted: dnsmasq keeps answering and is not restarted`, async () => {
      const [agent] = await hosting();
      const host = agent?.host as string;
      const pid = dnsmasqPid(host);
      assert.match(pid, /^\d+$/);
      await c.stop(c.hostAgents.get(`dhcp@${host}`), signal);
      const got = await dhcpLease(lab, clients[0]?.ep as Endpoint, script);
      assert.equal(
        got.ip,
        clients[0]?.port.fixed_ips[0]?.ip_address,
        'dnsmasq answers while its agent is down',
      );
      const proc = c.startAgentOn(
        'dhcp',
        host,
        ovsOf(lab.hosts.find((h) => hostName(h) === host) as LabHost),
      );
      const mine = () =>
        c
          .log(`kumo-dhcp-agent-${host}`)
          .split('\n')
          .filter((l) => l.includes(`"pid":${proc.child.pid},`));
      await waitFor('the restarted agent to register', () =>
        mine().some((l) => l.includes('registered with start_flag')),
      );
      await sleep(1000);
      assert.ok(
        !mine().some((l) => l.includes('"msg":"dhcp apply"') || l.includes('"msg":"step"')),
        `the restart changed nothing:\n${mine().join('\n')}`,
      );
      assert.equal(dnsmasqPid(host), pid, 'the same dnsmasq still serves');
      assert.equal((await hosting())[0]?.host, host, 'no failover for a quick restart');
    });
  }

  test('the hosting agent killed: the network moves, clients renew from the new host; the old agent, back, cleans up', async () => {
    const [old] = await hosting();
    const oldHost = old?.host as string;
    const oldLab = lab.hosts.find((h) => hostName(h) === oldHost) as LabHost;
    await c.stop(c.hostAgents.get(`dhcp@${oldHost}`), 'SIGKILL');
    const moved = await waitFor(
      'the network on the other agent',
      async () => {
        const now = await hosting();
        return now.length === 1 && now[0]?.host !== oldHost ? now[0] : undefined;
      },
      (AGENT_DOWN_TIME + REPORT_INTERVAL) * 1000 + 10_000,
      300,
    );
    await waitFor(
      'dnsmasq on the new host',
      () => /^\d+$/.test(dnsmasqPid(moved.host)),
      20_000,
      200,
    );
    assert.ok(
      await netnsExists(netnsOf(oldHost)),
      'the old namespace is still there while its agent is down',
    );
    c.startAgentOn('dhcp', oldHost, ovsOf(oldLab));
    await waitFor(
      'the old agent to remove its namespace and dnsmasq',
      async () => !(await netnsExists(netnsOf(oldHost))) && dnsmasqPid(oldHost) === '',
      30_000,
      300,
    );
    const server = await dhcpPortOf(moved.host);
    for (const { port, ep } of clients) {
      const got = await waitFor(
        'a renewal',
        () => dhcpLease(lab, ep, script).catch(() => undefined),
        30_000,
        500,
      );
      assert.equal(got.ip, port.fixed_ips[0]?.ip_address);
      assert.equal(got.serverid, server?.fixed_ips[0]?.ip_address, 'served by the new host');
    }
  });
  test('manual rehosting with the kumo CLI and with the openstack CLI moves the service the same way', async () => {
    const agents = (
      (await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent')).body as { agents: Agent[] }
    ).agents;
    const move = async (tool: 'kumo' | 'openstack', to: Agent, from: Agent) => {
      const run =
        tool === 'kumo' ? async (a: string[]) => c.kumo(a) : async (a: string[]) => c.openstack(a);
      const add =
        tool === 'kumo'
          ? ['dhcp-agent-network-add', to.id, net.id]
          : ['network', 'agent', 'add', 'network', '--dhcp', to.id, net.id];
      const rm =
        tool === 'kumo'
          ? ['dhcp-agent-network-remove', from.id, net.id]
          : ['network', 'agent', 'remove', 'network', '--dhcp', from.id, net.id];
      assert.equal((await run(add)).code, 0);
      assert.equal((await run(rm)).code, 0);
      await waitFor(
        `${tool}: only ${to.host} hosts the network`,
        async () => {
          const now = await hosting();
          return now.length === 1 && now[0]?.id === to.id;
        },
        20_000,
        200,
      );
      await waitFor(
        `${tool}: dnsmasq moved to ${to.host}`,
        async () =>
          /^\d+$/.test(dnsmasqPid(to.host)) &&
          dnsmasqPid(from.host) === '' &&
          !(await netnsExists(netnsOf(from.host))),
        30_000,
        300,
      );
      const got = await waitFor(
        'a lease from the new server',
        () => dhcpLease(lab, clients[0]?.ep as Endpoint, script).catch(() => undefined),
        30_000,
        500,
      );
      assert.equal(got.serverid, (await dhcpPortOf(to.host))?.fixed_ips[0]?.ip_address);
    };
    const [current] = await hosting();
    const other = agents.find((a) => a.id !== current?.id) as Agent;
    await move('kumo', other, current as Agent);
    await move('openstack', current as Agent, other);
  });
});
