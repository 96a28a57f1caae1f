/**
 * host/haproxy as a load balancer, with the real haproxy 2.6 in namespaces this test creates:
 * L holds haproxy (frontends on 10.79.0.1) and the members (tiny HTTP servers on its
 * loopback), C (10.79.0.5) is the client, over a veth. Nothing touches the root namespace's
 * interfaces or routes; both namespaces are removed at the end.
 *
 * Under test: the rendered config passes `haproxy -c` and serves (round robin over both
 * members; an inserted cookie, an application cookie learned from responses and the source
 * address each keep a client on one member); the stats socket (stats.ts) shows
 * the counters moving, a member failing its HTTP check DOWN with L7STS, a stopped member DOWN
 * with L4CON and UP again when it is back; 20 reloads with `-x <socket> -sf <pid>` under a
 * steady request loop fail no request, while stop+start does; `-x` naming a socket the old
 * process does not serve fails the reload and the old one serves on; `haproxy -c` refuses a
 * config with a duplicate backend.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import { type HaproxyConfig, renderConfig } from '../../host/haproxy/config.ts';
import {
  checkCommand,
  findHaproxy,
  type HaproxyPaths,
  haproxyExpected,
  reloadCommand,
  startCommand,
} from '../../host/haproxy/daemon.ts';
import { type StatRow, servesSocket, showInfo, showStat } from '../../host/haproxy/stats.ts';
import { startDaemon, stopByPidfile } from '../../host/process/daemon.ts';
import { tempDir, waitFor } from '../helpers/env.ts';
import { type HttpMember, httpMember, requestLoop, stopLbPeers } from '../helpers/lb-peers.ts';

const runner = createCommandRunner();
const TAG = `hl${randomBytes(3).toString('hex')}`;
const L = `${TAG}-l`;
const C = `${TAG}-c`;
const VIP = '10.79.0.1';
const LOOPBACK = '127.0.0.1';

const inNs = (netns: string, ...argv: string[]) => runner.run({ argv, netns });
const curl = (...args: string[]) =>
  inNs(C, 'curl', '-sS', '--max-time', '5', ...args).then((r) => r.stdout);

function lbConfig(socket: string): HaproxyConfig {
  const member = (n: number) => ({ name: `m${n}`, address: LOOPBACK, port: 8000 + n, weight: 1 });
  const check = { interval: 1, timeout: 1, fall: 2, rise: 2 };
  const httpCheck = {
    ...check,
    probe: { type: 'http', method: 'GET', path: '/', expect: [200] },
  } as const;
  return {
    maxconn: 2000,
    timeouts: { connect: 5, client: 30, server: 30, httpRequest: 10 },
    stats: { socket },
    frontends: [
      {
        name: 'web',
        mode: 'http',
        bind: { address: VIP, port: 80 },
        maxconn: 500,
        defaultBackend: 'pool',
      },
      { name: 'sticky', mode: 'http', bind: { address: VIP, port: 81 }, defaultBackend: 'sticky' },
      { name: 'sick', mode: 'tcp', bind: { address: VIP, port: 82 }, defaultBackend: 'sick' },
      { name: 'app', mode: 'http', bind: { address: VIP, port: 83 }, defaultBackend: 'app' },
      { name: 'src', mode: 'tcp', bind: { address: VIP, port: 84 }, defaultBackend: 'src' },
    ],
    backends: [
      {
        name: 'pool',
        mode: 'http',
        balance: 'roundrobin',
        check: httpCheck,
        servers: [member(1), member(2)],
      },
      {
        name: 'sticky',
        mode: 'http',
        balance: 'roundrobin',
        persistence: { type: 'insert-cookie' },
        servers: [member(1), member(2)],
      },
      { name: 'sick', mode: 'tcp', balance: 'leastconn', check: httpCheck, servers: [member(3)] },
      {
        name: 'app',
        mode: 'http',
        balance: 'roundrobin',
        persistence: { type: 'app-cookie', cookie: 'JSESSIONID' },
        servers: [member(1), member(2)],
      },
      {
        name: 'src',
        mode: 'tcp',
        balance: 'roundrobin',
        persistence: { type: 'source' },
        servers: [member(1), member(2)],
      },
    ],
  };
}

async function makeNamespaces() {
  for (const ns of [L, C]) await runner.run({ argv: ['ip', 'netns', 'add', ns] });
  await runner.run({
    argv: [
      'ip',
      'link',
      'add',
      'lbv',
      'netns',
      L,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      C,
    ],
  });
  await inNs(L, 'ip', 'addr', 'add', `${VIP}/24`, 'dev', 'lbv');
  await inNs(C, 'ip', 'addr', 'add', '10.79.0.5/24', 'dev', 'eth0');
  for (const [ns, dev] of [
    [L, 'lbv'],
    [C, 'eth0'],
    [L, 'lo'],
    [C, 'lo'],
  ] as const)
    await inNs(ns, 'ip', 'link', 'set', dev, 'up');
}

const row = (rows: StatRow[], px: string, sv: string) =>
  rows.find((r) => r.pxname === px && r.svname === sv);

/** The server's stats row once its status is `status`. */
const whenStatus = (socket: string, px: string, sv: string, status: string) =>
  waitFor(`${px}/${sv} ${status}`, async () => {
    const r = row(await showStat(socket), px, sv);
    return r?.status === status ? r : null;
  });

