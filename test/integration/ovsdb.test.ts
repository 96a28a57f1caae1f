/**
 * host/ovs/ovsdb.ts and host/ovs/ops.ts against a real, private ovsdb-server started by
 * this file (own dir, db file, unix socket and TCP port; the system's OVS is never
 * touched). `ovs-vsctl --db=unix:DIR/db.sock --no-wait` is the independent check: there
 * is no ovs-vswitchd here, so ovs-vsctl must not wait for one.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { addBridgeOps, addPortsOps, delPortsOps } from '../../host/ovs/ops.ts';
import {
  comment,
  createOvsdbClient,
  fromMap,
  fromSet,
  isUuid,
  type OvsdbClient,
  OvsdbConnectionError,
  OvsdbError,
  type OvsdbLog,
  OvsdbTimeoutError,
  type ReconnectedEvent,
  select,
  type TableUpdates,
  wait,
} from '../../host/ovs/ovsdb.ts';
import { waitFor } from '../helpers/env.ts';

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
const DB = 'Open_vSwitch';

function run(argv: string[]): string {
  try {
    return execFileSync(argv[0] as string, argv.slice(1), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const hint =
      (err as { code?: string }).code === 'ENOENT'
        ? ' (apt-get install -y openvswitch-switch)'
        : '';
    throw new Error(`${argv.join(' ')} failed${hint}: ${err.stderr?.trim() || err.message}`);
  }
}

/** A private ovsdb-server: start/stop/restart on the same db file and unix socket. */
function privateOvsdb() {
  const dir = mkdtempSync(join(tmpdir(), 'kumo-ovsdb-'));
  const db = join(dir, 'conf.db');
  const sock = join(dir, 'db.sock');
  const pidfile = join(dir, 'ovsdb.pid');
  const logFile = join(dir, 'ovsdb.log');
  let tcpPort = 0;
  run(['ovsdb-tool', 'create', db, SCHEMA]);
  const server = {
    dir,
    db,
    unix: `unix:${sock}`,
    tcp: () => `tcp:127.0.0.1:${tcpPort}`,
    start() {
      run([
        'ovsdb-server',
        db,
        `--remote=punix:${sock}`,
        '--remote=ptcp:0:127.0.0.1',
        `--pidfile=${pidfile}`,
        `--unixctl=${join(dir, 'ovsdb.ctl')}`,
        `--log-file=${logFile}`,
        '--detach',
      ]);
      const ports = [...readFileSync(logFile, 'utf8').matchAll(/listening on port (\d+)/g)];
      tcpPort = Number(ports.at(-1)?.[1]);
      assert.ok(tcpPort > 0, 'ovsdb-server logged its TCP port');
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const pid = Number(readFileSync(pidfile, 'utf8').trim());
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
      for (let i = 0; i < 200 && alive(pid); i++) await sleep(10);
    },
    vsctl: (...args: string[]) => run(['ovs-vsctl', `--db=unix:${sock}`, '--no-wait', ...args]),
  };
  return server;
}

/** Running and not a zombie (a killed --detach daemon may never be reaped in a container). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Rows of one table in a TableUpdates, keyed by uuid, `new` side. */
function rowsByName(u: TableUpdates | undefined, table: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [id, r] of Object.entries(u?.[table] ?? {})) {
    if (r.new) out.set(String(r.new.name), id);
  }
  return out;
}

function recordingLog(): OvsdbLog & { msgs: string[] } {
  const msgs: string[] = [];
  const rec = (_o: object, m: string) => {
    msgs.push(m);
  };
  return { msgs, debug: rec, info: rec, warn: rec };
}

/** A transaction that blocks in ovsdb-server for `ms`: wait for a bridge that never appears. */
const blockingWait = (ms: number) => [
  wait('Bridge', [['name', '==', 'never-there']], {
    columns: ['name'],
    until: '!=',
    rows: [],
    timeoutMs: ms,
  }),
];

