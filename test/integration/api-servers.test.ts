/**
 * Nova servers in kumo-api on both database engines with a real broker: compute agents
 * register by casting real report_state messages; a second broker plays the agents (it
 * consumes `compute_agent.<host>` and `dhcp_agent.<host>`, answers get_console_output,
 * calls get_instance / get_host_instances and casts update_instance on q-plugin, which
 * the API's real RPC handler serves one message at a time so reports apply in order).
 *
 * Shown: scheduling to the host with the most free RAM, ports made and bound with
 * device_owner compute:nova, the hint on the real host queue, the instance spec; bad
 * references refused with nothing created; no capacity → ERROR "No valid host"; no
 * overcommit under concurrent boots; update_instance (task_done, stale task ids, other
 * hosts, power sync, faults); actions 202/409; console output round trip and timeout;
 * delete through the agent and local delete with a dead agent.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type ApiSettings, buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { createReportConsumer } from '../../api/liveness.ts';
import { createRpcHandler } from '../../api/rpc.ts';
import type { AgentState } from '../../contracts/agents.ts';
import type { Image } from '../../contracts/compute.ts';
import {
  type ArgsOf,
  EXCHANGE,
  hostQueue,
  type Message,
  PLUGIN_TOPIC,
  REPORTS_TOPIC,
} from '../../contracts/messages.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import {
  GetHostInstancesResult,
  GetInstanceResult,
  type InstanceSpec,
  type PowerState,
} from '../../contracts/servers.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost, waitFor } from '../helpers/env.ts';

const ADMIN = 'admin-token-xyz';
const MEMBER = 'member-token-xyz';
const DOWN = 30;
const CONSOLE = 'line one\nline two\nline three\n';
/** Agents the fake-agent broker answers for; h3 reports but never consumes. */
const CONSUMED = ['h1', 'h2'] as const;

