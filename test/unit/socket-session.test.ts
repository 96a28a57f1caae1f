/**
 * host/session against a scripted server on a real unix socket in this process, with a
 * toy newline-delimited JSON protocol: call matching, error replies, undecodable replies,
 * per-call timeouts, connection loss, close, reconnect with backoff and re-subscription,
 * keepalive, and garbage on the line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createSession,
  type Framing,
  SessionConnectionError,
  type SessionOptions,
  SessionProtocolError,
  SessionTimeoutError,
  sessionErrors,
} from '../../host/session/session.ts';

interface Msg {
  id?: number;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: string;
  event?: unknown;
}
type Req = { method: string; params?: unknown };

const framing: Framing<Req, Msg> = {
  encode: (req, id) => `${JSON.stringify({ id, ...req })}\n`,
  decoder() {
    let buf = '';
    return (chunk) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      return lines.map((l) => JSON.parse(l) as Msg);
    };
  },
  classify(m) {
    if (m.id === undefined) return { kind: 'event' };
    return m.error === undefined ? { kind: 'reply', id: m.id } : { kind: 'error', id: m.id };
  },
  replyError: (m, method) => new Error(`${method} refused: ${m.error}`),
};

/** A server answering each request line with `answer(msg)`'s lines (none: no answer). */
async function server(answer: (m: Msg, sock: net.Socket) => Msg[] | string | null) {
  const dir = mkdtempSync(join(tmpdir(), 'kumo-session-'));
  const path = join(dir, 's.sock');
  const seen: Msg[] = [];
  const socks = new Set<net.Socket>();
  let srv: net.Server | null = null;
  const start = async () => {
    srv = net.createServer((sock) => {
      socks.add(sock);
      sock.on('close', () => socks.delete(sock));
      const decode = framing.decoder();
      sock.on('data', (chunk) => {
        for (const m of decode(chunk)) {
          seen.push(m);
          const out = answer(m, sock);
          if (typeof out === 'string') sock.write(out);
          else if (out) sock.write(out.map((o) => `${JSON.stringify(o)}\n`).join(''));
        }
      });
    });
    await new Promise<void>((r) => srv?.listen(path, r));
  };
  const stop = async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => (srv ? srv.close(() => r()) : r()));
    srv = null;
  };
  await start();
  const cleanup = async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { path, seen, socks, start, stop, cleanup };
}

const echoServer = (m: Msg): Msg[] | null =>
  m.method === 'silent' ? null : [{ id: m.id, result: m.params ?? null }];

function session(
  path: string,
  over: Partial<SessionOptions<Req, Msg, string[], SessionConnectionError>> = {},
) {
  const events: Msg[] = [];
  const logs: string[] = [];
  const debug = (_: object, m: string) => {
    logs.push(m);
  };
  const s = createSession<Req, Msg, string[], SessionConnectionError>({
    name: 'toy',
    connect: { path },
    context: { path },
    log: { debug, info: debug, warn: debug },
    timeoutMs: 2000,
    framing,
    errors: sessionErrors('toy', path),
    handshake: async (call) => [await call('hello', { method: 'hello' }, (m) => String(m.result))],
    onEvent: (m) => events.push(m),
    ...over,
  });
  return { s, events, logs };
}

const reason = (r: string) => (e: unknown) => e instanceof SessionConnectionError && e.reason === r;

