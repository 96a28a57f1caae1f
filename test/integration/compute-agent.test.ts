/**
 * kumo-compute-agent as a real process against real libvirtd (qemu:///system, TCG guests),
 * a real OVS lab host (its own ovsdb-server and ovs-vswitchd in a netns, so VIFs are
 * plugged by the agent: `[ovs] vswitchd_netns`), a real RabbitMQ vhost and kumo-api's real
 * image endpoint (buildApp on SQLite) serving the test guest as a UEC triple (aki kernel,
 * ari ramdisk, 1 MiB raw ami).
 *
 * The test plays the API's side of the contract over the broker: it answers get_instance
 * and get_host_instances on q-plugin with crafted InstanceSpecs, applies update_instance
 * reports as the API does (a task ends on its own task_id), and flips a port ACTIVE when
 * the port appears in the lab host's OVSDB (the L2 agent's part). A dnsmasq on br-int
 * gives the guest its address, so every boot is checked by a ping from the lab.
 *
 * Proves: spawn (start paused, plug, wait for ACTIVE, resume) with timings, console output
 * over RPC, the instance directory marked as this host's; pause/unpause, soft/hard reboot,
 * stop/start, suspend/resume (managed save) each reported done with the right vm_state and
 * power_state and the guest reachable, every report carrying the task_id it observed;
 * SIGTERM and kill -9 leave guests running, a task missed while the agent was down is
 * done on its start; a guest that went off while only the agent was down stays off, and
 * after a host boot (the recorded boot id changed) it is started again, also when the
 * first start attempt fails; a port that never goes ACTIVE fails the spawn with the
 * reason and leaves nothing; another host's (or an unmarked) instance directory is left
 * alone; a resync prunes cached images nothing names and nobody used for a day; a delete
 * whose teardown fails reports ERROR, and with that report lost, a resync tries it again
 * (and the next resync sends its unchanged report again); delete leaves nothing.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { instanceName } from '../../agents/compute/domain.ts';
import { buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import type { InstanceImage, InstanceSpec, UpdateInstanceArgs } from '../../contracts/instances.ts';
import { hostQueue, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import type { TaskState } from '../../contracts/servers.ts';
import { apiQueue, type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { portDevice } from '../../host/ip/names.ts';
import { runCommand } from '../helpers/cluster.ts';
import { REPO, rabbitVhost, tempDir, waitFor } from '../helpers/env.ts';
import { buildTestGuest, GUEST_UP_MARKER, type TestGuest } from '../helpers/guest.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';

const SERVICE = 'compute-agent-test-service-token';
const ADMIN = 'compute-agent-test-admin-token';
const GUEST_NET = { dhcpIp: '10.77.0.1', prefix: 24, first: 10 };
const tapOf = (portId: string) => portDevice('tap', portId);
const virsh = (...args: string[]) => runCommand(['virsh', '-c', 'qemu:///system', ...args]);

interface Fixture {
  lab: Lab;
  h: LabHost;
  dir: string;
  host: string;
  app: FastifyInstance;
  db: Db;
  apiUrl: string;
  broker: Broker;
  images: { kernel: InstanceImage; ramdisk: InstanceImage; machine: InstanceImage };
  guest: TestGuest;
  dhcp: { ep: Endpoint; proc: ChildProcess };
}

/**
 * The API's side: specs by id, reports received, ports that must stay DOWN, instances
 * whose reports are recorded but lost (not applied).
 */
const specs = new Map<string, InstanceSpec>();
const reports: UpdateInstanceArgs[] = [];
const neverActive = new Set<string>();
const lost = new Set<string>();

