/**
 * host/libvirt/client.ts against the real libvirtd over its unix socket
 * (/var/run/libvirt/libvirt-sock). `test:///default` is libvirt's in-memory test driver:
 * real XML validation and domain lifecycle with no qemu; its state lives in libvirtd and
 * is lost when libvirtd restarts. `qemu:///system` is used for a smoke test, for
 * attach/detach, which the test driver does not implement (it answers VIR_ERR_NO_SUPPORT),
 * and for start-paused + managed save/restore of a real qemu process (the test driver
 * refuses VIR_DOMAIN_START_PAUSED; it does implement managed save).
 *
 * A missing libvirtd fails every test with the reason and the commands that start it.
 * The reconnect test kills libvirtd (SIGTERM, pid from /var/run/libvirtd.pid) and starts
 * it again with `libvirtd -d`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  createLibvirtClient,
  DEFAULT_LIBVIRT_SOCKET,
  type Domain,
  DomainAffect,
  DomainCreateFlags,
  DomainEventType,
  DomainPausedReason,
  DomainShutoffReason,
  DomainState,
  DomainXmlFlags,
  type LibvirtClient,
  LibvirtConnectionError,
  LibvirtError,
  type LifecycleEvent,
  type ReconnectedEvent,
  UndefineFlags,
  VirErrorNumber,
} from '../../host/libvirt/client.ts';
import { waitFor } from '../helpers/env.ts';

const PIDFILE = '/var/run/libvirtd.pid';
const START_HINT =
  'start it with: mkdir -p /var/log/libvirt /var/run/libvirt; virtlogd -d; libvirtd -d ' +
  '(packages: libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86)';

const suffix = () => randomBytes(4).toString('hex');

/** Connects or fails the test with why libvirtd is not usable. */
async function connect(
  uri: string,
  extra: Partial<Parameters<typeof createLibvirtClient>[0]> = {},
) {
  if (!existsSync(DEFAULT_LIBVIRT_SOCKET)) {
    throw new Error(`libvirtd is not running (no ${DEFAULT_LIBVIRT_SOCKET}); ${START_HINT}`);
  }
  try {
    return await createLibvirtClient({ uri, timeoutMs: 10_000, ...extra });
  } catch (e) {
    if (e instanceof LibvirtConnectionError) {
      throw new Error(`libvirtd is not running (${e.message}); ${START_HINT}`, { cause: e });
    }
    throw e;
  }
}

