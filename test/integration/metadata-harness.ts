/**
 * The metadata tests' world, on the api-servers harness (kumo-api's app and real RPC
 * handler on a real database of either engine and a real RabbitMQ vhost): the compute
 * agent h1, the DHCP agent n1 (which hosts net1 and netB) and the L3 agent n1; net1 and
 * netB both 10.1.0.0/24; server A on net1 and server B on netB, both at 10.1.0.10; router
 * r1 (bound to n1) with its gateway on `public` and an interface on net1; a floating IP on
 * A's port; A's key pair `key1` and user data set with SQL (as POST /servers stores them).
 * Also kumo-api's metadata listener on a loopback port with the shared secret SECRET.
 *
 * Call `metadataWorld(engine)` inside a describe; call `build()` at the start of a test (the
 * harness empties the database before each test).
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, afterEach, before } from 'node:test';
import { buildMetadataApp } from '../../api/metadata/listener.ts';
import { REPORTS_TOPIC } from '../../contracts/messages.ts';
import { signInstanceId } from '../../contracts/metadata.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { silentLogger } from '../../core/log.ts';
import { waitFor } from '../helpers/env.ts';
import { serversHarness } from './api-servers-harness.ts';

export const SECRET = 'metadata-secret-xyz';
export const PUBLIC_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl kumo@test';
export const USER_DATA = '#!/bin/sh\necho hello from user data\n';

export interface World {
  a: string;
  b: string;
  seqA: number;
  net1: string;
  netB: string;
  router: string;
  floatingIp: string;
  portA: Port;
  projectId: string;
}

async function l3Agent(h: ReturnType<typeof serversHarness>) {
  const time = h.clock.now().toISOString();
  await h.api.cast(REPORTS_TOPIC, 'report_state', {
    agent_state: {
      agent_type: 'L3 agent',
      binary: 'kumo-l3-agent',
      topic: 'l3_agent',
      host: 'n1',
      start_flag: true,
      configurations: {},
    },
    time,
  });
  await waitFor('the L3 agent n1', async () => {
    const rows = await h.db.query(
      'SELECT 1 AS one FROM agents WHERE agent_type = ? AND host = ? AND heartbeat_timestamp = ?',
      ['L3 agent', 'n1', time],
    );
    return rows.length === 1;
  });
}

async function routed(h: ReturnType<typeof serversHarness>, portId: string) {
  const ext = await h.ok<Network>('POST', '/v2.0/networks', 'network', {
    network: { name: 'public', 'router:external': true },
  });
  await h.ok('POST', '/v2.0/subnets', 'subnet', {
    subnet: { network_id: ext.id, cidr: '172.24.4.0/24', ip_version: 4 },
  });
  const r = await h.ok<{ id: string }>('POST', '/v2.0/routers', 'router', {
    router: { name: 'r1', external_gateway_info: { network_id: ext.id } },
  });
  const added = await h.call('PUT', `/v2.0/routers/${r.id}/add_router_interface`, {
    subnet_id: h.net.s.id,
  });
  assert.equal(added.status, 200, added.raw);
  const fip = await h.ok<{ floating_ip_address: string }>(
    'POST',
    '/v2.0/floatingips',
    'floatingip',
    {
      floatingip: { floating_network_id: ext.id, port_id: portId },
    },
  );
  await waitFor('r1 bound to n1', async () => {
    const rows = await h.db.query(
      'SELECT 1 AS one FROM router_l3_agent_bindings WHERE router_id = ?',
      [r.id],
    );
    return rows.length === 1;
  });
  return { router: r.id, floatingIp: fip.floating_ip_address };
}

/** A's key pair and user data, as POST /servers stores them. */
async function keyAndUserData(h: ReturnType<typeof serversHarness>, id: string) {
  const [row] = await h.db.query<{ user_id: string }>(
    'SELECT user_id FROM instances WHERE id = ?',
    [id],
  );
  await h.db.query(
    `INSERT INTO keypairs (seq, user_id, name, type, public_key, fingerprint, created_at)
      VALUES (1, ?, 'key1', 'ssh', ?, 'fp', '2026-11-22T10:00:00Z')`,
    [row?.user_id ?? '', PUBLIC_KEY],
  );
  await h.db.query('UPDATE instances SET key_name = ?, key_data = ?, user_data = ? WHERE id = ?', [
    'key1',
    PUBLIC_KEY,
    Buffer.from(USER_DATA).toString('base64'),
    id,
  ]);
}

export function metadataWorld(engine: 'sqlite' | 'postgres') {
  const h = serversHarness(engine);
  let server: Server;
  let port = 0;
  before(async () => {
    server = buildMetadataApp({ db: h.db, secret: SECRET, log: silentLogger(), now: h.clock.now });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  // The harness empties networks before each test: floating IPs, routers and key pairs go
  // first.
  afterEach(async () => {
    const list = async (url: string, key: string) =>
      ((await h.call('GET', url)).body?.[key] ?? []) as { id: string }[];
    for (const f of await list('/v2.0/floatingips', 'floatingips'))
      assert.equal((await h.call('DELETE', `/v2.0/floatingips/${f.id}`)).status, 204);
    for (const r of await list('/v2.0/routers', 'routers')) {
      const subnets = await h.db.query<{ subnet_id: string }>(
        `SELECT a.subnet_id FROM router_ports rp JOIN ipallocations a ON a.port_id = rp.port_id
          WHERE rp.router_id = ? AND rp.port_type = ?`,
        [r.id, 'network:router_interface'],
      );
      for (const { subnet_id } of subnets)
        await h.call('PUT', `/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id });
      assert.equal((await h.call('DELETE', `/v2.0/routers/${r.id}`)).status, 204);
    }
    await h.db.query('DELETE FROM keypairs');
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function build(): Promise<World> {
    await h.report('h1');
    await l3Agent(h);
    const netB = await h.netWithSubnet('netB', '10.1.0.0/24');
    const a = await h.boot({
      name: 'Guest A_1',
      networks: [{ uuid: h.net.n.id, fixed_ip: '10.1.0.10' }],
    });
    const b = await h.boot({
      name: 'guest-b',
      networks: [{ uuid: netB.n.id, fixed_ip: '10.1.0.10' }],
    });
    const [portA] = await h.portsOf(a);
    assert.ok(portA);
    await keyAndUserData(h, a);
    const { router, floatingIp } = await routed(h, portA.id);
    const [row] = await h.db.query<{ seq: unknown; project_id: string }>(
      'SELECT seq, project_id FROM instances WHERE id = ?',
      [a],
    );
    const seqA = Number(row?.seq);
    const projectId = row?.project_id ?? '';
    return { a, b, seqA, net1: h.net.n.id, netB: netB.n.id, router, floatingIp, portA, projectId };
  }

  /** A request to the listener, signed for `id` in `project` (`headers` override, `only` replaces). */
  async function get(
    path: string,
    id: string,
    project: string,
    opts: { headers?: Record<string, string>; only?: Record<string, string>; method?: string } = {},
  ) {
    const headers = opts.only ?? {
      'x-instance-id': id,
      'x-tenant-id': project,
      'x-instance-id-signature': signInstanceId(SECRET, id),
      ...opts.headers,
    };
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: opts.method ?? 'GET',
      headers,
    });
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  }

  return { h, build, get, port: () => port };
}