test('calls match replies by id, in any order and chunking; events and error replies', async () => {
  let held: Msg | null = null;
  const srv = await server((m, sock) => {
    if (m.method === 'hello') return [{ id: m.id, result: 'hi' }];
    if (m.method === 'first') {
      held = m;
      return null;
    }
    if (m.method === 'no') return [{ id: m.id, error: 'denied' }];
    const both = `${JSON.stringify({ id: m.id, result: 2 })}\n${JSON.stringify({ event: 'e' })}\n`;
    const late = held ? `${JSON.stringify({ id: held.id, result: 1 })}\n` : '';
    sock.write(both.slice(0, 5));
    setTimeout(() => sock.write(both.slice(5) + late), 10);
    return null;
  });
  const { s, events } = session(srv.path);
  try {
    await s.open();
    assert.deepEqual(
      srv.seen.map((m) => m.method),
      ['hello'],
      'the handshake ran first',
    );
    const first = s.call('first', { method: 'first' }, (m) => m.result);
    const second = await s.call('second', { method: 'second' }, (m) => m.result);
    assert.equal(second, 2);
    assert.equal(await first, 1);
    assert.deepEqual(events, [{ event: 'e' }]);
    await assert.rejects(
      s.call('no', { method: 'no' }, () => 0),
      /no refused: denied/,
    );
    await assert.rejects(
      s.call('bad', { method: 'second' }, () => {
        throw new Error('cannot read');
      }),
      (e: unknown) =>
        e instanceof SessionProtocolError && /bad: bad reply: cannot read/.test(e.message),
    );
    assert.ok(s.isOpen(), 'an undecodable reply fails its call, not the connection');
    assert.deepEqual(
      srv.seen.map((m) => m.id),
      [1, 2, 3, 4, 5],
      'ids increase by one',
    );
  } finally {
    await s.close();
    await srv.cleanup();
  }
});

test('a per-call timeout names the method; the late reply is dropped; the session stays up', async () => {
  const late: Msg[] = [];
  const srv = await server((m, sock) => {
    if (m.method !== 'slow') return echoServer(m);
    late.push(m);
    setTimeout(() => sock.write(`${JSON.stringify({ id: m.id, result: 'late' })}\n`), 80);
    return null;
  });
  const { s, logs } = session(srv.path);
  try {
    await s.open();
    await assert.rejects(
      s.call('slow', { method: 'slow' }, (m) => m.result, { timeoutMs: 20 }),
      (e) => {
        assert.ok(e instanceof SessionTimeoutError);
        assert.equal(e.method, 'slow');
        assert.equal(e.timeoutMs, 20);
        assert.match(e.message, /toy slow: no reply within 20 ms/);
        return true;
      },
    );
    await sleep(120);
    assert.ok(logs.includes('toy reply for no pending call'));
    assert.equal(await s.call('echo', { method: 'echo', params: 7 }, (m) => m.result), 7);
  } finally {
    await s.close();
    await srv.cleanup();
  }
});

test('connection lost rejects every pending call; later calls are not-connected; close is closed', async () => {
  const srv = await server(echoServer);
  const { s } = session(srv.path);
  const dropped: unknown[] = [];
  try {
    await s.open();
    s.onDisconnected((e) => dropped.push(e));
    const pending = [1, 2, 3].map(() => s.call('silent', { method: 'silent' }, () => 0));
    const all = Promise.allSettled(pending);
    await sleep(20);
    for (const sock of srv.socks) sock.destroy();
    const settled = await all;
    assert.ok(settled.every((r) => r.status === 'rejected' && reason('lost')(r.reason)));
    assert.equal(dropped.length, 1);
    assert.ok(reason('lost')(dropped[0]));
    assert.equal(s.isOpen(), false);
    await assert.rejects(
      s.call('echo', { method: 'echo' }, () => 0),
      reason('not-connected'),
    );
  } finally {
    await s.close();
  }
  await assert.rejects(
    s.call('echo', { method: 'echo' }, () => 0),
    reason('closed'),
  );
  await srv.cleanup();
});

test('close() rejects pending calls with closed; a failed first connect or handshake throws', async () => {
  const srv = await server((m) => (m.method === 'hello' ? echoServer(m) : null));
  const { s } = session(srv.path);
  await s.open();
  const pending = assert.rejects(
    s.call('silent', { method: 'silent' }, () => 0),
    reason('closed'),
  );
  await s.close();
  await pending;

  const absent = session(join(srv.path, '..', 'absent.sock')).s;
  await assert.rejects(absent.open(), reason('connect-failed'));
  const refused = session(srv.path, { handshake: () => Promise.reject(new Error('no auth')) }).s;
  await assert.rejects(refused.open(), /no auth/);
  assert.equal(refused.isOpen(), false);
  await assert.rejects(
    refused.call('echo', { method: 'echo' }, () => 0),
    reason('closed'),
  );
  await srv.cleanup();
});

