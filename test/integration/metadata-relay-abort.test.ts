/**
 * The metadata relay (agents/lib/metadata-relay.ts) when guests hang up: a guest that
 * closes its connection before a large answer (user data up to Nova's 64 KiB) has been
 * read must not leave the relay's upstream socket held by a paused answer. Were it so,
 * more aborted requests than the relay's maxSockets (64) would stall every guest's
 * metadata on the host. Real unix socket, real HTTP listener on loopback that answers
 * late, with a large body.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startMetadataRelay } from '../../agents/lib/metadata-relay.ts';
import { silentLogger } from '../../core/log.ts';

const BODY = 'u'.repeat(65_536);
const ABORTED = 70;
const headers = { 'x-kumo-router-id': randomUUID(), 'x-forwarded-for': '10.0.0.5' };
const VM = { instance_id: randomUUID(), project_id: randomUUID().replaceAll('-', '') };

/** A GET through the relay: its status and body length, or 'stalled' after `ms`. */
function get(socket: string, ms: number): Promise<{ status: number; length: number } | 'stalled'> {
  return new Promise((resolve) => {
    const req = http.get(
      { socketPath: socket, path: '/user-data', headers, agent: false },
      (res) => {
        let length = 0;
        res.on('data', (c: Buffer) => (length += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, length }));
      },
    );
    req.on('error', () => resolve('stalled'));
    req.setTimeout(ms, () => {
      req.destroy();
      resolve('stalled');
    });
  });
}

describe('metadata relay: guests that hang up', () => {
  let dir: string;
  let socket: string;
  let listener: http.Server;
  let received = 0;
  let answered = 0;
  let relay: { close(): Promise<void> };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kumo-relay-abort-'));
    socket = join(dir, 'metadata_proxy');
    listener = http.createServer((_req, res) => {
      received++;
      setTimeout(() => {
        answered++;
        res.writeHead(200, { 'content-type': 'text/plain' }).end(BODY);
      }, 50);
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    relay = await startMetadataRelay({
      socket,
      secret: 'abort-test-secret',
      nova: { host: '127.0.0.1', port: (listener.address() as AddressInfo).port },
      log: silentLogger(),
      lookup: async () => VM,
    });
  });
  after(async () => {
    await relay.close();
    listener.closeAllConnections();
    await new Promise<void>((resolve) => listener.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${ABORTED} requests abandoned mid-way leave the relay serving`, async () => {
    for (let i = 0; i < ABORTED; i++) {
      const req = http.get({ socketPath: socket, path: '/user-data', headers, agent: false });
      req.on('error', () => {});
      setTimeout(() => req.destroy(), 10);
    }
    // Every upstream request that got through has had its late answer (some never leave
    // the relay: their guest was gone first).
    await sleep(300);
    for (let i = 0; i < 200 && answered < received; i++) await sleep(25);
    assert.ok(received > 0 && answered === received, `${answered}/${received} answered`);
    assert.deepEqual(await get(socket, 5_000), { status: 200, length: BODY.length });
  });
});
