/**
 * The harness of the api-servers integration tests: kumo-api's app, report consumer and
 * real RPC handler on one broker, and a second broker that plays the agents (it consumes
 * `compute_agent.<host>`, `dhcp_agent.<host>` and `volume_agent.<host>`, answers get_console_output, calls
 * get_instance / get_host_instances and casts update_instance on q-plugin, which the
 * API's handler serves one message at a time so reports apply in order), on a real
 * database of either engine. Images (plain, kernel, ramdisk, direct, queued) are
 * uploaded once; before each test every server, port, network and agent is removed and
 * the DHCP agent n1 and network net1 (10.1.0.0/24) are made again.
 *
 * Call `serversHarness(engine, settings?)` inside a describe (settings: ApiSettings to
 * override): it registers the hooks and returns the helpers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, beforeEach } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type ApiSettings, buildApp } from '../../api/app.ts';
import type { Authenticator } from '../../api/caller.ts';
import { staticCaller } from '../../api/caller.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { createPort } from '../../api/db/ports.ts';
import { claimPort, insertInstance } from '../../api/db/servers.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { resolveFlavor, resolveImage } from '../../api/routes/server-refs.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import { COMPUTE_OWNER, placeInstance } from '../../api/scheduler/compute.ts';
import type { AgentState } from '../../contracts/agents.ts';
import type { Image } from '../../contracts/compute.ts';
import { GetHostInstancesResult, GetInstanceResult } from '../../contracts/instances.ts';
import {
  type ArgsOf,
  EXCHANGE,
  hostQueue,
  type Message,
  PLUGIN_TOPIC,
  REPORTS_TOPIC,
} from '../../contracts/messages.ts';
import {
  DEFAULT_PROJECT_ID,
  type Network,
  type Port,
  type Subnet,
} from '../../contracts/network.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from '../helpers/env.ts';

export const ADMIN = 'admin-token-xyz';
export const MEMBER = 'member-token-xyz';
export const DOWN = 30;
export const CONSOLE = 'line one\nline two\nline three\n';
/** Agents the fake-agent broker answers for; h3 reports but never consumes. */
const CONSUMED = ['h1', 'h2'] as const;
/** Storage hosts whose volume agent queue the fake-agent broker consumes (hints only). */
const VOLUME_HOSTS = ['s1', 's2'] as const;

export type Body = Record<string, unknown>;
export type Server = Record<string, unknown> & { id: string; status: string };

const computeState = (host: string, conf: Body = {}): AgentState => ({
  agent_type: 'Compute agent',
  binary: 'kumo-compute-agent',
  topic: 'compute_agent',
  host,
  start_flag: true,
  configurations: {
    vcpus: 4,
    memory_mb: 4096,
    local_gb: 40,
    cpu_allocation_ratio: 1.0,
    ram_allocation_ratio: 1.0,
    disk_allocation_ratio: 1.0,
    reserved_host_memory_mb: 512,
    ...conf,
  } as AgentState['configurations'],
});
const dhcpState = (host: string): AgentState => ({
  agent_type: 'DHCP agent',
  binary: 'kumo-dhcp-agent',
  topic: 'dhcp_agent',
  host,
  start_flag: true,
  configurations: { networks: 0 },
});