describe('haproxy load balancer in a namespace', () => {
  const dir = tempDir('kumo-haproxy-lb-');
  const paths: HaproxyPaths = {
    config: join(dir.path, 'haproxy.cfg'),
    pidfile: join(dir.path, 'haproxy.pid'),
    socket: join(dir.path, 'haproxy.sock'),
  };
  const socket = paths.socket as string;
  const members = new Map<number, HttpMember>();
  const startMember = async (n: number, status = 200) =>
    members.set(n, await httpMember(L, LOOPBACK, 8000 + n, `m${n}`, status));
  const start = () =>
    startDaemon(runner, startCommand(paths, L), {
      pidfile: paths.pidfile,
      expected: haproxyExpected(paths),
    });

  before(async () => {
    await makeNamespaces();
    await startMember(1);
    await startMember(2);
    await startMember(3, 503);
    writeFileSync(paths.config, renderConfig(lbConfig(socket)));
    await runner.run(checkCommand(paths.config));
    await start();
  });

  after(async () => {
    await stopByPidfile(paths.pidfile, haproxyExpected(paths));
    stopLbPeers();
    for (const ns of [L, C]) await runner.run({ argv: ['ip', 'netns', 'del', ns] });
    dir.cleanup();
  });

  test('serves round robin over both members; an inserted cookie keeps a client on one', async () => {
    const bodies = new Set<string>();
    for (let i = 0; i < 6; i++) bodies.add(await curl(`http://${VIP}/`));
    assert.deepEqual([...bodies].sort(), ['m1', 'm2']);
    const first = await curl('-D', '-', `http://${VIP}:81/`);
    const cookie = /^set-cookie: SRV=(m[12]);/im.exec(first)?.[1];
    assert.ok(cookie, first);
    for (let i = 0; i < 6; i++)
      assert.equal(await curl('-b', `SRV=${cookie}`, `http://${VIP}:81/`), cookie);
  });

  test('an application cookie learned from responses, or the source address, keeps a client on one member', async () => {
    const learned = [await curl(`http://${VIP}:83/`), await curl(`http://${VIP}:83/`)];
    assert.deepEqual(learned.sort(), ['m1', 'm2']);
    for (const m of ['m2', 'm1', 'm2'])
      for (let i = 0; i < 3; i++)
        assert.equal(await curl('-b', `JSESSIONID=${m}`, `http://${VIP}:83/`), m);
    const bySource = new Set<string>();
    for (let i = 0; i < 6; i++) bySource.add(await curl(`http://${VIP}:84/`));
    assert.equal(bySource.size, 1);
  });

  test('the stats socket: counters move, a failing HTTP check is DOWN with L7STS', async () => {
    const { pid } = await showInfo(socket);
    assert.equal(pid, await findHaproxy(paths));
    const before = row(await showStat(socket), 'web', 'FRONTEND');
    for (let i = 0; i < 4; i++) await curl(`http://${VIP}/`);
    const rows = await showStat(socket);
    const web = row(rows, 'web', 'FRONTEND');
    assert.ok(before && web);
    assert.equal(web.type, 'frontend');
    assert.ok(web.stot >= before.stot + 4, `${before.stot} → ${web.stot}`);
    assert.ok(web.bin > before.bin && web.bout > before.bout);
    const served = ['m1', 'm2'].map((m) => row(rows, 'pool', m)?.stot ?? 0);
    assert.ok(
      served.every((n) => n > 0),
      `${served}`,
    );
    const m1 = await whenStatus(socket, 'pool', 'm1', 'UP');
    assert.equal(m1.check_status, 'L7OK');
    assert.equal(m1.weight, 1);
    const sick = await whenStatus(socket, 'sick', 'm3', 'DOWN');
    assert.equal(sick.check_status, 'L7STS');
    assert.equal(sick.check_code, 503);
  });

  test('a stopped member goes DOWN (L4CON), and UP again when it is back', async () => {
    members.get(2)?.stop();
    const down = await whenStatus(socket, 'pool', 'm2', 'DOWN');
    assert.equal(down.check_status, 'L4CON');
    for (let i = 0; i < 4; i++) assert.equal(await curl(`http://${VIP}/`), 'm1');
    await startMember(2);
    const up = await whenStatus(socket, 'pool', 'm2', 'UP');
    assert.equal(up.check_status, 'L7OK');
  });

  test('20 reloads over the stats socket (-x, -sf) under a steady request loop fail no request', async () => {
    const loop = await requestLoop(C, `http://${VIP}/`);
    const pids = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const old = await findHaproxy(paths);
      assert.ok(old !== null);
      pids.add(old);
      await runner.run(reloadCommand(paths, old, L));
      const now = await waitFor('the new haproxy', async () => {
        const pid = await findHaproxy(paths);
        return pid !== old && pid !== null && (await showInfo(socket)).pid === pid ? pid : null;
      });
      pids.add(now);
      await sleep(100);
    }
    const result = await loop.finish();
    console.log(`reloads -x -sf: ${JSON.stringify(result)}`);
    assert.equal(pids.size, 21);
    assert.ok(result.ok > 20, `${result.ok} requests`);
    assert.deepEqual(result.errors, {});
    assert.equal(result.failed, 0);
  });

  test('without the handover (-sf only: logged; stop + start: asserted) requests fail', async () => {
    const sfOnly = await requestLoop(C, `http://${VIP}/`);
    for (let i = 0; i < 10; i++) {
      const old = await findHaproxy(paths);
      assert.ok(old !== null);
      await runner.run(reloadCommand({ config: paths.config, pidfile: paths.pidfile }, old, L));
      await waitFor('the new haproxy', async () => (await showInfo(socket)).pid !== old);
      await sleep(100);
    }
    console.log(`reloads -sf without -x: ${JSON.stringify(await sfOnly.finish())}`);
    const loop = await requestLoop(C, `http://${VIP}/`);
    for (let i = 0; i < 5; i++) {
      await stopByPidfile(paths.pidfile, haproxyExpected(paths));
      await start();
      await sleep(100);
    }
    const result = await loop.finish();
    console.log(`stop + start: ${JSON.stringify(result)}`);
    assert.ok(result.ok > 0);
    assert.ok(result.failed > 0, JSON.stringify(result));
    assert.ok((result.errors.ECONNREFUSED ?? 0) > 0, JSON.stringify(result));
  });

  test('-x naming a socket the old process does not serve: the reload fails, the old one serves on', async () => {
    const old = await findHaproxy(paths);
    assert.ok(old !== null);
    assert.equal(await servesSocket(socket, old), true);
    const missing = join(dir.path, 'missing.sock');
    assert.equal(await servesSocket(missing, old), false);
    await assert.rejects(
      runner.run(reloadCommand({ ...paths, socket: missing }, old, L)),
      (e: unknown) => e instanceof CommandError && /Failed to get the sockets/.test(e.stderr),
    );
    assert.equal(await findHaproxy(paths), old);
    assert.equal((await showInfo(socket)).pid, old);
    assert.match(await curl(`http://${VIP}/`), /^m[12]$/);
  });

  test('haproxy -c refuses a config with a duplicate backend name', async () => {
    const c = lbConfig(socket);
    const bad = {
      ...c,
      backends: [...(c.backends ?? []), { ...(c.backends ?? [])[0], name: 'pool' }],
    };
    const file = join(dir.path, 'duplicate.cfg');
    writeFileSync(file, renderConfig(bad as HaproxyConfig));
    await assert.rejects(runner.run(checkCommand(file)), (e: unknown) => {
      assert.ok(e instanceof CommandError && e.exitCode !== 0);
      assert.match(e.stderr, /backend 'pool' has the same name as backend 'pool'/);
      return true;
    });
    await runner.run(checkCommand(paths.config));
  });
});
