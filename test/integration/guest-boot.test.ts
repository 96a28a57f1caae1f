/**
 * agents/compute/domain.ts against the real libvirtd, through host/libvirt/client.ts:
 *
 * - schema: renders defined on `test:///default` with VIR_DOMAIN_DEFINE_VALIDATE, so
 *   libvirt checks them against its domain.rng (the same check `virsh define --validate`
 *   and `virt-xml-validate` make; the latter needs xmllint, which is not installed here);
 * - boot: the tiny test guest (test/helpers/guest.ts: cloud kernel + busybox initramfs) on
 *   `qemu:///system` with virt type `qemu` (TCG), kernel + ramdisk and no disk or NIC
 *   (`kumo.nodhcp`); its serial console file must show `KUMO-GUEST-UP` within 60 s, and
 *   destroy + undefine must come back as STARTED/STOPPED/UNDEFINED lifecycle events.
 *
 * A missing libvirtd or kernel package fails the test with the reason.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DomainSpec, instanceName, renderDomainXml } from '../../agents/compute/domain.ts';
import {
  createLibvirtClient,
  DEFAULT_LIBVIRT_SOCKET,
  type Domain,
  DomainState,
  type LibvirtClient,
  LibvirtConnectionError,
  LibvirtError,
  type LifecycleEvent,
  VirErrorNumber,
} from '../../host/libvirt/client.ts';
import { buildTestGuest, GUEST_UP_MARKER } from '../helpers/guest.ts';

/** virDomainDefineFlags: VIR_DOMAIN_DEFINE_VALIDATE (check the XML against domain.rng). */
const DEFINE_VALIDATE = 1;
const BOOT_TIMEOUT_MS = 60_000;
const START_HINT =
  'start it with: mkdir -p /var/log/libvirt /var/run/libvirt; virtlogd -d; libvirtd -d ' +
  '(packages: libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86)';

async function connect(uri: string): Promise<LibvirtClient> {
  if (!existsSync(DEFAULT_LIBVIRT_SOCKET)) {
    throw new Error(`libvirtd is not running (no ${DEFAULT_LIBVIRT_SOCKET}); ${START_HINT}`);
  }
  try {
    // qemu:///system re-probes the emulators on capability-bound calls (~8 s each here)
    return await createLibvirtClient({ uri, timeoutMs: 120_000 });
  } catch (e) {
    if (e instanceof LibvirtConnectionError) {
      throw new Error(`libvirtd is not running (${e.message}); ${START_HINT}`, { cause: e });
    }
    throw e;
  }
}

function spec(overrides: Partial<DomainSpec> = {}): DomainSpec {
  return {
    uuid: randomUUID(),
    name: instanceName(randomInt(0x10000000, 0xffffffff)),
    displayName: `kumo-it <${randomBytes(2).toString('hex')}> & co`,
    flavor: { vcpus: 1, ramMiB: 256 },
    virtType: 'kvm',
    disk: { path: '/var/lib/kumo/compute/instances/x/disk', format: 'qcow2' },
    nics: [
      {
        portId: randomUUID(),
        mac: 'fa:16:3e:00:00:01',
        bridge: 'br-int',
        mtu: 1450,
      },
    ],
    consoleLog: '/var/lib/kumo/compute/instances/x/console.log',
    metadata: {
      flavorName: 'm1.tiny',
      imageId: randomUUID(),
      created: new Date().toISOString(),
    },
    ...overrides,
  };
}

