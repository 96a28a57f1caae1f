/**
 * The seed's Grizzly walkthrough, end to end, on three lab hosts (test/helpers/
 * walkthrough-lab.ts: the controller and network host, two compute hosts, the second also
 * a network host), every agent real. stack.sh's own steps bootstrap the users, write the
 * openrc every call here logs in with, make `public`, `private` and `router1`, and upload
 * the test guest as the `cirros-like` images; the guests are real (TCG), booted from them:
 * each serves its metadata hostname on port 80 and prints 169.254.169.254's listings on its
 * console (test/helpers/seed-guest.ts). Every step goes through the real `openstack` CLI,
 * the load balancer through the real `neutron lb-*` commands, in the seed's order, and each
 * table and output the seed shows is asserted: the rules, ACTIVE servers with their
 * addresses, pings and curls from the qdhcp- namespace, every LBaaS status ACTIVE, the VIP
 * alternating vm1/vm2, the agents and what hosts the network and the router, the listings.
 *
 * Then three failures in a row, each agent killed with SIGKILL while a probe runs back to
 * back: the DHCP agent hosting `private` (a client on a compute host gets its lease again,
 * from the other network host's DHCP port), the L3 agent hosting `router1` (vm1's floating
 * IP answers from outside again, the router on the other host), the LBaaS agent hosting the
 * pool (the VIP answers again, the pool on the other host). Each outage is reported in the
 * test's diagnostics and test-artifacts/walkthrough-outages.json.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { portDevice } from '../../host/ip/names.ts';
import { showFields, tableRows } from '../helpers/cliff-table.ts';
import { consoleOutput } from '../helpers/compute.ts';
import { REPO, waitFor } from '../helpers/env.ts';
import { dhcpLease, writeUdhcpcScript } from '../helpers/lab.ts';
import { curlIn } from '../helpers/lbaas-traffic.ts';
import { measureOutage, type Outage } from '../helpers/outage.ts';
import { parseSeedConsole, SEED_DONE } from '../helpers/seed-guest.ts';
import { buildWalkthrough, type Walkthrough } from '../helpers/walkthrough-lab.ts';

const VMS = ['vm1', 'vm2'] as const;
const FAILOVER_MS = 90_000;

describe('the seed walkthrough on three hosts, then three failures', { timeout: 1_200_000 }, () => {
  let w: Walkthrough;
  let netId: string;
  let routerId: string;
  let poolId: string;
  let vip: string;
  let vipId: string;
  let fip: string;
  const ips = new Map<string, string>();
  const ids = new Map<string, string>();
  const outages: Outage[] = [];

  const dhcpHost = () => w.where.dhcpHost(netId);
  const routerHost = () => w.where.routerHost(routerId);
  const poolHost = () => w.where.poolHost(poolId);
  /** A probe whose answer carries whether `device` on `old` was fenced before it was sent. */
  type Fenced<T> = { answer: T; fenced: boolean };
  const afterFence =
    <T>(old: string, device: string, probe: () => Promise<T>) =>
    async () => {
      const fenced = await w.where.fenced(old, device);
      return { answer: await probe(), fenced };
    };
  /** The qdhcp- namespace of the DHCP agent hosting `private` now. */
  const qdhcp = async () => w.netnsOn((await dhcpHost()) as string, `qdhcp-${netId}`);
  const curl = (netns: string, ip: string) =>
    curlIn(w.lab, netns, `http://${ip}/`, { connectTimeout: 1, maxTime: 3 });
  /** Four GETs of the VIP from `ns`: vm1 and vm2 in turn (round robin). */
  const alternates = async (ns: string) => {
    const bodies: string[] = [];
    for (let i = 0; i < 4; i++) bodies.push(await curl(ns, vip));
    assert.deepEqual(new Set(bodies), new Set(VMS), bodies.join(' '));
    for (let i = 1; i < 4; i++) assert.notEqual(bodies[i], bodies[i - 1], bodies.join(' '));
  };
  const report = (t: TestContext, o: Outage) => {
    outages.push(o);
    t.diagnostic(
      `${o.what}: restored after ${o.restoredAfterMs} ms; longest time without an answer ` +
        `${o.longestGapMs} ms; ${o.failedProbes} of ${o.probes} probes failed`,
    );
  };

  before(async () => {
    w = await buildWalkthrough();
    netId = (await w.osJson<{ id: string }>('demo', 'network show private')).id;
    routerId = (await w.osJson<{ id: string }>('demo', 'router show router1')).id;
  });
  after(async () => {
    try {
      const dir = join(REPO, 'test-artifacts');
      mkdirSync(dir, { recursive: true });
      const json = `${JSON.stringify(outages, null, 2)}\n`;
      writeFileSync(join(dir, 'walkthrough-outages.json'), json);
    } finally {
      await w?.destroy();
    }
  });

  test('stack.sh made the cirros-like images, public, private and router1', async () => {
    const images = tableRows(await w.os('demo', 'image list'));
    const names = images.map((r) => r.Name).sort();
    assert.deepEqual(names, ['cirros-like', 'cirros-like-kernel', 'cirros-like-ramdisk']);
    assert.ok(images.every((r) => r.Status === 'active'));
    const nets = tableRows(await w.os('demo', 'network list'));
    assert.deepEqual(nets.map((r) => r.Name).sort(), ['private', 'public']);
    const gw = showFields(await w.os('demo', 'router show router1'));
    assert.match(gw.external_gateway_info ?? '', /172\.24\.4\.\d+/);
  });

  test('open the default security group for ICMP, SSH and HTTP', async () => {
    for (const [proto, port] of [['icmp'], ['tcp', '22'], ['tcp', '80']] as const) {
      const range = port ? ['--dst-port', port] : [];
      const f = showFields(
        await w.os('demo', 'security group rule create --protocol', proto, ...range, 'default'),
      );
      assert.equal(f.protocol, proto);
      assert.equal(f.direction, 'ingress');
      assert.equal(f.remote_ip_prefix, '0.0.0.0/0');
      assert.equal(f.port_range_min, port ?? 'None');
      assert.equal(f.port_range_max, port ?? 'None');
    }
    const rules = tableRows(await w.os('demo', 'security group rule list default'));
    const ingress = rules
      .filter((r) => r['IP Range'] === '0.0.0.0/0' && r['IP Protocol'] !== 'None')
      .map((r) => `${r['IP Protocol']} ${r['Port Range']}`)
      .sort();
    assert.deepEqual(ingress, ['icmp ', 'tcp 22:22', 'tcp 80:80']);
  });

  test('boot vm1 and vm2: ACTIVE with their addresses, one on each compute host', async () => {
    for (const name of VMS) {
      const f = showFields(
        await w.os(
          'demo',
          'server create --image cirros-like --flavor m1.tiny --network private --wait',
          name,
        ),
      );
      assert.equal(f.status, 'ACTIVE');
      ids.set(name, f.id as string);
    }
    const rows = tableRows(await w.os('demo', 'server list'));
    assert.deepEqual(rows.map((r) => r.Name).sort(), [...VMS]);
    for (const r of rows) {
      assert.equal(r.Status, 'ACTIVE');
      assert.equal(r.Image, 'cirros-like');
      assert.equal(r.Flavor, 'm1.tiny');
      const ip = /^private=(10\.0\.0\.\d+)$/.exec(r.Networks ?? '')?.[1];
      assert.ok(ip, `${r.Name}'s address: ${r.Networks}`);
      ips.set(r.Name as string, ip);
    }
    const admin = tableRows(await w.os('admin', 'server list --all-projects --long'));
    const computes = [w.hosts.cp1, w.hosts.cp2].map((h) => w.hostName(h)).sort();
    assert.deepEqual(admin.map((r) => r.Host).sort(), computes);
    for (const name of VMS)
      await waitFor(
        `${name} booted, serving its name and done reading the metadata`,
        async () => (await consoleOutput(w.c, ids.get(name) as string)).includes(SEED_DONE),
        180_000,
        1000,
      );
  });

  test('ping them from the qdhcp- namespace', async () => {
    const ns = await qdhcp();
    for (const name of VMS) {
      const out = await w.lab.exec(ns, ['ping', '-c', '3', '-W', '2', ips.get(name) as string]);
      assert.match(out, /3 packets transmitted, 3 received, 0% packet loss/);
    }
  });

  test('each guest answers its name over HTTP', async () => {
    const ns = await qdhcp();
    for (const name of VMS) assert.equal(await curl(ns, ips.get(name) as string), name);
  });

  test('a pool with two members, a health monitor and a VIP: every status goes ACTIVE', async () => {
    const subnet = ['--subnet-id', 'private-subnet'];
    const pool = showFields(
      await w.neutron(
        'demo',
        'lb-pool-create --lb-method ROUND_ROBIN --name mypool --protocol HTTP',
        ...subnet,
      ),
    );
    assert.equal(pool.status, 'PENDING_CREATE');
    poolId = pool.id as string;
    for (const name of VMS) {
      const m = showFields(
        await w.neutron(
          'demo',
          'lb-member-create --protocol-port 80 --address',
          ips.get(name) as string,
          'mypool',
        ),
      );
      assert.equal(m.status, 'PENDING_CREATE');
    }
    const hm = showFields(
      await w.neutron(
        'demo',
        'lb-healthmonitor-create --delay 3 --type HTTP --max-retries 3 --timeout 3',
      ),
    );
    const assoc = await w.neutron('demo', 'lb-healthmonitor-associate', hm.id as string, 'mypool');
    assert.match(assoc, /Associated health monitor/);
    const v = showFields(
      await w.neutron(
        'demo',
        'lb-vip-create --name myvip --protocol-port 80 --protocol HTTP',
        ...subnet,
        'mypool',
      ),
    );
    vip = v.address as string;
    vipId = v.id as string;
    assert.match(vip, /^10\.0\.0\.\d+$/);
    await waitFor(
      'pool, members and VIP ACTIVE',
      async () => {
        const members = await w.where.get<{ status: string }[]>(`/v2.0/lb/members`, 'members');
        const p = await w.where.get<{ status: string }>(`/v2.0/lb/pools/${poolId}`, 'pool');
        const vs = await w.where.get<{ status: string }>(`/v2.0/lb/vips/${v.id}`, 'vip');
        return [p, vs, ...members].every((x) => x.status === 'ACTIVE');
      },
      60_000,
      500,
    );
    const shown = showFields(await w.neutron('demo', 'lb-pool-show mypool'));
    assert.equal(shown.status, 'ACTIVE');
    const monitor = JSON.parse(shown.health_monitors_status ?? '{}') as Record<string, unknown>;
    assert.deepEqual([monitor.monitor_id, monitor.status], [hm.id, 'ACTIVE']);
    assert.equal(showFields(await w.neutron('demo', 'lb-vip-show myvip')).status, 'ACTIVE');
    const members = tableRows(await w.neutron('demo', 'lb-member-list'));
    assert.deepEqual(members.map((m) => m.address).sort(), [...ips.values()].sort());
    assert.ok(
      members.every((m) => m.status === 'ACTIVE'),
      JSON.stringify(members),
    );
  });

  test('curl the VIP: vm1 and vm2 in turn', async () => alternates(await qdhcp()));

  test('the agents, the DHCP agent hosting private and the L3 agent hosting router1', async () => {
    const rows = tableRows(await w.os('admin', 'network agent list'));
    assert.equal(rows.length, 11, JSON.stringify(rows));
    assert.ok(
      rows.every((r) => r.Alive === ':-)' && r.State === 'UP'),
      JSON.stringify(rows),
    );
    const on = (h: keyof Walkthrough['hosts']) =>
      rows
        .filter((r) => r.Host === w.hostName(w.hosts[h]))
        .map((r) => r.Binary)
        .sort();
    const bins = (...k: string[]) => k.map((x) => `kumo-${x}-agent`).sort();
    assert.deepEqual(on('ctl'), bins('ovs', 'dhcp', 'l3', 'lbaas'));
    assert.deepEqual(on('cp1'), bins('ovs', 'compute'));
    assert.deepEqual(on('cp2'), bins('ovs', 'compute', 'dhcp', 'l3', 'lbaas'));
    const dhcp = tableRows(await w.os('admin', 'network agent list --network private'));
    assert.deepEqual(
      dhcp.map((r) => [r['Agent Type'], r.Host]),
      [['DHCP agent', await dhcpHost()]],
    );
    const l3 = tableRows(await w.os('admin', 'network agent list --router router1'));
    assert.deepEqual(
      l3.map((r) => [r['Agent Type'], r.Host]),
      [['L3 agent', await routerHost()]],
    );
  });

  test("from a guest, 169.254.169.254's listings", async () => {
    for (const name of VMS) {
      const seen = parseSeedConsole(await w.os('demo', 'console log show', name));
      assert.equal(seen.name, name);
      const listing = (path: string) => {
        const l = seen.listings.get(path);
        assert.ok(l?.ok, `${name}: ${path} was not read: ${JSON.stringify(l)}`);
        return l.lines;
      };
      assert.ok(listing('/').includes('latest'));
      assert.ok(listing('/').includes('2009-04-04'));
      assert.ok(listing('/latest/').includes('meta-data/'));
      const md = listing('/latest/meta-data/');
      for (const key of ['ami-id', 'hostname', 'instance-id', 'local-ipv4', 'placement/'])
        assert.ok(md.includes(key), `${name}: ${key} not in ${md.join(',')}`);
      assert.ok(listing('/openstack/').includes('latest'));
    }
  });

  test('a floating IP on vm1 answers from the outside world', async () => {
    fip = showFields(await w.os('demo', 'floating ip create public')).floating_ip_address as string;
    assert.match(fip, /^172\.24\.4\.\d+$/);
    await w.os('demo', 'server add floating ip vm1', fip);
    await waitFor(
      'vm1 through its floating IP',
      async () => (await curl(w.outside, fip)) === 'vm1',
      30_000,
      300,
    );
  });

  test('the DHCP agent hosting private dies: leases come from the other network host', async (t) => {
    const port = await w.osJson<{ id: string; mac_address: string }>(
      'demo',
      'port create --network private dhcp-client',
    );
    const ep = await w.lab.endpoint(w.hosts.cp1, { ifaceId: port.id, mac: port.mac_address });
    const script = writeUdhcpcScript(w.c.dir.path);
    const old = (await dhcpHost()) as string;
    const oldPort = await w.where.dhcpPort(netId, old);
    assert.ok(oldPort, `no DHCP port on ${old}`);
    const first = await waitFor(
      'a lease',
      () => dhcpLease(w.lab, ep, script).catch(() => undefined),
      30_000,
      500,
    );
    assert.equal(first.serverid, oldPort.fixed_ips[0]?.ip_address);
    const lease = () => dhcpLease(w.lab, ep, script, 2);
    report(
      t,
      await measureOutage({
        what: 'DHCP agent killed',
        cause: () => w.c.stop(w.agent('dhcp', old), 'SIGKILL'),
        probe: afterFence(old, portDevice('tap', oldPort.id), lease),
        restored: async ({ answer, fenced }: Fenced<Record<string, string>>) => {
          const now = await dhcpHost();
          const server = now === undefined ? undefined : await w.where.dhcpPort(netId, now);
          return fenced && now !== old && answer.serverid === server?.fixed_ips[0]?.ip_address;
        },
        timeoutMs: FAILOVER_MS,
      }),
    );
    const hosting = tableRows(await w.os('admin', 'network agent list --network private'));
    assert.deepEqual(
      hosting.map((r) => [r['Agent Type'], r.Host]),
      [['DHCP agent', w.otherNetworkHost(old)]],
    );
  });

  test('the L3 agent hosting router1 dies: the floating IP of vm1 answers again', async (t) => {
    const old = (await routerHost()) as string;
    const gateway = portDevice('qg-', (await w.where.gatewayPort(routerId)).id);
    report(
      t,
      await measureOutage({
        what: 'L3 agent killed',
        cause: () => w.c.stop(w.agent('l3', old), 'SIGKILL'),
        probe: afterFence(old, gateway, () => curl(w.outside, fip)),
        restored: async ({ answer, fenced }: Fenced<string>) =>
          fenced && answer === 'vm1' && ![old, undefined].includes(await routerHost()),
        timeoutMs: FAILOVER_MS,
      }),
    );
    const hosting = tableRows(await w.os('admin', 'network agent list --router router1'));
    assert.deepEqual(
      hosting.map((r) => [r['Agent Type'], r.Host]),
      [['L3 agent', w.otherNetworkHost(old)]],
    );
  });

  test('the LBaaS agent hosting the pool dies: the VIP answers again', async (t) => {
    const old = (await poolHost()) as string;
    const ns = await qdhcp();
    const vipPort = (await w.where.get<{ port_id: string }>(`/v2.0/lb/vips/${vipId}`, 'vip'))
      .port_id;
    report(
      t,
      await measureOutage({
        what: 'LBaaS agent killed',
        cause: () => w.c.stop(w.agent('lbaas', old), 'SIGKILL'),
        probe: afterFence(old, portDevice('tap', vipPort), () => curl(ns, vip)),
        restored: async ({ answer, fenced }: Fenced<string>) =>
          fenced &&
          (VMS as readonly string[]).includes(answer) &&
          ![old, undefined].includes(await poolHost()),
        timeoutMs: FAILOVER_MS,
      }),
    );
    const hosting = tableRows(await w.neutron('admin', 'lb-agent-hosting-pool mypool'));
    assert.deepEqual(
      hosting.map((r) => r.host),
      [w.otherNetworkHost(old)],
    );
    await alternates(ns);
  });
});
