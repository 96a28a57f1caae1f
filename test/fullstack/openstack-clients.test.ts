/**
 * OpenStack's own clients against kumo-api with a real compute agent on one lab host (real
 * libvirtd TCG guests, OVS, dnsmasq): Debian's `openstack` CLI on the legacy single
 * endpoint and openstacksdk on the service roots (test/helpers/os-clients.ts) create two
 * servers at once, list them with `ip` and `name` regexes, show them at microversion
 * 2.16, lock, rebuild and read three console lines; and deactivate an image and share it
 * with a member (`glance member-create`: OSC 6.0 has no `image member create`, and its
 * `image add project` resolves the project through Keystone, which comes with identity).
 *
 * Invariant under test: what each client did is what the HTTP API then shows.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { ADMIN_TOKEN, Cluster, MEMBER_TOKEN, ovsOf, runCommand } from '../helpers/cluster.ts';
import {
  consoleOutput,
  type GuestImages,
  type ServerView,
  uploadGuest,
  waitStatus,
} from '../helpers/compute.ts';
import { waitFor } from '../helpers/env.ts';
import { buildTestGuest, GUEST_UP_MARKER, PING_MARKER, type TestGuest } from '../helpers/guest.ts';
import { createLab, type Lab, type LabHost } from '../helpers/lab.ts';
import { glance, os, osJson, sdk } from '../helpers/os-clients.ts';

type Row = { ID: string; Name: string; Status: string };
type Shown = ServerView & { locked?: boolean; image: { id: string } | '' };
type SdkServer = {
  id: string;
  name: string;
  status: string;
  is_locked: boolean;
  host_status: string | null;
  microversion: string | null;
  image: string | null;
};

describe('openstack CLI and openstacksdk against kumo-api and a compute agent', {
  timeout: 600_000,
}, () => {
  let lab: Lab;
  let c: Cluster;
  let guest: TestGuest;
  let images: GuestImages;
  let other: GuestImages;
  let net: Network;
  let rebuiltMark: string;
  const ids: Record<string, string> = {};

  /** The id of a server made by the first test; fails at once when it was not made. */
  const idOf = (name: string): string => {
    const id = ids[name];
    assert.ok(id, `no server ${name} (made by the multi-create test)`);
    return id;
  };
  const api = async (path: string, version?: string) => {
    const res = await fetch(`${c.url}${path}`, {
      headers: {
        'x-auth-token': 'admin-token-for-tests',
        ...(version ? { 'openstack-api-version': `compute ${version}` } : {}),
      },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const server = async (name: string, version = '2.16') =>
    ((await api(`/servers/${idOf(name)}`, version)).body as { server: Shown }).server;
  const ipOf = async (name: string) =>
    (await server(name)).addresses['clients-net']?.[0]?.addr as string;
  const post = async <T>(path: string, body: unknown): Promise<T> => {
    const res = await c.http('POST', path, body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as T;
  };
  const waitAll = async (names: string[]) => {
    const list = (await api('/servers/detail')).body as { servers: ServerView[] };
    for (const s of list.servers) ids[s.name] = s.id;
    for (const n of names) {
      assert.ok(ids[n], `a server named ${n}: ${list.servers.map((s) => s.name).join(', ')}`);
      await waitStatus(c, ids[n] as string, 'ACTIVE', 240_000);
    }
  };

  before(async () => {
    guest = await buildTestGuest();
    lab = await createLab({ hosts: 1 });
    c = await Cluster.create('sqlite');
    await c.startApi();
    const h = lab.hosts[0] as LabHost;
    const host = `cl-${lab.prefix}-${h.name}`;
    for (const kind of ['ovs', 'dhcp', 'compute'] as const) c.startAgentOn(kind, host, ovsOf(h));
    await waitFor(
      'the compute agent alive',
      async () => {
        const res = await c.http('GET', '/v2.0/agents?binary=kumo-compute-agent&alive=true');
        return (res.body as { agents: Agent[] }).agents.length === 1;
      },
      30_000,
    );
    images = await uploadGuest(c, guest);
    const flavor = { name: 'c1.guest', ram: 192, vcpus: 1, disk: 1, id: 'g1' };
    assert.equal((await c.http('POST', '/flavors', { flavor })).status, 200);
    net = (await post<{ network: Network }>('/v2.0/networks', { network: { name: 'clients-net' } }))
      .network;
    await post('/v2.0/subnets', {
      subnet: { network_id: net.id, cidr: '10.40.0.0/24', ip_version: 4 },
    });
    // The rebuild image's guest pings the DHCP port: its console shows the new disk booted.
    const dhcpIp = await waitFor('the DHCP port', async () => {
      const res = await c.http('GET', `/v2.0/ports?network_id=${net.id}&device_owner=network:dhcp`);
      return (res.body as { ports: Port[] }).ports[0]?.fixed_ips[0]?.ip_address;
    });
    other = await uploadGuest(c, guest, {
      name: 'kumo-guest-b',
      cmdline: `${guest.cmdline} kumo.ping=${dhcpIp}`,
    });
    rebuiltMark = `${PING_MARKER} ${dhcpIp} ok`;
  });
  after(async () => {
    await c?.cleanup();
    await lab?.destroy();
  });

  test('server create --min 2 --max 2, and the SDK with min_count/max_count 2', async () => {
    await os(c, [
      'server',
      'create',
      '--image',
      images.machine,
      '--flavor',
      'c1.guest',
      '--network',
      net.id,
      '--min',
      '2',
      '--max',
      '2',
      'cli',
    ]);
    await sdk(c, 'create_servers', {
      name: 'sdk',
      image: images.machine,
      flavor: 'g1',
      network: net.id,
      min: 2,
      max: 2,
    });
    await waitAll(['cli-1', 'cli-2', 'sdk-1', 'sdk-2']);
    const rows = await osJson<Row[]>(c, ['server', 'list']);
    assert.deepEqual(rows.map((r) => [r.Name, r.Status]).sort(), [
      ['cli-1', 'ACTIVE'],
      ['cli-2', 'ACTIVE'],
      ['sdk-1', 'ACTIVE'],
      ['sdk-2', 'ACTIVE'],
    ]);
  });

  test('server list --ip and --name take regexes, in the CLI and the SDK', async () => {
    const ip = await ipOf('cli-2');
    const exact = `^${ip.replaceAll('.', '\\.')}$`;
    const byIp = await osJson<Row[]>(c, ['server', 'list', '--ip', exact]);
    assert.deepEqual(
      byIp.map((r) => r.Name),
      ['cli-2'],
    );
    const byName = await osJson<Row[]>(c, ['server', 'list', '--name', '^sdk-[0-9]$']);
    assert.deepEqual(byName.map((r) => r.Name).sort(), ['sdk-1', 'sdk-2']);
    assert.deepEqual(await sdk(c, 'list_servers', { ip: exact }), ['cli-2']);
    assert.deepEqual(await sdk(c, 'list_servers', { name: 'cli-.' }), ['cli-1', 'cli-2']);
    assert.deepEqual(await sdk(c, 'list_servers', { ip: '^10\\.40\\.', name: '2$' }), [
      'cli-2',
      'sdk-2',
    ]);
  });

  test('server show --os-compute-api-version 2.16, and the SDK negotiating 2.16', async () => {
    const shown = await osJson<Record<string, unknown>>(c, [
      '--os-compute-api-version',
      '2.16',
      'server',
      'show',
      'cli-1',
    ]);
    assert.equal(shown.host_status, 'UP');
    assert.equal(shown.locked, false);
    const viaSdk = await sdk<SdkServer>(c, 'show_server', { id: idOf('sdk-1') });
    assert.equal(viaSdk.microversion, '2.16');
    assert.equal(viaSdk.host_status, 'UP');
    assert.equal(viaSdk.is_locked, false);
  });

  test('the CLI configured with one service root per command lists the same resources', async () => {
    const atRoot = async <T>(root: string, args: string[]) => {
      const auth = ['--os-auth-type', 'admin_token', '--os-token', ADMIN_TOKEN];
      const r = await runCommand([
        'openstack',
        ...auth,
        '--os-endpoint',
        `${c.url}${root}`,
        ...args,
      ]);
      assert.equal(r.code, 0, `${root} ${args.join(' ')}: ${r.stderr.slice(-1500)}`);
      return JSON.parse(r.stdout) as T;
    };
    type Named = { Name: string }[];
    const names = (list: Named) => list.map((x) => x.Name).sort();
    const legacy = await osJson<Named>(c, ['server', 'list']);
    assert.deepEqual(
      names(await atRoot<Named>('/compute/v2.1', ['server', 'list', '-f', 'json'])),
      names(legacy),
    );
    const images = await osJson<Named>(c, ['image', 'list']);
    assert.deepEqual(
      names(await atRoot<Named>('/image', ['image', 'list', '-f', 'json'])),
      names(images),
    );
    const nets = await osJson<Named>(c, ['network', 'list']);
    assert.deepEqual(
      names(await atRoot<Named>('/networking', ['network', 'list', '-f', 'json'])),
      names(nets),
    );
    assert.ok(names(nets).length > 0 && names(images).length > 0 && names(legacy).length > 0);
  });

  test('server lock: a locked server refuses non-admins, until unlocked', async () => {
    await os(c, ['server', 'lock', 'cli-1']);
    await sdk(c, 'lock_server', { id: idOf('sdk-1') });
    for (const name of ['cli-1', 'sdk-1']) {
      assert.equal((await server(name, '2.9')).locked, true, `${name} locked`);
      const stop = await c.http(
        'POST',
        `/servers/${idOf(name)}/action`,
        { 'os-stop': null },
        MEMBER_TOKEN,
      );
      assert.equal(stop.status, 409, JSON.stringify(stop.body));
    }
    await os(c, ['server', 'unlock', 'cli-1']);
    await sdk(c, 'unlock_server', { id: idOf('sdk-1') });
    for (const name of ['cli-1', 'sdk-1'])
      assert.equal((await server(name, '2.9')).locked, false, `${name} unlocked`);
  });

  test('server rebuild on another image restarts the guest on it', async () => {
    await os(c, ['server', 'rebuild', '--image', other.machine, 'cli-2']);
    await sdk(c, 'rebuild_server', { id: idOf('sdk-2'), image: other.machine, password: 'Pw-1x' });
    for (const name of ['cli-2', 'sdk-2']) {
      const s = (await waitStatus(c, idOf(name), 'ACTIVE', 240_000)) as Shown;
      assert.equal(s.image === '' ? '' : s.image.id, other.machine);
      await waitFor(
        `${name} booted the new image (${rebuiltMark})`,
        async () => (await consoleOutput(c, s.id)).includes(rebuiltMark),
        120_000,
        1000,
      );
    }
  });

  test('console log show --lines 3 prints the last three parts of the log', async () => {
    for (const name of ['cli-1', 'sdk-1'])
      await waitFor(
        `${name} console`,
        async () => (await consoleOutput(c, idOf(name))).includes(GUEST_UP_MARKER),
        120_000,
        1000,
      );
    // Nova's tail: the log split on \n, its last N parts joined again (a log ending in a
    // newline gives N-1 lines and an empty last part).
    const cli = await os(c, ['console', 'log', 'show', '--lines', '3', 'cli-1']);
    assert.equal(cli.split('\n').length, 3, JSON.stringify(cli));
    assert.ok((await consoleOutput(c, idOf('cli-1'))).includes(cli), 'the tail of the log');
    const viaSdk = await sdk<string>(c, 'console_output', { id: idOf('sdk-1'), lines: 3 });
    assert.equal(viaSdk.split('\n').length, 3, JSON.stringify(viaSdk));
    assert.ok((await consoleOutput(c, idOf('sdk-1'))).includes(viaSdk), 'the tail of the log');
  });

  test('image set --deactivate / --activate, the SDK likewise, and member create', async () => {
    const file = join(c.dir.path, 'small.img');
    writeFileSync(file, 'a small image');
    const made = await osJson<{ id: string }>(c, [
      'image',
      'create',
      '--file',
      file,
      '--disk-format',
      'raw',
      '--container-format',
      'bare',
      '--shared',
      'clients-img',
    ]);
    const status = async () =>
      ((await api(`/v2/images/${made.id}`)).body as { status: string }).status;
    await os(c, ['image', 'set', '--deactivate', 'clients-img']);
    assert.equal(await status(), 'deactivated');
    assert.equal(
      (
        await fetch(`${c.url}/v2/images/${made.id}/file`, {
          headers: { 'x-auth-token': MEMBER_TOKEN },
        })
      ).status,
      403,
    );
    await os(c, ['image', 'set', '--activate', 'clients-img']);
    assert.equal(await status(), 'active');
    await sdk(c, 'deactivate_image', { image: made.id });
    assert.deepEqual(await sdk(c, 'show_image', { image: made.id }), { status: 'deactivated' });
    await sdk(c, 'reactivate_image', { image: made.id });
    assert.equal(await status(), 'active');

    await glance(c, ['member-create', made.id, 'project-b']);
    const viaSdk = await sdk(c, 'add_member', { image: made.id, member: 'project-c' });
    assert.deepEqual(viaSdk, { member_id: 'project-c', image_id: made.id, status: 'pending' });
    const members = (await api(`/v2/images/${made.id}/members`)).body as {
      members: { member_id: string; status: string }[];
    };
    assert.deepEqual(members.members.map((m) => [m.member_id, m.status]).sort(), [
      ['project-b', 'pending'],
      ['project-c', 'pending'],
    ]);
    const listed = await osJson<{ 'Member ID': string }[]>(c, ['image', 'member', 'list', made.id]);
    assert.deepEqual(listed.map((m) => m['Member ID']).sort(), ['project-b', 'project-c']);
  });
});