export function serversHarness(
  engine: 'sqlite' | 'postgres',
  extra: Partial<ApiSettings> = {},
  /** Keystone tokens (test/helpers/tokens.ts) beside the static ones. */
  tokens?: Authenticator,
) {
  const dir = tempDir();
  const database = testDatabase(engine, dir.path);
  let vhost: Vhost;
  let db: Db;
  let api: Broker;
  let agents: Broker;
  let app: FastifyInstance;
  let now = new Date('2026-11-22T10:00:00.000Z');
  const clock = { now: () => now };
  const advance = (s: number) => {
    now = new Date(now.getTime() + s * 1000);
  };
  const settings: ApiSettings = {
    adminToken: ADMIN,
    memberTokens: [MEMBER],
    agentDownTime: DOWN,
    bodyLimit: 1 << 20,
    images: { dir: join(dir.path, 'images'), sizeLimit: 1 << 20 },
    ...extra,
  };
  const received: { queue: string; message: Message }[] = [];
  const images: Record<'plain' | 'kernel' | 'ramdisk' | 'direct' | 'queued', string> = {
    plain: '',
    kernel: '',
    ramdisk: '',
    direct: '',
    queued: '',
  };
  let net: { n: Network; s: Subnet };

  before(async () => {
    vhost = rabbitVhost();
    db = openDb(database.url);
    await migrate(db);
    api = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 3000 });
    const reports = createReportConsumer({
      db,
      broker: api,
      log: silentLogger(),
      clock,
      agentDownTime: DOWN,
    });
    api.consume(apiQueue(REPORTS_TOPIC), async (m) => {
      if (m.method === 'report_state') await reports.handle(m.args);
    });
    api.consume(
      { ...apiQueue(PLUGIN_TOPIC), prefetch: 1 },
      createRpcHandler({ db, broker: api, log: silentLogger(), clock }),
    );
    await api.start();
    agents = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 5000 });
    const queues = [
      ...CONSUMED.map((h) => hostQueue('compute_agent', h)),
      hostQueue('dhcp_agent', 'n1'),
      ...VOLUME_HOSTS.map((h) => hostQueue('volume_agent', h)),
    ];
    for (const name of queues)
      agents.consume(
        { name, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: name }] },
        async (message, info) => {
          received.push({ queue: info.queue, message });
          if (message.method !== 'get_console_output') return undefined;
          const lines = CONSOLE.split('\n').slice(0, -1);
          const n = message.args.length ?? -1;
          return { output: `${(n < 0 ? lines : lines.slice(-n)).join('\n')}\n` };
        },
      );
    await agents.start();
    app = buildApp({
      db,
      broker: api,
      clock,
      log: silentLogger(),
      settings,
      ...(tokens ? { tokens } : {}),
    });
    images.plain = await image({ name: 'plain', disk_format: 'qcow2', container_format: 'bare' });
    images.kernel = await image({ name: 'vmlinuz', disk_format: 'aki', container_format: 'aki' });
    images.ramdisk = await image({ name: 'initrd', disk_format: 'ari', container_format: 'ari' });
    images.direct = await image({
      name: 'direct',
      disk_format: 'ami',
      container_format: 'ami',
      kernel_id: images.kernel,
      ramdisk_id: images.ramdisk,
      os_command_line: 'console=ttyS0 quiet',
    });
    images.queued = await image({ name: 'empty', disk_format: 'raw' }, false);
  });
  after(async () => {
    await app?.close();
    await agents?.close();
    await api?.close();
    await db?.close();
    vhost?.cleanup();
    database.cleanup();
    dir.cleanup();
  });

  const call = async (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: unknown,
    token = ADMIN,
    type?: string,
  ) => {
    const headers: Record<string, string> = { 'x-auth-token': token };
    if (type) headers['content-type'] = type;
    const res = await app.inject({ method, url, payload: payload as string, headers });
    const json = String(res.headers['content-type'] ?? '').startsWith('application/json');
    return {
      status: res.statusCode,
      raw: res.body,
      body: json && res.body ? (res.json() as Body) : null,
    };
  };
  async function image(body: Body, upload = true): Promise<string> {
    const r = await call('POST', '/v2/images', body);
    assert.equal(r.status, 201, r.raw);
    const id = (r.body as unknown as Image).id;
    if (upload) {
      const data = Buffer.from(`image data of ${String(body.name)}`);
      const u = await call('PUT', `/v2/images/${id}/file`, data, ADMIN, 'application/octet-stream');
      assert.equal(u.status, 204, u.raw);
    }
    return id;
  }
  const novaErr = (r: { status: number; body: Body | null }, key: string, status: number) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    const inner = (r.body as Record<string, { code: number; message: string }>)[key];
    assert.ok(inner, `expected a ${key} error, got ${JSON.stringify(r.body)}`);
    assert.equal(inner.code, status);
    return inner.message;
  };
  const ok = async <T>(method: 'POST' | 'GET', url: string, key: string, payload?: unknown) => {
    const r = await call(method, url, payload);
    assert.equal(r.status, method === 'POST' ? 201 : 200, r.raw);
    return (r.body as Record<string, T>)[key] as T;
  };
  const heartbeat = async (state: AgentState) => {
    await agents.cast(REPORTS_TOPIC, 'report_state', {
      agent_state: state,
      time: now.toISOString(),
    });
    const stamp = now.toISOString();
    await waitFor(`a heartbeat of ${state.agent_type} on ${state.host}`, async () => {
      const [row] = await db.query<{ heartbeat_timestamp: string; configurations: string }>(
        'SELECT heartbeat_timestamp, configurations FROM agents WHERE agent_type = ? AND host = ?',
        [state.agent_type, state.host],
      );
      return (
        row?.heartbeat_timestamp === stamp &&
        row.configurations === JSON.stringify(state.configurations)
      );
    });
  };
  const report = (host: string, conf: Body = {}) => heartbeat(computeState(host, conf));
  const netWithSubnet = async (name: string, cidr: string) => {
    const n = await ok<Network>('POST', '/v2.0/networks', 'network', { network: { name } });
    const s = await ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
      subnet: { network_id: n.id, cidr, ip_version: 4 },
    });
    return { n, s };
  };
  const boot = async (extra: Body = {}, token = ADMIN) => {
    const r = await call(
      'POST',
      '/servers',
      { server: { name: 'vm', flavorRef: '1', imageRef: images.plain, ...extra } },
      token,
    );
    assert.equal(r.status, 202, r.raw);
    return (r.body as { server: { id: string } }).server.id;
  };
  const show = async (id: string, token = ADMIN) => {
    const r = await call('GET', `/servers/${id}`, undefined, token);
    assert.equal(r.status, 200, r.raw);
    return (r.body as { server: Server }).server;
  };
  const portsOf = async (id: string) =>
    ((await call('GET', `/v2.0/ports?device_id=${id}`)).body as { ports: Port[] }).ports;
  const hints = (queue: string, resource: string, id: string) =>
    received.filter(
      (r) =>
        r.queue === queue &&
        r.message.method === 'hint' &&
        r.message.args.resource === resource &&
        r.message.args.id === id,
    );
  const waitHint = (host: string, id: string, revision: number) =>
    waitFor(`hint ${revision} for ${id} on compute_agent.${host}`, () =>
      hints(`compute_agent.${host}`, 'instance', id).some(
        (h) => h.message.method === 'hint' && h.message.args.revision === revision,
      ),
    );
  const rpc = {
    instance: async (host: string, instance_id: string) =>
      GetInstanceResult.parse(
        await agents.call(PLUGIN_TOPIC, 'get_instance', { host, instance_id }),
      ).instance,
    hostInstances: async (host: string) =>
      GetHostInstancesResult.parse(await agents.call(PLUGIN_TOPIC, 'get_host_instances', { host }))
        .instances,
  };
  /** Casts a report, then a call behind it: q-plugin serves one message at a time. */
  const update = async (args: ArgsOf<'update_instance'>) => {
    await agents.cast(PLUGIN_TOPIC, 'update_instance', args);
    await rpc.hostInstances(args.host);
  };
  const counts = async () => {
    const [i] = await db.query<{ n: unknown }>('SELECT COUNT(*) AS n FROM instances');
    const [p] = await db.query<{ n: unknown }>('SELECT COUNT(*) AS n FROM ports');
    return { instances: Number(i?.n), ports: Number(p?.n) };
  };
  const act = (id: string, body: Body, token = ADMIN) =>
    call('POST', `/servers/${id}/action`, body, token);

  beforeEach(async () => {
    // A clean slate: every agent dead (servers then delete locally), nothing left.
    advance(3600);
    for (const s of ((await call('GET', '/servers')).body as { servers: Server[] }).servers)
      assert.equal((await call('DELETE', `/servers/${s.id}`)).status, 204);
    for (const p of ((await call('GET', '/v2.0/ports')).body as { ports: Port[] }).ports)
      if (p.device_owner !== 'network:dhcp') await call('DELETE', `/v2.0/ports/${p.id}`);
    for (const n of ((await call('GET', '/v2.0/networks')).body as { networks: Network[] })
      .networks)
      assert.equal((await call('DELETE', `/v2.0/networks/${n.id}`)).status, 204);
    for (const a of ((await call('GET', '/v2.0/agents')).body as { agents: Body[] }).agents)
      assert.equal((await call('DELETE', `/v2.0/agents/${String(a.id)}`)).status, 204);
    await heartbeat(dhcpState('n1'));
    net = await netWithSubnet('net1', '10.1.0.0/24');
    received.length = 0;
  });

  /**
   * A server as a kumo-api that stopped mid-create leaves it: placed (flavor 1, the plain
   * image) and inserted in `scheduling` by the same functions POST /servers uses, with a
   * new port on net1 made and the user's port `claim` claimed for it, never handed over.
   */
  const placeOnly = async (claim?: string) => {
    const id = randomUUID();
    const flavor = await resolveFlavor(db, { caller: staticCaller('admin') } as never, '1');
    const imageMeta = await resolveImage(db, images.plain, flavor, { role: 'admin' });
    const demand = { vcpus: flavor.vcpus, ramMb: flavor.ram, diskGb: flavor.disk };
    const placed = await placeInstance(
      db,
      { now: clock.now(), agentDownTime: DOWN },
      demand,
      (tx, p, seq) =>
        insertInstance(
          tx,
          seq,
          {
            id,
            name: 'stuck',
            projectId: DEFAULT_PROJECT_ID,
            userId: 'admin',
            flavor,
            imageMeta,
            metadata: {},
            keptPorts: claim ? [claim] : [],
            host: p.host ?? '',
            vmState: 'building',
            taskState: 'scheduling',
            fault: null,
            accessIPv4: '',
            accessIPv6: '',
            adminPass: null,
            reservationId: 'r-stuck000',
            launchIndex: 0,
            securityGroups: ['default'],
          },
          clock.now(),
        ),
    );
    assert.ok(placed.host, 'placed on a host');
    const binding = { device_id: id, device_owner: COMPUTE_OWNER, 'binding:host_id': placed.host };
    await createPort(db, { network_id: net.n.id, ...binding }, clock.now());
    if (claim) assert.ok(await claimPort(db, claim, id));
    return { id, host: placed.host };
  };

  return {
    get db() {
      return db;
    },
    get app() {
      return app;
    },
    get api() {
      return api;
    },
    /** The broker that plays the agents (casts and calls on q-plugin). */
    get agents() {
      return agents;
    },
    get net() {
      return net;
    },
    clock,
    advance,
    images,
    received,
    call,
    image,
    novaErr,
    ok,
    report,
    netWithSubnet,
    boot,
    show,
    portsOf,
    hints,
    waitHint,
    rpc,
    update,
    counts,
    act,
    placeOnly,
  };
}

export type Harness = ReturnType<typeof serversHarness>;

/** A server booted on h1 and reported active (launched) by its agent. */
export async function activeServer(h: Harness, extra: Record<string, unknown> = {}) {
  await h.report('h1');
  const id = await h.boot(extra);
  await h.update({ host: 'h1', instance_id: id, power_state: 1, task_done: 1, vm_state: 'active' });
  return id;
}

/** The agent ends the server's open task with `vm` (running when active, else shut off). */
export async function finishTask(h: Harness, id: string, vm: 'active' | 'stopped' | 'soft-delete') {
  const task = Number((await h.rpc.instance('h1', id))?.task_id);
  const power = vm === 'active' ? 1 : 4;
  await h.update({
    host: 'h1',
    instance_id: id,
    power_state: power,
    task_done: task,
    vm_state: vm,
  });
}
