/**
 * Pure parts of host/ovs: the JSON stream splitter, the notation helpers, the ops
 * builders, and the client's framing/echo handling against a scripted fake server on a
 * unix socket (exact chunking that a real ovsdb-server can't be made to produce).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { addBridgeOps, addPortsOps } from '../../host/ovs/ops.ts';
import {
  createJsonSplitter,
  createOvsdbClient,
  fromMap,
  fromOptional,
  fromSet,
  isUuid,
  map,
  namedUuid,
  OvsdbProtocolError,
  parseRemote,
  set,
  type TableUpdates,
  uuid,
} from '../../host/ovs/ovsdb.ts';

const tricky = [
  { id: 1, result: [{ rows: [{ name: 'a}b{c', note: 'say \\"hi\\" [x]' }] }], error: null },
  { method: 'update', params: ['m', { T: { u: { new: { s: '\\\\' } } } }], id: null },
  { method: 'echo', params: [], id: 'echo' },
];
const wire = tricky.map((m) => JSON.stringify(m)).join('');

test('splitter: a stream cut at every position yields the same messages', () => {
  for (let cut = 0; cut <= wire.length; cut++) {
    const s = createJsonSplitter();
    const out = [...s.push(wire.slice(0, cut)), ...s.push(wire.slice(cut))];
    assert.deepEqual(
      out.map((t) => JSON.parse(t)),
      tricky,
      `cut at ${cut}`,
    );
    assert.equal(s.pending(), 0);
  }
});

test('splitter: one character at a time, and whitespace between texts', () => {
  const s = createJsonSplitter();
  const out: string[] = [];
  for (const ch of ` ${wire.replaceAll('}{', '}\n{')}\n`) out.push(...s.push(ch));
  assert.deepEqual(
    out.map((t) => JSON.parse(t)),
    tricky,
  );
});

test('splitter: garbage between texts and oversize texts are protocol errors', () => {
  assert.throws(() => createJsonSplitter().push('{"a":1} x{'), OvsdbProtocolError);
  assert.throws(() => createJsonSplitter(10).push('{"a":"0123456789"'), OvsdbProtocolError);
});

test('notation helpers encode and decode both wire forms', () => {
  assert.deepEqual(uuid('u1'), ['uuid', 'u1']);
  assert.deepEqual(namedUuid('n'), ['named-uuid', 'n']);
  assert.deepEqual(set([1, 2]), ['set', [1, 2]]);
  assert.deepEqual(map({ k: 'v' }), ['map', [['k', 'v']]]);
  assert.deepEqual(fromSet(['set', ['a', 'b']]), ['a', 'b']);
  assert.deepEqual(fromSet('a'), ['a'], 'a one-element set may be a bare atom');
  assert.deepEqual(fromSet(undefined), []);
  assert.deepEqual(fromMap(['map', [[1, uuid('x')]]]), { 1: ['uuid', 'x'] });
  assert.equal(fromOptional(['set', []]), undefined);
  assert.equal(fromOptional(5), 5);
  assert.ok(isUuid(['uuid', 'x']));
  assert.ok(!isUuid(['named-uuid', 'x']) && !isUuid('x'));
  assert.throws(() => fromMap('x'), TypeError);
});

test('parseRemote: unix, tcp, tcp6, and nonsense', () => {
  assert.deepEqual(parseRemote('unix:/run/db.sock'), { path: '/run/db.sock' });
  assert.deepEqual(parseRemote('tcp:127.0.0.1:6640'), { host: '127.0.0.1', port: 6640 });
  assert.deepEqual(parseRemote('tcp:[::1]:6640'), { host: '::1', port: 6640 });
  assert.throws(() => parseRemote('ssl:1.2.3.4:6640'), TypeError);
});

test('addBridgeOps: every named-uuid used is defined, root row mutated once', () => {
  const ops = addBridgeOps({ name: 'br-int', ports: [{ name: 'tap1' }, { name: 'tap2' }] });
  const text = JSON.stringify(ops);
  const defined = new Set(
    ops.flatMap((o) => ('uuid-name' in o && o['uuid-name'] ? [o['uuid-name']] : [])),
  );
  for (const m of text.matchAll(/\["named-uuid","([^"]+)"\]/g))
    assert.ok(defined.has(m[1] as string));
  assert.equal(ops.filter((o) => o.op === 'mutate' && o.table === 'Open_vSwitch').length, 1);
  assert.equal(
    ops.filter((o) => o.op === 'insert' && o.table === 'Port').length,
    3,
    'own internal port',
  );
  assert.throws(() => addBridgeOps({ name: 'br;rm -rf' }), /invalid bridge name "br;rm -rf"/);
  assert.equal(addPortsOps('br-int', [{ name: 'tap3' }])[0]?.op, 'wait');
});

test('client: replies split across chunks, server echo answered, update delivered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kumo-fake-ovsdb-'));
  const path = join(dir, 'db.sock');
  const received: string[] = [];
  const server = net.createServer((s) => {
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      received.push(d);
      if (!d.includes('"list_dbs"')) return;
      const id = (JSON.parse(d) as { id: number }).id;
      const reply = JSON.stringify({ id, result: ['Open_vSwitch'], error: null });
      const echo = JSON.stringify({ method: 'echo', params: ['p'], id: 'echo' });
      const update = JSON.stringify({ method: 'update', params: ['m', { T: {} }], id: null });
      s.write(reply.slice(0, 7));
      setTimeout(() => s.write(reply.slice(7) + echo + update), 20);
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  const c = await createOvsdbClient({ socket: `unix:${path}`, timeoutMs: 2000 });
  try {
    const updates: TableUpdates[] = [];
    c.onUpdate('m', (u) => updates.push(u));
    assert.deepEqual(await c.listDbs(), ['Open_vSwitch']);
    assert.deepEqual(updates, [{ T: {} }]);
    for (let i = 0; i < 100 && !received.some((d) => d.includes('"echo"')); i++) {
      await sleep(5);
    }
    const answer = received.find((d) => d.includes('"echo"'));
    assert.deepEqual(JSON.parse(answer ?? 'null'), { id: 'echo', result: ['p'], error: null });
  } finally {
    await c.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('client: keepalive echoes when idle, drops a silent server; UTF-8 split across chunks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kumo-fake-ovsdb-'));
  const path = join(dir, 'db.sock');
  let answerEcho = true;
  let echoes = 0;
  const server = net.createServer((s) => {
    s.on('data', (d: Buffer) => {
      for (const text of createJsonSplitter().push(d.toString('utf8'))) {
        const msg = JSON.parse(text) as { id: number; method: string };
        if (msg.method === 'echo') echoes++;
        if (msg.method === 'echo' && !answerEcho) continue;
        const reply = Buffer.from(
          JSON.stringify({ id: msg.id, result: ['Öpen_vSwitch'], error: null }),
        );
        const cut = reply.indexOf('Ö') + 1; // inside the two bytes of Ö
        s.write(reply.subarray(0, cut));
        setTimeout(() => s.write(reply.subarray(cut)), 10);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  const c = await createOvsdbClient({
    socket: `unix:${path}`,
    timeoutMs: 2000,
    keepalive: { intervalMs: 40, count: 2 },
  });
  try {
    const lost: Error[] = [];
    c.onDisconnected((e) => lost.push(e));
    assert.deepEqual(await c.listDbs(), ['Öpen_vSwitch']);
    await sleep(200);
    assert.ok(echoes >= 2, `idle client sent echoes (${echoes})`);
    assert.ok(c.isConnected());
    answerEcho = false;
    for (let i = 0; i < 100 && lost.length === 0; i++) await sleep(10);
    assert.equal(lost[0]?.name, 'OvsdbConnectionError');
    assert.match(String(lost[0]?.message), /lost: no keepalive reply in 2 intervals/);
  } finally {
    await c.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