/** Running and not a zombie (a killed --daemon process may never be reaped here). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function restartLibvirtd(): Promise<void> {
  const pid = Number(readFileSync(PIDFILE, 'utf8').trim());
  assert.ok(pid > 0 && alive(pid), `libvirtd pid ${pid} from ${PIDFILE} is running`);
  process.kill(pid, 'SIGTERM');
  await waitFor('libvirtd to exit', () => (alive(pid) ? undefined : true), 15_000);
  execFileSync('libvirtd', ['-d'], { stdio: ['ignore', 'pipe', 'pipe'] });
}

const testXml = (name: string, uuid = randomUUID()) =>
  `<domain type='test'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>`;

const diskXml = (file: string) =>
  `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${file}'/><target dev='vdb' bus='virtio'/></disk>`;

function isLibvirtError(code: number) {
  return (e: unknown) => {
    assert.ok(e instanceof LibvirtError, `expected LibvirtError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(typeof e.domain, 'number');
    assert.equal(e.level, 2);
    return true;
  };
}

describe('libvirt client: test:///default', () => {
  let c: LibvirtClient;

  before(async () => {
    c = await connect('test:///default');
  });
  after(async () => {
    await c?.close();
  });

  test('connection calls: hostname, versions, driver type, keepalive ping', async () => {
    assert.ok((await c.getHostname()).length > 0);
    assert.ok((await c.getLibVersion()) >= 9_000_000, 'libvirt >= 9.0');
    assert.ok((await c.getVersion()) > 0);
    assert.equal(await c.getType(), 'TEST');
    assert.ok((await c.ping()) >= 0, 'server answers our PING with a PONG');
    const all = await c.listAllDomains();
    assert.ok(
      all.some((d) => d.name === 'test'),
      "the test driver's built-in domain",
    );
  });

  test('a domain through its whole life, with lifecycle events', async () => {
    const name = `kumo-it-${suffix()}`;
    const uuid = randomUUID();
    const events: LifecycleEvent[] = [];
    const reg = await c.registerLifecycle((e) => {
      if (e.domain.uuid === uuid) events.push(e);
    });
    try {
      const defined = await c.defineXml(testXml(name, uuid));
      assert.deepEqual(defined, { name, uuid, id: -1 });
      assert.deepEqual(await c.lookupByName(name), defined);
      assert.deepEqual(await c.lookupByUuid(uuid.toUpperCase()), defined);
      assert.ok((await c.listAllDomains()).some((d) => d.uuid === uuid));
      assert.deepEqual(await c.getState(defined), { state: DomainState.SHUTOFF, reason: 0 });

      const xml = await c.getXmlDesc(defined);
      assert.match(xml, new RegExp(`<name>${name}</name>`));
      assert.match(xml, new RegExp(`<uuid>${uuid}</uuid>`));

      const running = await c.create(defined);
      assert.ok(running.id > 0, 'a running domain has an id');
      const info = await c.getInfo(running);
      assert.equal(info.state, DomainState.RUNNING);
      assert.equal(info.maxMemKiB, 65536);
      assert.equal(info.nrVirtCpu, 1);
      assert.equal(typeof info.cpuTimeNs, 'bigint');
      assert.equal((await c.getState(running)).state, DomainState.RUNNING);

      await c.suspend(running);
      assert.equal((await c.getState(running)).state, DomainState.PAUSED);
      await c.resume(running);
      assert.equal((await c.getState(running)).state, DomainState.RUNNING);
      await c.reboot(running); // the test driver accepts it and stays running
      assert.equal((await c.getState(running)).state, DomainState.RUNNING);

      // attach/detach: the test driver has no device hotplug; libvirt says so with its code
      await assert.rejects(
        c.attachDevice(running, diskXml('/tmp/kumo-none.img'), DomainAffect.CONFIG),
        isLibvirtError(VirErrorNumber.VIR_ERR_NO_SUPPORT),
      );
      await assert.rejects(
        c.detachDevice(running, diskXml('/tmp/kumo-none.img'), DomainAffect.LIVE),
        isLibvirtError(VirErrorNumber.VIR_ERR_NO_SUPPORT),
      );

      await c.shutdown(running);
      assert.equal((await c.getState(running)).state, DomainState.SHUTOFF);
      const again = await c.create(defined);
      await c.destroy(again);
      const off = await c.getInfo(again);
      assert.equal(off.state, DomainState.SHUTOFF);
      // an operation that needs a running domain: the test driver reports an internal error
      await assert.rejects(c.suspend(again), (e: unknown) => {
        assert.ok(e instanceof LibvirtError);
        assert.ok(
          [
            VirErrorNumber.VIR_ERR_INTERNAL_ERROR,
            VirErrorNumber.VIR_ERR_OPERATION_INVALID,
          ].includes(e.code as 1 | 55),
          `code ${e.code}: ${e.message}`,
        );
        return true;
      });

      await c.undefine(defined);
      await assert.rejects(c.lookupByUuid(uuid), isLibvirtError(VirErrorNumber.VIR_ERR_NO_DOMAIN));

      const E = DomainEventType;
      const want = [
        E.DEFINED,
        E.STARTED,
        E.SUSPENDED,
        E.RESUMED,
        E.STOPPED,
        E.STARTED,
        E.STOPPED,
        E.UNDEFINED,
      ];
      await waitFor('all lifecycle events', () =>
        events.length >= want.length ? true : undefined,
      );
      assert.deepEqual(
        events.map((e) => e.eventName),
        [
          'DEFINED',
          'STARTED',
          'SUSPENDED',
          'RESUMED',
          'STOPPED',
          'STARTED',
          'STOPPED',
          'UNDEFINED',
        ],
      );
      assert.deepEqual(
        events.map((e) => e.event),
        want,
      );
      assert.ok(events.every((e) => e.callbackId === reg.id && e.domain.name === name));
    } finally {
      await reg.deregister();
    }
  });

  test('managed save: save stops the domain, create restores it, remove discards it', async () => {
    const dom = await c.defineXml(testXml(`kumo-it-ms-${suffix()}`));
    try {
      assert.equal(await c.hasManagedSaveImage(dom), false);
      const running = await c.create(dom);
      await c.managedSave(running);
      assert.deepEqual(await c.getState(dom), {
        state: DomainState.SHUTOFF,
        reason: DomainShutoffReason.SAVED,
      });
      assert.equal(await c.hasManagedSaveImage(dom), true);
      const restored = await c.create(dom);
      assert.equal((await c.getState(restored)).state, DomainState.RUNNING);
      assert.equal(await c.hasManagedSaveImage(dom), false, 'a restore consumes the image');
      await c.managedSave(restored);
      await c.managedSaveRemove(dom);
      assert.equal(await c.hasManagedSaveImage(dom), false);
      await c.managedSave(await c.create(dom));
      // undefine refuses a domain with a managed save image unless told to remove it
      await assert.rejects(
        c.undefine(dom),
        isLibvirtError(VirErrorNumber.VIR_ERR_OPERATION_INVALID),
      );
      await c.undefine(dom, UndefineFlags.MANAGED_SAVE);
      await assert.rejects(c.lookupByUuid(dom.uuid), isLibvirtError(42));
      await assert.rejects(c.hasManagedSaveImage(dom), isLibvirtError(42));
      await assert.rejects(c.managedSave(dom), isLibvirtError(42));
    } finally {
      await c.undefine(dom, UndefineFlags.MANAGED_SAVE).catch(() => {});
    }
  });

  test('missing domains are VIR_ERR_NO_DOMAIN (42); bad XML is a LibvirtError', async () => {
    await assert.rejects(
      c.lookupByName(`kumo-missing-${suffix()}`),
      isLibvirtError(VirErrorNumber.VIR_ERR_NO_DOMAIN),
    );
    await assert.rejects(c.lookupByUuid(randomUUID()), isLibvirtError(42));
    const ghost: Domain = { name: `kumo-ghost-${suffix()}`, uuid: randomUUID(), id: -1 };
    await assert.rejects(c.create(ghost), isLibvirtError(42));
    await assert.rejects(c.getXmlDesc(ghost), isLibvirtError(42));
    await assert.rejects(c.defineXml('<domain><name>x</name'), (e: unknown) => {
      assert.ok(e instanceof LibvirtError);
      // libvirt reports a parse error with the detail variant of XML_ERROR
      assert.equal(e.code, VirErrorNumber.VIR_ERR_XML_DETAIL);
      assert.match(e.message, /expected '>'/);
      return true;
    });
    assert.ok(c.isConnected(), 'errors do not hurt the connection');
  });

  test('a domain-filtered registration; deregistered callbacks get nothing more', async () => {
    const a = await c.defineXml(testXml(`kumo-it-a-${suffix()}`));
    const b = await c.defineXml(testXml(`kumo-it-b-${suffix()}`));
    const onlyA: LifecycleEvent[] = [];
    const all: LifecycleEvent[] = [];
    const regA = await c.registerLifecycle((e) => onlyA.push(e), { domain: a });
    const regAll = await c.registerLifecycle((e) => all.push(e));
    assert.notEqual(regA.id, regAll.id);
    await c.create(b);
    await c.create(a);
    await waitFor('two STARTED events', () => (all.length >= 2 ? true : undefined));
    assert.deepEqual(
      onlyA.map((e) => [e.domain.name, e.eventName]),
      [[a.name, 'STARTED']],
    );

    await regAll.deregister();
    await regAll.deregister(); // idempotent
    await c.destroy(a);
    await waitFor('STOPPED for a', () => (onlyA.length >= 2 ? true : undefined));
    assert.equal(onlyA[1]?.eventName, 'STOPPED');
    assert.equal(all.length, 2, 'nothing after deregistration');
    await regA.deregister();
    await c.destroy(b);
    await c.undefine(a);
    await c.undefine(b);
  });

  test('libvirtd keepalive: its PINGs are answered and the idle connection stays up', async () => {
    // libvirtd starts pinging after CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE), every
    // keepalive_interval (default 5 s) of silence, and drops clients that do not answer
    const before = c.serverPings();
    await waitFor('a server PING', () => (c.serverPings() > before ? true : undefined), 12_000);
    assert.ok(c.isConnected());
    assert.equal(await c.getType(), 'TEST');
  });
});

describe('libvirt client: reconnect after libvirtd restarts', () => {
  let c: LibvirtClient;
  after(async () => {
    await c?.close();
  });

  test('re-opens the URI, re-registers callbacks, tells the caller; events flow again', async () => {
    c = await connect('test:///default', {
      reconnect: { initialMs: 50, maxMs: 1000 },
      keepalive: { intervalMs: 1000, count: 3 },
    });
    const events: LifecycleEvent[] = [];
    const reg = await c.registerLifecycle((e) => events.push(e));
    const disconnected: LibvirtConnectionError[] = [];
    const reconnected: ReconnectedEvent[] = [];
    c.onDisconnected((e) => disconnected.push(e));
    c.onReconnected((e) => reconnected.push(e));

    await restartLibvirtd();
    await waitFor('disconnected', () => disconnected[0], 10_000);
    assert.equal(disconnected[0]?.reason, 'lost');
    const ev = await waitFor('reconnected', () => reconnected[0], 20_000);
    assert.deepEqual(ev.callbacks, [reg.id]);
    assert.ok(c.isConnected());
    assert.equal(await c.getType(), 'TEST', 'the URI was opened again');

    const name = `kumo-it-r-${suffix()}`;
    const dom = await c.defineXml(testXml(name));
    await c.create(dom);
    await c.destroy(dom);
    await c.undefine(dom);
    const mine = () => events.filter((e) => e.domain.name === name).map((e) => e.eventName);
    await waitFor('events after reconnect', () => (mine().length >= 4 ? true : undefined));
    assert.deepEqual(mine(), ['DEFINED', 'STARTED', 'STOPPED', 'UNDEFINED']);
    assert.ok(
      events.every((e) => e.callbackId === reg.id),
      'our id survives the reconnect',
    );
    await reg.deregister();
  });
});

describe('libvirt client: qemu:///system', () => {
  let c: LibvirtClient;
  before(async () => {
    // every call that needs qemu capabilities re-probes the emulators here (~8 s each,
    // libvirtd finds its capability cache invalid every time), hence the long timeout
    c = await connect('qemu:///system', { timeoutMs: 120_000 });
  });
  after(async () => {
    await c?.close();
  });

  test('smoke: driver, version, list domains', async () => {
    assert.equal(await c.getType(), 'QEMU');
    assert.ok((await c.getVersion()) >= 7_000_000, 'qemu >= 7');
    assert.ok(Array.isArray(await c.listAllDomains()));
  });

  test('attach and detach a disk on a defined (inactive) qemu domain, persistent config', async () => {
    const name = `kumo-it-q-${suffix()}`;
    const dom = await c.defineXml(
      `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
        `<os><type arch='x86_64'>hvm</type></os></domain>`,
    );
    try {
      const disk = diskXml(`/var/lib/kumo-test-${name}.img`);
      await c.attachDevice(dom, disk, DomainAffect.CONFIG);
      const withDisk = await c.getXmlDesc(dom, DomainXmlFlags.INACTIVE);
      assert.match(withDisk, /<target dev='vdb' bus='virtio'\/>/);
      // LIVE on an inactive domain: libvirt refuses with OPERATION_INVALID
      await assert.rejects(
        c.detachDevice(dom, disk, DomainAffect.LIVE),
        isLibvirtError(VirErrorNumber.VIR_ERR_OPERATION_INVALID),
      );
      await c.detachDevice(dom, disk, DomainAffect.CONFIG);
      assert.doesNotMatch(await c.getXmlDesc(dom, DomainXmlFlags.INACTIVE), /dev='vdb'/);
    } finally {
      await c.undefine(dom);
    }
    await assert.rejects(c.lookupByName(name), isLibvirtError(42));
  });

  test('start paused, managed save and restore of a real qemu guest', async () => {
    const name = `kumo-it-qs-${suffix()}`;
    const dom = await c.defineXml(
      `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
        `<os><type arch='x86_64'>hvm</type></os></domain>`,
    );
    try {
      const paused = await c.create(dom, DomainCreateFlags.START_PAUSED);
      assert.deepEqual(await c.getState(paused), {
        state: DomainState.PAUSED,
        reason: DomainPausedReason.USER,
      });
      await c.resume(paused);
      await c.managedSave(paused);
      assert.deepEqual(await c.getState(dom), {
        state: DomainState.SHUTOFF,
        reason: DomainShutoffReason.SAVED,
      });
      assert.equal(await c.hasManagedSaveImage(dom), true);
      const restored = await c.create(dom, DomainCreateFlags.START_PAUSED);
      assert.equal((await c.getState(restored)).state, DomainState.PAUSED, 'restored paused');
      assert.equal(await c.hasManagedSaveImage(dom), false);
      await c.resume(restored);
      assert.equal((await c.getState(restored)).state, DomainState.RUNNING);
      await c.destroy(restored);
    } finally {
      await c.destroy(dom).catch(() => {});
      await c.undefine(dom, UndefineFlags.MANAGED_SAVE);
    }
  });
});
