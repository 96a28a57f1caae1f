/**
 * kumo-dhcp-agent as a real process on a lab host (its own ovsdb-server and ovs-vswitchd;
 * br-int made by the test), a real RabbitMQ vhost, real dnsmasq and busybox udhcpc. The
 * test plays kumo-api on q-plugin: it answers get_active_networks and get_network_info
 * for two networks, A and B, and records the agent's report_status casts.
 *
 * B cannot be served: before the agent starts, another process in B's qdhcp namespace
 * listens on TCP port 53, which dnsmasq binds on the DHCP port's address (DNS is on,
 * --bind-interfaces), so dnsmasq exits 2 with "failed to create listening socket …:
 * Address already in use". Proves: B is reported ERROR with that reason while A, served
 * by the same agent, leases to its client; while B keeps failing and being retried, a
 * change to A (a new port, hinted) is served; once the blocker is gone B recovers on a
 * retry, is reported ACTIVE and leases too. Addresses exist only inside the lab's and
 * the agent's namespaces (10.61.0.0/24, 10.62.0.0/24).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DhcpNetwork, DhcpPort } from '../../contracts/dhcp.ts';
import { hostQueue, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { ReportStatusArgs, ResourceStatus } from '../../contracts/status.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { runCommand } from '../helpers/cluster.ts';
import { REPO, rabbitVhost, tempDir, waitFor } from '../helpers/env.ts';
import {
  createLab,
  dhcpLease,
  type Endpoint,
  type Lab,
  type LabHost,
  writeUdhcpcScript,
} from '../helpers/lab.ts';

const port = (net: number, n: number, owner = 'compute:nova'): DhcpPort & { ip: string } => ({
  id: randomUUID(),
  mac_address: `fa:16:3e:${net}:00:${n.toString(16).padStart(2, '0')}`,
  device_owner: owner,
  fixed_ips: [],
  ip: `10.${net}.0.${n}`,
});

/** A network as get_network_info answers it: one /24, its DHCP port and client ports. */
function networkOf(net: number) {
  const subnet = randomUUID();
  const withIp = (p: ReturnType<typeof port>): DhcpPort => ({
    id: p.id,
    mac_address: p.mac_address,
    device_owner: p.device_owner,
    fixed_ips: [{ subnet_id: subnet, ip_address: p.ip }],
  });
  const dhcp = port(net, 2, 'network:dhcp');
  const clients = [port(net, 0x11)];
  const info = (): DhcpNetwork => ({
    id: network.id,
    revision_number: clients.length,
    mtu: 1450,
    subnets: [
      {
        id: subnet,
        cidr: `10.${net}.0.0/24`,
        ip_version: '4',
        gateway_ip: `10.${net}.0.1`,
        enable_dhcp: true,
        dns_nameservers: [],
        host_routes: [],
        routed: false,
      },
    ],
    ports: [dhcp, ...clients].map(withIp),
    dhcp_port: withIp(dhcp),
  });
  const network = { id: randomUUID() as string, clients, info };
  return network;
}