test('reconnect with backoff re-runs the handshake (re-subscription) before reconnected', async () => {
  let subscriptions = 0;
  const srv = await server((m) => {
    if (m.method === 'hello') return [{ id: m.id, result: `sub${++subscriptions}` }];
    return echoServer(m);
  });
  const { s, events } = session(srv.path, { reconnect: { initialMs: 10, maxMs: 40 } });
  const reconnected: string[][] = [];
  const dropped: unknown[] = [];
  try {
    await s.open();
    s.onReconnected((r) => reconnected.push(r));
    s.onDisconnected((e) => dropped.push(e));
    await srv.stop();
    for (let i = 0; i < 100 && dropped.length === 0; i++) await sleep(5);
    await assert.rejects(
      s.call('echo', { method: 'echo' }, () => 0),
      reason('not-connected'),
    );
    await sleep(150); // several failed attempts, the delay doubling up to maxMs
    assert.deepEqual(reconnected, []);
    await srv.start();
    for (let i = 0; i < 100 && reconnected.length === 0; i++) await sleep(10);
    assert.deepEqual(reconnected, [['sub2']], 'the handshake ran again, its result reported');
    assert.equal(dropped.length, 1);
    assert.ok(s.isOpen());
    assert.equal(await s.call('echo', { method: 'echo', params: 'x' }, (m) => m.result), 'x');
    for (const sock of srv.socks) sock.write(`${JSON.stringify({ event: 'after' })}\n`);
    for (let i = 0; i < 50 && events.length === 0; i++) await sleep(5);
    assert.deepEqual(events, [{ event: 'after' }]);
  } finally {
    await s.close();
    await srv.cleanup();
  }
});

test('close() stops reconnecting', async () => {
  const srv = await server(echoServer);
  const { s } = session(srv.path, { reconnect: { initialMs: 10, maxMs: 10 } });
  await s.open();
  await srv.stop();
  await sleep(30);
  await s.close();
  const before = srv.seen.length;
  await srv.start();
  await sleep(60);
  assert.equal(srv.seen.length, before, 'no handshake after close');
  assert.equal(s.isOpen(), false);
  await srv.cleanup();
});

test('keepalive pings when idle; unanswered pings drop the connection', async () => {
  let answering = true;
  const srv = await server((m) => (answering || m.method !== 'ping' ? echoServer(m) : null));
  let pings = 0;
  const ping = () => {
    pings++;
    void s.call('ping', { method: 'ping' }, () => 0).catch(() => undefined);
  };
  const { s } = session(srv.path, { keepalive: { intervalMs: 30, count: 2, ping } });
  const dropped: Error[] = [];
  try {
    await s.open();
    s.onDisconnected((e) => dropped.push(e));
    await sleep(150);
    assert.ok(pings >= 2, `answered pings keep going (${pings})`);
    assert.ok(s.isOpen());
    answering = false;
    pings = 0;
    for (let i = 0; i < 100 && dropped.length === 0; i++) await sleep(10);
    assert.equal(pings, 2, 'count unanswered pings, then the drop');
    assert.ok(reason('lost')(dropped[0]));
    assert.match(String(dropped[0]?.message), /no keepalive reply in 2 intervals/);
  } finally {
    await s.close();
    await srv.cleanup();
  }
});

test('garbage on the line is a protocol error that drops the connection', async () => {
  const srv = await server((m) => (m.method === 'junk' ? 'not json\n' : echoServer(m)));
  const { s } = session(srv.path);
  const dropped: Error[] = [];
  await s.open();
  s.onDisconnected((e) => dropped.push(e));
  await assert.rejects(
    s.call('junk', { method: 'junk' }, () => 0),
    (e: unknown) => {
      assert.ok(reason('lost')(e));
      assert.ok((e as Error).cause instanceof SessionProtocolError);
      return true;
    },
  );
  assert.equal(dropped.length, 1);
  await s.close();
  await srv.cleanup();
});
