/**
 * kumo-lbaas-agent's hooks (agents/lbaas/agent.ts) on a real host without the API: one
 * lab host (its own ovsdb-server and ovs-vswitchd, br-int made by the test), real
 * namespaces, `ip`, OVS and haproxy. A fake broker passed in plays kumo-api: it answers
 * get_active_pools and get_pool_info from a pool the test edits, and records the casts
 * (report_status, update_pool_stats). Two backends (tiny HTTP servers answering vm1 and vm2
 * in their own lab namespaces) and a client namespace sit on br-int with the VIP's port.
 *
 * Proves: a new pool gets its qlbaas namespace with the VIP port (OVS internal port with
 * iface-id), address and default route, and an haproxy that serves the VIP round robin to
 * both members; its status ACTIVE at the served revision; the stats loop reports counters
 * and member health, a stopped backend INACTIVE (its check status as reason) and back;
 * member changes under a steady request loop are hitless reloads (a new pid each time,
 * zero failed requests, the new config in force); a restarted agent adopts haproxy and
 * namespace (same pid, nothing planned); a resync with nothing claiming the pool removes
 * haproxy, port, namespace and state, and leaves a qlbaas namespace without our marker
 * alone. Traffic stays inside the lab's namespaces.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lbaasHooks } from '../../agents/lbaas/agent.ts';
import type { LbPool } from '../../contracts/lbaas.ts';
import type { AgentHooks } from '../../core/agent.ts';
import type { Broker } from '../../core/amqp.ts';
import { compileConfig } from '../../core/config.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { runCommand } from '../helpers/cluster.ts';
import { tempDir, waitFor } from '../helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../helpers/lab.ts';
import { M1, M2, member, monitorOf, POOL, poolOf, VIP_PORT } from '../helpers/lbaas-fixtures.ts';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
type Cast = { method: string; args: Record<string, unknown> };
const BACKEND = `const [name, ip] = process.argv.slice(1);
require('node:http').createServer((q, r) => {
  if (q.url === '/hold') console.log('held');
  else r.end(name + '\\n');
}).listen(80, ip, () => console.log('ready'));`;

/** Every live process whose command line carries `-f <config>` (any namespace). */
function haproxysOf(config: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^[0-9]+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8')
          .split('\0')
          .join(' ')
          .includes(`-f ${config} `);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The real uid of a process (/proc/<pid>/status). */
const uidOf = (pid: number) =>
  Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

describe('kumo-lbaas-agent on a real host (fake broker)', { timeout: 90_000 }, () => {
  const tmp = tempDir('kumo-lbaas-');
  const casts: Cast[] = [];
  const servers = new Map<string, ChildProcess>();
  let loop: ChildProcess | undefined;
  let pool: LbPool | null;
  let lab: Lab;
  let h: LabHost;
  let client: Endpoint;
  const eps: Endpoint[] = [];
  let hooks: AgentHooks;
  const queued = new Set<string>();
  const ns = () => `${lab.prefix}-qlbaas-${POOL}`;
  const dir = join(tmp.path, 'lbaas', POOL);
  const FOREIGN = randomUUID();

  const broker = {
    async call(_topic: string, method: string, args: { pool_id?: string }) {
      if (method === 'get_active_pools') return { pools: pool ? [POOL] : [] };
      if (method === 'get_pool_info')
        return { pool: pool && args.pool_id === POOL ? structuredClone(pool) : null };
      throw new Error(`unexpected call ${method}`);
    },
    async cast(_topic: string, method: string, args: Record<string, unknown>) {
      casts.push({ method, args });
    },
  } as unknown as Broker;

  const config = () =>
    compileConfig(
      [
        '[DEFAULT]',
        'host = lbaas-test-host',
        `state_path = ${tmp.path}`,
        `netns_prefix = ${lab.prefix}-`,
        '[ovs]',
        `ovsdb_connection = unix:${h.dbSocket}`,
        `vswitchd_netns = ${h.netns}`,
        '[lbaas]',
        'stats_interval = 0.2',
      ].join('\n'),
    );

  /** A fresh agent (as after a restart): started, resynced, its queue run. */
  async function startAgent() {
    hooks = await lbaasHooks({
      config: config(),
      runner: createCommandRunner(),
      log: silentLogger(),
      broker,
    });
    await hooks.start?.({ enqueue: (_r, id) => void queued.add(id) });
    await resync();
  }
  async function resync() {
    await hooks.resync('test');
    await drain();
  }
  async function drain() {
    for (const id of [...queued]) {
      queued.delete(id);
      await hooks.reconcile?.('pool', id);
    }
  }
  const reconcile = () => hooks.reconcile?.('pool', POOL);
  const pid = () => Number(readFileSync(join(dir, 'haproxy.pid'), 'utf8').trim());
  const curl = (timeout = 3) =>
    lab.exec(client.netns, ['curl', '-s', '-m', String(timeout), 'http://10.80.0.100/']);

  async function startBackend(name: string, ep: Endpoint) {
    const child = spawn('ip', [
      'netns',
      'exec',
      ep.netns,
      process.execPath,
      '-e',
      BACKEND,
      name,
      ep.ip,
    ]);
    servers.set(name, child);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`backend ${name} exited ${code}`)));
    });
  }
  const stopBackend = (name: string) =>
    new Promise<void>((resolve) => {
      const child = servers.get(name);
      servers.delete(name);
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  type StatsCast = {
    stats?: Record<string, number>;
    members?: { id: string; status: string }[];
    reasons?: unknown;
  };
  /** The last update_pool_stats carrying `part` (each part is sent only when it changed). */
  const lastWith = (part: 'stats' | 'members') =>
    casts
      .filter((c) => c.method === 'update_pool_stats')
      .map((c) => c.args as StatsCast)
      .filter((a) => a[part] !== undefined)
      .at(-1);
  const lastStats = () => lastWith('stats');
  const memberStatus = (id: string) =>
    lastWith('members')?.members?.find((m) => m.id === id)?.status;

  before(async () => {
    lab = await createLab({ hosts: 1 });
    h = lab.hosts[0] as LabHost;
    await h.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev']);
    const ep = (mac: string, ip: string) =>
      lab.endpoint(h, { ifaceId: randomUUID(), mac, cidr: `${ip}/24` });
    eps.push(
      await ep('fa:16:3e:80:00:0b', '10.80.0.11'),
      await ep('fa:16:3e:80:00:0c', '10.80.0.12'),
    );
    client = await ep('fa:16:3e:80:00:14', '10.80.0.20');
    await startBackend('vm1', eps[0] as Endpoint);
    await startBackend('vm2', eps[1] as Endpoint);
    pool = poolOf({ health_monitor: monitorOf({ delay: 1, timeout: 1, max_retries: 1 }) });
    await runCommand(['ip', 'netns', 'add', `${lab.prefix}-qlbaas-${FOREIGN}`]);
  });
  after(async () => {
    loop?.kill('SIGKILL');
    await hooks?.stop?.();
    for (const name of [...servers.keys()]) await stopBackend(name);
    const p = existsSync(join(dir, 'haproxy.pid')) ? pid() : null;
    if (p !== null && alive(p)) process.kill(p, 'SIGTERM');
    await runCommand(['ip', 'netns', 'del', ns()]).catch(() => {});
    await runCommand(['ip', 'netns', 'del', `${lab.prefix}-qlbaas-${FOREIGN}`]).catch(() => {});
    await lab?.destroy();
    tmp.cleanup();
  });

  test('a new pool: namespace, VIP port, route, haproxy serving round robin, status ACTIVE', async () => {
    await startAgent();
    const device = `tap${VIP_PORT.slice(0, 11)}`;
    assert.match(
      await h.vsctl(['get', 'Interface', device, 'external_ids']),
      new RegExp(`iface-id="${VIP_PORT}"`),
    );
    const addrs = await lab.exec(ns(), ['ip', '-o', 'addr', 'show', 'dev', device]);
    assert.match(addrs, /inet 10\.80\.0\.100\/24/);
    assert.match(
      await lab.exec(ns(), ['ip', 'route', 'show', 'proto', 'static']),
      /default via 10\.80\.0\.1/,
    );
    assert.equal(readFileSync(join(dir, 'host'), 'utf8'), 'lbaas-test-host\n');
    assert.equal(readFileSync(join(dir, 'device'), 'utf8'), `${device}\n`);
    assert.equal(statSync(dir).mode & 0o777, 0o750, 'the stats socket’s directory');
    assert.equal(statSync(join(dir, 'haproxy.sock')).mode & 0o777, 0o600);
    const served = pid();
    chmodSync(dir, 0o755);
    await reconcile();
    assert.equal(statSync(dir).mode & 0o777, 0o750, 'a looser one (made before) tightened');
    assert.equal(pid(), served, 'and nothing else done');
    await waitFor('the VIP answers', () => curl().catch(() => ''));
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) answers.push((await curl()).trim());
    assert.equal(new Set(answers).size, 2, answers.join(' '));
    for (let i = 1; i < answers.length; i++)
      assert.notEqual(answers[i], answers[i - 1], answers.join(' '));
    const statuses = casts
      .filter((c) => c.method === 'report_status')
      .flatMap((c) => c.args.statuses as unknown[]);
    assert.deepEqual(statuses, [{ resource: 'pool', id: POOL, status: 'ACTIVE', revision: 3 }]);
    assert.deepEqual(await hooks.configurations(), {
      device_drivers: ['haproxy_ns'],
      haproxy_version: (await hooks.configurations()).haproxy_version,
      instances: 1,
    });
  });

  test('the stats loop reports counters and member health; a stopped backend goes INACTIVE and back', async () => {
    await waitFor(
      'stats with the ten requests',
      () => (lastStats()?.stats?.total_connections ?? 0) >= 10,
    );
    const s = lastStats();
    assert.ok((s?.stats?.bytes_out ?? 0) > 0 && (s?.stats?.bytes_in ?? 0) > 0);
    assert.equal(memberStatus(M1), 'ACTIVE');
    assert.equal(memberStatus(M2), 'ACTIVE');
    await stopBackend('vm2');
    await waitFor('vm2 INACTIVE', () => memberStatus(M2) === 'INACTIVE', 20_000);
    assert.match(
      JSON.stringify(lastWith('members')?.reasons),
      new RegExp(`"id":"${M2}","reason":"L[4-7]`),
    );
    const healthCasts = () =>
      casts.filter((c) => c.method === 'update_pool_stats' && c.args.members !== undefined).length;
    const before = { health: healthCasts(), total: lastStats()?.stats?.total_connections ?? 0 };
    for (let i = 0; i < 4; i++) assert.equal((await curl()).trim(), 'vm1');
    await waitFor(
      'the four requests counted',
      () => (lastStats()?.stats?.total_connections ?? 0) >= before.total + 4,
    );
    assert.equal(healthCasts(), before.health, 'counters changed, health not re-sent');
    await startBackend('vm2', eps[1] as Endpoint);
    await waitFor('vm2 ACTIVE again', () => memberStatus(M2) === 'ACTIVE', 20_000);
  });

  test('member changes under a steady request loop: hitless reloads, new config in force', async () => {
    const stop = join(tmp.path, 'stop');
    loop = spawn('ip', [
      'netns',
      'exec',
      client.netns,
      'bash',
      '-c',
      `while [ ! -e ${stop} ]; do curl -s -m 3 -o /dev/null -w '%{http_code}\\n' http://10.80.0.100/; done`,
    ]);
    let out = '';
    loop.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const pids = new Set([pid()]);
    const p = pool as LbPool;
    for (let i = 0; i < 10; i++) {
      p.members =
        i % 2 === 0
          ? [member(M1, '10.80.0.11')]
          : [member(M1, '10.80.0.11'), member(M2, '10.80.0.12', 2)];
      p.revision_number++;
      await reconcile();
      pids.add(pid());
      await waitFor('requests after the reload', () => out.split('\n').length > (i + 1) * 3);
    }
    await runCommand(['touch', stop]);
    await new Promise((resolve) => loop?.once('exit', resolve));
    const codes = out.trim().split('\n');
    assert.equal(pids.size, 11, 'each change a new haproxy process');
    assert.ok(codes.length >= 30, `${codes.length} requests`);
    assert.deepEqual(
      codes.filter((c) => c !== '200'),
      [],
      'no failed request',
    );
    assert.match(
      readFileSync(join(dir, 'haproxy.cfg'), 'utf8'),
      new RegExp(`server ${M2} 10\\.80\\.0\\.12:80 weight 2`),
    );
    p.members = [member(M1, '10.80.0.11')];
    p.revision_number++;
    await reconcile();
    for (let i = 0; i < 4; i++) assert.equal((await curl()).trim(), 'vm1');
    assert.ok(alive(pid()));
    assert.equal(uidOf(pid()), 65534, 'haproxy serves as nobody');
    const sock = statSync(join(dir, 'haproxy.sock'));
    assert.deepEqual([sock.uid, sock.mode & 0o777], [0, 0o600], 'the stats socket stays root’s');
  });

  test('a restarted agent adopts haproxy and namespace: same pid, nothing changed', async () => {
    const before = { pid: pid(), loaded: readFileSync(join(dir, 'haproxy.loaded'), 'utf8') };
    await hooks.stop?.();
    assert.equal((await curl()).trim(), 'vm1', 'stopping the agent leaves haproxy serving');
    await startAgent();
    assert.equal(pid(), before.pid);
    assert.equal(readFileSync(join(dir, 'haproxy.loaded'), 'utf8'), before.loaded);
    assert.equal((await curl()).trim(), 'vm1');
  });

  test('nothing claims the pool: resync removes haproxy, port, namespace, state; a foreign qlbaas stays', async () => {
    // A request the backend holds keeps the haproxy a reload replaces running (-sf).
    const held = new Promise<void>((resolve) => {
      for (const child of servers.values())
        child.stdout?.on('data', (b: Buffer) => b.toString().includes('held') && resolve());
    });
    const holder = spawn('ip', [
      'netns',
      'exec',
      client.netns,
      'curl',
      '-s',
      '-m',
      '80',
      'http://10.80.0.100/hold',
    ]);
    await held;
    const replaced = pid();
    const p = pool as LbPool;
    p.members = [member(M1, '10.80.0.11', 3)];
    p.revision_number++;
    await reconcile();
    const old = pid();
    assert.notEqual(old, replaced);
    assert.ok(alive(replaced), 'the replaced haproxy still finishes the held request');
    const config = join(dir, 'haproxy.cfg');
    assert.deepEqual(haproxysOf(config).sort(), [replaced, old].sort());
    pool = null;
    await resync();
    assert.deepEqual(haproxysOf(config), [], 'no haproxy of the pool left');
    holder.kill('SIGKILL');
    assert.ok(!existsSync(dir), 'state directory removed');
    const netns = await runCommand(['ip', 'netns', 'list']);
    assert.doesNotMatch(netns.stdout, new RegExp(`qlbaas-${POOL}`));
    assert.match(netns.stdout, new RegExp(`qlbaas-${FOREIGN}`));
    assert.doesNotMatch(
      await h.vsctl(['list-ports', 'br-int']),
      new RegExp(`tap${VIP_PORT.slice(0, 11)}`),
    );
    await waitFor('the old haproxy gone', () => !alive(old));
    assert.equal((await hooks.configurations()).instances, 0);
  });

  test('its namespace gone (as after a reboot), a teardown still removes the OVS port', async () => {
    pool = poolOf();
    await resync();
    const device = `tap${VIP_PORT.slice(0, 11)}`;
    assert.match(await h.vsctl(['list-ports', 'br-int']), new RegExp(device));
    const old = pid();
    await runCommand(['ip', 'netns', 'del', ns()]);
    pool = null;
    await resync();
    assert.doesNotMatch(await h.vsctl(['list-ports', 'br-int']), new RegExp(device));
    assert.ok(!existsSync(dir), 'state directory removed');
    await waitFor('the old haproxy gone', () => !alive(old));
  });
});
