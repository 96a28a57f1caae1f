/**
 * Pure parts of host/libvirt: the XDR encoder/decoder, packet header and framing, the
 * shared structs (domain, remote_error, UUIDs), and the client's handshake, keepalive and
 * event dispatch against a scripted fake libvirtd on a unix socket (exact chunking and a
 * server PING that the real daemon only sends after 5 s idle).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createLibvirtClient,
  LibvirtError,
  LibvirtTimeoutError,
  type LifecycleEvent,
} from '../../host/libvirt/client.ts';
import {
  createPacketSplitter,
  type Domain,
  decodePacket,
  encodePacket,
  KEEPALIVE_PROGRAM,
  KeepaliveProc,
  MessageStatus,
  MessageType,
  type PacketHeader,
  REMOTE_PROGRAM,
  type RemoteError,
  RemoteProc,
  readDomain,
  readRemoteError,
  uuidFromBytes,
  uuidToBytes,
  writeDomain,
  writeRemoteError,
} from '../../host/libvirt/protocol.ts';
import { XdrError, XdrReader, XdrWriter } from '../../host/libvirt/xdr.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('int, unsigned int, bool: big-endian 4 bytes, range checked', () => {
  const w = new XdrWriter(1);
  w.int(-1).int(0x7fffffff).int(-0x80000000).uint(0xffffffff).uint(0).bool(true).bool(false);
  const b = w.finish();
  assert.equal(hex(b), 'ffffffff7fffffff80000000ffffffff000000000000000100000000');
  const r = new XdrReader(b);
  assert.deepEqual(
    [r.int(), r.int(), r.int(), r.uint(), r.uint(), r.bool(), r.bool()],
    [-1, 0x7fffffff, -0x80000000, 0xffffffff, 0, true, false],
  );
  r.end();
  assert.throws(() => new XdrWriter().int(0x80000000), XdrError);
  assert.throws(() => new XdrWriter().uint(-1), XdrError);
  assert.throws(() => new XdrWriter().int(1.5), XdrError);
  assert.throws(() => new XdrReader(Buffer.from('00000002', 'hex')).bool(), XdrError);
});

test('hyper and unsigned hyper: full 64-bit range as bigint, numbers only when safe', () => {
  const values = [0n, -1n, -(1n << 63n), (1n << 63n) - 1n];
  const w = new XdrWriter();
  for (const v of values) w.hyper(v);
  w.uhyper((1n << 64n) - 1n)
    .uhyper(1795326616023762000n)
    .hyper(42);
  const b = w.finish();
  assert.equal(b.length, 8 * 7);
  assert.equal(hex(b.subarray(16, 24)), '8000000000000000');
  const r = new XdrReader(b);
  assert.deepEqual(
    values.map(() => r.hyper()),
    values,
  );
  assert.equal(r.uhyper(), (1n << 64n) - 1n);
  assert.equal(r.uhyper(), 1795326616023762000n);
  assert.equal(r.hyperNumber(false), 42);
  r.end();
  assert.throws(() => new XdrWriter().hyper(1n << 63n), XdrError);
  assert.throws(() => new XdrWriter().uhyper(-1n), XdrError);
  assert.throws(() => new XdrWriter().hyper(2 ** 60), XdrError, 'unsafe number refused');
  const big = new XdrWriter().uhyper(1n << 60n).finish();
  assert.throws(() => new XdrReader(big).hyperNumber(), XdrError);
});

test('strings: length counts UTF-8 bytes, padded to 4 with zeros', () => {
  for (const s of ['', 'a', 'ab', 'abc', 'abcd', 'abcde', 'é', '雲', 'domain 雲 ☁️ 🙂 x']) {
    const b = new XdrWriter().string(s).finish();
    const n = Buffer.byteLength(s, 'utf8');
    assert.equal(b.readUInt32BE(0), n, `length of ${s}`);
    assert.equal(b.length, 4 + Math.ceil(n / 4) * 4, `padding of ${s}`);
    assert.ok(
      b.subarray(4 + n).every((x) => x === 0),
      'pad bytes are zero',
    );
    const r = new XdrReader(b);
    assert.equal(r.string(), s);
    r.end();
  }
  assert.equal(hex(new XdrWriter().string('雲').finish()), '00000003e99bb200');
  assert.throws(() => new XdrWriter().string('abcde', 4), XdrError);
  assert.throws(() => new XdrReader(new XdrWriter().string('abcde').finish()).string(4), XdrError);
});

test('opaque fixed and variable, with padding', () => {
  const uuid = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
  const w = new XdrWriter();
  w.opaqueFixed(uuid, 16)
    .opaqueFixed(Buffer.from([1, 2, 3]), 3)
    .opaqueVar(Buffer.from([9]));
  const b = w.finish();
  assert.equal(hex(b), `${hex(uuid)}010203000000000109000000`);
  const r = new XdrReader(b);
  assert.deepEqual(r.opaqueFixed(16), uuid);
  assert.deepEqual([...r.opaqueFixed(3)], [1, 2, 3]);
  assert.deepEqual([...r.opaqueVar()], [9]);
  r.end();
  assert.throws(() => new XdrWriter().opaqueFixed(Buffer.alloc(15), 16), XdrError);
  assert.throws(() => new XdrWriter().opaqueVar(Buffer.alloc(5), 4), XdrError);
});

test('optional (pointer) and arrays, nested', () => {
  type Row = { name: string; tag: string | null };
  const rows: Row[] = [
    { name: 'a', tag: null },
    { name: 'bé', tag: 'x' },
  ];
  const writeRow = (w: XdrWriter, row: Row) =>
    w.string(row.name).optional(row.tag, (x, t) => x.string(t));
  const b = new XdrWriter()
    .array(rows, writeRow)
    .optional(null, (x, v: number) => x.int(v))
    .optional(7, (x, v) => x.int(v))
    .fixedArray([1, 2], 2, (x, v) => x.uint(v))
    .finish();
  const r = new XdrReader(b);
  const readRow = (x: XdrReader): Row => ({ name: x.string(), tag: x.optional((y) => y.string()) });
  assert.deepEqual(r.array(readRow), rows);
  assert.equal(
    r.optional((x) => x.int()),
    null,
  );
  assert.equal(
    r.optional((x) => x.int()),
    7,
  );
  assert.deepEqual(
    r.fixedArray(2, (x) => x.uint()),
    [1, 2],
  );
  r.end();
  assert.throws(() => new XdrWriter().array([1, 2, 3], (w, v) => w.int(v), 2), XdrError);
});

test('reader: truncated input, hostile lengths and trailing bytes are XdrErrors', () => {
  assert.throws(() => new XdrReader(Buffer.alloc(3)).int(), XdrError);
  assert.throws(() => new XdrReader(Buffer.from('00000005616263', 'hex')).string(), XdrError);
  // a count of 2^32-1 elements in an 8-byte input must not allocate or loop
  const hostile = Buffer.from('ffffffff00000000', 'hex');
  assert.throws(() => new XdrReader(hostile).array((r) => r.int()), /exceeds input/);
  assert.throws(() => new XdrReader(hostile).opaqueVar(), XdrError);
  const r = new XdrReader(Buffer.alloc(8));
  r.int();
  assert.throws(() => r.end('x'), /4 trailing bytes/);
});

const header = (h: Partial<PacketHeader>): PacketHeader => ({
  prog: REMOTE_PROGRAM,
  vers: 1,
  proc: RemoteProc.REMOTE_PROC_CONNECT_OPEN,
  type: MessageType.CALL,
  serial: 1,
  status: MessageStatus.OK,
  ...h,
});

test('packet header: length word counts itself, 24-byte header, round trip', () => {
  const body = new XdrWriter().string('test:///default').finish();
  const pkt = encodePacket(header({ serial: 0xfffffffe, proc: 350 }), body);
  assert.equal(pkt.readUInt32BE(0), pkt.length);
  assert.equal(pkt.length, 4 + 24 + body.length);
  assert.equal(hex(pkt.subarray(4, 12)), '2000808600000001');
  const { header: h, body: b } = decodePacket(pkt.subarray(4));
  assert.deepEqual(h, header({ serial: 0xfffffffe, proc: 350 }));
  assert.deepEqual(b, body);
  const ka = encodePacket({
    prog: KEEPALIVE_PROGRAM,
    vers: 1,
    proc: KeepaliveProc.PING,
    type: MessageType.MESSAGE,
    serial: 0,
    status: MessageStatus.OK,
  });
  assert.equal(hex(ka), '0000001c6b65657000000001000000010000000200000000' + '00000000');
});

test('splitter: a stream cut at every position yields the same packets', () => {
  const packets = [
    encodePacket(header({ serial: 1 }), new XdrWriter().string('a').finish()),
    encodePacket(header({ serial: 2, type: MessageType.REPLY })),
    encodePacket(header({ serial: 3 }), Buffer.alloc(100, 7)),
  ];
  const wire = Buffer.concat(packets);
  const want = packets.map((p) => p.subarray(4));
  for (let cut = 0; cut <= wire.length; cut++) {
    const s = createPacketSplitter();
    const out = [...s.push(wire.subarray(0, cut)), ...s.push(wire.subarray(cut))];
    assert.deepEqual(out, want, `cut at ${cut}`);
    assert.equal(s.pending(), 0);
  }
  const s = createPacketSplitter();
  const out: Buffer[] = [];
  for (const byte of wire) out.push(...s.push(Buffer.from([byte])));
  assert.deepEqual(out, want);
  assert.throws(() => createPacketSplitter().push(Buffer.from('00000004', 'hex')), XdrError);
  assert.throws(() => createPacketSplitter().push(Buffer.from('7fffffff', 'hex')), XdrError);
});

test('uuid text ↔ bytes, remote_nonnull_domain and remote_error round trips', () => {
  const text = '6695eb01-f6a4-8304-79aa-97f2502e193f';
  assert.equal(uuidFromBytes(uuidToBytes(text)), text);
  assert.equal(uuidFromBytes(uuidToBytes(text.replaceAll('-', '').toUpperCase())), text);
  assert.throws(() => uuidToBytes('not-a-uuid'), TypeError);

  const dom: Domain = { name: 'instance-0000001a', uuid: text, id: -1 };
  const w = new XdrWriter();
  writeDomain(w, dom);
  const b = w.finish();
  assert.equal(b.length, 4 + 20 + 16 + 4);
  const r = new XdrReader(b);
  assert.deepEqual(readDomain(r), dom);
  r.end();

  const err: RemoteError = {
    code: 42,
    domain: 12,
    message: "Domain not found: no domain with matching name 'x'",
    level: 2,
    str1: 'Domain not found',
    str2: null,
    str3: null,
    int1: -1,
    int2: -1,
  };
  const ew = new XdrWriter();
  writeRemoteError(ew, err);
  const er = new XdrReader(ew.finish());
  assert.deepEqual(readRemoteError(er), err);
  er.end();
});

// ---- the client against a scripted fake libvirtd ---------------------------------------

interface FakeCall {
  header: PacketHeader;
  body: Buffer;
}

/** A fake daemon: `answer` returns the bytes to write for each call (may be several packets). */
async function fakeDaemon(answer: (call: FakeCall, sock: net.Socket) => Buffer | null) {
  const dir = mkdtempSync(join(tmpdir(), 'kumo-libvirt-fake-'));
  const path = join(dir, 'libvirt-sock');
  const seen: FakeCall[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((sock) => {
    sockets.push(sock);
    const split = createPacketSplitter();
    sock.on('data', (chunk) => {
      for (const bytes of split.push(chunk)) {
        const call = decodePacket(bytes);
        seen.push(call);
        const out = answer(call, sock);
        if (out) sock.write(out);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    seen,
    sockets,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const reply = (call: FakeCall, ret?: (w: XdrWriter) => void) => {
  const w = new XdrWriter();
  ret?.(w);
  return encodePacket({ ...call.header, type: MessageType.REPLY }, w.finish());
};

/** Answers the handshake (AUTH_LIST → [NONE], CONNECT_OPEN, SUPPORTS_FEATURE → 1). */
function handshakeReply(call: FakeCall): Buffer | null {
  switch (call.header.proc) {
    case RemoteProc.REMOTE_PROC_AUTH_LIST:
      return reply(call, (w) => w.array([0], (x, v) => x.int(v)));
    case RemoteProc.REMOTE_PROC_CONNECT_OPEN:
      return reply(call);
    case RemoteProc.REMOTE_PROC_CONNECT_SUPPORTS_FEATURE:
      return reply(call, (w) => w.int(1));
    case RemoteProc.REMOTE_PROC_CONNECT_CLOSE:
      return reply(call);
    default:
      return null;
  }
}

test('client: handshake, PING answered, event in the same chunk as the register reply', async () => {
  const dom: Domain = { name: 'd1', uuid: '00000000-0000-0000-0000-0000000000aa', id: 3 };
  let sentPing = false;
  const fake = await fakeDaemon((call, sock) => {
    if (call.header.prog === KEEPALIVE_PROGRAM) return null;
    const hs = handshakeReply(call);
    if (hs) return hs;
    if (call.header.proc === RemoteProc.REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY) {
      const ev = new XdrWriter().int(77);
      writeDomain(ev, dom);
      ev.int(2).int(0); // STARTED, detail 0
      const msg = encodePacket(
        { ...call.header, type: MessageType.MESSAGE, serial: 0, proc: 318 },
        ev.finish(),
      );
      return Buffer.concat([reply(call, (w) => w.int(77)), msg]);
    }
    if (call.header.proc === RemoteProc.REMOTE_PROC_CONNECT_GET_HOSTNAME && !sentPing) {
      sentPing = true;
      // a server PING first, then the reply, in one write
      const ping = encodePacket({
        prog: KEEPALIVE_PROGRAM,
        vers: 1,
        proc: KeepaliveProc.PING,
        type: MessageType.MESSAGE,
        serial: 0,
        status: MessageStatus.OK,
      });
      sock.write(Buffer.concat([ping, reply(call, (w) => w.string('fakehost'))]));
      return null;
    }
    if (call.header.proc === RemoteProc.REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME) {
      const err = new XdrWriter();
      writeRemoteError(err, {
        code: 42,
        domain: 10,
        message: 'Domain not found',
        level: 2,
        str1: null,
        str2: null,
        str3: null,
        int1: -1,
        int2: -1,
      });
      return encodePacket(
        { ...call.header, type: MessageType.REPLY, status: MessageStatus.ERROR },
        err.finish(),
      );
    }
    return null; // GET_VERSION: never answered
  });
  try {
    const c = await createLibvirtClient({ socket: fake.path, uri: 'test:///default' });
    const procs = fake.seen.map((s) => s.header.proc);
    assert.deepEqual(procs, [66, 1, 60], 'AUTH_LIST, CONNECT_OPEN, SUPPORTS_FEATURE');
    const open = new XdrReader(fake.seen[1]?.body as Buffer);
    assert.equal(
      open.optional((r) => r.string()),
      'test:///default',
    );

    const events: LifecycleEvent[] = [];
    const reg = await c.registerLifecycle((e) => events.push(e));
    assert.equal(events.length, 1, 'the event that followed the reply was delivered');
    assert.deepEqual(events[0], {
      callbackId: reg.id,
      domain: dom,
      event: 2,
      eventName: 'STARTED',
      detail: 0,
    });

    assert.equal(await c.getHostname(), 'fakehost');
    const isPong = (s: FakeCall) =>
      s.header.prog === KEEPALIVE_PROGRAM && s.header.proc === KeepaliveProc.PONG;
    for (let i = 0; i < 100 && !fake.seen.some(isPong); i++) await sleep(10);
    const pong = fake.seen.find(isPong);
    assert.ok(pong, 'client answered the server PING with a PONG');
    assert.equal(pong.header.type, MessageType.MESSAGE);
    assert.equal(c.serverPings(), 1);

    await assert.rejects(c.lookupByName('x'), (e: unknown) => {
      assert.ok(e instanceof LibvirtError);
      assert.equal(e.code, 42);
      assert.equal(e.domain, 10);
      assert.equal(e.level, 2);
      assert.equal(e.procedure, 'REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME');
      return true;
    });
    await assert.rejects(c.getVersion({ timeoutMs: 50 }), LibvirtTimeoutError);
    const serials = fake.seen.filter((s) => s.header.prog === REMOTE_PROGRAM);
    assert.deepEqual(
      serials.map((s) => s.header.serial),
      serials.map((_, i) => i + 1),
      'serials increase by one',
    );
    await c.close();
    assert.equal(fake.seen.at(-1)?.header.proc, RemoteProc.REMOTE_PROC_CONNECT_CLOSE);
    assert.equal(c.isConnected(), false);
  } finally {
    await fake.stop();
  }
});