describe('domain XML: libvirt schema validation (test:///default)', () => {
  let c: LibvirtClient;
  before(async () => {
    c = await connect('test:///default');
  });
  after(async () => {
    await c?.close();
  });

  test('full and kernel-only renders pass domain.rng and read back with our metadata', async () => {
    const variants: DomainSpec[] = [
      spec(),
      spec({ virtType: 'qemu', disk: { path: '/srv/k/disk.raw', format: 'raw' }, nics: [] }),
      spec({
        virtType: 'qemu',
        disk: undefined,
        nics: [],
        kernel: '/srv/k/vmlinuz',
        initrd: '/srv/k/initrd.img',
        cmdline: "console=ttyS0 x='<1>' & y",
      }),
    ];
    for (const s of variants) {
      if (s.disk === undefined) delete s.disk;
      const dom = await c.defineXml(renderDomainXml(s), DEFINE_VALIDATE);
      try {
        assert.deepEqual(dom, { name: s.name, uuid: s.uuid, id: -1 });
        const xml = await c.getXmlDesc(dom);
        assert.match(
          xml,
          /<kumo:instance xmlns:kumo="https:\/\/kumo\.dev\/xmlns\/instance\/1\.0">/,
        );
        assert.ok(xml.includes(`<kumo:root type="image" uuid="${s.metadata.imageId}"/>`), xml);
        for (const n of s.nics) {
          assert.ok(xml.includes(`<parameters interfaceid='${n.portId}'/>`), xml);
          assert.ok(xml.includes(`<target dev='tap${n.portId.slice(0, 11)}'/>`), xml);
        }
        if (s.kernel !== undefined) {
          // libvirt writes text back with apostrophes escaped too
          assert.ok(
            xml.includes('<cmdline>console=ttyS0 x=&apos;&lt;1&gt;&apos; &amp; y</cmdline>'),
            xml,
          );
        }
      } finally {
        await c.undefine(dom);
      }
    }
  });

  test('validation is really on: a schema violation is refused', async () => {
    const bad = renderDomainXml(spec()).replace("<clock offset='utc'/>", '<clock offset="nope"/>');
    await assert.rejects(c.defineXml(bad, DEFINE_VALIDATE), (e: unknown) => {
      assert.ok(e instanceof LibvirtError, String(e));
      assert.match(e.message, /schema|offset/i);
      return true;
    });
  });
});

describe('test guest boots on qemu:///system (TCG)', () => {
  let c: LibvirtClient;
  before(async () => {
    c = await connect('qemu:///system');
  });
  after(async () => {
    await c?.close();
  });

  test('kernel + initramfs, no disk, no NIC: console shows the marker; lifecycle events', async (t) => {
    const guest = await buildTestGuest();
    const dir = mkdtempSync(join(tmpdir(), 'kumo-guest-boot-'));
    chmodSync(dir, 0o755); // qemu runs as libvirt-qemu
    const consoleLog = join(dir, 'console.log');
    const s = spec({
      virtType: 'qemu',
      nics: [],
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: `${guest.cmdline} kumo.nodhcp`,
      consoleLog,
    });
    delete s.disk;
    const events: LifecycleEvent[] = [];
    const reg = await c.registerLifecycle((e) => {
      if (e.domain.uuid === s.uuid) events.push(e);
    });
    let dom: Domain | undefined;
    const readConsole = () => (existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '');
    try {
      dom = await c.defineXml(renderDomainXml(s), DEFINE_VALIDATE);
      const t0 = performance.now();
      const running = await c.create(dom);
      const tStarted = performance.now();
      assert.ok(running.id > 0);
      assert.equal((await c.getState(running)).state, DomainState.RUNNING);

      let upAt: number | undefined;
      while (upAt === undefined && performance.now() - tStarted < BOOT_TIMEOUT_MS) {
        if (readConsole().includes(`${GUEST_UP_MARKER} none`)) upAt = performance.now();
        else await sleep(100);
      }
      const log = readConsole();
      assert.ok(
        upAt !== undefined,
        `no "${GUEST_UP_MARKER}" on the console within ${BOOT_TIMEOUT_MS} ms; console:\n${log.slice(-2000)}`,
      );
      assert.doesNotMatch(log, /KUMO-GUEST-FAIL/);
      assert.match(log, new RegExp(`KUMO-GUEST-INIT ${guest.kernelVersion.replace(/\./g, '\\.')}`));
      t.diagnostic(
        `create() ${(tStarted - t0).toFixed(0)} ms; create → ${GUEST_UP_MARKER} ${(upAt - tStarted).toFixed(0)} ms`,
      );

      await c.destroy(running);
      assert.equal((await c.getState(dom)).state, DomainState.SHUTOFF);
      await c.undefine(dom);
      dom = undefined;

      // qemu adds its own: RESUMED (libvirt starts qemu paused) and SHUTDOWN (qemu saw
      // the kill); the ones we rely on must come in this order
      const want = ['DEFINED', 'STARTED', 'STOPPED', 'UNDEFINED'];
      const ours = () => events.map((e) => e.eventName).filter((n) => want.includes(n));
      const end = Date.now() + 10_000;
      while (ours().length < want.length && Date.now() < end) await sleep(20);
      assert.deepEqual(ours(), want, `all events: ${events.map((e) => e.eventName).join(' ')}`);
    } finally {
      if (dom !== undefined) {
        const left = dom;
        await c.destroy(left).catch(() => {});
        await c.undefine(left).catch((e: unknown) => {
          if (!(e instanceof LibvirtError && e.code === VirErrorNumber.VIR_ERR_NO_DOMAIN)) throw e;
        });
      }
      await reg.deregister();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
