/**
 * host/haproxy and the metadata proxy kit (agents/lib/metadata-proxy.ts) with the real
 * haproxy 2.6 in namespaces this test creates: a "router" namespace P runs the proxy on
 * 0.0.0.0:9697, a "guest" namespace G (10.77.0.5) reaches it over a veth; the proxy forwards
 * to the real relay (agents/lib/metadata-relay.ts) on a unix socket in a temporary
 * directory, which forwards to a stand-in listener on loopback that checks signatures.
 * Nothing touches the root namespace's interfaces or routes.
 *
 * Under test: proxySteps → runSteps starts haproxy in P (haproxy -c first) and a second
 * observe plans nothing; a guest's forged X-Instance-ID, X-Forwarded-For, X-Kumo-Router-ID,
 * Forwarded and X-Tenant-ID are stripped: the listener sees the guest's own source address
 * and the router id the proxy set; a changed spec is a hitless reload (-sf: a new pid, the
 * new header value); a config written by an agent that died before reloading is loaded on
 * the next pass (haproxy.loaded is stale), after `haproxy -c`; a haproxy config that fails
 * `haproxy -c` stops the plan before the reload; a haproxy in another namespace than the spec's is replaced (reload from the right
 * one); a null spec stops haproxy and leaves no file behind.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  observeProxy,
  type ProxySpec,
  proxyConfig,
  proxyPaths,
  proxySteps,
} from '../../agents/lib/metadata-proxy.ts';
import { startMetadataRelay } from '../../agents/lib/metadata-relay.ts';
import { runSteps } from '../../agents/lib/steps.ts';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { checkCommand } from '../../host/haproxy/daemon.ts';
import { isRunning } from '../../host/process/daemon.ts';
import { type MetadataPeer, startMetadataPeer } from '../helpers/metadata-peer.ts';

const runner = createCommandRunner();
const log = silentLogger();
const TAG = `hp${randomBytes(3).toString('hex')}`;
const P = `${TAG}-p`;
const G = `${TAG}-g`;
const SECRET = 'haproxy-test-secret';
const ROUTER = randomUUID();
const VM = { instance_id: randomUUID(), project_id: randomUUID().replaceAll('-', '') };

const inNs = (netns: string, ...argv: string[]) => runner.run({ argv, netns });
const curl = (...args: string[]) =>
  inNs(G, 'curl', '-sS', '--max-time', '5', ...args).then((r) => r.stdout);

describe('haproxy metadata proxy in a namespace', () => {
  let dir: string;
  let spec: ProxySpec;
  let peer: MetadataPeer;
  let relay: { close(): Promise<void> };
  const asked: string[] = [];

  const converge = async (s: ProxySpec | null) => {
    const steps = proxySteps(s, await observeProxy(s ?? spec.dir));
    await runSteps({ runner, log }, steps);
    return steps;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kumo-haproxy-'));
    for (const ns of [P, G]) await runner.run({ argv: ['ip', 'netns', 'add', ns] });
    await runner.run({
      argv: [
        'ip',
        'link',
        'add',
        'qr-hp',
        'netns',
        P,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        G,
      ],
    });
    await inNs(P, 'ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'qr-hp');
    await inNs(G, 'ip', 'addr', 'add', '10.77.0.5/24', 'dev', 'eth0');
    for (const [ns, dev] of [
      [P, 'qr-hp'],
      [G, 'eth0'],
      [P, 'lo'],
      [G, 'lo'],
    ] as const)
      await inNs(ns, 'ip', 'link', 'set', dev, 'up');
    peer = await startMetadataPeer(SECRET);
    relay = await startMetadataRelay({
      socket: join(dir, 'relay.sock'),
      secret: SECRET,
      nova: { host: '127.0.0.1', port: peer.port },
      log,
      async lookup(key, ip) {
        asked.push(`${JSON.stringify(key)} ${ip}`);
        return 'router_id' in key && key.router_id === ROUTER && ip === '10.77.0.5' ? VM : null;
      },
    });
    spec = {
      netns: P,
      dir: join(dir, 'proxy'),
      bind: { address: '0.0.0.0', port: 9697 },
      header: { name: 'X-Kumo-Router-ID', value: ROUTER },
      socket: join(dir, 'relay.sock'),
    };
  });

  after(async () => {
    await runSteps({ runner, log }, proxySteps(null, await observeProxy(join(dir, 'proxy'))));
    await relay.close();
    await peer.close();
    for (const ns of [P, G]) await runner.run({ argv: ['ip', 'netns', 'del', ns] });
    rmSync(dir, { recursive: true, force: true });
  });

  test('starts haproxy in the namespace, checked first; a second pass plans nothing', async () => {
    const steps = await converge(spec);
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['mkdir', 'file', 'command', 'daemon', 'file'],
    );
    const o = await observeProxy(spec);
    assert.ok(o.pid !== null);
    assert.equal(o.inNetns, true);
    assert.deepEqual(proxySteps(spec, o), []);
  });

  test('the guest gets its own instance; forged headers are stripped', async () => {
    peer.seen.length = 0;
    const body = await curl(
      '-H',
      `X-Instance-ID: ${randomUUID()}`,
      '-H',
      'X-Forwarded-For: 10.77.0.9',
      '-H',
      `X-Kumo-Router-ID: ${randomUUID()}`,
      '-H',
      'Forwarded: for=10.77.0.9',
      '-H',
      'X-Tenant-ID: other',
      'http://10.77.0.1:9697/latest/meta-data/instance-id',
    );
    assert.equal(body, `${VM.instance_id} /latest/meta-data/instance-id`);
    assert.equal(peer.seen.length, 1);
    assert.equal(peer.seen[0]?.headers['x-forwarded-for'], '10.77.0.5');
    assert.equal(peer.seen[0]?.headers.forwarded, undefined);
    assert.equal(peer.seen[0]?.headers['x-tenant-id'], VM.project_id);
    assert.equal(asked.at(-1), `{"router_id":"${ROUTER}"} 10.77.0.5`);
  });

  test('a changed spec is a hitless reload with the new header value', async () => {
    const before = (await observeProxy(spec)).pid as number;
    const other = randomUUID();
    const steps = await converge({ ...spec, header: { ...spec.header, value: other } });
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['file', 'command', 'command', 'file'],
    );
    const reload = steps.at(-2);
    assert.ok(reload?.kind === 'command');
    assert.deepEqual(reload.spec.argv.slice(-2), ['-sf', String(before)]);
    const now = await observeProxy(spec);
    assert.ok(now.pid !== null && now.pid !== before);
    assert.ok(readFileSync(proxyPaths(spec.dir).config, 'utf8').includes(other));
    for (let i = 0; i < 100 && (await isRunning(before, spec.dir)); i++) await sleep(20);
    assert.equal(await isRunning(before, spec.dir), false);
    await curl('http://10.77.0.1:9697/');
    assert.equal(asked.at(-1), `{"router_id":"${other}"} 10.77.0.5`);
    await converge(spec);
  });

  test('a config written but never reloaded (agent died) is reloaded on the next pass', async () => {
    const before = (await observeProxy(spec)).pid as number;
    const other = { ...spec, header: { ...spec.header, value: randomUUID() } };
    writeFileSync(proxyPaths(spec.dir).config, proxyConfig(other));
    const steps = proxySteps(other, await observeProxy(other));
    assert.deepEqual(
      steps.map((s) => s.why),
      ['haproxy -c', 'reload the metadata proxy', 'the config haproxy reloaded'],
    );
    await runSteps({ runner, log }, steps);
    assert.notEqual((await observeProxy(other)).pid, before);
    await curl('http://10.77.0.1:9697/');
    assert.equal(asked.at(-1), `{"router_id":"${other.header.value}"} 10.77.0.5`);
    assert.deepEqual(proxySteps(other, await observeProxy(other)), []);
    await converge(spec);
  });

  test('a haproxy found in another namespace is replaced by one in the spec’s', async () => {
    const P2 = `${TAG}-p2`;
    await runner.run({ argv: ['ip', 'netns', 'add', P2] });
    try {
      const old = (await observeProxy(spec)).pid as number;
      const moved = { ...spec, netns: P2 };
      const o = await observeProxy(moved);
      assert.equal(o.inNetns, false);
      const steps = proxySteps(moved, o);
      assert.deepEqual(
        steps.map((s) => s.why),
        ['haproxy -c', 'metadata proxy in a stale namespace', 'the config haproxy reloaded'],
      );
      await runSteps({ runner, log }, steps);
      assert.equal((await observeProxy(moved)).inNetns, true);
      await converge(spec);
      const back = await observeProxy(spec);
      assert.ok(back.inNetns && back.pid !== old);
    } finally {
      await runner.run({ argv: ['ip', 'netns', 'del', P2] });
    }
  });

  test('haproxy -c refuses a broken config (CommandError naming it)', async () => {
    const broken = join(dir, 'broken.cfg');
    writeFileSync(broken, 'listen x\n    bind 0.0.0.0:notaport\n');
    await assert.rejects(runner.run(checkCommand(broken)), (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.ok(e.argv.includes(broken));
      return true;
    });
  });

  test('a null spec stops haproxy and removes its files', async () => {
    const pid = (await observeProxy(spec)).pid as number;
    const steps = await converge(null);
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['daemon', 'remove'],
    );
    assert.equal(await isRunning(pid, spec.dir), false);
    assert.equal(existsSync(spec.dir), false);
    assert.deepEqual(proxySteps(null, await observeProxy(spec.dir)), []);
  });
});