describe('kumo-dhcp-agent: one network’s dnsmasq cannot start', { timeout: 240_000 }, () => {
  const tmp = tempDir('kumo-dhcp-status-');
  const vhost = rabbitVhost();
  const A = networkOf(61);
  const B = networkOf(62);
  const networks = new Map([A, B].map((n) => [n.id, n]));
  const reports: { at: number; status: ResourceStatus }[] = [];
  let lab: Lab;
  let h: LabHost;
  let broker: Broker;
  let agent: ChildProcess | undefined;
  let blocker: ChildProcess | undefined;
  let script: string;
  let host: string;
  const eps = new Map<string, Endpoint>();

  const netnsOf = (id: string) => `${lab.prefix}-qdhcp-${id}`;
  const agentLog = () => readFileSync(join(tmp.path, 'agent.log'), 'utf8');
  const latest = (id: string) => reports.filter((r) => r.status.id === id).at(-1)?.status;
  const failures = (id: string) =>
    agentLog()
      .split('\n')
      .filter((l) => l.includes('"msg":"reconcile failed"') && l.includes(`network:${id}`)).length;
  const lease = (ep: Endpoint) => dhcpLease(lab, ep, script);
  const waitStatus = (
    what: string,
    id: string,
    pred: (s: ResourceStatus) => boolean,
    ms = 30_000,
  ) =>
    waitFor(
      what,
      () => {
        const s = latest(id);
        return s && pred(s) ? s : undefined;
      },
      ms,
      100,
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}\nreports: ${JSON.stringify(reports)}\n${agentLog().slice(-4000)}`,
      );
    });

  async function fakeApi(m: { method: string; args: unknown }): Promise<unknown> {
    switch (m.method) {
      case 'get_active_networks':
        return { networks: [...networks.keys()] };
      case 'get_network_info': {
        const id = (m.args as { network_id: string }).network_id;
        return { network: networks.get(id)?.info() ?? null };
      }
      case 'report_status':
        for (const status of (m.args as ReportStatusArgs).statuses)
          reports.push({ at: Date.now(), status });
        return;
      default:
        return;
    }
  }

  const endpoint = async (p: DhcpPort) => {
    const ep = await lab.endpoint(h, { ifaceId: p.id, mac: p.mac_address });
    eps.set(p.id, ep);
    return ep;
  };

  before(async () => {
    chmodSync(tmp.path, 0o755);
    script = writeUdhcpcScript(tmp.path);
    lab = await createLab({ hosts: 1 });
    h = lab.hosts[0] as LabHost;
    host = `dst-${lab.prefix}`;
    await h.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev']);
    broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 10_000 });
    broker.consume(apiQueue(PLUGIN_TOPIC), fakeApi);
    await broker.start();

    await runCommand(['ip', 'netns', 'add', netnsOf(B.id)]);
    blocker = spawn('ip', ['netns', 'exec', netnsOf(B.id), 'busybox', 'nc', '-l', '-p', '53'], {
      stdio: 'ignore',
    });
    await waitFor('the blocker to listen on TCP 53', async () =>
      (await runCommand(['ip', 'netns', 'exec', netnsOf(B.id), 'ss', '-Hltn'])).stdout.includes(
        ':53 ',
      ),
    );
    for (const n of [A, B]) await endpoint(n.clients[0] as DhcpPort);

    const config = join(tmp.path, 'kumo.conf');
    writeFileSync(
      config,
      [
        '[DEFAULT]',
        `host = ${host}`,
        `state_path = ${tmp.path}`,
        `netns_prefix = ${lab.prefix}-`,
        `transport_url = ${vhost.transportUrl}`,
        'debug = true',
        '[agent]',
        'report_interval = 1',
        'resync_interval = 3600',
        '[ovs]',
        `ovsdb_connection = unix:${h.dbSocket}`,
        `vswitchd_netns = ${h.netns}`,
        '',
      ].join('\n'),
    );
    const out = createWriteStream(join(tmp.path, 'agent.log'), { flags: 'a' });
    agent = spawn(process.execPath, [
      join(REPO, 'bin', 'kumo-dhcp-agent.ts'),
      '--config-file',
      config,
    ]);
    agent.stdout?.pipe(out);
    agent.stderr?.pipe(out);
  });

  after(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent?.once('exit', r));
    }
    blocker?.kill('SIGKILL');
    for (const n of [A, B]) {
      const pidfile = join(tmp.path, 'dhcp', n.id, 'pid');
      const pid = existsSync(pidfile) ? Number(readFileSync(pidfile, 'utf8').trim()) : 0;
      if (pid > 1 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(pidfile))
        process.kill(pid, 'SIGKILL');
      if (lab) await runCommand(['ip', 'netns', 'del', netnsOf(n.id)]);
    }
    await broker?.close();
    await lab?.destroy();
    vhost.cleanup();
    tmp.cleanup();
  });

  test('B is reported ERROR with dnsmasq’s reason; A, on the same agent, leases', async (t) => {
    const error = await waitStatus('B in ERROR', B.id, (s) => s.status === 'ERROR');
    t.diagnostic(`B: ${error.reason}`);
    assert.match(error.reason ?? '', /^dnsmasq in \S+ exited 2: /);
    assert.match(
      error.reason ?? '',
      /failed to create listening socket for 10\.62\.0\.2: Address already in use/,
    );
    await waitStatus('A ACTIVE', A.id, (s) => s.status === 'ACTIVE');
    const got = await waitFor('a lease on A', () =>
      lease(eps.get(A.clients[0]?.id as string) as Endpoint).catch(() => undefined),
    );
    assert.equal(got.ip, '10.61.0.17');
    assert.equal(got.serverid, '10.61.0.2');
    const refused = await lease(eps.get(B.clients[0]?.id as string) as Endpoint).then(
      (l) => `leased ${l.ip}`,
      () => 'refused',
    );
    assert.equal(refused, 'refused', 'nothing serves B');
  });

  test('while B keeps failing and being retried, a new port on A is served', async (t) => {
    const before = failures(B.id);
    assert.ok(before >= 1, 'B has failed');
    const added = port(61, 0x12);
    A.clients.push(added);
    const ep = await endpoint(added);
    const started = Date.now();
    await broker.cast(hostQueue('dhcp_agent', host), 'hint', { resource: 'network', id: A.id });
    const got = await waitFor('a lease for the new port on A', () =>
      lease(ep).catch(() => undefined),
    );
    t.diagnostic(`new port on A leased ${Date.now() - started} ms after the hint`);
    assert.equal(got.ip, '10.61.0.18');
    await waitFor('B retried again', () => failures(B.id) > before, 40_000, 200);
    assert.equal(latest(B.id)?.status, 'ERROR', 'B is still ERROR');
    assert.equal(latest(A.id)?.status, 'ACTIVE');
  });

  test('the blocker gone, B recovers on a retry: ACTIVE, and its client leases', async (t) => {
    blocker?.kill('SIGKILL');
    await new Promise((r) => (blocker?.exitCode === null ? blocker.once('exit', r) : r(0)));
    const gone = Date.now();
    const active = reports.length;
    await waitStatus('B ACTIVE', B.id, (s) => s.status === 'ACTIVE', 60_000);
    t.diagnostic(`B ACTIVE ${Date.now() - gone} ms after the blocker went away`);
    assert.ok(
      reports.slice(active).every((r) => r.status.id === B.id),
      'only B changed',
    );
    const got = await waitFor('a lease on B', () =>
      lease(eps.get(B.clients[0]?.id as string) as Endpoint).catch(() => undefined),
    );
    assert.equal(got.ip, '10.62.0.17');
    assert.equal(got.serverid, '10.62.0.2');
  });
});
