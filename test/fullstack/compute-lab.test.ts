/**
 * Servers end to end on two lab hosts: kumo-api, an OVS and a compute agent per host and a
 * DHCP agent, real libvirtd (TCG guests), real OVS and dnsmasq. Two servers on one network
 * boot to ACTIVE on different hosts, get their DHCP addresses, ping each other across the
 * tunnel and show it on their consoles through the API; every power action moves the API's
 * states; a rebuild (the openstack client's) restarts the guest on a new disk from
 * another image, whose command line it then boots with; the compute agents, stopped or killed, leave the guests running, and a starting
 * agent starts again the guests that should run (as after a host reboot); a delete leaves
 * no domain, tap, file or port; bad requests create nothing; a failed spawn goes ERROR
 * with its reason and releases everything.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { ADMIN_TOKEN, Cluster, ovsOf, runCommand } from '../helpers/cluster.ts';
import {
  consoleOutput,
  type GuestImages,
  getServer,
  type ServerView,
  uploadGuest,
  waitGone,
  waitStatus,
} from '../helpers/compute.ts';
import { waitFor } from '../helpers/env.ts';
import { buildTestGuest, GUEST_UP_MARKER, PING_MARKER } from '../helpers/guest.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';

const IPS = ['10.30.0.10', '10.30.0.11'] as const;
const virsh = (...args: string[]) => runCommand(['virsh', '-c', 'qemu:///system', ...args]);

describe('servers on two lab hosts', { timeout: 900_000 }, () => {
  let lab: Lab;
  let c: Cluster;
  let net: Network;
  let images: GuestImages;
  let guest: Awaited<ReturnType<typeof buildTestGuest>>;
  let probe: Endpoint;
  const servers: ServerView[] = [];
  const ports: Port[] = [];

  const hostName = (h: LabHost) => `cp-${lab.prefix}-${h.name}`;
  const labOf = (host: string) => lab.hosts.find((h) => hostName(h) === host) as LabHost;
  const start = (kind: 'ovs' | 'dhcp' | 'compute', h: LabHost) =>
    c.startAgentOn(kind, hostName(h), ovsOf(h));
  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const res = await c.http('POST', path, { [key]: body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return (res.body as Record<string, T>)[key] as T;
  };
  const action = async (id: string, body: unknown, status = 202) => {
    const res = await c.http('POST', `/servers/${id}/action`, body);
    assert.equal(res.status, status, JSON.stringify(res.body));
  };
  const domState = async (name: string) => (await virsh('domstate', name)).stdout.trim();
  const pingFromProbe = (ip: string) =>
    lab.exec(probe.netns, ['ping', '-c', '1', '-W', '2', ip]).then(
      () => true,
      () => false,
    );
  const boot = async (name: string, port: Port) => {
    const res = await c.http('POST', '/servers', {
      server: { name, flavorRef: '1', imageRef: images.machine, networks: [{ port: port.id }] },
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return (res.body as { server: { id: string } }).server.id;
  };
  const counts = async () => ({
    servers: ((await c.http('GET', '/servers')).body as { servers: unknown[] }).servers.length,
    ports: ((await c.http('GET', '/v2.0/ports')).body as { ports: unknown[] }).ports.length,
  });

  before(async () => {
    guest = await buildTestGuest();
    lab = await createLab({ hosts: 2 });
    c = await Cluster.create('sqlite');
    await c.startApi();
    start('dhcp', lab.hosts[0] as LabHost);
    for (const h of lab.hosts) {
      start('ovs', h);
      start('compute', h);
    }
    await waitFor(
      'two compute agents alive',
      async () => {
        const res = await c.http('GET', '/v2.0/agents?binary=kumo-compute-agent&alive=true');
        return (res.body as { agents: Agent[] }).agents.length === 2;
      },
      30_000,
    );
    images = await uploadGuest(c, guest, {
      cmdline: `${guest.cmdline} kumo.ping=${IPS.join(',')}`,
    });
    net = await post<Network>('/v2.0/networks', 'network', { name: 'compute-net' });
    const subnet = await post<{ id: string }>('/v2.0/subnets', 'subnet', {
      network_id: net.id,
      cidr: '10.30.0.0/24',
      ip_version: 4,
    });
    for (const ip of IPS) {
      ports.push(
        await post<Port>('/v2.0/ports', 'port', {
          network_id: net.id,
          fixed_ips: [{ subnet_id: subnet.id, ip_address: ip }],
        }),
      );
    }
    const probePort = await post<Port>('/v2.0/ports', 'port', {
      network_id: net.id,
      fixed_ips: [{ subnet_id: subnet.id, ip_address: '10.30.0.50' }],
    });
    probe = await lab.endpoint(lab.hosts[0] as LabHost, {
      ifaceId: probePort.id,
      mac: probePort.mac_address,
      cidr: '10.30.0.50/24',
    });
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test('two servers boot on two hosts, get their DHCP addresses and ping each other', async () => {
    const ids = [await boot('vm-a', ports[0] as Port), await boot('vm-b', ports[1] as Port)];
    for (const id of ids) servers.push(await waitStatus(c, id, 'ACTIVE', 180_000));
    const hosts = servers.map((s) => s['OS-EXT-SRV-ATTR:host']);
    assert.equal(new Set(hosts).size, 2, `one server per host: ${hosts.join(', ')}`);
    for (const [i, s] of servers.entries()) {
      assert.equal(s['OS-EXT-STS:power_state'], 1);
      assert.deepEqual(
        s.addresses['compute-net']?.map((a) => a.addr),
        [IPS[i]],
      );
      const timings = s['kumo:spawn_timings'];
      assert.ok(timings && typeof timings.boot === 'number', 'spawn timings are reported');
    }
    for (const [i, s] of servers.entries()) {
      const other = IPS[1 - i];
      const out = await waitFor(
        `${s.name} pinged ${other}`,
        async () => {
          const text = await consoleOutput(c, s.id);
          return text.includes(`${PING_MARKER} ${other} `) ? text : undefined;
        },
        120_000,
        1000,
      );
      assert.ok(out.includes(`${GUEST_UP_MARKER} ${IPS[i]}`), 'the guest got its address by DHCP');
      assert.ok(out.includes(`${PING_MARKER} ${other} ok`), `${s.name} reached ${other}`);
    }
    const short = await c.http('POST', `/servers/${servers[0]?.id}/action`, {
      'os-getConsoleOutput': { length: 1 },
    });
    assert.equal(short.status, 200);
    assert.equal((short.body as { output: string }).output.trim().split('\n').length, 1);
  });

  test('the openstack client lists and shows them and prints a console log', async () => {
    const list = await c.openstack(['server', 'list', '-f', 'json']);
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as { Name: string; Status: string; Networks: unknown }[];
    assert.deepEqual(rows.map((r) => [r.Name, r.Status]).sort(), [
      ['vm-a', 'ACTIVE'],
      ['vm-b', 'ACTIVE'],
    ]);
    const show = await c.openstack(['server', 'show', 'vm-b', '-f', 'json']);
    assert.equal(show.code, 0, show.stderr);
    const shown = JSON.parse(show.stdout) as Record<string, unknown>;
    assert.equal(shown['OS-EXT-SRV-ATTR:host'], servers[1]?.['OS-EXT-SRV-ATTR:host']);
    const log = await c.openstack(['console', 'log', 'show', 'vm-a']);
    assert.equal(log.code, 0, log.stderr);
    assert.ok(log.stdout.includes(`${GUEST_UP_MARKER} ${IPS[0]}`), log.stdout.slice(-500));
  });

  test('reboot, stop/start, pause/unpause and suspend/resume move the states', async () => {
    const s = servers[0] as ServerView;
    const dom = s['OS-EXT-SRV-ATTR:instance_name'];
    await action(s.id, { reboot: { type: 'SOFT' } });
    await waitStatus(c, s.id, 'ACTIVE');
    await action(s.id, { reboot: { type: 'HARD' } });
    await waitStatus(c, s.id, 'ACTIVE');
    await action(s.id, { 'os-stop': null });
    assert.equal((await waitStatus(c, s.id, 'SHUTOFF'))['OS-EXT-STS:power_state'], 4);
    assert.equal(await domState(dom), 'shut off');
    await action(s.id, { pause: null }, 409);
    await action(s.id, { 'os-start': null });
    await waitStatus(c, s.id, 'ACTIVE');
    await action(s.id, { pause: null });
    assert.equal((await waitStatus(c, s.id, 'PAUSED'))['OS-EXT-STS:power_state'], 3);
    assert.equal(await domState(dom), 'paused');
    await action(s.id, { unpause: null });
    await waitStatus(c, s.id, 'ACTIVE');
    await action(s.id, { suspend: null });
    await waitStatus(c, s.id, 'SUSPENDED');
    await action(s.id, { resume: null });
    await waitStatus(c, s.id, 'ACTIVE');
    assert.equal(await domState(dom), 'running');
    await waitFor(
      'the guest answers ping after all that',
      () => pingFromProbe(IPS[0]),
      90_000,
      500,
    );
  });

  test('rebuild onto another image restarts the guest on a new disk with that image; and back', async () => {
    const s = servers[1] as ServerView;
    const dom = s['OS-EXT-SRV-ATTR:instance_name'];
    const other = await uploadGuest(c, guest, {
      name: 'kumo-guest-nodhcp',
      cmdline: `${guest.cmdline} kumo.nodhcp`,
    });
    const backing = async () => {
      const xml = (await virsh('dumpxml', dom)).stdout;
      const disk = /<source file='([^']+\/disk)'/.exec(xml)?.[1] as string;
      const info = await runCommand(['qemu-img', 'info', '--force-share', '--output=json', disk]);
      return String(
        (JSON.parse(info.stdout) as { 'backing-filename'?: string })['backing-filename'],
      );
    };
    assert.ok((await backing()).endsWith(images.machine));
    const cli = await c.openstack(['server', 'rebuild', '--image', other.machine, s.id]);
    assert.equal(cli.code, 0, cli.stderr);
    const rebuilt = await waitStatus(c, s.id, 'ACTIVE', 180_000);
    const shown = rebuilt as unknown as { image: { id: string } };
    assert.equal(shown.image.id, other.machine);
    assert.ok((await backing()).endsWith(other.machine), 'the root disk is a new overlay');
    assert.match((await virsh('dumpxml', dom)).stdout, /kumo\.nodhcp/);
    await waitFor(
      'the rebuilt guest booted with the new image (no DHCP)',
      async () => (await consoleOutput(c, s.id)).includes(`${GUEST_UP_MARKER} none`),
      120_000,
      1000,
    );
    await action(s.id, { rebuild: { imageRef: images.machine } });
    await waitStatus(c, s.id, 'ACTIVE', 180_000);
    assert.ok((await backing()).endsWith(images.machine));
    await waitFor('the guest answers ping again', () => pingFromProbe(IPS[1]), 120_000, 500);
  });

  test('compute agents stopped or killed leave their guests running, restart them after a host reboot, and converge', async () => {
    for (const ip of IPS) await waitFor(`${ip} answers`, () => pingFromProbe(ip), 60_000, 500);
    const [a, b] = servers as [ServerView, ServerView];
    const procA = c.hostAgents.get(`compute@${a['OS-EXT-SRV-ATTR:host']}`);
    const procB = c.hostAgents.get(`compute@${b['OS-EXT-SRV-ATTR:host']}`);
    assert.equal(await c.stop(procA, 'SIGTERM'), 0);
    await c.stop(procB, 'SIGKILL');
    for (const s of servers) {
      assert.equal(await domState(s['OS-EXT-SRV-ATTR:instance_name']), 'running');
      assert.ok(await pingFromProbe(s.addresses['compute-net']?.[0]?.addr ?? ''), 'still answers');
    }
    // As if b's host had rebooted: its guest is gone, and the kernel's boot id is not the
    // one b's agent recorded, when the agent starts.
    const domB = b['OS-EXT-SRV-ATTR:instance_name'];
    assert.equal((await virsh('destroy', domB)).code, 0);
    const hostB = b['OS-EXT-SRV-ATTR:host'] as string;
    const bootId = join(c.dir.path, 'hosts', hostB, 'compute', 'boot_id');
    assert.ok(existsSync(bootId), "b's agent recorded the boot it runs in");
    writeFileSync(bootId, '00000000-0000-4000-8000-000000000000\n');
    for (const s of servers) {
      const host = s['OS-EXT-SRV-ATTR:host'] as string;
      c.startAgentOn('compute', host, ovsOf(labOf(host)));
    }
    await waitFor(
      'the agent started its running guest again',
      async () => ((await domState(domB)) === 'running' ? true : undefined),
      60_000,
    );
    await waitFor('it answers ping again', () => pingFromProbe(IPS[1]), 90_000, 500);
    await action(a.id, { pause: null });
    await waitStatus(c, a.id, 'PAUSED');
    await action(a.id, { unpause: null });
    await waitStatus(c, a.id, 'ACTIVE');
    for (const s of servers) {
      const now = await waitStatus(c, s.id, 'ACTIVE');
      assert.equal(now['OS-EXT-STS:power_state'], 1);
    }
  });

  test('invalid flavor, image or network → 400 (a port in use → 409) and nothing created', async () => {
    const before = await counts();
    const base = { name: 'bad', flavorRef: '1', imageRef: images.machine };
    const bad: [Record<string, unknown>, number, string][] = [
      [{ ...base, flavorRef: 'no-such-flavor' }, 400, 'badRequest'],
      [{ ...base, imageRef: '00000000-0000-4000-8000-000000000000' }, 400, 'badRequest'],
      [
        { ...base, networks: [{ uuid: '00000000-0000-4000-8000-000000000001' }] },
        400,
        'badRequest',
      ],
      [{ ...base, name: 'evil\nname' }, 400, 'badRequest'],
      // Nova's PortInUse is a conflict.
      [{ ...base, networks: [{ port: ports[0]?.id }] }, 409, 'conflictingRequest'],
    ];
    for (const [server, status, key] of bad) {
      const res = await c.http('POST', '/servers', { server });
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.ok(key in (res.body ?? {}), JSON.stringify(res.body));
    }
    assert.deepEqual(await counts(), before);
  });

  test('a spawn that fails goes ERROR with the reason and releases everything', async () => {
    const before = await counts();
    const broken = await c.http('POST', '/v2/images', {
      name: 'broken',
      disk_format: 'qcow2',
      container_format: 'bare',
    });
    const imageId = (broken.body as { id: string }).id;
    const made = await runCommand([
      'qemu-img',
      'create',
      '-f',
      'qcow2',
      '-F',
      'raw',
      '-b',
      '/etc/hostname',
      join(c.dir.path, 'broken.qcow2'),
      '1M',
    ]);
    assert.equal(made.code, 0, made.stderr);
    const up = await fetch(`${c.url}/v2/images/${imageId}/file`, {
      method: 'PUT',
      headers: { 'x-auth-token': ADMIN_TOKEN, 'content-type': 'application/octet-stream' },
      body: new Blob([new Uint8Array(readFileSync(join(c.dir.path, 'broken.qcow2')))]),
    });
    assert.equal(up.status, 204);
    const res = await c.http('POST', '/servers', {
      server: { name: 'doomed', flavorRef: '1', imageRef: imageId, networks: [{ uuid: net.id }] },
    });
    assert.equal(res.status, 202);
    const id = (res.body as { server: { id: string } }).server.id;
    const failed = await waitStatus(c, id, 'ERROR', 60_000);
    assert.match(failed.fault?.message ?? '', /backing file/i);
    const gone = await waitFor('the failed server released its port', async () => {
      const p = (await c.http('GET', `/v2.0/ports?device_id=${id}`)).body as { ports: Port[] };
      return p.ports.length === 0;
    });
    assert.ok(gone);
    const list = (await virsh('list', '--all', '--name')).stdout;
    assert.ok(!list.includes(failed['OS-EXT-SRV-ATTR:instance_name']), 'no domain left');
    const del = await c.http('DELETE', `/servers/${id}`);
    assert.equal(del.status, 204);
    await waitGone(c, id);
    assert.deepEqual(await counts(), before);
  });

  test('delete leaves no domain, tap, file or port behind', async () => {
    for (const s of servers) {
      const res = await c.http('DELETE', `/servers/${s.id}`);
      assert.equal(res.status, 204);
    }
    for (const s of servers) await waitGone(c, s.id);
    const domains = (await virsh('list', '--all', '--name')).stdout;
    for (const s of servers) {
      assert.ok(!domains.includes(s['OS-EXT-SRV-ATTR:instance_name']), 'domain undefined');
      const host = s['OS-EXT-SRV-ATTR:host'] as string;
      const h = labOf(host);
      const links = await lab.exec(h.netns, ['ip', '-o', 'link']);
      assert.ok(!links.includes(`tap${ports[servers.indexOf(s)]?.id.slice(0, 11)}`), 'no tap');
      const ovsPorts = await h.vsctl(['--columns=external_ids', 'list', 'Interface']);
      assert.ok(!ovsPorts.includes(s.id), 'no OVS port of the instance');
      const dir = join(c.dir.path, 'hosts', host, 'instances');
      const left = existsSync(dir) ? readdirSync(dir).filter((f) => f !== '_base') : [];
      assert.deepEqual(left, [], 'no instance files');
      const p = (await c.http('GET', `/v2.0/ports?device_id=${s.id}`)).body as { ports: Port[] };
      assert.deepEqual(p.ports, [], 'ports bound to the server are deleted');
    }
    assert.equal(await getServer(c, servers[0]?.id ?? ''), undefined);
  });
});
