/**
 * kumo-l3-agent as a real process on a lab host (its own ovsdb-server and ovs-vswitchd;
 * br-int made by the test), a real RabbitMQ vhost, real namespaces and iptables. The test
 * plays kumo-api on q-plugin and q-reports-plugin: it answers get_active_routers and
 * get_router_info, applies update_floatingip_statuses, and records report_status and
 * report_state.
 *
 * Proves: on start the router the API lists is served (ACTIVE, its floating IP reported
 * ACTIVE, reachable from the outside namespace) and counted in configurations; a router
 * whose state directory is ours but which nothing claims is torn down; a qrouter namespace
 * without our marker is left alone; `kill -9` changes nothing in the namespace (addresses,
 * routes, iptables) and the restarted agent applies nothing; a hint for a changed router
 * (its floating IP gone) is applied. With `[metadata] metadata_proxy_shared_secret` set, the
 * agent runs its relay (socket 0600) and R1's haproxy: a guest's request to 169.254.169.254
 * goes haproxy → the agent's relay → get_metadata_instance (answered here) → a stand-in
 * metadata listener on loopback checking the signature; after kill -9 and a restart the
 * same haproxy serves on (adopted by pid file, not restarted). Addresses live only in the
 * lab's and agent's namespaces (and loopback).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { proxyPaths } from '../../agents/lib/metadata-proxy.ts';
import type { L3Router } from '../../contracts/l3.ts';
import { hostQueue, PLUGIN_TOPIC, REPORTS_TOPIC } from '../../contracts/messages.ts';
import type { ReportStatusArgs, ResourceStatus } from '../../contracts/status.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { findHaproxy, haproxyExpected } from '../../host/haproxy/daemon.ts';
import { portDevice } from '../../host/ip/names.ts';
import { stopByPidfile } from '../../host/process/daemon.ts';
import { runCommand } from '../helpers/cluster.ts';
import { REPO, rabbitVhost, tempDir, waitFor } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';
import { type MetadataPeer, startMetadataPeer } from '../helpers/metadata-peer.ts';

const SECRET = 'l3-process-metadata-secret';

describe('kumo-l3-agent process: resync, kill -9, restart, hints', { timeout: 60_000 }, () => {
  const tmp = tempDir('kumo-l3-process-');
  const vhost = rabbitVhost();
  const [R1, R2, R3] = [randomUUID(), randomUUID(), randomUUID()];
  const [QR, QG, FIP] = [randomUUID(), randomUUID(), randomUUID()];
  const statuses: ResourceStatus[] = [];
  const fipUpdates: unknown[] = [];
  const configurations: Record<string, unknown>[] = [];
  let router: L3Router;
  let lab: Lab;
  let h: LabHost;
  let broker: Broker;
  let agent: ChildProcess | undefined;
  let outside: Endpoint;
  let guest: Endpoint;
  let peer: MetadataPeer;
  const VM = { instance_id: randomUUID(), project_id: randomUUID().replaceAll('-', '') };
  let host: string;
  let config: string;

  const nsOf = (id: string) => `${lab.prefix}-qrouter-${id}`;
  const inNs = async (argv: string[]) =>
    (await runCommand(['ip', 'netns', 'exec', nsOf(R1), ...argv])).stdout;
  const agentLog = () => readFileSync(join(tmp.path, 'agent.log'), 'utf8');
  const latest = (id: string) => statuses.filter((s) => s.id === id).at(-1);
  /** The kernel's own IPv6 link-local addresses (finishing DAD) are not ours to compare. */
  const ours = (text: string) => text.split('\n').filter((l) => !l.includes('fe80:'));
  const proxy = () => proxyPaths(join(tmp.path, 'l3', R1, 'metadata-proxy'));
  const fetchMetadata = () =>
    lab.exec(guest.netns, [
      'curl',
      '-sS',
      '--max-time',
      '5',
      'http://169.254.169.254/latest/meta-data/instance-id',
    ]);
  const snapshot = async () => ({
    haproxy: await findHaproxy(proxy()),
    addrs: ours(await inNs(['ip', '-o', 'addr', 'show'])),
    routes: ours(await inNs(['ip', 'route', 'show', 'table', 'all'])),
    nat: (await inNs(['iptables-save', '-t', 'nat'])).replace(/^#.*\n/gm, ''),
  });
  const pingFip = (count = 2) =>
    lab.exec(outside.netns, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', '203.0.113.21']);

  async function fakeApi(m: { method: string; args: unknown }): Promise<unknown> {
    const args = m.args as Record<string, unknown>;
    switch (m.method) {
      case 'get_active_routers':
        return { routers: [R1] };
      case 'get_router_info':
        return { router: args.router_id === R1 ? router : null };
      case 'update_floatingip_statuses': {
        const list = args.statuses as { id: string; status: 'ACTIVE' }[];
        fipUpdates.push(...list);
        for (const s of list)
          for (const f of router.floating_ips) if (f.id === s.id) f.status = s.status;
        return { updated: list.length };
      }
      case 'get_metadata_instance':
        return { instance: args.router_id === R1 && args.ip === '10.81.0.5' ? VM : null };
      case 'report_status':
        statuses.push(...(m.args as ReportStatusArgs).statuses);
        return;
      case 'report_state':
        configurations.push(
          (args.agent_state as { configurations: Record<string, unknown> }).configurations,
        );
        return;
      default:
        return;
    }
  }

  const start = () => {
    const out = createWriteStream(join(tmp.path, 'agent.log'), { flags: 'a' });
    agent = spawn(process.execPath, [
      join(REPO, 'bin', 'kumo-l3-agent.ts'),
      '--config-file',
      config,
    ]);
    agent.stdout?.pipe(out);
    agent.stderr?.pipe(out);
  };

  before(async () => {
    lab = await createLab({ hosts: 1 });
    h = lab.hosts[0] as LabHost;
    host = `l3p-${lab.prefix}`;
    await h.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev']);
    const fixed = (ip: string, cidr: string, gw: string) => [
      { subnet_id: randomUUID(), ip_address: ip, cidr, gateway_ip: gw },
    ];
    router = {
      id: R1,
      revision_number: 1,
      enable_snat: true,
      gw_port: {
        id: QG,
        network_id: randomUUID(),
        mac_address: 'fa:16:3e:81:00:0a',
        mtu: 1400,
        fixed_ips: fixed('203.0.113.10', '203.0.113.0/24', '203.0.113.1'),
      },
      interfaces: [
        {
          id: QR,
          network_id: randomUUID(),
          mac_address: 'fa:16:3e:81:00:01',
          mtu: 1400,
          fixed_ips: fixed('10.81.0.1', '10.81.0.0/24', '10.81.0.1'),
        },
      ],
      routes: [],
      floating_ips: [
        {
          id: FIP,
          floating_ip_address: '203.0.113.21',
          fixed_ip_address: '10.81.0.5',
          port_id: randomUUID(),
          status: 'DOWN',
        },
      ],
    };
    guest = await lab.endpoint(h, {
      ifaceId: randomUUID(),
      mac: 'fa:16:3e:81:00:05',
      cidr: '10.81.0.5/24',
    });
    await lab.exec(guest.netns, ['ip', 'route', 'add', 'default', 'via', '10.81.0.1']);
    peer = await startMetadataPeer(SECRET);
    outside = await lab.endpoint(h, {
      ifaceId: randomUUID(),
      mac: 'fa:16:3e:82:00:01',
      cidr: '203.0.113.1/24',
    });

    // R2: ours from an earlier run, claimed by nothing now; R3: someone else's namespace.
    mkdirSync(join(tmp.path, 'l3', R2), { recursive: true });
    writeFileSync(join(tmp.path, 'l3', R2, 'host'), `${host}\n`);
    for (const id of [R2, R3]) await runCommand(['ip', 'netns', 'add', nsOf(id)]);

    broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 10_000 });
    broker.consume(apiQueue(PLUGIN_TOPIC), fakeApi);
    broker.consume(apiQueue(REPORTS_TOPIC), fakeApi);
    await broker.start();
    config = join(tmp.path, 'kumo.conf');
    writeFileSync(
      config,
      [
        '[DEFAULT]',
        `host = ${host}`,
        `state_path = ${tmp.path}`,
        `netns_prefix = ${lab.prefix}-`,
        `transport_url = ${vhost.transportUrl}`,
        '[agent]',
        'report_interval = 1',
        'resync_interval = 3600',
        '[ovs]',
        `ovsdb_connection = unix:${h.dbSocket}`,
        `vswitchd_netns = ${h.netns}`,
        '[l3]',
        'send_arp_for_ha = 1',
        '[metadata]',
        `metadata_proxy_shared_secret = ${SECRET}`,
        `nova_metadata_port = ${peer.port}`,
        '',
      ].join('\n'),
    );
    start();
  });

  after(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent?.once('exit', r));
    }
    await stopByPidfile(proxy().pidfile, haproxyExpected(proxy()));
    for (const id of [R1, R2, R3]) await runCommand(['ip', 'netns', 'del', nsOf(id)]);
    await peer?.close();
    await broker?.close();
    await lab?.destroy();
    vhost.cleanup();
    tmp.cleanup();
  });

  test('on start: the listed router served and counted, the unclaimed one torn down, the foreign one left', async () => {
    await waitFor('R1 ACTIVE', () => latest(R1)?.status === 'ACTIVE', 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${agentLog().slice(-3000)}`);
    });
    assert.deepEqual(fipUpdates, [{ id: FIP, status: 'ACTIVE' }]);
    assert.match(await pingFip(), / 0% packet loss/);
    await waitFor('R2 torn down', () => !existsSync(`/run/netns/${nsOf(R2)}`));
    assert.ok(!existsSync(join(tmp.path, 'l3', R2)), 'its state directory too');
    assert.ok(existsSync(`/run/netns/${nsOf(R3)}`), 'a namespace without our marker stays');
    const counted = await waitFor('configurations counting R1', () =>
      configurations.findLast((c) => c.routers === 1),
    );
    assert.deepEqual(
      { ...counted, iptables_version: typeof counted.iptables_version },
      {
        agent_mode: 'legacy',
        iptables_version: 'string',
        routers: 1,
        interfaces: 1,
        floating_ips: 1,
        ex_gw_ports: 1,
      },
    );
  });

  test('metadata: the agent’s relay socket is 0600; a guest gets its own instance', async () => {
    assert.equal(statSync(join(tmp.path, 'l3', 'metadata_proxy')).mode & 0o777, 0o600);
    assert.ok((await findHaproxy(proxy())) !== null, 'R1’s haproxy runs');
    assert.equal(await fetchMetadata(), `${VM.instance_id} /latest/meta-data/instance-id`);
    assert.equal(peer.seen.at(-1)?.signed, true);
  });

  test('kill -9 touches nothing; the restarted agent applies nothing', async () => {
    assert.match(agentLog(), /"msg":"l3 apply"/, 'the first start applied (and logged it so)');
    const before = await snapshot();
    agent?.kill('SIGKILL');
    await new Promise((r) => agent?.once('exit', r));
    assert.deepEqual(await snapshot(), before, 'namespace unchanged by the kill');
    assert.match(await pingFip(), / 0% packet loss/, 'still forwarding without the agent');
    const reported = statuses.length;
    const logged = agentLog().length;
    start();
    await waitFor(
      'R1 reported again after the restart',
      () => statuses.slice(reported).some((s) => s.id === R1 && s.status === 'ACTIVE'),
      20_000,
    );
    const restartLog = agentLog().slice(logged);
    assert.doesNotMatch(restartLog, /"msg":"(l3 )?apply"/, 'no step planned');
    assert.deepEqual(await snapshot(), before, 'the same haproxy too');
    assert.equal(fipUpdates.length, 1, 'no floating IP status sent again');
    assert.equal(await fetchMetadata(), `${VM.instance_id} /latest/meta-data/instance-id`);
  });

  test('a hint for a changed router is applied: the floating IP leaves', async () => {
    router.floating_ips = [];
    await broker.cast(hostQueue('l3_agent', host), 'hint', { resource: 'router', id: R1 });
    const qg = portDevice('qg-', QG);
    // The apply removes the address and then rewrites the NAT table: wait for both.
    await waitFor('the floating IP gone from qg- and from the NAT rules', async () => {
      const addrs = await inNs(['ip', '-o', 'addr', 'show', 'dev', qg]);
      const nat = await inNs(['iptables-save', '-t', 'nat']);
      return (
        addrs.includes('203.0.113.10/24') &&
        !addrs.includes('203.0.113.21') &&
        !nat.includes('203.0.113.21')
      );
    });
    await assert.rejects(pingFip(1), 'the floating IP no longer answers');
  });
});