async function fakeApi(m: { method: string; args: unknown }): Promise<unknown> {
  const a = m.args as Record<string, string>;
  switch (m.method) {
    case 'get_instance': {
      const spec = specs.get(a.instance_id ?? '');
      return { instance: spec && spec.host === a.host ? structuredClone(spec) : null };
    }
    case 'get_host_instances':
      return { instances: [...specs.values()].filter((s) => s.host === a.host).map((s) => s.id) };
    case 'update_instance': {
      const r = m.args as UpdateInstanceArgs;
      reports.push(r);
      const spec = specs.get(r.instance_id);
      if (lost.has(r.instance_id)) return;
      if (!spec || r.task_done !== spec.task_id || spec.task_state === null) return;
      // as kumo-api: a delete ends with the instance, or else only in ERROR
      if (r.deleted && spec.task_state === 'deleting') specs.delete(spec.id);
      else if (spec.task_state === 'deleting' && r.vm_state !== 'error') return;
      else Object.assign(spec, { task_state: null, vm_state: r.vm_state ?? spec.vm_state });
      return;
    }
    default:
      return;
  }
}

async function uploadImage(apiUrl: string, meta: object, data: Buffer): Promise<InstanceImage> {
  const headers = { 'x-auth-token': ADMIN, 'content-type': 'application/json' };
  const made = await fetch(`${apiUrl}/v2/images`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ visibility: 'public', ...meta }),
  });
  assert.equal(made.status, 201, await made.clone().text());
  const { id } = (await made.json()) as { id: string };
  const put = await fetch(`${apiUrl}/v2/images/${id}/file`, {
    method: 'PUT',
    headers: { 'x-auth-token': ADMIN, 'content-type': 'application/octet-stream' },
    body: new Blob([new Uint8Array(data)]),
  });
  assert.equal(put.status, 204, await put.text());
  const got = (await (await fetch(`${apiUrl}/v2/images/${id}`, { headers })).json()) as Record<
    string,
    unknown
  >;
  return {
    id,
    checksum: got.checksum as string,
    os_hash_algo: 'sha512',
    os_hash_value: got.os_hash_value as string,
    size: got.size as number,
    disk_format: got.disk_format as InstanceImage['disk_format'],
  };
}

