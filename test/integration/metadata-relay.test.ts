/**
 * The metadata relay (agents/lib/metadata-relay.ts) on a real unix socket, forwarding to a
 * stand-in metadata listener on loopback that checks Nova's signature
 * (test/helpers/metadata-peer.ts). The lookup is a table standing in for the RPC call.
 *
 * Under test: a known (router | network, IP) is forwarded signed, with exactly the four
 * headers the relay writes and the guest's own copies gone; unknown → 404; a failing lookup
 * or an unreachable listener → 500, a refused signature → the listener's 403 with a fixed message (no stack, no detail); every bad
 * proxy header → 400 and no lookup, no forward; only GET/HEAD; the socket is 0600 and a
 * stale file at its path is replaced; lookups are cached CACHE_MS (hits) / MISS_MS (misses),
 * concurrent ones share a call, failures are not cached; close removes the socket; an agent
 * without `[metadata] metadata_proxy_shared_secret` runs no relay and says so once.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import {
  CACHE_MS,
  cachedLookup,
  type LookupKey,
  MISS_MS,
  startAgentRelay,
  startMetadataRelay,
} from '../../agents/lib/metadata-relay.ts';
import type { MetadataInstance } from '../../contracts/metadata.ts';
import type { Broker } from '../../core/amqp.ts';
import { compileConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/log.ts';
import { type MetadataPeer, startMetadataPeer } from '../helpers/metadata-peer.ts';

const SECRET = 'relay-test-secret';
const ROUTER = randomUUID();
const NETWORK = randomUUID();
const VM_A = { instance_id: randomUUID(), project_id: randomUUID().replaceAll('-', '') };
const VM_B = { instance_id: randomUUID(), project_id: randomUUID().replaceAll('-', '') };

interface Reply {
  status: number;
  body: string;
}

function ask(
  socket: string,
  headers: Record<string, string | string[]>,
  path = '/latest/meta-data/instance-id',
  method = 'GET',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).end();
  });
}

describe('metadata relay on a unix socket', () => {
  let dir: string;
  let socket: string;
  let peer: MetadataPeer;
  let relay: { close(): Promise<void> };
  const lookups: string[] = [];
  let failLookup = false;
  const table = new Map<string, MetadataInstance>([
    [`router ${ROUTER} 10.0.0.5`, VM_A],
    [`network ${NETWORK} 10.0.0.5`, VM_B],
  ]);
  const via = (ip: string) => ({ 'x-kumo-router-id': ROUTER, 'x-forwarded-for': ip });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kumo-relay-'));
    socket = join(dir, 'metadata_proxy');
    writeFileSync(socket, 'stale');
    peer = await startMetadataPeer(SECRET);
    relay = await startMetadataRelay({
      socket,
      secret: SECRET,
      nova: { host: '127.0.0.1', port: peer.port },
      log: silentLogger(),
      async lookup(key: LookupKey, ip: string) {
        const k = 'router_id' in key ? `router ${key.router_id}` : `network ${key.network_id}`;
        lookups.push(`${k} ${ip}`);
        if (failLookup) throw new Error('rpc timeout: secret internals');
        return table.get(`${k} ${ip}`) ?? null;
      },
    });
  });
  after(async () => {
    await relay.close();
    await peer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the socket replaced the stale file and is 0600', () => {
    const st = statSync(socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('a known router source is forwarded signed, with only the relay’s headers', async () => {
    peer.seen.length = 0;
    const r = await ask(socket, via('10.0.0.5'), '/2009-04-04/meta-data/instance-id');
    assert.deepEqual(r, {
      status: 200,
      body: `${VM_A.instance_id} /2009-04-04/meta-data/instance-id`,
    });
    assert.equal(peer.seen.length, 1);
    const seen = peer.seen[0];
    assert.ok(seen?.signed);
    assert.equal(seen?.headers['x-tenant-id'], VM_A.project_id);
    assert.equal(seen?.headers['x-forwarded-for'], '10.0.0.5');
    const own = Object.keys(seen?.headers ?? {})
      .filter((h) => h.startsWith('x-'))
      .sort();
    assert.deepEqual(own, [
      'x-forwarded-for',
      'x-instance-id',
      'x-instance-id-signature',
      'x-tenant-id',
    ]);
    assert.equal(seen?.headers['x-kumo-router-id'], undefined);
  });

  test('a network source finds its own instance (same IP, other network)', async () => {
    const r = await ask(socket, { 'x-kumo-network-id': NETWORK, 'x-forwarded-for': '10.0.0.5' });
    assert.equal(r.status, 200);
    assert.ok(r.body.startsWith(VM_B.instance_id));
  });

  test('HEAD is forwarded too; other methods are 405 and not forwarded', async () => {
    peer.seen.length = 0;
    assert.equal((await ask(socket, via('10.0.0.5'), '/', 'HEAD')).status, 200);
    assert.equal((await ask(socket, via('10.0.0.5'), '/', 'POST')).status, 405);
    assert.deepEqual(
      peer.seen.map((s) => s.method),
      ['HEAD'],
    );
  });

  test('an unknown source is 404 and nothing is forwarded', async () => {
    peer.seen.length = 0;
    const r = await ask(socket, via('10.0.0.99'));
    assert.equal(r.status, 404);
    assert.equal(peer.seen.length, 0);
  });

  test('bad proxy headers are 400, with no lookup and no forward', async () => {
    const cases: Record<string, string | string[]>[] = [
      { 'x-forwarded-for': '10.0.0.5' },
      { 'x-kumo-router-id': ROUTER, 'x-kumo-network-id': NETWORK, 'x-forwarded-for': '10.0.0.5' },
      { 'x-kumo-router-id': 'not-a-uuid', 'x-forwarded-for': '10.0.0.5' },
      { 'x-kumo-router-id': ROUTER.toUpperCase(), 'x-forwarded-for': '10.0.0.5' },
      { 'x-kumo-router-id': ROUTER },
      via('010.0.0.5'),
      via('10.0.0.5, 10.0.0.6'),
      { 'x-kumo-router-id': ROUTER, 'x-forwarded-for': ['10.0.0.5', '10.0.0.6'] },
    ];
    lookups.length = 0;
    peer.seen.length = 0;
    for (const headers of cases)
      assert.equal((await ask(socket, headers)).status, 400, JSON.stringify(headers));
    assert.deepEqual(lookups, []);
    assert.equal(peer.seen.length, 0);
  });

  test('a failing lookup is 500 with a fixed message, and is not cached', async () => {
    failLookup = true;
    const r = await ask(socket, via('10.0.0.77'));
    failLookup = false;
    assert.equal(r.status, 500);
    assert.equal(r.body, 'An unknown error has occurred. Please try your request again.\n');
    lookups.length = 0;
    assert.equal((await ask(socket, via('10.0.0.77'))).status, 404);
    assert.deepEqual(lookups, [`router ${ROUTER} 10.0.0.77`]);
  });

  test('a relay whose secret differs gets the listener’s 403 passed on', async () => {
    const sock3 = join(dir, 'wrong');
    const wrong = await startMetadataRelay({
      socket: sock3,
      secret: 'not-the-secret',
      nova: { host: '127.0.0.1', port: peer.port },
      log: silentLogger(),
      lookup: async () => VM_A,
    });
    const r = await ask(sock3, via('10.0.0.5'));
    await wrong.close();
    assert.deepEqual(r, { status: 403, body: 'Forbidden\n' });
  });

  test('an unreachable listener is 500 with the fixed message', async () => {
    const sock2 = join(dir, 'down');
    const down = await startMetadataRelay({
      socket: sock2,
      secret: SECRET,
      nova: { host: '127.0.0.1', port: 1 },
      log: silentLogger(),
      lookup: async () => VM_A,
    });
    const r = await ask(sock2, via('10.0.0.5'));
    await down.close();
    assert.equal(r.status, 500);
    assert.equal(r.body, 'An unknown error has occurred. Please try your request again.\n');
    assert.throws(() => statSync(sock2), /ENOENT/);
  });
});

describe('cachedLookup', () => {
  test('hits last CACHE_MS, misses MISS_MS; concurrent calls share one lookup', async () => {
    let clock = 0;
    const calls: string[] = [];
    let answer: MetadataInstance | null = VM_A;
    const lookup = cachedLookup(
      async (_key, ip) => {
        calls.push(ip);
        return answer;
      },
      () => clock,
    );
    const key = { router_id: ROUTER };
    const [a, b] = await Promise.all([lookup(key, '10.0.0.5'), lookup(key, '10.0.0.5')]);
    assert.deepEqual([a, b], [VM_A, VM_A]);
    assert.equal(calls.length, 1);
    answer = VM_B;
    clock = CACHE_MS - 1;
    assert.deepEqual(await lookup(key, '10.0.0.5'), VM_A);
    clock = CACHE_MS;
    assert.deepEqual(await lookup(key, '10.0.0.5'), VM_B);
    assert.equal(calls.length, 2);
    answer = null;
    assert.equal(await lookup(key, '10.0.0.6'), null);
    answer = VM_A;
    clock += MISS_MS - 1;
    assert.equal(await lookup(key, '10.0.0.6'), null);
    clock += 1;
    assert.deepEqual(await lookup(key, '10.0.0.6'), VM_A);
    assert.equal(calls.length, 4);
  });
});

describe('startAgentRelay', () => {
  test('no shared secret: no relay, no socket, one log line saying metadata is off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-relay-off-'));
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const config = compileConfig(`[DEFAULT]\nhost = h1\nstate_path = ${dir}\n`);
    const broker = {} as Broker;
    const socket = join(dir, 'metadata_proxy');
    assert.equal(await startAgentRelay({ config, broker, log, socket }), null);
    assert.throws(() => statSync(socket), /ENOENT/);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0] ?? '',
      /metadata_proxy_shared_secret is not set: instance metadata is off/,
    );
    rmSync(dir, { recursive: true, force: true });
  });
});
