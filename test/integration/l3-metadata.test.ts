/**
 * The L3 agent's instance metadata on a real host: one lab host (its own ovs-vswitchd,
 * br-int made by the test), the agent's `router` kind with `metadataSocket` set, real
 * namespaces, iptables and haproxy; the relay (agents/lib/metadata-relay.ts) on that socket
 * with a table for get_metadata_instance, forwarding to a stand-in metadata listener on
 * loopback that checks Nova's signature (test/helpers/metadata-peer.ts).
 *
 * Proves: a router gets its haproxy in the qrouter namespace and the redirect / mark / INPUT
 * rules, and a second reconcile plans nothing; a guest behind the router fetching
 * http://169.254.169.254/ gets its own instance, whatever X-Instance-ID / X-Forwarded-For /
 * X-Kumo-Router-ID it sends; tcp/9697 is unreachable from the outside (qg- side) and from a
 * guest dialling the router's address directly (nothing reaches the listener); a restarted
 * agent (a new kind, no memory) adopts the running haproxy; metadata turned off stops it and
 * removes its files and rules; a removed router leaves no haproxy, file or namespace.
 * Addresses live only inside the lab's and the agent's namespaces (and loopback).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { routerKind } from '../../agents/l3/agent.ts';
import type { L3Settings } from '../../agents/l3/desired.ts';
import { proxyPaths } from '../../agents/lib/metadata-proxy.ts';
import { startMetadataRelay } from '../../agents/lib/metadata-relay.ts';
import { type L3Router, parseRouterInfo } from '../../contracts/l3.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler } from '../../core/reconciler.ts';
import { findHaproxy, inNetns } from '../../host/haproxy/daemon.ts';
import { portDevice } from '../../host/ip/names.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { isRunning } from '../../host/process/daemon.ts';
import { runCommand } from '../helpers/cluster.ts';
import { tempDir } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';
import { type MetadataPeer, startMetadataPeer } from '../helpers/metadata-peer.ts';

const SECRET = 'l3-metadata-secret';
const fixed = (subnet: string, ip: string, cidr: string, gateway: string | null) => ({
  subnet_id: subnet,
  ip_address: ip,
  cidr,
  gateway_ip: gateway,
});

describe('L3 agent metadata proxy on a real host', { timeout: 60_000 }, () => {
  const tmp = tempDir('kumo-l3-meta-');
  const ROUTER = randomUUID();
  const VM = { instance_id: randomUUID(), project_id: randomUUID().replaceAll('-', '') };
  const [qr, qg] = [randomUUID(), randomUUID()];
  let router: L3Router | null;
  let lab: Lab;
  let h: LabHost;
  let ovsdb: OvsdbClient;
  let S: L3Settings;
  let guest: Endpoint;
  let outside: Endpoint;
  let peer: MetadataPeer;
  let relay: { close(): Promise<void> };
  const runner = createCommandRunner();
  const ns = () => `${lab.prefix}-qrouter-${ROUTER}`;
  const inNs = (argv: string[]) => runCommand(['ip', 'netns', 'exec', ns(), ...argv]);
  const paths = () => proxyPaths(join(S.stateRoot, ROUTER, 'metadata-proxy'));
  const curl = (from: Endpoint, ...args: string[]) =>
    lab.exec(from.netns, ['curl', '-sS', '--connect-timeout', '1', '--max-time', '5', ...args]);

  const kind = (settings = S) =>
    routerKind({
      settings,
      runner,
      log: silentLogger(),
      ovsdb: async () => ovsdb,
      getRouter: async (id) =>
        parseRouterInfo({ router: id === ROUTER ? structuredClone(router) : null }),
      updateFloatingIpStatuses: async () => {},
    });
  const reconcile = (settings = S) =>
    createReconciler({ log: silentLogger(), kinds: { router: kind(settings) } }).reconcile(
      'router',
      ROUTER,
    );
  const plan = async (settings = S) => {
    const k = kind(settings);
    const d = k.desired(await k.fetch(ROUTER), ROUTER);
    return k.plan(d, await k.observe(ROUTER, d), ROUTER);
  };
  const tag = (port: string, vlan: number) => h.vsctl(['set', 'Port', port, `tag=${vlan}`]);

  before(async () => {
    lab = await createLab({ hosts: 1 });
    h = lab.hosts[0] as LabHost;
    await h.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev']);
    ovsdb = await createOvsdbClient({ socket: `unix:${h.dbSocket}` });
    const socket = join(tmp.path, 'l3', 'metadata_proxy');
    S = {
      stateRoot: join(tmp.path, 'l3'),
      host: 'l3-meta-host',
      intBridge: 'br-int',
      vswitchdNetns: h.netns,
      netnsPrefix: `${lab.prefix}-`,
      sendArpCount: 0,
      metadataSocket: socket,
    };
    await runCommand(['mkdir', '-p', S.stateRoot]);
    peer = await startMetadataPeer(SECRET);
    relay = await startMetadataRelay({
      socket,
      secret: SECRET,
      nova: { host: '127.0.0.1', port: peer.port },
      log: silentLogger(),
      lookup: async (key, ip) =>
        'router_id' in key && key.router_id === ROUTER && ip === '10.81.0.5' ? VM : null,
    });
    router = {
      id: ROUTER,
      revision_number: 1,
      enable_snat: true,
      gw_port: {
        id: qg,
        network_id: randomUUID(),
        mac_address: 'fa:16:3e:81:00:0a',
        mtu: 1400,
        fixed_ips: [fixed(randomUUID(), '203.0.113.10', '203.0.113.0/24', '203.0.113.1')],
      },
      interfaces: [
        {
          id: qr,
          network_id: randomUUID(),
          mac_address: 'fa:16:3e:81:00:01',
          mtu: 1400,
          fixed_ips: [fixed(randomUUID(), '10.81.0.1', '10.81.0.0/24', '10.81.0.1')],
        },
      ],
      routes: [],
      floating_ips: [],
    };
    const ep = (mac: string, cidr: string) => lab.endpoint(h, { ifaceId: randomUUID(), mac, cidr });
    guest = await ep('fa:16:3e:81:00:05', '10.81.0.5/24');
    outside = await ep('fa:16:3e:83:00:01', '203.0.113.1/24');
    await lab.exec(guest.netns, ['ip', 'route', 'add', 'default', 'via', '10.81.0.1']);
    await tag(guest.name, 1);
    await tag(outside.name, 3);
  });
  after(async () => {
    router = null;
    await reconcile().catch(() => {});
    await relay?.close();
    await peer?.close();
    await ovsdb?.close();
    await runCommand(['ip', 'netns', 'del', ns()]).catch(() => {});
    await lab?.destroy();
    tmp.cleanup();
  });

  test('a router gets its haproxy and rules; a second reconcile plans nothing', async () => {
    await reconcile();
    await tag(portDevice('qr-', qr), 1);
    await tag(portDevice('qg-', qg), 3);
    const pid = await findHaproxy(paths());
    assert.ok(pid !== null, 'haproxy runs');
    assert.ok(await inNetns(pid, ns()), 'in the qrouter namespace');
    const save = (await inNs(['iptables-save'])).stdout;
    assert.match(
      save,
      /-A kumo-l3-PREROUTING -d 169\.254\.169\.254\/32 -i qr-\+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697/,
    );
    assert.match(
      save,
      /-A kumo-l3-PREROUTING -d 169\.254\.169\.254\/32 -i qr-\+ -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x1\/0xffff/,
    );
    assert.match(save, /-A kumo-l3-INPUT -p tcp -m tcp --dport 9697 -j DROP/);
    assert.deepEqual(await plan(), []);
  });

  test('a guest gets its own instance, whatever headers it forges', async () => {
    peer.seen.length = 0;
    const body = await curl(
      guest,
      '-H',
      `X-Instance-ID: ${randomUUID()}`,
      '-H',
      'X-Forwarded-For: 10.81.0.99',
      '-H',
      `X-Kumo-Router-ID: ${randomUUID()}`,
      'http://169.254.169.254/latest/meta-data/instance-id',
    );
    assert.equal(body, `${VM.instance_id} /latest/meta-data/instance-id`);
    assert.equal(peer.seen.length, 1);
    assert.ok(peer.seen[0]?.signed);
    assert.equal(peer.seen[0]?.headers['x-forwarded-for'], '10.81.0.5');
  });

  test('tcp/9697 is closed to the outside and to guests dialling the router directly', async () => {
    peer.seen.length = 0;
    await assert.rejects(curl(outside, 'http://203.0.113.10:9697/'), /Timeout was reached/);
    await assert.rejects(curl(guest, 'http://10.81.0.1:9697/'), /Timeout was reached/);
    assert.equal(peer.seen.length, 0, 'nothing reached the listener');
    await curl(guest, 'http://169.254.169.254/');
    assert.equal(peer.seen.length, 1, 'the redirected path still works');
  });

  test('a restarted agent (no memory) adopts the running haproxy', async () => {
    const pid = await findHaproxy(paths());
    assert.deepEqual(await plan(), []);
    await reconcile();
    assert.equal(await findHaproxy(paths()), pid);
  });

  test('metadata off: haproxy stopped, files and rules gone; on again: back', async () => {
    const off: L3Settings = { ...S };
    delete off.metadataSocket;
    const pid = (await findHaproxy(paths())) as number;
    await reconcile(off);
    assert.equal(await isRunning(pid, paths().config), false);
    assert.equal(existsSync(join(S.stateRoot, ROUTER, 'metadata-proxy')), false);
    assert.doesNotMatch((await inNs(['iptables-save'])).stdout, /9697|169\.254\.169\.254/);
    assert.deepEqual(await plan(off), []);
    await reconcile();
    assert.ok((await findHaproxy(paths())) !== null);
    assert.deepEqual(await plan(), []);
  });

  test('a removed router leaves no haproxy, file or namespace', async () => {
    const pid = (await findHaproxy(paths())) as number;
    router = null;
    await reconcile();
    assert.equal(await isRunning(pid, paths().config), false);
    assert.ok(!existsSync(`/run/netns/${ns()}`));
    assert.deepEqual(readdirSync(S.stateRoot), ['metadata_proxy']);
    assert.deepEqual(await plan(), []);
  });
});