describe('ovsdb client against a private ovsdb-server', () => {
  const srv = privateOvsdb();
  let c: OvsdbClient;

  before(async () => {
    srv.start();
    srv.vsctl('init');
    c = await createOvsdbClient({ socket: srv.unix, timeoutMs: 5000 });
  });
  after(async () => {
    await c?.close();
    await srv.stop();
    rmSync(srv.dir, { recursive: true, force: true });
  });

  test('list_dbs', async () => {
    assert.ok((await c.listDbs()).includes(DB));
  });

  test('get_schema has table Bridge; an unknown db is an OvsdbError without op index', async () => {
    const schema = await c.getSchema(DB);
    assert.equal(schema.name, DB);
    assert.ok(schema.tables.Bridge?.columns.ports);
    await assert.rejects(c.getSchema('Nope'), (e: unknown) => {
      assert.ok(e instanceof OvsdbError);
      assert.equal(e.opIndex, null);
      assert.equal(e.error, 'unknown database');
      return true;
    });
  });

  test('one transaction adds a bridge with ports; ovs-vsctl sees them', async () => {
    const ops = addBridgeOps({
      name: 'br-test',
      datapathType: 'netdev',
      failMode: 'secure',
      externalIds: { 'kumo-owner': 'ovs-agent' },
      ports: [
        {
          name: 'tap1',
          tag: 5,
          interfaceExternalIds: { 'iface-id': 'port-1', 'attached-mac': 'fa:16:3e:00:00:01' },
        },
        { name: 'gre-0a000002', type: 'gre', options: { remote_ip: '10.0.0.2' } },
      ],
    });
    const results = await c.transact(DB, ops);
    assert.equal(results.length, ops.length);
    assert.ok(
      results.slice(0, 6).every((r) => isUuid(r.uuid)),
      'inserts return uuids',
    );
    assert.equal(srv.vsctl('list-br').trim(), 'br-test');
    assert.deepEqual(srv.vsctl('list-ports', 'br-test').trim().split('\n'), [
      'gre-0a000002',
      'tap1',
    ]);
    assert.equal(srv.vsctl('get', 'Interface', 'tap1', 'external_ids:iface-id').trim(), 'port-1');
    assert.equal(srv.vsctl('get', 'Interface', 'gre-0a000002', 'type').trim(), 'gre');
    assert.equal(srv.vsctl('get', 'Port', 'tap1', 'tag').trim(), '5');
    assert.equal(srv.vsctl('get', 'Bridge', 'br-test', 'fail_mode').trim(), 'secure');
  });

  test('select with a where clause; decoders read sets and maps', async () => {
    const [r] = await c.transact(DB, [
      select('Interface', [['name', '==', 'tap1']], ['name', 'external_ids', '_uuid']),
    ]);
    assert.equal(r?.rows?.length, 1);
    const row = r?.rows?.[0] ?? {};
    assert.equal(row.name, 'tap1');
    assert.ok(isUuid(row._uuid));
    assert.deepEqual(fromMap(row.external_ids), {
      'attached-mac': 'fa:16:3e:00:00:01',
      'iface-id': 'port-1',
    });
    const [br] = await c.transact(DB, [select('Bridge', [['name', '==', 'br-test']], ['ports'])]);
    assert.equal(fromSet(br?.rows?.[0]?.ports).length, 3, 'internal port + 2');
    const [none] = await c.transact(DB, [select('Bridge', [['name', '==', 'absent']])]);
    assert.deepEqual(none?.rows, []);
  });

  test('a failing wait rejects with OvsdbError naming its op index', async () => {
    const ops = [comment('first'), ...blockingWait(0)];
    await assert.rejects(c.transact(DB, ops), (e: unknown) => {
      assert.ok(e instanceof OvsdbError);
      assert.equal(e.opIndex, 1);
      assert.equal(e.error, 'timed out');
      return true;
    });
  });

  test('adding ports to a missing bridge fails at op 0 instead of being garbage-collected', async () => {
    await assert.rejects(
      c.transact(DB, addPortsOps('br-absent', [{ name: 'tap9' }])),
      (e: unknown) => {
        assert.ok(e instanceof OvsdbError);
        assert.equal(e.opIndex, 0);
        return true;
      },
    );
    assert.equal(srv.vsctl('--if-exists', 'get', 'Port', 'tap9', 'name').trim(), '');
  });

  test('a duplicate bridge name fails at commit: op index = ops.length, nothing written', async () => {
    const ops = addBridgeOps({ name: 'br-test', ports: [{ name: 'tap-dup' }] });
    await assert.rejects(c.transact(DB, ops), (e: unknown) => {
      assert.ok(e instanceof OvsdbError);
      assert.equal(e.opIndex, ops.length);
      assert.equal(e.error, 'constraint violation');
      assert.match(e.details ?? '', /br-test/);
      return true;
    });
    assert.equal(srv.vsctl('list-br').trim(), 'br-test');
  });

  test('monitor Interface: initial rows, then insert and modify updates from ovs-vsctl', async () => {
    const updates: TableUpdates[] = [];
    c.onUpdate('ifaces', (u) => updates.push(u));
    const initial = await c.monitor(DB, 'ifaces', {
      Interface: { columns: ['name', 'external_ids'] },
    });
    assert.deepEqual([...rowsByName(initial, 'Interface').keys()].sort(), [
      'br-test',
      'gre-0a000002',
      'tap1',
    ]);

    srv.vsctl('add-port', 'br-test', 'tap2');
    const ins = await waitFor('insert update', () =>
      updates.find((u) => rowsByName(u, 'Interface').has('tap2')),
    );
    const [id, row] = Object.entries(ins.Interface ?? {})[0] ?? [];
    assert.ok(id && row?.new && !row.old, 'an insert has new and no old');

    srv.vsctl('set', 'Interface', 'tap2', 'external_ids:iface-id=port-2');
    const mod = await waitFor('modify update', () =>
      updates.find((u) => u.Interface?.[id]?.old !== undefined),
    );
    const change = mod.Interface?.[id];
    assert.deepEqual(fromMap(change?.old?.external_ids), {}, 'old carries the changed column');
    assert.deepEqual(fromMap(change?.new?.external_ids), { 'iface-id': 'port-2' });
    assert.equal(change?.new?.name, 'tap2', 'new carries all monitored columns');
  });

  test('monitor_cancel stops updates; delPortsOps removes a port', async () => {
    const seen: TableUpdates[] = [];
    c.onUpdate('ifaces', (u) => seen.push(u));
    await c.monitorCancel('ifaces');
    const [port] = await c.transact(DB, [select('Port', [['name', '==', 'tap2']], ['_uuid'])]);
    const portUuid = port?.rows?.[0]?._uuid;
    assert.ok(isUuid(portUuid));
    await c.transact(DB, delPortsOps('br-test', [portUuid[1]]));
    await c.echo();
    assert.equal(seen.length, 0);
    assert.deepEqual(srv.vsctl('list-ports', 'br-test').trim().split('\n'), [
      'gre-0a000002',
      'tap1',
    ]);
    assert.equal(
      srv.vsctl('--if-exists', 'get', 'Interface', 'tap2', 'name').trim(),
      '',
      'collected',
    );
  });

  test('a reply slower than timeoutMs rejects with OvsdbTimeoutError; the session stays usable', async () => {
    await assert.rejects(c.transact(DB, blockingWait(400), { timeoutMs: 100 }), OvsdbTimeoutError);
    assert.ok((await c.echo()) >= 0);
    await sleep(500); // the late reply arrives and is dropped
    assert.ok((await c.listDbs()).includes(DB));
  });

  test('TCP works too', async () => {
    const t = await createOvsdbClient({ socket: srv.tcp() });
    try {
      assert.ok((await t.listDbs()).includes(DB));
      const [r] = await t.transact(DB, [select('Bridge', [], ['name'])]);
      assert.deepEqual(r?.rows, [{ name: 'br-test' }]);
    } finally {
      await t.close();
    }
  });

  test("ovsdb-server's TCP inactivity probe (echo) is answered", async () => {
    const log = recordingLog();
    const t = await createOvsdbClient({ socket: srv.tcp(), log });
    try {
      await t.listDbs();
      // ovsdb-server probes an idle TCP session after 5 s and drops it 5 s later unanswered.
      await waitFor('server echo', () => log.msgs.find((m) => m.includes('server echo')), 8000);
      assert.ok(t.isConnected());
      assert.ok((await t.listDbs()).includes(DB));
    } finally {
      await t.close();
    }
  });

  test('close() rejects pending requests with reason closed', async () => {
    const t = await createOvsdbClient({ socket: srv.unix });
    const rejected = assert.rejects(
      t.transact(DB, blockingWait(5000)),
      (e: unknown) => e instanceof OvsdbConnectionError && e.reason === 'closed',
    );
    await t.close();
    await rejected;
    assert.equal(t.isConnected(), false);
    await assert.rejects(
      t.listDbs(),
      (e: unknown) => e instanceof OvsdbConnectionError && e.reason === 'closed',
    );
  });

  test('connecting to a socket nobody listens on is connect-failed', async () => {
    await assert.rejects(
      createOvsdbClient({ socket: `unix:${join(srv.dir, 'absent.sock')}` }),
      (e: unknown) => e instanceof OvsdbConnectionError && e.reason === 'connect-failed',
    );
  });

  test('killing ovsdb-server rejects a pending request with reason lost (no reconnect)', async () => {
    const t = await createOvsdbClient({ socket: srv.unix });
    const lost: OvsdbConnectionError[] = [];
    t.onDisconnected((e) => lost.push(e));
    const rejected = assert.rejects(
      t.transact(DB, blockingWait(30_000)),
      (e: unknown) => e instanceof OvsdbConnectionError && e.reason === 'lost',
    );
    await t.echo(); // the transact is in the server, blocked
    await srv.stop('SIGKILL');
    await rejected;
    assert.equal(lost.length, 1);
    await assert.rejects(
      t.echo(),
      (e: unknown) => e instanceof OvsdbConnectionError && e.reason === 'not-connected',
    );
    await t.close();
    srv.start();
    c = await createOvsdbClient({ socket: srv.unix, timeoutMs: 5000 }); // the old c lost it too
  });

  test('with reconnect: restart on the same socket re-issues monitors, reconnected carries current state', async () => {
    const r = await createOvsdbClient({
      socket: srv.unix,
      reconnect: { initialMs: 20, maxMs: 200 },
    });
    try {
      const updates: TableUpdates[] = [];
      const events: ReconnectedEvent[] = [];
      r.onUpdate('m', (u) => updates.push(u));
      r.onReconnected((ev) => events.push(ev));
      const initial = await r.monitor(DB, 'm', { Bridge: { columns: ['name'] } });
      assert.deepEqual([...rowsByName(initial, 'Bridge').keys()], ['br-test']);

      await srv.stop('SIGKILL');
      // Change the database while the server is down, straight in the file.
      run([
        'ovsdb-tool',
        'transact',
        srv.db,
        JSON.stringify([DB, ...addBridgeOps({ name: 'br-new' })]),
      ]);
      await sleep(100); // a few failed attempts with backoff
      srv.start();

      const ev = await waitFor('reconnected', () => events[0]);
      assert.deepEqual([...rowsByName(ev.monitors.m, 'Bridge').keys()].sort(), [
        'br-new',
        'br-test',
      ]);
      assert.ok(r.isConnected());

      srv.vsctl('add-br', 'br-later');
      await waitFor('update after reconnect', () =>
        updates.find((u) => rowsByName(u, 'Bridge').has('br-later')),
      );
      assert.equal(events.length, 1);
    } finally {
      await r.close();
    }
  });
});