async function startDhcp(f: Pick<Fixture, 'lab' | 'h' | 'dir'>) {
  const ep = await f.lab.endpoint(f.h, {
    ifaceId: randomUUID(),
    mac: '02:00:0a:4d:00:01',
    cidr: `${GUEST_NET.dhcpIp}/${GUEST_NET.prefix}`,
  });
  const proc = spawn('ip', [
    ...['netns', 'exec', ep.netns, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null'],
    ...['--port=0', `--interface=${ep.name}`, '--bind-interfaces', '--no-ping'],
    '--dhcp-range=10.77.0.10,10.77.0.200,255.255.255.0,1h',
    `--dhcp-leasefile=${join(f.dir, 'leases')}`,
  ]);
  proc.stderr?.resume();
  return { ep, proc };
}

describe('kumo-compute-agent: instance lifecycle on libvirt + an OVS lab host', {
  timeout: 300_000,
}, () => {
  let f: Fixture;
  const tmp = tempDir('kumo-compute-agent-');
  const vhost = rabbitVhost();
  let agent: { child: ChildProcess; exited: Promise<number | null> } | undefined;
  let flipper: NodeJS.Timeout | undefined;
  const domains = new Set<string>();

  const configText = (vifTimeout: number) =>
    [
      '[DEFAULT]',
      `host = ${f.host}`,
      `state_path = ${f.dir}`,
      `transport_url = ${vhost.transportUrl}`,
      'debug = true',
      '[agent]',
      'report_interval = 1',
      'resync_interval = 3600',
      '[api]',
      `service_token = ${SERVICE}`,
      '[ovs]',
      `ovsdb_connection = unix:${f.h.dbSocket}`,
      `vswitchd_netns = ${f.h.netns}`,
      '[compute]',
      'virt_type = qemu',
      `instances_path = ${f.dir}/instances`,
      `vif_plugging_timeout = ${vifTimeout}`,
      'shutdown_timeout = 1',
      `api_url = ${f.apiUrl}`,
      '',
    ].join('\n');

  const startAgent = (vifTimeout = 60) => {
    const config = join(f.dir, 'kumo.conf');
    writeFileSync(config, configText(vifTimeout));
    const out = createWriteStream(join(f.dir, 'agent.log'), { flags: 'a' });
    const child = spawn(process.execPath, [
      join(REPO, 'bin', 'kumo-compute-agent.ts'),
      '--config-file',
      config,
    ]);
    child.stdout.pipe(out);
    child.stderr.pipe(out);
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    agent = { child, exited };
  };
  const stopAgent = async (signal: NodeJS.Signals) => {
    if (!agent) return null;
    agent.child.kill(signal);
    const code = await agent.exited;
    agent = undefined;
    return code;
  };
  const fullLog = () => readFileSync(join(f.dir, 'agent.log'), 'utf8');
  const agentLog = () => fullLog().slice(-8000);
  /** Waits for a log line (after `from` characters of the log) that has every one of `parts`. */
  const waitLog = (what: string, from: number, parts: string[]) =>
    waitFor(
      what,
      () =>
        fullLog()
          .slice(from)
          .split('\n')
          .find((l) => parts.every((p) => l.includes(p))),
      90_000,
      100,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\nagent log:\n${agentLog()}`);
    });
  const resyncNow = () =>
    f.broker.cast(hostQueue('compute_agent', f.host), 'resync', { reason: 'operator' });
  const bootIdFile = () => join(f.dir, 'compute', 'boot_id');
  const kernelBootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const chattr = (flag: '+i' | '-i', path: string) => runCommand(['chattr', flag, path]);
  const pinned = new Set<string>();
  const pin = async (path: string) => {
    const r = await chattr('+i', path);
    assert.equal(r.code, 0, `chattr +i ${path}: ${r.stderr}`);
    pinned.add(path);
  };
  const unpin = async (path: string) => {
    assert.equal((await chattr('-i', path)).code, 0);
    pinned.delete(path);
  };

  const waitReport = (what: string, pred: (r: UpdateInstanceArgs) => boolean) =>
    waitFor(what, () => reports.find(pred), 90_000, 50).catch((e: Error) => {
      throw new Error(`${e.message}\nagent log:\n${agentLog()}`);
    });

  const hint = (id: string) =>
    f.broker.cast(hostQueue('compute_agent', f.host), 'hint', { resource: 'instance', id });

  const newSpec = (name: string): InstanceSpec => {
    const seq = randomInt(0x10000000, 0xffffffff);
    domains.add(instanceName(seq));
    return {
      id: randomUUID(),
      seq,
      display_name: name,
      host: f.host,
      vm_state: 'building',
      task_state: 'spawning',
      task_id: 1,
      flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 256, disk: 1 },
      image: f.images.machine,
      kernel: f.images.kernel,
      ramdisk: f.images.ramdisk,
      cmdline: f.guest.cmdline,
      ports: [
        {
          id: randomUUID(),
          mac_address: `fa:16:3e:${randomBytes(3).toString('hex').match(/../g)?.join(':')}`,
          network_id: randomUUID(),
          status: 'DOWN',
          mtu: 1400,
          fixed_ips: [],
        },
      ],
      created_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      config_drive: false,
      volumes: [],
    };
  };

  /** Starts a task as the API does (new task_id), hints unless told not to, waits its report. */
  const task = async (id: string, state: TaskState, opts: { hint?: boolean } = {}) => {
    const spec = specs.get(id) as InstanceSpec;
    spec.task_state = state;
    spec.task_id += 1;
    const taskId = spec.task_id;
    if (opts.hint !== false) await hint(id);
    return waitReport(
      `${state} of ${id} reported done`,
      (r) => r.instance_id === id && r.task_done === taskId,
    );
  };

  const domState = async (name: string) => (await virsh('domstate', name)).stdout.trim();
  const guestIp = async (id: string) =>
    waitFor(
      `${id} to print ${GUEST_UP_MARKER} with an address`,
      async () => {
        const { output } = (await f.broker.call(
          hostQueue('compute_agent', f.host),
          'get_console_output',
          { instance_id: id, length: -1 },
        )) as { output: string };
        return new RegExp(`${GUEST_UP_MARKER} (10\\.77\\.0\\.\\d+)`).exec(output)?.[1];
      },
      60_000,
      250,
    );
  const pings = (ip: string) =>
    waitFor(
      `${ip} to answer ping`,
      () =>
        f.lab.exec(f.dhcp.ep.netns, ['ping', '-c', '1', '-W', '1', ip]).then(
          () => true,
          () => false,
        ),
      30_000,
      200,
    );

  before(async () => {
    chmodSync(tmp.path, 0o755); // qemu (libvirt-qemu) reads the instance files below
    const guest = await buildTestGuest();
    const lab = await createLab({ hosts: 1 });
    const h = lab.hosts[0] as LabHost;
    await h.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev']);
    const db = openDb({ engine: 'sqlite', path: join(tmp.path, 'api.sqlite') });
    await migrate(db);
    const app = buildApp({
      db,
      broker: { cast: async () => {}, fanout: async () => {} },
      clock: { now: () => new Date() },
      log: silentLogger(),
      settings: {
        adminToken: ADMIN,
        memberTokens: [],
        serviceTokens: [SERVICE],
        agentDownTime: 30,
        bodyLimit: 1 << 20,
        images: { dir: join(tmp.path, 'images'), sizeLimit: 1 << 30 },
      },
    });
    const apiUrl = await app.listen({ host: '127.0.0.1', port: 0 });
    const kernel = await uploadImage(
      apiUrl,
      { name: 'k', disk_format: 'aki', container_format: 'aki' },
      readFileSync(guest.kernel),
    );
    const ramdisk = await uploadImage(
      apiUrl,
      { name: 'r', disk_format: 'ari', container_format: 'ari' },
      readFileSync(guest.initrd),
    );
    const machine = await uploadImage(
      apiUrl,
      {
        name: 'm',
        disk_format: 'ami',
        container_format: 'ami',
        kernel_id: kernel.id,
        ramdisk_id: ramdisk.id,
      },
      Buffer.alloc(1024 * 1024),
    );
    const broker = createBroker({ url: vhost.url, log: silentLogger(), timeoutMs: 10_000 });
    broker.consume(apiQueue(PLUGIN_TOPIC), fakeApi);
    await broker.start();
    const host = `cmp-${lab.prefix}`;
    const dhcp = await startDhcp({ lab, h, dir: tmp.path });
    const images = { kernel, ramdisk, machine };
    f = { lab, h, dir: tmp.path, host, app, db, apiUrl, broker, images, guest, dhcp };
    flipper = setInterval(() => void flipPorts(), 100);
    startAgent();
  });

  let flipping = false;
  async function flipPorts() {
    if (flipping) return;
    flipping = true;
    try {
      for (const spec of specs.values())
        for (const p of spec.ports) {
          if (p.status === 'ACTIVE' || neverActive.has(p.id)) continue;
          const found = await f.h.vsctl([
            '--bare',
            '--columns=name',
            'find',
            'Interface',
            `external_ids:iface-id=${p.id}`,
          ]);
          if (found.trim() !== '') p.status = 'ACTIVE';
        }
    } catch {
      /* the lab is going away */
    } finally {
      flipping = false;
    }
  }

  after(async () => {
    if (flipper) clearInterval(flipper);
    for (const path of pinned) await chattr('-i', path);
    await stopAgent('SIGKILL');
    for (const name of domains) {
      await virsh('destroy', name);
      await virsh('undefine', name, '--managed-save');
    }
    f?.dhcp.proc.kill('SIGKILL');
    await f?.broker.close();
    await f?.app.close();
    await f?.db.close();
    await f?.lab.destroy();
    vhost.cleanup();
    tmp.cleanup();
  });

  let vm: InstanceSpec;
  let ip: string;

  test('spawn: ACTIVE with timings, guest up with its address, tap plugged into br-int', async (t) => {
    vm = newSpec('vm-1');
    specs.set(vm.id, vm);
    await hint(vm.id);
    const r = await waitReport(
      'the spawn report',
      (x) => x.instance_id === vm.id && x.task_done === 1,
    );
    assert.equal(r.vm_state, 'active', JSON.stringify(r.fault));
    assert.equal(r.power_state, 1);
    assert.equal(r.observed_task_id, 1);
    assert.ok(r.timings, 'spawn timings');
    for (const k of ['image', 'define', 'plug', 'wait_port', 'boot'] as const)
      assert.equal(typeof r.timings[k], 'number');
    t.diagnostic(`spawn timings (ms): ${JSON.stringify(r.timings)}`);
    assert.equal(await domState(instanceName(vm.seq)), 'running');
    const port = vm.ports[0]?.id as string;
    const tap = tapOf(port);
    assert.match(await f.lab.exec(f.h.netns, ['ip', '-o', 'link', 'show', tap]), /state UP|UP/);
    assert.equal(
      (await f.h.vsctl(['get', 'Interface', tap, 'external_ids:iface-id'])).trim(),
      `"${port}"`,
    );
    assert.equal(
      (await f.h.vsctl(['get', 'Interface', tap, 'external_ids:vm-uuid'])).trim(),
      `"${vm.id}"`,
    );
    assert.ok((await f.h.vsctl(['list-ports', 'br-int'])).split('\n').includes(tap));
    ip = await guestIp(vm.id);
    await pings(ip);
    const disk = join(f.dir, 'instances', vm.id, 'disk');
    const info = JSON.parse(
      (await runCommand(['qemu-img', 'info', '-U', '--output=json', disk])).stdout,
    );
    assert.equal(info['virtual-size'], 1024 ** 3, 'overlay sized by the flavor');
    assert.equal(info['backing-filename'], join(f.dir, 'instances', '_base', f.images.machine.id));
    const dir = join(f.dir, 'instances', vm.id);
    assert.equal(readFileSync(join(dir, 'host'), 'utf8'), `${f.host}\n`, 'owner marker');
    const listed = readFileSync(join(dir, 'images'), 'utf8').trim().split('\n').sort();
    assert.deepEqual(
      listed,
      Object.values(f.images)
        .map((i) => i.id)
        .sort(),
      'its images',
    );
    await assert.rejects(
      f.broker.call(hostQueue('compute_agent', f.host), 'get_console_output', {
        instance_id: randomUUID(),
      }),
      /no console log/,
    );
    const one = (await f.broker.call(hostQueue('compute_agent', f.host), 'get_console_output', {
      instance_id: vm.id,
      length: 1,
    })) as { output: string };
    assert.equal(one.output.trimEnd().split('\n').length, 1);
  });

  test('pause/unpause, soft/hard reboot, stop/start, suspend/resume: reported, guest reachable', async () => {
    const name = instanceName(vm.seq);
    const expect = async (state: TaskState, vmState: string, power: number, virshState: string) => {
      const r = await task(vm.id, state);
      assert.equal(r.fault, undefined, `${state}: ${JSON.stringify(r.fault)}`);
      assert.equal(r.vm_state, vmState, state);
      assert.equal(r.power_state, power, state);
      assert.equal(await domState(name), virshState, state);
    };
    await expect('pausing', 'paused', 3, 'paused');
    await expect('unpausing', 'active', 1, 'running');
    await pings(ip);
    await expect('rebooting', 'active', 1, 'running');
    ip = await guestIp(vm.id);
    await pings(ip);
    await expect('rebooting_hard', 'active', 1, 'running');
    await pings(ip);
    await expect('powering-off', 'stopped', 4, 'shut off');
    await expect('powering-on', 'active', 1, 'running');
    await pings(ip);
    await expect('suspending', 'suspended', 7, 'shut off');
    assert.match((await virsh('dominfo', name)).stdout, /Managed save:\s+yes/);
    await expect('resuming', 'active', 1, 'running');
    await pings(ip);
    const stale = await task(vm.id, 'pausing', { hint: true });
    assert.equal(stale.vm_state, 'paused');
    const twice = await task(vm.id, 'pausing');
    assert.equal(twice.fault, undefined, 'pausing a paused guest is already done');
    await expect('unpausing', 'active', 1, 'running');
    const mine = reports.filter((r) => r.instance_id === vm.id);
    for (const r of mine.filter((x) => x.task_done !== undefined))
      assert.equal(r.observed_task_id, r.task_done, 'a task report observed its own task');
    assert.ok(
      mine.every((r) => typeof r.observed_task_id === 'number'),
      'every report',
    );
  });

  test('SIGTERM and kill -9 leave guests running; a restarted agent catches up; a guest gone off stays off unless the host booted', async () => {
    const name = instanceName(vm.seq);
    assert.equal(await stopAgent('SIGTERM'), 0, 'clean exit');
    assert.equal(await domState(name), 'running');
    await pings(ip);
    // a stop asked while the agent was down, its hint lost: the start resync does it
    const down = task(vm.id, 'powering-off', { hint: false });
    startAgent();
    const r = await down;
    assert.equal(r.vm_state, 'stopped');
    assert.equal(await domState(name), 'shut off');
    await task(vm.id, 'powering-on');
    await pings(ip);

    await stopAgent('SIGKILL');
    assert.equal(await domState(name), 'running');
    await pings(ip);
    assert.equal(readFileSync(bootIdFile(), 'utf8').trim(), kernelBootId(), 'boot recorded');
    // the guest shut itself down while only the agent was down: it stays off
    assert.equal((await virsh('destroy', name)).code, 0);
    let before = reports.length;
    startAgent();
    const off = await waitReport(
      'the power state of the restarted agent',
      (x) => reports.indexOf(x) >= before && x.instance_id === vm.id,
    );
    assert.equal(off.power_state, 4, 'reported SHUTDOWN, not started');
    assert.equal(await domState(name), 'shut off');

    // as after a host reboot (another boot id than the recorded one): started again, and a
    // first attempt that fails (its console log cannot be opened) is retried as a restart
    await stopAgent('SIGKILL');
    const otherBoot = '00000000-0000-4000-8000-000000000000';
    writeFileSync(bootIdFile(), `${otherBoot}\n`);
    const consoleLog = join(f.dir, 'instances', vm.id, 'console.log');
    await pin(consoleLog);
    const logFrom = fullLog().length;
    before = reports.length;
    startAgent();
    await waitLog('the first restart attempt to fail', logFrom, [
      'reconcile failed',
      `instance:${vm.id}`,
    ]);
    assert.equal(await domState(name), 'shut off');
    assert.equal(readFileSync(bootIdFile(), 'utf8').trim(), otherBoot, 'not recorded yet');
    await unpin(consoleLog);
    await waitFor(
      'the guest started again',
      async () => (await domState(name)) === 'running',
      60_000,
    );
    await waitFor('a RUNNING report', () =>
      reports.slice(before).some((x) => x.instance_id === vm.id && x.power_state === 1),
    );
    await waitFor('the boot recorded', () =>
      readFileSync(bootIdFile(), 'utf8').trim() === kernelBootId() ? true : undefined,
    );
    await pings(ip);
  });

  test('a port that never goes ACTIVE: ERROR with the reason, nothing left behind', async () => {
    await stopAgent('SIGTERM');
    startAgent(2);
    const doomed = newSpec('doomed');
    const port = doomed.ports[0]?.id as string;
    neverActive.add(port);
    specs.set(doomed.id, doomed);
    await hint(doomed.id);
    const r = await waitReport(
      'the failed spawn report',
      (x) => x.instance_id === doomed.id && x.task_done === 1,
    );
    assert.equal(r.vm_state, 'error');
    assert.match(r.fault?.message ?? '', new RegExp(`${port}.*not ACTIVE within 2 s`));
    await assertNothingLeft(doomed);
  });

  test("another host's or an unmarked instance directory is left alone; a resync prunes unused images", async () => {
    const instances = join(f.dir, 'instances');
    const base = join(instances, '_base');
    const foreign = randomUUID();
    const unmarked = randomUUID();
    const [stale, fresh, theirs] = [randomUUID(), randomUUID(), randomUUID()];
    mkdirSync(join(instances, foreign));
    writeFileSync(join(instances, foreign, 'host'), 'other-host\n');
    writeFileSync(join(instances, foreign, 'images'), `${theirs}\n`);
    writeFileSync(join(instances, foreign, 'disk'), 'theirs');
    mkdirSync(join(instances, unmarked));
    writeFileSync(join(instances, unmarked, 'disk'), 'nobody knows');
    const dayOld = new Date(Date.now() - 2 * 86_400_000);
    for (const id of [stale, fresh, theirs]) writeFileSync(join(base, id), 'x');
    for (const id of [stale, theirs, ...Object.values(f.images).map((i) => i.id)])
      utimesSync(join(base, id), dayOld, dayOld);
    const from = fullLog().length;
    const before = reports.length;
    await hint(foreign);
    await hint(unmarked);
    await resyncNow();
    for (const id of [foreign, unmarked])
      await waitLog(`${id} reconciled`, from, ['instance reconciled', id]);
    const pruned = await waitLog('a prune that removed the stale image', from, [
      'image cache pruned',
      stale,
    ]);
    for (const id of [foreign, unmarked])
      assert.ok(existsSync(join(instances, id, 'disk')), `${id}: left alone`);
    assert.ok(
      !reports.slice(before).some((r) => r.instance_id === foreign || r.instance_id === unmarked),
      'nothing reported about them',
    );
    assert.ok(!existsSync(join(base, stale)), `${pruned}`);
    for (const id of [fresh, theirs, ...Object.values(f.images).map((i) => i.id)])
      assert.ok(existsSync(join(base, id)), `${id} kept (used lately, or named by a directory)`);
    assert.ok(statSync(join(instances, foreign, 'host')).isFile());
  });

  test('a delete whose teardown fails: ERROR; its report lost, a resync tries it again and leaves nothing', async () => {
    const stuck = join(f.dir, 'instances', vm.id, 'stuck');
    writeFileSync(stuck, 'immutable');
    await pin(stuck);
    lost.add(vm.id);
    const failed = await task(vm.id, 'deleting');
    const taskId = failed.task_done as number;
    assert.equal(failed.vm_state, 'error', 'a failed delete ends in ERROR');
    assert.match(failed.fault?.message ?? '', /EPERM|not permitted/);
    assert.equal(failed.observed_task_id, taskId);
    assert.equal(specs.get(vm.id)?.task_state, 'deleting', 'the report was lost');
    await unpin(stuck);
    await resyncNow();
    const done = await waitReport(
      'the retried delete',
      (r) => r.instance_id === vm.id && r.task_done === taskId && r.deleted === true,
    );
    assert.equal(done.fault, undefined);
    lost.delete(vm.id);
    // an unchanged report is sent again only once a resync forgot what was sent
    await resyncNow();
    await waitFor('the API to apply the resent report', () => !specs.has(vm.id));
    await assertNothingLeft(vm);
    const { stdout } = await virsh('list', '--all', '--name');
    for (const d of domains) assert.ok(!stdout.includes(d), `${d} is gone`);
  });

  async function assertNothingLeft(spec: InstanceSpec) {
    const tap = tapOf(spec.ports[0]?.id as string);
    const list = (await virsh('list', '--all', '--name')).stdout;
    assert.ok(!list.includes(instanceName(spec.seq)), 'no domain');
    assert.ok(!existsSync(join(f.dir, 'instances', spec.id)), 'no instance directory');
    assert.ok(!(await runCommand(['ip', '-o', 'link'])).stdout.includes(tap), 'no tap here');
    assert.ok(!(await f.lab.exec(f.h.netns, ['ip', '-o', 'link'])).includes(tap), 'no tap there');
    const ifaces = await f.h.vsctl(['--columns=name,external_ids', 'list', 'Interface']);
    assert.ok(!ifaces.includes(tap) && !ifaces.includes(spec.id), 'no OVS port');
  }
});
