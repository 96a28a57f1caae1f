/**
 * kumo-l3-agent's `router` kind against the real host: one lab host (its own ovsdb-server
 * and ovs-vswitchd, br-int made by the test), real namespaces, `ip`, sysctl, iptables,
 * conntrack and arping. The test plays kumo-api: it answers get_router_info from a router
 * it edits and applies update_floatingip_statuses to it, as the API would.
 *
 * Proves: a new router's namespace gets its qr-/qg- ports (OVS internal ports on br-int
 * with iface-id), addresses (the floating IP as /32 on qg-), the default and extra routes,
 * ip_forward and our iptables chains; a second reconcile plans nothing; endpoints on two
 * interfaces ping each other through the router and the outside reaches an endpoint by its
 * floating IP; a removed floating IP's address, DNAT and conntrack entries go and planning again is empty;
 * teardown removes ports, namespace and state; a qrouter namespace without our marker is
 * never touched. VLAN tags (the OVS agent's job) are set by hand so each network is its
 * own segment. Addresses live only inside the lab's and the agent's namespaces.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { routerKind } from '../../agents/l3/agent.ts';
import type { FipStatusUpdate, L3Settings } from '../../agents/l3/desired.ts';
import { type L3Router, parseRouterInfo } from '../../contracts/l3.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler } from '../../core/reconciler.ts';
import { portDevice } from '../../host/ip/names.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { runCommand } from '../helpers/cluster.ts';
import { tempDir } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';

const fixed = (subnet: string, ip: string, cidr: string, gateway: string | null) => ({
  subnet_id: subnet,
  ip_address: ip,
  cidr,
  gateway_ip: gateway,
});

describe('kumo-l3-agent router kind on a real host', { timeout: 60_000 }, () => {
  const tmp = tempDir('kumo-l3-agent-');
  const ROUTER = randomUUID();
  const [qrA, qrB, qg, FIP] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  const statusCalls: FipStatusUpdate[][] = [];
  let router: L3Router | null;
  let lab: Lab;
  let h: LabHost;
  let ovsdb: OvsdbClient;
  let S: L3Settings;
  let epA: Endpoint;
  let epB: Endpoint;
  let outside: Endpoint;
  const runner = createCommandRunner();
  const ns = () => `${lab.prefix}-qrouter-${ROUTER}`;
  const inNs = (argv: string[]) => runCommand(['ip', 'netns', 'exec', ns(), ...argv]);

  const kind = () =>
    routerKind({
      settings: S,
      runner,
      log: silentLogger(),
      ovsdb: async () => ovsdb,
      getRouter: async (id) =>
        parseRouterInfo({ router: id === ROUTER ? structuredClone(router) : null }),
      async updateFloatingIpStatuses(_id, statuses) {
        statusCalls.push(statuses);
        for (const s of statuses) {
          const f = router?.floating_ips.find((x) => x.id === s.id);
          if (f) f.status = s.status;
        }
      },
    });
  const reconcile = () =>
    createReconciler({ log: silentLogger(), kinds: { router: kind() } }).reconcile(
      'router',
      ROUTER,
    );
  const plan = async () => {
    const k = kind();
    const d = k.desired(await k.fetch(ROUTER), ROUTER);
    return k.plan(d, await k.observe(ROUTER, d), ROUTER);
  };
  /** The steps' reasons; an iptables restore's own reason (the NAT model's diff) as `iptables`. */
  const whys = async () =>
    (await plan()).map((s) => (s.why.startsWith('iptables ') ? 'iptables' : s.why));
  const tag = (port: string, vlan: number) => h.vsctl(['set', 'Port', port, `tag=${vlan}`]);

  before(async () => {
    lab = await createLab({ hosts: 1 });
    h = lab.hosts[0] as LabHost;
    await h.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev']);
    ovsdb = await createOvsdbClient({ socket: `unix:${h.dbSocket}` });
    S = {
      stateRoot: join(tmp.path, 'l3'),
      host: 'l3-test-host',
      intBridge: 'br-int',
      vswitchdNetns: h.netns,
      netnsPrefix: `${lab.prefix}-`,
      sendArpCount: 1,
    };
    const [sA, sB, sX] = [randomUUID(), randomUUID(), randomUUID()];
    router = {
      id: ROUTER,
      revision_number: 1,
      enable_snat: true,
      gw_port: {
        id: qg,
        network_id: randomUUID(),
        mac_address: 'fa:16:3e:71:00:0a',
        mtu: 1400,
        fixed_ips: [fixed(sX, '203.0.113.10', '203.0.113.0/24', '203.0.113.1')],
      },
      interfaces: [
        ['10.71.0', qrA, sA],
        ['10.72.0', qrB, sB],
      ].map(([net, id, sub], i) => ({
        id: id as string,
        network_id: randomUUID(),
        mac_address: `fa:16:3e:7${i + 1}:00:01`,
        mtu: 1400,
        fixed_ips: [fixed(sub as string, `${net}.1`, `${net}.0/24`, `${net}.1`)],
      })),
      routes: [{ destination: '10.99.0.0/24', nexthop: '10.72.0.50' }],
      floating_ips: [
        {
          id: FIP,
          floating_ip_address: '203.0.113.20',
          fixed_ip_address: '10.71.0.5',
          port_id: randomUUID(),
          status: 'DOWN',
        },
      ],
    };
    const ep = (mac: string, cidr: string) => lab.endpoint(h, { ifaceId: randomUUID(), mac, cidr });
    epA = await ep('fa:16:3e:71:00:05', '10.71.0.5/24');
    epB = await ep('fa:16:3e:72:00:05', '10.72.0.5/24');
    outside = await ep('fa:16:3e:73:00:01', '203.0.113.1/24');
    for (const [e, gw, vlan] of [
      [epA, '10.71.0.1', 1],
      [epB, '10.72.0.1', 2],
    ] as const) {
      await lab.exec(e.netns, ['ip', 'route', 'add', 'default', 'via', gw]);
      await tag(e.name, vlan);
    }
    await tag(outside.name, 3);
  });
  after(async () => {
    await ovsdb?.close();
    await runCommand(['ip', 'netns', 'del', ns()]);
    await lab?.destroy();
    tmp.cleanup();
  });

  test('a new router: namespace, ports, addresses, routes, ip_forward, iptables, marker', async () => {
    await reconcile();
    for (const [id, vlan] of [
      [qrA, 1],
      [qrB, 2],
    ] as const)
      await tag(portDevice('qr-', id), vlan);
    await tag(portDevice('qg-', qg), 3);

    const links = JSON.parse((await inNs(['ip', '-j', 'addr', 'show'])).stdout) as {
      ifname: string;
      flags: string[];
      address: string;
      addr_info: { local: string; prefixlen: number; scope: string }[];
    }[];
    const addrs = (dev: string) =>
      links
        .find((l) => l.ifname === dev)
        ?.addr_info.filter((a) => a.scope === 'global')
        .map((a) => `${a.local}/${a.prefixlen}`)
        .sort();
    assert.ok(links.find((l) => l.ifname === 'lo')?.flags.includes('UP'), 'lo up (in the batch)');
    assert.deepEqual(addrs(portDevice('qr-', qrA)), ['10.71.0.1/24']);
    assert.deepEqual(addrs(portDevice('qr-', qrB)), ['10.72.0.1/24']);
    assert.deepEqual(addrs(portDevice('qg-', qg)), ['203.0.113.10/24', '203.0.113.20/32']);
    const ids = await h.vsctl(['get', 'Interface', portDevice('qg-', qg), 'external_ids']);
    assert.match(ids, new RegExp(`iface-id="${qg}"`));
    const routes = (await inNs(['ip', 'route', 'show', 'proto', 'static'])).stdout;
    assert.match(routes, new RegExp(`default via 203\\.0\\.113\\.1 dev ${portDevice('qg-', qg)}`));
    assert.match(routes, /10\.99\.0\.0\/24 via 10\.72\.0\.50/);
    assert.equal((await inNs(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1');
    const save = (await inNs(['iptables-save', '-t', 'nat'])).stdout;
    assert.match(save, /-A PREROUTING -j kumo-l3-PREROUTING/);
    assert.match(save, /-d 203\.0\.113\.20\/32 -j DNAT --to-destination 10\.71\.0\.5/);
    assert.equal(readFileSync(join(S.stateRoot, ROUTER, 'host'), 'utf8'), 'l3-test-host\n');
    assert.deepEqual(statusCalls, [[{ id: FIP, status: 'ACTIVE' }]]);
  });

  test('a second reconcile (as a restarted agent’s: no memory) plans nothing', async () => {
    assert.deepEqual(await plan(), []);
  });

  test('endpoints on two interfaces ping through the router; the outside reaches the floating IP', async () => {
    const ping = (from: Endpoint, to: string) =>
      lab.exec(from.netns, ['ping', '-c', '2', '-i', '0.2', '-W', '2', to]);
    assert.match(await ping(epA, '10.72.0.5'), / 0% packet loss/);
    assert.match(await ping(epB, '10.71.0.5'), / 0% packet loss/);
    assert.match(await ping(outside, '203.0.113.20'), / 0% packet loss/);
    assert.match(await ping(epB, '203.0.113.1'), / 0% packet loss/);
    assert.match(await ping(epA, '203.0.113.1'), / 0% packet loss/);
    const seenAs = async (src: string) => {
      const out = await inNs(['conntrack', '-L', '-p', 'icmp', '-s', src, '-d', '203.0.113.1']);
      return [...out.stdout.matchAll(/src=203\.0\.113\.1 dst=(\S+)/g)].map((m) => m[1]);
    };
    assert.deepEqual(await seenAs('10.72.0.5'), ['203.0.113.10'], 'SNAT to the gateway IP');
    assert.deepEqual(await seenAs('10.71.0.5'), ['203.0.113.20'], 'SNAT to the floating IP');
  });

  test('a removed floating IP: its /32 and DNAT go, and planning again is empty', async () => {
    const tracked = async () =>
      (await inNs(['conntrack', '-L', '-d', '203.0.113.20'])).stdout.split('\n').filter(Boolean);
    assert.ok((await tracked()).length > 0, 'the outside’s ping left a conntrack entry');
    (router as L3Router).floating_ips = [];
    assert.deepEqual(await whys(), [
      'links, addresses and routes',
      'iptables',
      'forget connections of floating IP 203.0.113.20',
      'forget connections of floating IP 203.0.113.20',
    ]);
    await reconcile();
    const save = (await inNs(['iptables-save', '-t', 'nat'])).stdout;
    assert.doesNotMatch(save, /203\.0\.113\.20/);
    const qgAddrs = (await inNs(['ip', '-o', 'addr', 'show', 'dev', portDevice('qg-', qg)])).stdout;
    assert.doesNotMatch(qgAddrs, /203\.0\.113\.20/);
    assert.deepEqual(await tracked(), [], 'its connections were forgotten');
    assert.deepEqual(await plan(), []);
  });

  test('a changed extra route replaces the old one; the kernel’s connected routes stay', async () => {
    const connected = (await inNs(['ip', 'route', 'show', 'proto', 'kernel'])).stdout;
    (router as L3Router).routes = [{ destination: '10.98.0.0/24', nexthop: '10.71.0.60' }];
    await reconcile();
    const routes = (await inNs(['ip', 'route', 'show', 'proto', 'static'])).stdout;
    assert.match(routes, /10\.98\.0\.0\/24 via 10\.71\.0\.60/);
    assert.doesNotMatch(routes, /10\.99\.0\.0/);
    assert.match(routes, /^default via 203\.0\.113\.1/m);
    assert.equal((await inNs(['ip', 'route', 'show', 'proto', 'kernel'])).stdout, connected);
    assert.deepEqual(await plan(), []);
  });

  test('an interface removed: its port unplugged and gone; added back: only it is plugged (SNAT follows)', async () => {
    const r = router as L3Router;
    const removed = r.interfaces.splice(1, 1);
    r.routes = [];
    const qrBdev = portDevice('qr-', qrB);
    assert.deepEqual(await whys(), [
      'unplug a replaced port',
      'links, addresses and routes',
      'iptables',
    ]);
    await reconcile();
    const links = async () => (await inNs(['ip', '-o', 'link', 'show'])).stdout;
    assert.doesNotMatch(await links(), new RegExp(qrBdev));
    assert.doesNotMatch(await h.vsctl(['list-ports', 'br-int']), new RegExp(qrBdev));
    assert.deepEqual(await plan(), []);
    r.interfaces.push(...removed);
    assert.deepEqual(await whys(), [
      'plug into br-int',
      'move the port into its namespace',
      'links, addresses and routes',
      'iptables',
    ]);
    await reconcile();
    await tag(qrBdev, 2);
    assert.match(await links(), new RegExp(qrBdev));
    assert.deepEqual(await plan(), []);
    assert.match(
      await lab.exec(epA.netns, ['ping', '-c', '1', '-W', '2', '10.72.0.5']),
      / 0% packet loss/,
    );
  });

  test('the gateway removed: qg- and its default route go, the NAT chains too; added back, SNAT works', async () => {
    const r = router as L3Router;
    const gw = r.gw_port;
    r.gw_port = null;
    await reconcile();
    const qgDev = portDevice('qg-', qg);
    assert.doesNotMatch((await inNs(['ip', '-o', 'link', 'show'])).stdout, new RegExp(qgDev));
    assert.equal((await inNs(['ip', 'route', 'show', 'proto', 'static'])).stdout, '');
    assert.doesNotMatch((await inNs(['iptables-save', '-t', 'nat'])).stdout, /kumo-l3/);
    assert.deepEqual(await plan(), []);
    r.gw_port = gw;
    await reconcile();
    await tag(qgDev, 3);
    assert.deepEqual(await plan(), []);
    assert.match(
      await lab.exec(epB.netns, ['ping', '-c', '1', '-W', '2', '203.0.113.1']),
      / 0% packet loss/,
    );
  });

  test('an external gateway off its subnet is reached onlink; planning again is empty', async () => {
    const f = (router as L3Router).gw_port?.fixed_ips[0] as { gateway_ip: string | null };
    f.gateway_ip = '198.51.100.1';
    await reconcile();
    const routes = (await inNs(['ip', 'route', 'show', 'proto', 'static'])).stdout;
    assert.match(routes, /^default via 198\.51\.100\.1 dev \S+ onlink/m);
    assert.deepEqual(await plan(), []);
    f.gateway_ip = '203.0.113.1';
    await reconcile();
    assert.match(
      (await inNs(['ip', 'route', 'show', 'proto', 'static'])).stdout,
      /^default via 203\.0\.113\.1 dev \S+ $/m,
    );
  });

  test('teardown removes ports, namespace and state; a foreign qrouter namespace stays', async (t) => {
    const foreignId = randomUUID();
    const foreign = `${lab.prefix}-qrouter-${foreignId}`;
    await runCommand(['ip', 'netns', 'add', foreign]);
    t.after(() => runCommand(['ip', 'netns', 'del', foreign]));
    await createReconciler({ log: silentLogger(), kinds: { router: kind() } }).reconcile(
      'router',
      foreignId,
    );
    router = null;
    await reconcile();
    assert.ok(!existsSync(`/run/netns/${ns()}`), 'namespace removed');
    assert.ok(!existsSync(join(S.stateRoot, ROUTER)), 'state removed');
    const ports = (await h.vsctl(['list-ports', 'br-int'])).split('\n').filter(Boolean);
    assert.deepEqual(
      ports.filter((p) => p.startsWith('qr-') || p.startsWith('qg-')),
      [],
    );
    assert.deepEqual(await plan(), []);
    assert.ok(existsSync(`/run/netns/${foreign}`), 'a namespace without our marker is left alone');
  });
});
