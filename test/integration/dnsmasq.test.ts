/**
 * The DHCP data path for real: namespace A runs dnsmasq (host/process) with the files and
 * argv host/dnsmasq renders, on a veth whose other end is in namespace B, where busybox
 * `udhcpc` asks for a lease with one port's MAC. Needs root, dnsmasq-base, busybox-static.
 *
 * Invariants under test: a client gets exactly its port's address and the subnet's
 * options (router, DNS, MTU, classless routes, domain); after a hosts-file rewrite and a
 * SIGHUP a renewing client is moved to its port's new address without a restart; a
 * removed port gets no lease; a port replaced by another MAC on the same IP is refused
 * while the old lease stands, and once the DHCP agent's own reconcile (observe → plan →
 * apply, dhcp_release in the namespace) released it the new client gets the address and
 * the next reconcile plans nothing; stop leaves no dnsmasq. Addresses exist only inside
 * the test's namespaces (10.9.0.0/24). Needs dnsmasq-utils (dhcp_release) too.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DhcpSettings, desiredDhcp } from '../../agents/dhcp/desired.ts';
import { observeNetwork } from '../../agents/dhcp/observe.ts';
import { planDhcp } from '../../agents/dhcp/plan.ts';
import { runSteps } from '../../agents/lib/steps.ts';
import type { DhcpNetwork, DhcpPort } from '../../contracts/dhcp.ts';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { dnsmasqArgv, dnsmasqIdentity, dnsmasqPaths } from '../../host/dnsmasq/argv.ts';
import { readDnsmasqFiles, writeNetworkFiles } from '../../host/dnsmasq/files.ts';
import { planReload } from '../../host/dnsmasq/reload.ts';
import {
  addrAdd,
  ipBatch,
  ipCommand,
  linkSetMac,
  linkSetMtu,
  linkSetNetns,
  linkUp,
  vethAdd,
} from '../../host/ip/link.ts';
import { dhcpNamespace, portDevice } from '../../host/ip/names.ts';
import { netnsAddCommand } from '../../host/ip/netns.ts';
import {
  findRunning,
  isRunning,
  procStat,
  readPid,
  signalIfRunning,
  startDaemon,
  stopByPidfile,
} from '../../host/process/daemon.ts';
import { waitFor } from '../helpers/env.ts';
import { FakeOvsdb } from '../helpers/fake-ovsdb.ts';

const runner = createCommandRunner();
const tag = randomBytes(3).toString('hex');
const NET_ID = randomUUID();
const SUBNET = randomUUID();
/** The server side is the real qdhcp namespace name; the client is one more namespace. */
const A = dhcpNamespace(NET_ID);
const B = `kumo-dm-${tag}-b`;
const base = mkdtempSync(join(tmpdir(), 'kumo-dnsmasq-'));
// dnsmasq drops to `nobody` after start and re-reads its files as that user on SIGHUP:
// the state directory must be world-traversable (mkdtemp makes it 0700).
chmodSync(base, 0o755);
const stateDir = join(base, NET_ID);
const paths = dnsmasqPaths(stateDir);
const identity = dnsmasqIdentity(paths);
const script = join(base, 'udhcpc.sh');
const CLIENT = `kdc${tag}`;

const port = (n: number, ip: string): DhcpPort => ({
  id: randomUUID(),
  mac_address: `fa:16:3e:d0:00:${n.toString(16).padStart(2, '0')}`,
  device_owner: n === 2 ? 'network:dhcp' : 'compute:nova',
  fixed_ips: [{ subnet_id: SUBNET, ip_address: ip }],
});
const dhcpPort = port(2, '10.9.0.2');
const port1 = port(0x11, '10.9.0.11');
const port2 = port(0x12, '10.9.0.12');
/** port2's successor: another MAC for the same address. */
const port3 = port(0x13, '10.9.0.12');
const TAP = portDevice('tap', dhcpPort.id);

function network(ports: DhcpPort[]): DhcpNetwork {
  return {
    id: NET_ID,
    revision_number: 1,
    mtu: 1450,
    subnets: [
      {
        id: SUBNET,
        cidr: '10.9.0.0/24',
        ip_version: '4',
        gateway_ip: '10.9.0.1',
        enable_dhcp: true,
        dns_nameservers: ['10.9.0.53'],
        host_routes: [{ destination: '192.168.5.0/24', nexthop: '10.9.0.254' }],
        routed: false,
      },
    ],
    ports,
    dhcp_port: dhcpPort,
  };
}

interface Lease {
  event: string;
  [k: string]: string;
}

/** The `KUMO ...` lines the udhcpc script printed, as objects. */
function parseEvents(stdout: string): Lease[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('KUMO '))
    .map((l) => {
      const o: Record<string, string> = {};
      for (const kv of l.slice(5).split('|')) {
        const i = kv.indexOf('=');
        o[kv.slice(0, i)] = kv.slice(i + 1);
      }
      return o as Lease;
    });
}

