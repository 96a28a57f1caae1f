/**
 * Isolated metadata for real: kumo-dhcp-agent as a process on a lab host (its own
 * ovsdb-server and ovs-vswitchd), a real RabbitMQ vhost, real dnsmasq, real haproxy in the
 * qdhcp namespace and the agent's own relay; the test plays kumo-api on q-plugin
 * (get_network_info, get_metadata_instance) and kumo-api's metadata listener (a loopback
 * HTTP server that answers only correctly signed requests). A client namespace on the
 * network leases with busybox udhcpc (asking for options 121 and 249), installs the routes
 * it got, and fetches http://169.254.169.254/… through haproxy and the relay.
 *
 * Proves: an isolated subnet's client gets `169.254.169.254/32 via the DHCP port` and the
 * default route in option 121 (and 249), and its own instance's answer, signed, with its
 * own source address, whatever X-Instance-ID / X-Forwarded-For / X-Kumo-Network-ID it
 * forges; an agent restart adopts the running haproxy (same pid, nothing applied) and the
 * relay answers again; a router on the subnet stops haproxy, removes the address and the
 * route option without restarting dnsmasq, and its removal brings them back; so does
 * `[dhcp] enable_isolated_metadata = false` on a restart (said in the log), and true again;
 * the network's removal leaves no namespace, process or file. Addresses exist only inside the lab's and
 * the agent's namespaces (10.63.0.0/24) and on loopback.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hostQueue, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { META_HEADERS, signatureMatches } from '../../contracts/metadata.ts';
import type { ReportStatusArgs, ResourceStatus } from '../../contracts/status.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { findRunning, isRunning } from '../../host/process/daemon.ts';
import { runCommand } from '../helpers/cluster.ts';
import { REPO, rabbitVhost, tempDir, waitFor } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';
import {
  agentConfig,
  CLIENT,
  CLIENT_IP,
  INSTANCE,
  NET,
  networkInfo,
  PROJECT,
  SCRIPT,
  SECRET,
  state,
  TAP,
} from './dhcp-metadata-fixture.ts';

describe('kumo-dhcp-agent: metadata on an isolated network', { timeout: 120_000 }, () => {
  const tmp = tempDir('kumo-dhcp-meta-');
  const vhost = rabbitVhost();
  const reports: ResourceStatus[] = [];
  const lookups: unknown[] = [];
  const seen: http.IncomingHttpHeaders[] = [];
  let lab: Lab;
  let h: LabHost;
  let ep: Endpoint;
  let broker: Broker;
  let agent: ChildProcess | undefined;
  let listener: http.Server;
  let config: string;
  let host: string;

  const netns = () => `${lab.prefix}-qdhcp-${NET}`;
  const stateDir = () => join(tmp.path, 'dhcp', NET);
  const proxyDir = () => join(stateDir(), 'metadata-proxy');
  const haproxyPid = () =>
    findRunning(join(proxyDir(), 'haproxy.pid'), `-f ${join(proxyDir(), 'haproxy.cfg')} `);
  const dnsmasqPid = () =>
    findRunning(join(stateDir(), 'pid'), `--pid-file=${join(stateDir(), 'pid')}`);
  const agentLog = () => readFileSync(join(tmp.path, 'agent.log'), 'utf8');
  const tapAddresses = async () =>
    (await lab.exec(netns(), ['ip', '-o', '-4', 'addr', 'show', 'dev', TAP]))
      .split('\n')
      .map((l) => /inet (\S+)/.exec(l)?.[1])
      .filter(Boolean);
  const hint = () =>
    broker.cast(hostQueue('dhcp_agent', host), 'hint', { resource: 'network', id: NET });

  async function lease(): Promise<Record<string, string>> {
    const argv = ['busybox', 'udhcpc', '-i', ep.name, '-n', '-q', '-f', '-t', '4', '-T', '1'];
    const opts = ['-O', 'staticroutes', '-O', 'msstaticroutes', '-s', join(tmp.path, 'dhcp.sh')];
    const out = await lab.exec(ep.netns, [...argv, ...opts]);
    const line = out.split('\n').find((l) => l.startsWith('bound ')) ?? '';
    return Object.fromEntries(
      line
        .slice(6)
        .split(' ')
        .map((kv) => kv.split('=')),
    );
  }
  const fetch = (path: string, headers: string[] = []) =>
    lab.exec(ep.netns, [
      'busybox',
      'wget',
      '-q',
      '-O',
      '-',
      ...headers.flatMap((x) => ['--header', x]),
      `http://169.254.169.254${path}`,
    ]);

  async function fakeApi(m: { method: string; args: unknown }): Promise<unknown> {
    switch (m.method) {
      case 'get_active_networks':
        return { networks: state.exists ? [NET] : [] };
      case 'get_network_info':
        return { network: networkInfo() };
      case 'get_metadata_instance': {
        lookups.push(m.args);
        const a = m.args as { network_id?: string; ip: string };
        const mine = a.network_id === NET && a.ip === CLIENT_IP;
        return { instance: mine ? { instance_id: INSTANCE, project_id: PROJECT } : null };
      }
      case 'report_status':
        reports.push(...(m.args as ReportStatusArgs).statuses);
        return;
      default:
        return;
    }
  }

  /** kumo-api's metadata listener, reduced to its signature check and an echo. */
  function startListener(): Promise<number> {
    listener = http.createServer((req, res) => {
      seen.push(req.headers);
      const id = String(req.headers[META_HEADERS.instanceId] ?? '');
      const sig = String(req.headers[META_HEADERS.signature] ?? '');
      if (!signatureMatches(SECRET, id, sig)) return void res.writeHead(403).end('forbidden\n');
      res.end(`${id} ${req.headers[META_HEADERS.forwardedFor]} ${req.url}\n`);
    });
    return new Promise((resolve) =>
      listener.listen(0, '127.0.0.1', () => resolve((listener.address() as { port: number }).port)),
    );
  }

  /** The agent's kumo.conf, `[dhcp] enable_isolated_metadata` as given. */
  function writeConfig(novaPort: number, isolated: boolean) {
    const c = { host, statePath: tmp.path, prefix: lab.prefix, transportUrl: vhost.transportUrl };
    writeFileSync(config, agentConfig({ ...c, h, novaPort, isolated }));
  }

  /** Restarts the agent with `[dhcp] enable_isolated_metadata` as given. */
  async function restartWith(isolated: boolean) {
    await stopAgent();
    writeConfig((listener.address() as { port: number }).port, isolated);
    const at = reports.length;
    const logAt = agentLog().length;
    startAgent();
    await waitActive(at);
    return agentLog().slice(logAt);
  }

  function startAgent() {
    const out = createWriteStream(join(tmp.path, 'agent.log'), { flags: 'a' });
    agent = spawn(process.execPath, [
      join(REPO, 'bin', 'kumo-dhcp-agent.ts'),
      '--config-file',
      config,
    ]);
    agent.stdout?.pipe(out);
    agent.stderr?.pipe(out);
  }

  async function stopAgent() {
    if (!agent || agent.exitCode !== null) return;
    const exited = new Promise((r) => agent?.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  }

  const waitActive = (after: number) =>
    waitFor(
      'the network reported ACTIVE',
      () => reports.slice(after).some((s) => s.id === NET && s.status === 'ACTIVE'),
      30_000,
      100,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${agentLog().slice(-4000)}`);
    });

  before(async () => {
    chmodSync(tmp.path, 0o755);
    writeFileSync(join(tmp.path, 'dhcp.sh'), SCRIPT, { mode: 0o755 });
    lab = await createLab({ hosts: 1 });
    h = lab.hosts[0] as LabHost;
    host = `dmt-${lab.prefix}`;
    await h.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev']);
    broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 10_000 });
    broker.consume(apiQueue(PLUGIN_TOPIC), fakeApi);
    await broker.start();
    const novaPort = await startListener();
    ep = await lab.endpoint(h, { ifaceId: CLIENT.id, mac: CLIENT.mac_address });
    config = join(tmp.path, 'kumo.conf');
    writeConfig(novaPort, true);
    startAgent();
  });

  after(async () => {
    await stopAgent();
    for (const pid of [await haproxyPid(), await dnsmasqPid()])
      if (pid !== null) process.kill(pid, 'SIGKILL');
    if (lab) await runCommand(['ip', 'netns', 'del', netns()]);
    await broker?.close();
    listener?.close();
    await lab?.destroy();
    vhost.cleanup();
    tmp.cleanup();
  });

  test('the client gets the metadata route through the DHCP port; haproxy holds the address', async () => {
    await waitActive(0);
    await waitFor('haproxy in the namespace', haproxyPid, 10_000, 100);
    assert.deepEqual((await tapAddresses()).sort(), ['10.63.0.2/24', '169.254.169.254/32']);
    const got = await lease();
    assert.equal(got.ip, CLIENT_IP);
    assert.equal(got.routes, '169.254.169.254/32,10.63.0.2,0.0.0.0/0,10.63.0.1');
    assert.equal(got.ms, got.routes, 'option 249 carries the same routes');
  });

  test('the client reads its own metadata, signed, whatever headers it forges', async () => {
    const path = '/latest/meta-data/instance-id';
    assert.equal(await fetch(path), `${INSTANCE} ${CLIENT_IP} ${path}\n`);
    const forged = await fetch(path, [
      `X-Instance-ID: ${randomUUID()}`,
      'X-Forwarded-For: 10.63.0.99',
      `X-Kumo-Network-ID: ${randomUUID()}`,
      'X-Instance-ID-Signature: 00',
    ]);
    assert.equal(forged, `${INSTANCE} ${CLIENT_IP} ${path}\n`);
    const last = seen.at(-1) ?? {};
    assert.equal(last[META_HEADERS.tenantId], PROJECT);
    assert.equal(last[META_HEADERS.forwardedFor], CLIENT_IP);
    assert.equal(last[META_HEADERS.networkId], undefined, 'the relay sends only its own headers');
    assert.deepEqual(lookups.at(-1), { host, network_id: NET, ip: CLIENT_IP });
  });

  test('an agent restart adopts the running haproxy and the relay answers again', async () => {
    const pid = await haproxyPid();
    assert.ok(pid);
    await stopAgent();
    assert.equal(await haproxyPid(), pid, 'haproxy outlives the agent');
    const logAt = agentLog().length;
    const at = reports.length;
    startAgent();
    await waitActive(at);
    assert.equal(await haproxyPid(), pid, 'the same haproxy');
    const applied = agentLog().slice(logAt).split('\n');
    assert.deepEqual(
      applied.filter((l) => l.includes('"msg":"dhcp apply"')),
      [],
      'nothing applied',
    );
    assert.ok(
      applied.some((l) => l.includes('"msg":"metadata relay listening"')),
      'the relay is back',
    );
    assert.match(await fetch('/latest/meta-data/instance-id'), new RegExp(`^${INSTANCE} `));
  });

  test('a router on the subnet: haproxy, address and route option go; dnsmasq stays', async () => {
    const dnsmasq = await dnsmasqPid();
    state.routed = true;
    await hint();
    await waitFor('haproxy gone', async () => (await haproxyPid()) === null, 15_000, 100);
    await waitFor('the proxy files gone', () => !existsSync(proxyDir()), 5_000, 100);
    await waitFor(
      'the metadata address gone',
      async () => (await tapAddresses()).join() === '10.63.0.2/24',
    );
    assert.equal(await dnsmasqPid(), dnsmasq, 'dnsmasq reloaded, not restarted');
    const got = await lease();
    assert.equal(got.ip, CLIENT_IP);
    assert.equal(got.router, '10.63.0.1');
    assert.equal(got.routes, '', 'no option 121');
  });

  test('the router gone: the proxy and the route come back', async () => {
    state.routed = false;
    await hint();
    await waitFor('haproxy back', haproxyPid, 15_000, 100);
    assert.deepEqual((await tapAddresses()).sort(), ['10.63.0.2/24', '169.254.169.254/32']);
    const got = await lease();
    assert.equal(got.routes, '169.254.169.254/32,10.63.0.2,0.0.0.0/0,10.63.0.1');
    assert.match(await fetch('/openstack/latest'), new RegExp(`^${INSTANCE} `));
  });

  test('the option off: the restarted agent stops the proxy; on again, it is back', async () => {
    const log = await restartWith(false);
    assert.match(log, /enable_isolated_metadata is false: isolated metadata is off/);
    assert.equal(await haproxyPid(), null);
    assert.equal(existsSync(proxyDir()), false);
    assert.deepEqual(await tapAddresses(), ['10.63.0.2/24']);
    assert.equal((await lease()).routes, '', 'no option 121');
    await restartWith(true);
    await waitFor('haproxy back', haproxyPid, 15_000, 100);
    assert.equal((await lease()).routes, '169.254.169.254/32,10.63.0.2,0.0.0.0/0,10.63.0.1');
  });

  test('the network removed: no namespace, process or file is left', async () => {
    const haproxy = await haproxyPid();
    assert.ok(haproxy);
    state.exists = false;
    await hint();
    await waitFor('the state directory gone', () => !existsSync(stateDir()), 15_000, 100);
    const namespaces = (await runCommand(['ip', 'netns', 'list'])).stdout;
    assert.ok(!namespaces.includes(netns()), 'the namespace is gone');
    const cfg = `-f ${join(proxyDir(), 'haproxy.cfg')} `;
    assert.equal(await isRunning(haproxy, cfg), false, 'haproxy is gone');
    assert.equal(await dnsmasqPid(), null);
  });
});