type Body = Record<string, unknown>;
type Server = Record<string, unknown> & { id: string; status: string };

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

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`servers on ${engine}`, () => {
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
      app = buildApp({ db, broker: api, clock, log: silentLogger(), settings });
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
        const u = await call(
          'PUT',
          `/v2/images/${id}/file`,
          data,
          ADMIN,
          'application/octet-stream',
        );
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
        GetHostInstancesResult.parse(
          await agents.call(PLUGIN_TOPIC, 'get_host_instances', { host }),
        ).instances,
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

    test('POST schedules to the most free RAM, binds its ports, hints the host, serves the spec', async () => {
      await report('h1');
      await report('h2', { memory_mb: 8192 });
      const id = await boot({ networks: [{ uuid: net.n.id }], metadata: { role: 'web' } });
      const s = await show(id);
      assert.equal(s.status, 'BUILD');
      assert.equal(s['OS-EXT-STS:vm_state'], 'building');
      assert.equal(s['OS-EXT-STS:task_state'], 'spawning');
      assert.equal(s['OS-EXT-STS:power_state'], 0);
      assert.equal(s['OS-EXT-SRV-ATTR:host'], 'h2');
      assert.equal(s['OS-EXT-SRV-ATTR:hypervisor_hostname'], 'h2');
      assert.match(String(s['OS-EXT-SRV-ATTR:instance_name']), /^instance-[0-9a-f]{8}$/);
      const project = String(s.tenant_id);
      assert.equal(s.hostId, createHash('sha224').update(`${project}h2`).digest('hex'));
      assert.deepEqual(s.metadata, { role: 'web' });
      assert.deepEqual((s.flavor as Body).id, '1');
      assert.deepEqual((s.image as Body).id, images.plain);
      assert.equal(s['kumo:spawn_timings'], null);
      assert.equal(s.fault, undefined);

      const [port, ...more] = await portsOf(id);
      assert.equal(more.length, 0);
      assert.ok(port);
      assert.equal(port.device_owner, 'compute:nova');
      assert.equal(port['binding:host_id'], 'h2');
      assert.equal(port.network_id, net.n.id);
      const ip = port.fixed_ips[0]?.ip_address;
      assert.deepEqual(s.addresses, {
        net1: [
          {
            version: 4,
            addr: ip,
            'OS-EXT-IPS:type': 'fixed',
            'OS-EXT-IPS-MAC:mac_addr': port.mac_address,
          },
        ],
      });
      await waitHint('h2', id, 1);
      assert.equal(hints('compute_agent.h1', 'instance', id).length, 0);
      await waitFor(
        'the DHCP agent hinted of the new port',
        () => hints('dhcp_agent.n1', 'network', net.n.id).length > 0,
      );

      const spec = (await rpc.instance('h2', id)) as InstanceSpec;
      assert.ok(spec);
      assert.equal(
        `instance-${spec.seq.toString(16).padStart(8, '0')}`,
        s['OS-EXT-SRV-ATTR:instance_name'],
      );
      assert.equal(spec.task_state, 'spawning');
      assert.equal(spec.task_id, 1);
      assert.deepEqual(spec.flavor, { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 });
      const img = (await call('GET', `/v2/images/${images.plain}`)).body as unknown as Image;
      assert.equal(spec.image.checksum, img.checksum);
      assert.equal(spec.image.os_hash_value, img.os_hash_value);
      assert.equal(spec.image.size, img.size);
      assert.equal(spec.kernel, null);
      assert.deepEqual(spec.ports, [
        {
          id: port.id,
          mac_address: port.mac_address,
          network_id: net.n.id,
          status: 'DOWN',
          mtu: net.n.mtu,
          fixed_ips: [ip],
        },
      ]);
      assert.equal(await rpc.instance('h1', id), null, 'another host is not told');
      assert.deepEqual(await rpc.hostInstances('h2'), [id]);
      assert.deepEqual(await rpc.hostInstances('h1'), []);

      // A kernel + ramdisk image with a fixed IP, an existing port, and "auto".
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: net.n.id } });
      const direct = await boot({
        imageRef: `http://x/images/${images.direct}`,
        flavorRef: 'm1.tiny',
        networks: [{ uuid: net.n.id, fixed_ip: '10.1.0.50' }, { port: own.id }],
      });
      const d = (await rpc.instance('h2', direct)) as InstanceSpec;
      assert.equal(d.kernel?.id, images.kernel);
      assert.equal(d.ramdisk?.id, images.ramdisk);
      assert.equal(d.cmdline, 'console=ttyS0 quiet');
      assert.deepEqual(
        d.ports.map((p) => p.fixed_ips),
        [['10.1.0.50'], own.fixed_ips.map((f) => f.ip_address)],
      );
      assert.ok(d.seq > spec.seq);
      const claimed = (await portsOf(direct)).find((p) => p.id === own.id);
      assert.equal(claimed?.['binding:host_id'], 'h2');
      const auto = await boot({ networks: 'auto' });
      assert.equal((await portsOf(auto))[0]?.network_id, net.n.id);
      const bare = await boot({ networks: 'none' });
      assert.deepEqual(await portsOf(bare), []);
      // The list, newest first; a name filter; detail; paging.
      const list = (await call('GET', '/v2.1/servers')).body as { servers: Body[] };
      const detail = (await call('GET', '/servers/detail')).body as { servers: Body[] };
      const ids = (l: { servers: Body[] }) => l.servers.map((x) => x.id);
      assert.deepEqual(ids(list), ids(detail));
      assert.deepEqual(ids(list), [bare, auto, direct, id], 'newest first');
      assert.deepEqual(Object.keys(list.servers[0] ?? {}).sort(), ['id', 'links', 'name']);
      assert.equal(list.servers.length, 4);
      const page = (await call('GET', '/servers?limit=3')).body as Body;
      assert.equal((page.servers as Body[]).length, 3);
      assert.match(JSON.stringify(page.servers_links), /marker=/);
      const renamed = await call('PUT', `/servers/${bare}`, { server: { name: 'renamed-vm' } });
      assert.equal((renamed.body as { server: Server }).server.name, 'renamed-vm');
      const named = (await call('GET', '/servers?name=^renamed')).body as { servers: Body[] };
      assert.deepEqual(
        named.servers.map((x) => x.id),
        [bare],
      );
      const member = await show(id, MEMBER);
      assert.equal(member['OS-EXT-SRV-ATTR:host'], undefined, 'admin-only attributes hidden');
    });

    test('bad references are refused naming them, and nothing is created', async () => {
      await report('h1');
      const used = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: net.n.id, device_id: 'someone' },
      });
      const bare = await ok<Network>('POST', '/v2.0/networks', 'network', {
        network: { name: 'nosubnet' },
      });
      const orphan = await image({
        name: 'orphan',
        disk_format: 'ami',
        container_format: 'ami',
        kernel_id: await image({ name: 'k2', disk_format: 'aki', container_format: 'aki' }),
      });
      const kernel2 = ((await call('GET', `/v2/images/${orphan}`)).body as Body).kernel_id;
      assert.equal((await call('DELETE', `/v2/images/${String(kernel2)}`)).status, 204);
      const missing = '00000000-0000-4000-8000-000000000000';
      const before = await counts();
      const cases: [Body, string, number, RegExp][] = [
        [{ flavorRef: '99' }, 'badRequest', 400, /flavorRef.*99/],
        [{ imageRef: missing }, 'badRequest', 400, new RegExp(`Image ${missing} could not`)],
        [{ imageRef: images.queued }, 'badRequest', 400, /is not active/],
        [{ imageRef: 'not-a-uuid' }, 'badRequest', 400, /imageRef/],
        [{ imageRef: orphan }, 'badRequest', 400, new RegExp(`Kernel image ${String(kernel2)}`)],
        [{ flavorRef: '1', imageRef: images.plain, name: '' }, 'badRequest', 400, /server\.name/],
        [{ networks: [{ uuid: missing }] }, 'badRequest', 400, new RegExp(`Network ${missing}`)],
        [{ networks: [{ uuid: bare.id }] }, 'badRequest', 400, /requires a subnet/],
        [{ networks: [{ port: missing }] }, 'badRequest', 400, new RegExp(`Port id ${missing}`)],
        [{ networks: [{ port: used.id }] }, 'conflict', 409, new RegExp(`Port ${used.id}`)],
        [
          { networks: [{ uuid: net.n.id, fixed_ip: '10.9.0.5' }] },
          'badRequest',
          400,
          /10\.9\.0\.5 is not a valid ip address for network/,
        ],
        [
          { networks: [{ uuid: net.n.id, fixed_ip: used.fixed_ips[0]?.ip_address }] },
          'badRequest',
          400,
          /already in use on instance someone/,
        ],
        [{ networks: [{ uuid: net.n.id, port: used.id }] }, 'badRequest', 400, /exactly one/],
        [{ networks: 'auto' }, 'conflict', 409, /Multiple possible networks/],
      ];
      for (const [extra, key, status, pattern] of cases) {
        const r = await call('POST', '/servers', {
          server: { name: 'vm', flavorRef: '1', imageRef: images.plain, ...extra },
        });
        assert.match(novaErr(r, key, status), pattern, JSON.stringify(extra));
      }
      assert.deepEqual(await counts(), before);
      assert.equal(received.filter((r) => r.queue.startsWith('compute_agent')).length, 0);
    });

    test('no capacity or no live agent: ERROR with "No valid host", no ports, no hint', async () => {
      await report('h1', { memory_mb: 1024 });
      const id = await boot({ flavorRef: '2', networks: [{ uuid: net.n.id }] });
      const s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null);
      assert.equal(s.hostId, '');
      const fault = s.fault as Body;
      assert.equal(fault.code, 500);
      assert.match(String(fault.message), /^No valid host was found/);
      assert.match(String(fault.details), /h1: ramMb 512 free < 2048/);
      assert.equal(((await show(id, MEMBER)).fault as Body).details, undefined);
      assert.deepEqual(await portsOf(id), []);
      advance(DOWN + 1);
      const dead = await show(await boot());
      assert.match(String((dead.fault as Body).details), /h1: compute agent is not alive/);
      assert.equal(received.filter((r) => r.queue.startsWith('compute_agent')).length, 0);
      const errors = (await call('GET', '/servers/detail?status=ERROR')).body as {
        servers: Body[];
      };
      assert.equal(errors.servers.length, 2);
      assert.deepEqual(((await call('GET', '/servers?status=ACTIVE')).body as Body).servers, []);
    });

    test('concurrent boots never overcommit a host', async () => {
      await report('h1', { vcpus: 3, memory_mb: 65536, local_gb: 1000 });
      const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => boot({ name: `c${i}` })));
      const states = await Promise.all(ids.map((id) => show(id)));
      assert.equal(states.filter((s) => s.status === 'BUILD').length, 3);
      assert.equal(states.filter((s) => s.status === 'ERROR').length, 5);
      const names = new Set(states.map((s) => s['OS-EXT-SRV-ATTR:instance_name']));
      assert.equal(names.size, 8, 'every instance has its own seq');
    });

    test('update_instance: own task ids only, own host only, power sync, faults', async () => {
      await report('h1');
      const id = await boot({ networks: [{ uuid: net.n.id }] });
      const timings = { image: 5, define: 6, plug: 7, wait_port: 8, boot: 9 };
      await update({
        host: 'h2',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
      });
      assert.equal((await show(id)).status, 'BUILD', 'a report from another host is ignored');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
        timings,
      });
      let s = await show(id);
      assert.equal(s.status, 'ACTIVE');
      assert.equal(s['OS-EXT-STS:task_state'], null);
      assert.equal(s['OS-EXT-STS:power_state'], 1);
      assert.match(String(s['OS-SRV-USG:launched_at']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000$/);
      assert.deepEqual(s['kumo:spawn_timings'], timings);

      assert.equal((await act(id, { reboot: { type: 'SOFT' } })).status, 202);
      await waitHint('h1', id, 2);
      assert.equal((await show(id)).status, 'REBOOT');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 4,
        task_done: 1,
        vm_state: 'stopped',
      });
      s = await show(id);
      assert.equal(s.status, 'REBOOT', 'a stale task id does not end the current task');
      assert.equal(s['OS-EXT-STS:power_state'], 4, 'but its power state is kept');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 2,
        vm_state: 'active',
      });
      assert.equal((await show(id)).status, 'ACTIVE');

      for (const [power, status] of [
        [4, 'SHUTOFF'],
        [1, 'ACTIVE'],
        [3, 'PAUSED'],
        [7, 'SUSPENDED'],
        [6, 'SHUTOFF'],
        [0, 'SHUTOFF'],
        [1, 'ACTIVE'],
      ] as const) {
        await update({ host: 'h1', instance_id: id, power_state: power });
        assert.equal((await show(id)).status, status, `power state ${power}`);
      }

      assert.equal((await act(id, { 'os-stop': null })).status, 202);
      await update({ host: 'h1', instance_id: id, power_state: 1 });
      assert.equal((await show(id)).status, 'ACTIVE', 'no power sync while a task runs');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'powering-off');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 4,
        task_done: 3,
        vm_state: 'error',
        fault: { message: 'libvirt said no', details: 'trace' },
      });
      s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.deepEqual(
        { ...(s.fault as Body), created: undefined },
        { code: 500, message: 'libvirt said no', details: 'trace', created: undefined },
      );
      await update({ host: 'h1', instance_id: id, power_state: 1 });
      assert.equal((await show(id)).status, 'ERROR', 'ERROR does not follow power');
      await update({ host: 'h1', instance_id: id, power_state: 4, deleted: true });
      assert.equal((await show(id)).status, 'ERROR', 'deleted without a delete task is ignored');
      assert.equal((await portsOf(id)).length, 1);

      // A delete the agent could not do ends only in ERROR; then it can be retried.
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 4,
        vm_state: 'active',
      });
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 4,
        vm_state: 'error',
        fault: { message: 'domain would not go' },
      });
      s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-STS:task_state'], null);
      assert.equal((s.fault as Body).message, 'domain would not go');
    });

    test('ports that cannot be made: ERROR, and what was made or claimed is released', async () => {
      await report('h1');
      const full = await ok<Network>('POST', '/v2.0/networks', 'network', {
        network: { name: 'full' },
      });
      await ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: full.id, cidr: '10.9.0.0/30', ip_version: 4, enable_dhcp: false },
      });
      await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: full.id } });
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: net.n.id } });
      const id = await boot({
        networks: [{ uuid: net.n.id }, { port: own.id }, { uuid: full.id }],
      });
      const s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null, 'the host is not charged for it');
      assert.match(String((s.fault as Body).message), /Failed to allocate the network/);
      assert.match(String((s.fault as Body).details), /No more IP addresses/);
      assert.deepEqual(await portsOf(id), []);
      const back = await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port');
      assert.equal(back.device_id, '');
      assert.equal(back['binding:host_id'], '');
      assert.equal(hints('compute_agent.h1', 'instance', id).length, 0);
      assert.equal(await rpc.instance('h1', id), null);
    });

    test('a spawn the agent reports failed: ERROR, its ports and its host released', async () => {
      await report('h1');
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: net.n.id } });
      const id = await boot({ networks: [{ uuid: net.n.id }, { port: own.id }] });
      assert.equal((await portsOf(id)).length, 2);
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 0,
        task_done: 1,
        vm_state: 'error',
        fault: { message: 'base image names a backing file' },
      });
      const s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal((s.fault as Body).message, 'base image names a backing file');
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null, 'the host is not charged for it any more');
      assert.deepEqual(await portsOf(id), [], 'the new port is deleted, the own port unbound');
      const back = await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port');
      assert.equal(back.device_id, '');
      assert.equal(await rpc.instance('h1', id), null, 'the agent removes what is left');
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 204);
      assert.equal((await call('GET', `/servers/${id}`)).status, 404, 'deleted locally');
    });

    test('actions: 202 with a new task and hint, 409 naming the state, 400 for unknown', async () => {
      await report('h1');
      const id = await boot();
      const done = (task: number, vm: string, power: PowerState) =>
        update({
          host: 'h1',
          instance_id: id,
          power_state: power,
          task_done: task,
          vm_state: vm as 'active',
        });
      await done(1, 'active', 1);
      const start = await act(id, { 'os-start': null });
      assert.equal(
        novaErr(start, 'conflict', 409),
        `Cannot 'start' instance ${id} while it is in vm_state active`,
      );
      assert.equal((await act(id, { pause: null }, MEMBER)).status, 202, 'members may act');
      assert.equal((await show(id)).status, 'ACTIVE');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'pausing');
      assert.equal(
        novaErr(await act(id, { suspend: null }), 'conflict', 409),
        `Cannot 'suspend' instance ${id} while it is in task_state pausing`,
      );
      assert.equal(
        novaErr(await act(id, { reboot: { type: 'SOFT' } }), 'conflict', 409),
        `Cannot 'reboot' instance ${id} while it is in task_state pausing`,
      );
      await done(2, 'paused', 3);
      assert.equal((await show(id)).status, 'PAUSED');
      assert.match(novaErr(await act(id, { 'os-stop': null }), 'conflict', 409), /vm_state paused/);
      assert.equal((await act(id, { unpause: null })).status, 202);
      assert.equal((await act(id, { reboot: { type: 'HARD' } })).status, 202, 'hard overrides');
      assert.equal((await show(id)).status, 'PAUSED');
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'rebooting_hard');
      await waitHint('h1', id, 4);
      await done(4, 'active', 1);
      assert.equal((await show(id)).status, 'ACTIVE');
      for (const [body, vm, power, status] of [
        [{ suspend: null }, 'suspended', 7, 'SUSPENDED'],
        [{ resume: {} }, 'active', 1, 'ACTIVE'],
        [{ 'os-stop': null }, 'stopped', 4, 'SHUTOFF'],
        [{ 'os-start': null }, 'active', 1, 'ACTIVE'],
      ] as const) {
        assert.equal((await act(id, body)).status, 202);
        const task = Number((await rpc.instance('h1', id))?.task_id);
        await done(task, vm, power);
        assert.equal((await show(id)).status, status);
      }
      assert.match(
        novaErr(await act(id, { shelve: null }), 'badRequest', 400),
        /no such action: shelve/,
      );
      assert.match(
        novaErr(await act(id, { reboot: { type: 'WARM' } }), 'badRequest', 400),
        /reboot\.type/,
      );
      assert.match(novaErr(await act(id, { pause: 3 }), 'badRequest', 400), /pause/);
      assert.match(
        novaErr(await act(id, { constructor: null }), 'badRequest', 400),
        /no such action: constructor/,
      );
      assert.equal(
        novaErr(
          await act('00000000-0000-4000-8000-000000000000', { pause: null }),
          'itemNotFound',
          404,
        ),
        'Instance 00000000-0000-4000-8000-000000000000 could not be found.',
      );
      advance(DOWN + 1);
      assert.match(
        novaErr(await act(id, { pause: null }), 'conflict', 409),
        /compute agent on h1 is not alive/,
      );
      assert.equal((await show(id))['OS-EXT-STS:task_state'], null, 'no task was started');
    });

    test('console output: a call to the host queue, answered by the agent; 503 when it is not', async () => {
      await report('h1');
      await report('h3', { memory_mb: 1024 });
      const id = await boot();
      const r = await act(id, { 'os-getConsoleOutput': { length: 2 } });
      assert.equal(r.status, 200, r.raw);
      assert.deepEqual(r.body, { output: 'line two\nline three\n' });
      const all = await act(id, { 'os-getConsoleOutput': { length: null } });
      assert.deepEqual(all.body, { output: CONSOLE });
      const asked = received.filter((x) => x.message.method === 'get_console_output');
      assert.deepEqual(
        asked.map((x) => [x.queue, x.message.args]),
        [
          ['compute_agent.h1', { instance_id: id, length: 2 }],
          ['compute_agent.h1', { instance_id: id }],
        ],
      );
      // h3 reports but nothing consumes its queue: the call times out.
      await report('h1', { memory_mb: 600 });
      await report('h3', { memory_mb: 8192 });
      const lost = await boot();
      assert.equal((await show(lost))['OS-EXT-SRV-ATTR:host'], 'h3');
      const timeout = await act(lost, { 'os-getConsoleOutput': {} });
      assert.match(
        novaErr(timeout, 'serviceUnavailable', 503),
        /compute agent on h3 did not answer/,
      );
    });

    test('delete: through the agent while it lives, locally when it is dead', async () => {
      await report('h1');
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: net.n.id } });
      const id = await boot({ networks: [{ uuid: net.n.id }, { port: own.id }] });
      await update({
        host: 'h1',
        instance_id: id,
        power_state: 1,
        task_done: 1,
        vm_state: 'active',
      });
      const made = (await portsOf(id)).find((p) => p.id !== own.id) as Port;
      received.length = 0;
      assert.equal((await call('DELETE', `/servers/${id}`, undefined, MEMBER)).status, 204);
      await waitHint('h1', id, 2);
      assert.equal((await show(id))['OS-EXT-STS:task_state'], 'deleting');
      assert.deepEqual(await rpc.hostInstances('h1'), [id], "still the host's until it reports");
      assert.equal((await rpc.instance('h1', id))?.task_state, 'deleting');
      await update({ host: 'h1', instance_id: id, power_state: 0, deleted: true });
      assert.equal((await call('GET', `/servers/${id}`)).status, 404);
      assert.deepEqual(await rpc.hostInstances('h1'), []);
      assert.equal(await rpc.instance('h1', id), null);
      assert.equal((await call('GET', `/v2.0/ports/${made.id}`)).status, 404);
      const kept = await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port');
      assert.equal(kept.device_id, '');
      assert.equal(kept['binding:host_id'], '');
      await waitFor(
        'the DHCP agent hinted of the released ports',
        () => hints('dhcp_agent.n1', 'network', net.n.id).length > 0,
      );
      await update({ host: 'h1', instance_id: id, power_state: 0, deleted: true });
      assert.equal((await call('DELETE', `/servers/${id}`)).status, 404);

      const second = await boot({ networks: [{ uuid: net.n.id }] });
      assert.equal((await portsOf(second)).length, 1);
      await waitHint('h1', second, 1);
      advance(DOWN + 1);
      assert.equal((await call('DELETE', `/servers/${second}`)).status, 204);
      assert.equal((await call('GET', `/servers/${second}`)).status, 404, 'deleted at once');
      assert.deepEqual(await portsOf(second), []);
      assert.deepEqual(
        hints('compute_agent.h1', 'instance', second).map(
          (h) => h.message.method === 'hint' && h.message.args.revision,
        ),
        [1],
        'no delete hint to a dead agent',
      );
      assert.deepEqual(await rpc.hostInstances('h1'), [], 'the resync will remove it');
      const listed = (await call('GET', '/servers')).body as { servers: Body[] };
      assert.equal(listed.servers.length, 0);
    });
  });
}