/** One-shot client: `udhcpc -n -q`; resolves with the bound event or rejects (no lease). */
async function oneShot(): Promise<Lease> {
  const { stdout } = await runner.run({
    argv: ['busybox', 'udhcpc', '-i', CLIENT, '-f', '-n', '-q', '-t', '3', '-T', '1'].concat([
      '-s',
      script,
      '-O',
      'staticroutes',
    ]),
    netns: B,
    timeoutMs: 20_000,
  });
  const bound = parseEvents(stdout).find((e) => e.event === 'bound');
  assert.ok(bound, stdout);
  return bound;
}

let client: ChildProcess | undefined;
let clientOut = '';

async function waitForEvent(pred: (e: Lease) => boolean, ms = 15_000): Promise<Lease> {
  const until = Date.now() + ms;
  for (;;) {
    const hit = parseEvents(clientOut).find(pred);
    if (hit) return hit;
    if (Date.now() > until) assert.fail(`no matching udhcpc event; output:\n${clientOut}`);
    await sleep(50);
  }
}

describe('dnsmasq serving a network to a real DHCP client', () => {
  before(async () => {
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        'echo "KUMO event=$1|ip=$ip|mask=$mask|router=$router|dns=$dns|mtu=$mtu|routes=$staticroutes|domain=$domain|hostname=$hostname|lease=$lease"',
        'case "$1" in',
        '  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;',
        '  deconfig|leasefail|nak) ip addr flush dev "$interface" ;;',
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(script, 0o755);
    await runner.run(netnsAddCommand(A));
    await runner.run(netnsAddCommand(B));
    await runner.run(ipCommand(vethAdd(TAP, CLIENT), A));
    await runner.run(ipCommand(linkSetNetns(CLIENT, B), A));
    await runner.run(
      ipBatch(
        [
          linkSetMac(TAP, dhcpPort.mac_address),
          linkSetMtu(TAP, 1450),
          addrAdd(TAP, '10.9.0.2/24'),
          linkUp(TAP),
          linkUp('lo'),
        ],
        A,
      ),
    );
    await runner.run(ipBatch([linkSetMac(CLIENT, port1.mac_address), linkUp(CLIENT)], B));
  });

  after(async () => {
    client?.kill('SIGKILL');
    const pid = await readPid(paths.pid);
    if (pid !== null && (await isRunning(pid, identity))) process.kill(pid, 'SIGKILL');
    for (const ns of [A, B]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {}
    }
    rmSync(base, { recursive: true, force: true });
  });

  test('dnsmasq starts in the namespace and a client gets exactly its port’s lease', async () => {
    const { changed } = await writeNetworkFiles(network([dhcpPort, port1, port2]), stateDir);
    assert.deepEqual(changed, ['hosts', 'addnHosts', 'opts']);
    const argv = dnsmasqArgv(network([dhcpPort, port1, port2]), { stateDir, interfaceName: TAP });
    const pid = await startDaemon(
      runner,
      { argv, netns: A },
      { pidfile: paths.pid, expected: identity },
    );
    assert.equal(await findRunning(paths.pid, identity), pid);

    const lease = await oneShot();
    assert.equal(lease.ip, '10.9.0.11');
    assert.equal(lease.mask, '24');
    assert.equal(lease.router, '10.9.0.1');
    assert.equal(lease.dns, '10.9.0.53');
    assert.equal(lease.mtu, '1450');
    assert.equal(lease.routes, '192.168.5.0/24 10.9.0.254 0.0.0.0/0 10.9.0.1');
    assert.equal(lease.domain, 'openstacklocal');
    assert.equal(lease.hostname, 'host-10-9-0-11');
    assert.equal(lease.lease, '86400');
    assert.match(
      readFileSync(paths.leases, 'utf8'),
      /fa:16:3e:d0:00:11 10\.9\.0\.11 host-10-9-0-11/,
    );
  });

  test('hosts file rewritten + SIGHUP: a renewing client moves to the new address', async () => {
    // A long-running client holding the 10.9.0.11 lease; SIGUSR1 makes it renew.
    client = spawn(
      'ip',
      [
        'netns',
        'exec',
        B,
        'busybox',
        'udhcpc',
        '-i',
        CLIENT,
        '-f',
        '-t',
        '3',
        '-T',
        '1',
        '-s',
        script,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    client.stdout?.on('data', (d: Buffer) => {
      clientOut += d.toString();
    });
    client.stderr?.on('data', (d: Buffer) => {
      clientOut += d.toString();
    });
    await waitForEvent((e) => e.event === 'bound' && e.ip === '10.9.0.11');

    const moved = { ...port1, fixed_ips: [{ subnet_id: SUBNET, ip_address: '10.9.0.21' }] };
    const desiredNet = network([dhcpPort, moved, port2]);
    const before = await readDnsmasqFiles(stateDir);
    const { files, changed } = await writeNetworkFiles(desiredNet, stateDir);
    assert.deepEqual(changed, ['hosts', 'addnHosts']);
    const plan = planReload(
      { running: true, files: before, addresses: ['10.9.0.2/24'] },
      { files, addresses: ['10.9.0.2/24'] },
    );
    assert.equal(plan.action, 'reload');
    const pidBefore = await readPid(paths.pid);
    assert.equal(await signalIfRunning(paths.pid, identity, 'SIGHUP'), true);
    await sleep(200);

    clientOut = '';
    client.kill('SIGUSR1');
    const lease = await waitForEvent((e) => e.event === 'bound' && e.ip === '10.9.0.21');
    assert.equal(lease.hostname, 'host-10-9-0-21');
    // The renewal was refused (the port's address changed) and the client started over.
    assert.match(clientOut, /received NAK|event=nak/);
    assert.equal(await readPid(paths.pid), pidBefore, 'reloaded, not restarted');
    client.kill('SIGTERM');
    await new Promise((r) => client?.once('exit', r));
    client = undefined;
  });

  test('a removed port gets no lease; the others still do', async () => {
    await writeNetworkFiles(network([dhcpPort, port2]), stateDir);
    assert.equal(await signalIfRunning(paths.pid, identity, 'SIGHUP'), true);
    await sleep(200);
    const e = await oneShot().then(
      () => assert.fail('the removed port got a lease'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof CommandError, String(e));
    assert.equal(e.exitCode, 1);
    await runner.run(ipBatch([linkSetMac(CLIENT, port2.mac_address)], B));
    assert.equal((await oneShot()).ip, '10.9.0.12');
  });

  test('a port replaced by another MAC on its IP: refused until the agent releases the old lease', async (t) => {
    const replaced = network([dhcpPort, port3]);
    await writeNetworkFiles(replaced, stateDir);
    assert.equal(await signalIfRunning(paths.pid, identity, 'SIGHUP'), true);
    await runner.run(ipBatch([linkSetMac(CLIENT, port3.mac_address)], B));
    const refused = await oneShot().then(
      (l) => `leased ${l.ip}`,
      (e: unknown) => (e instanceof CommandError ? 'refused' : String(e)),
    );
    assert.equal(refused, 'refused', 'dnsmasq keeps 10.9.0.12 for the old MAC');

    const settings: DhcpSettings = {
      stateRoot: base,
      leaseSeconds: 86400,
      intBridge: 'br-int',
      netnsPrefix: '',
    };
    // The tap is a veth here: OVSDB knows no port of that name.
    const deps = { runner, log: silentLogger(), ovsdb: async () => new FakeOvsdb() };
    const reconcile = async () => {
      const desired = desiredDhcp(replaced, settings);
      const observed = await observeNetwork(deps, settings, NET_ID, desired);
      const steps = planDhcp(desired, observed, settings, NET_ID);
      await runSteps(deps, steps);
      return steps.map((st) =>
        st.kind === 'command' ? `${st.spec.netns} ${st.spec.argv.join(' ')}` : st.kind,
      );
    };
    const started = Date.now();
    const [signal, marker, ...released] = await reconcile();
    assert.equal(signal, 'signal', 'the files were written, not yet served: reload first');
    assert.equal(marker, 'file', 'then the served marker');
    assert.deepEqual(released.sort(), [
      `${A} dhcp_release ${TAP} 10.9.0.12 ${port2.mac_address} 01:${port2.mac_address}`,
      `${A} dhcp_release ${TAP} 10.9.0.21 ${port1.mac_address} 01:${port1.mac_address}`,
    ]);
    await waitFor('dnsmasq to write its leases without the released ones', () => {
      const text = readFileSync(paths.leases, 'utf8');
      return !text.includes(port1.mac_address) && !text.includes(port2.mac_address);
    });
    const lease = await oneShot();
    t.diagnostic(`reconcile + release + new lease: ${Date.now() - started} ms`);
    assert.equal(lease.ip, '10.9.0.12');
    assert.equal(lease.hostname, 'host-10-9-0-12');
    assert.match(
      readFileSync(paths.leases, 'utf8'),
      new RegExp(`${port3.mac_address} 10\\.9\\.0\\.12 `),
    );
    assert.deepEqual(await reconcile(), [], 'the next reconcile releases nothing');
  });

  test('stop: dnsmasq is gone and its pid file removed', async () => {
    const pid = await readPid(paths.pid);
    assert.ok(pid !== null);
    assert.equal(await stopByPidfile(paths.pid, identity), 'terminated');
    assert.equal(await isRunning(pid, identity), false);
    const stat = await procStat(pid);
    assert.ok(stat === null || stat.state === 'Z', `state ${stat?.state}`);
    assert.equal(await findRunning(paths.pid, identity), null);
  });
});
