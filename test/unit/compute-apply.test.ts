/**
 * The compute agent's apply path at agent level: the `instance` kind on core/reconciler.ts
 * with a FakeRunner for the commands (qemu-img, ip), a fake libvirt client and a fake
 * OVSDB (test/helpers/compute-fakes.ts), real files in a temporary instances_path, and the
 * real status reporter whose sink records update_instance.
 *
 * Proves: a lab-mode spawn runs define, start paused, the tap moved and plugged in one
 * OVSDB transaction with iface-id/attached-mac/vm-uuid (waiting for ovs-vswitchd), wait,
 * resume, and reports the task once with timings; the same task again plans nothing and
 * reports nothing new until a resync forgets what was sent; a hint of an applied task is
 * skipped; a spawn whose ports never go ACTIVE is torn down (domain, OVS row from its
 * bridge, directory) and ends in ERROR, not retried; a domain XML libvirt refuses is a
 * permanent ERROR; libvirtd away is a TransientError with no report; a delete removes
 * everything and reports `deleted`; a settled instance reports its power state on change.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import type { ComputeSettings } from '../../agents/compute/desired.ts';
import { ImageError } from '../../agents/compute/image-cache.ts';
import { createInstanceKind, type TaskLedger } from '../../agents/compute/instance.ts';
import { TransientError } from '../../contracts/errors.ts';
import type { InstanceSpec, UpdateInstanceArgs } from '../../contracts/instances.ts';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler, type Reconciler } from '../../core/reconciler.ts';
import { createStatusReporter } from '../../core/status.ts';
import { DomainState, LibvirtConnectionError, VirErrorNumber } from '../../host/libvirt/client.ts';
import {
  fakeLibvirt,
  fakeOvsdb,
  KERNEL,
  libvirtError,
  MACHINE,
  RAMDISK,
} from '../helpers/compute-fakes.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';

const HOST = 'cmp-1';
const NETNS = 'lab-h1';
const ID = '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8';
const PORT = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const TAP = 'tap0a1b2c3d-4e';
const MAC = 'fa:16:3e:00:00:01';

function newSpec(): InstanceSpec {
  return {
    id: ID,
    seq: 42,
    display_name: 'vm-1',
    host: HOST,
    vm_state: 'building',
    task_state: 'spawning',
    task_id: 7,
    flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 256, disk: 1 },
    image: MACHINE,
    kernel: KERNEL,
    ramdisk: RAMDISK,
    cmdline: 'console=ttyS0',
    ports: [
      {
        id: PORT,
        mac_address: MAC,
        network_id: '44444444-4444-4444-8444-444444444444',
        status: 'DOWN',
        mtu: 1450,
        fixed_ips: [],
      },
    ],
    created_at: '2026-11-22T06:00:00Z',
    config_drive: false,
    volumes: [],
  };
}

/** A runner that also makes the file a scripted `qemu-img create` would have made. */
function withDisks(fake: FakeRunner): CommandRunner {
  return {
    async run(spec: CommandSpec) {
      const r = await fake.run(spec);
      if (spec.argv[0] === 'qemu-img' && spec.argv[1] === 'create')
        writeFileSync(spec.argv.at(-2) as string, 'qcow2');
      return r;
    },
  };
}

const LINK = JSON.stringify([{ ifindex: 9, ifname: TAP, addr_info: [] }]);
const NO_DEV = { exitCode: 1, stderr: `Device "${TAP}" does not exist.` };
const addrShow = (netns?: string) => [
  'ip',
  ...(netns ? ['-n', netns] : []),
  ...['-j', 'addr', 'show', 'dev', TAP],
];

describe('compute apply path (FakeRunner, fake libvirt, fake OVSDB)', () => {
  const root = mkdtempSync(join(tmpdir(), 'kumo-compute-apply-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let spec: InstanceSpec | null;
  let runner: FakeRunner;
  let lv: ReturnType<typeof fakeLibvirt>;
  let ovs: ReturnType<typeof fakeOvsdb>;
  let sent: UpdateInstanceArgs[];
  let ports: () => Promise<void>;
  let ledger: TaskLedger;
  let reconciler: Reconciler;
  let fetches: number;
  /** Image ids the image service answers 404 for. */
  let missing: Set<string>;
  const instances = join(root, 'instances');
  const settings: ComputeSettings = {
    host: HOST,
    instancesPath: instances,
    baseDir: join(instances, '_base'),
    virtType: 'qemu',
    intBridge: 'br-int',
    vswitchdNetns: NETNS,
    vifPluggingTimeoutMs: 1000,
    shutdownTimeoutMs: 0,
    stateDir: join(root, 'compute'),
    forceConfigDrive: false,
  };
  const dir = join(instances, ID);

  beforeEach(() => {
    rmSync(instances, { recursive: true, force: true });
    mkdirSync(settings.baseDir, { recursive: true });
    for (const i of [MACHINE, KERNEL, RAMDISK]) writeFileSync(join(settings.baseDir, i.id), 'x');
    spec = newSpec();
    runner = new FakeRunner();
    lv = fakeLibvirt();
    ovs = fakeOvsdb();
    ovs.ports.push({ uuid: 'other', name: 'tapother', bridge: 'br-int', ids: { 'iface-id': 'x' } });
    sent = [];
    ports = async () => {};
    ledger = new Map();
    fetches = 0;
    missing = new Set();
    const reporter = createStatusReporter<UpdateInstanceArgs>({
      send: async (changes) => void sent.push(...changes.map((c) => c.value)),
    });
    const kind = createInstanceKind({
      libvirt: lv.client,
      runner: withDisks(runner),
      log: silentLogger(),
      broker: {
        call: async () => {
          fetches++;
          return { instance: structuredClone(spec) };
        },
        cast: async () => {},
      },
      host: HOST,
      settings,
      ovsdb: async () => ovs.client,
      images: () => ({
        ensure: async (i) => {
          if (missing.has(i.id))
            throw new ImageError(i.id, 'GET /v2/images/x/file answered HTTP 404', {
              httpStatus: 404,
            });
          return join(settings.baseDir, i.id);
        },
        prune: async () => [],
      }),
      waitPorts: () => ports(),
      configDrive: async () => assert.fail('these instances have no config drive'),
      reporter,
      ledger,
      onStart: new Set(),
      applied: () => {},
    });
    reconciler = createReconciler({ log: silentLogger(), kinds: { instance: kind } });
  });

  const fileCommands = () =>
    runner.expect(
      {
        argv: [
          ...['prlimit', `--as=${1024 ** 3}`, '--cpu=30', '--'],
          ...[
            'qemu-img',
            'info',
            '--output=json',
            '--force-share',
            join(settings.baseDir, MACHINE.id),
          ],
        ],
        stdout: '{"format":"raw","virtual-size":1048576}',
      },
      {
        argv: [
          ...['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw'],
          ...['-b', join(settings.baseDir, MACHINE.id), join(dir, 'disk.part'), String(1024 ** 3)],
        ],
      },
    );
  const spawnCommands = () =>
    fileCommands().expect(
      { argv: addrShow(), stdout: LINK },
      { argv: ['ip', 'link', 'set', 'dev', TAP, 'netns', NETNS] },
      {
        argv: ['ip', '-n', NETNS, '-batch', '-'],
        stdin: `link set dev ${TAP} mtu 1450\nlink set dev ${TAP} up\n`,
      },
    );
  /** What observing an active ethernet-mode guest asks `ip` (its tap is in vswitchd's netns). */
  const tapInVswitchd = () =>
    runner.expect({ argv: addrShow(), fail: NO_DEV }, { argv: addrShow(NETNS), stdout: LINK });

  test('spawn: paused, tap moved and plugged in one transaction, resumed, reported once', async () => {
    spawnCommands();
    await reconciler.reconcile('instance', ID, 7);
    runner.verify();
    assert.deepEqual(lv.calls, ['defineXml', 'create', 'resume']);
    assert.equal(lv.domains.get(ID)?.state, DomainState.RUNNING);
    assert.equal(readFileSync(join(dir, 'host'), 'utf8'), `${HOST}\n`, 'owner marker');
    for (const f of ['disk', 'kernel', 'ramdisk', 'console.log'])
      assert.ok(existsSync(join(dir, f)));
    const port = ovs.ports.find((p) => p.name === TAP);
    assert.deepEqual(port && { bridge: port.bridge, ids: port.ids }, {
      bridge: 'br-int',
      ids: { 'iface-id': PORT, 'attached-mac': MAC, 'iface-status': 'active', 'vm-uuid': ID },
    });
    const plug = ovs.transactions.find((t) => t.some((o) => o.op === 'insert'));
    assert.ok(
      plug?.some((o) => o.op === 'mutate' && o.table === 'Open_vSwitch'),
      'applied',
    );
    assert.equal(sent.length, 1);
    const r = sent[0] as UpdateInstanceArgs;
    assert.deepEqual(
      { ...r, timings: undefined },
      {
        host: HOST,
        instance_id: ID,
        power_state: 1,
        observed_task_id: 7,
        task_done: 7,
        vm_state: 'active',
        timings: undefined,
      },
    );
    for (const k of ['image', 'define', 'plug', 'wait_port', 'boot'] as const)
      assert.equal(typeof r.timings?.[k], 'number');

    await reconciler.reconcile('instance', ID, 7);
    assert.equal(fetches, 1, 'a hint of the applied task is skipped');
    tapInVswitchd();
    await reconciler.reconcile('instance', ID);
    runner.verify();
    assert.deepEqual(lv.calls, ['defineXml', 'create', 'resume'], 'the task is not done again');
    assert.equal(sent.length, 1, 'the same report is not sent again');
    reconciler.forget();
    tapInVswitchd();
    await reconciler.reconcile('instance', ID);
    assert.equal(sent.length, 2, 'after a resync, sent again');
    assert.deepEqual(sent[1], sent[0]);

    (spec as InstanceSpec).task_state = 'deleting';
    (spec as InstanceSpec).task_id = 8;
    await reconciler.reconcile('instance', ID, 8);
    runner.verify();
    assert.deepEqual(lv.calls.slice(3), ['destroy', 'undefine']);
    assert.ok(!existsSync(dir));
    assert.deepEqual(
      ovs.ports.map((p) => p.name),
      ['tapother'],
      "only the instance's port is removed",
    );
    assert.deepEqual(sent.at(-1), {
      host: HOST,
      instance_id: ID,
      power_state: 0,
      observed_task_id: 8,
      task_done: 8,
      deleted: true,
    });
  });

  test('a kernel the image service lacks (404): ERROR naming the kernel and its image, nothing left', async () => {
    missing.add(KERNEL.id);
    await reconciler.reconcile('instance', ID, 7);
    runner.verify();
    assert.deepEqual(lv.calls, [], 'no domain defined');
    assert.ok(!existsSync(dir), 'no directory left');
    assert.equal(sent[0]?.vm_state, 'error');
    assert.equal(
      sent[0]?.fault?.message,
      `kernel image ${KERNEL.id} of image ${MACHINE.id} is missing in the image service: image ${KERNEL.id}: GET /v2/images/x/file answered HTTP 404`,
    );
  });

  test('rebuild: destroyed, files made again from the image and listed, defined, started', async () => {
    spawnCommands();
    await reconciler.reconcile('instance', ID, 7);
    runner.verify();
    const s = spec as InstanceSpec;
    Object.assign(s, { vm_state: 'active', task_state: 'rebuilding', task_id: 8 });
    writeFileSync(join(dir, 'disk'), 'old disk');
    writeFileSync(join(dir, 'kernel'), 'old kernel');
    tapInVswitchd();
    fileCommands().expect(
      { argv: addrShow(), stdout: LINK },
      { argv: ['ip', 'link', 'set', 'dev', TAP, 'netns', NETNS] },
      {
        argv: ['ip', '-n', NETNS, '-batch', '-'],
        stdin: `link set dev ${TAP} mtu 1450\nlink set dev ${TAP} up\n`,
      },
    );
    await reconciler.reconcile('instance', ID, 8);
    runner.verify();
    assert.deepEqual(lv.calls.slice(3), ['destroy', 'defineXml', 'create', 'resume']);
    assert.equal(readFileSync(join(dir, 'disk'), 'utf8'), 'qcow2', 'a new disk');
    assert.equal(readFileSync(join(dir, 'kernel'), 'utf8'), 'x', 'the kernel copied again');
    assert.equal(
      readFileSync(join(dir, 'images'), 'utf8'),
      `${MACHINE.id}\n${KERNEL.id}\n${RAMDISK.id}\n`,
    );
    assert.deepEqual(
      { task: sent.at(-1)?.task_done, vm: sent.at(-1)?.vm_state },
      { task: 8, vm: 'active' },
    );
  });

  test('ports never ACTIVE: torn down, ERROR with the reason, not tried again', async () => {
    spawnCommands();
    ports = async () => {
      throw new Error(`port(s) ${PORT} not ACTIVE within 1 s (vif_plugging_timeout)`);
    };
    await reconciler.reconcile('instance', ID, 7);
    runner.verify();
    assert.deepEqual(lv.calls, ['defineXml', 'create', 'destroy', 'undefine']);
    assert.ok(!existsSync(dir), 'no directory left');
    assert.deepEqual(
      ovs.ports.map((p) => p.name),
      ['tapother'],
    );
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.vm_state, 'error');
    assert.equal(sent[0]?.task_done, 7);
    assert.match(sent[0]?.fault?.message ?? '', /not ACTIVE within 1 s/);
    assert.equal(ledger.get(ID)?.failed, true);
    await reconciler.reconcile('instance', ID);
    assert.deepEqual(lv.calls.length, 4, 'a failed task is not retried before a resync');
  });

  test('a domain XML libvirt refuses: permanent, ERROR, the directory removed', async () => {
    fileCommands();
    lv.fail.set('defineXml', libvirtError(VirErrorNumber.VIR_ERR_XML_ERROR, 'bad XML'));
    await reconciler.reconcile('instance', ID, 7);
    runner.verify();
    assert.equal(sent[0]?.vm_state, 'error');
    assert.match(
      sent[0]?.fault?.details ?? '',
      /PermanentError: libvirt refuses the domain: bad XML/,
    );
    assert.ok(!existsSync(dir));
  });

  test('libvirtd away: a TransientError, nothing reported', async () => {
    lv.fail.set('lookupByUuid', new LibvirtConnectionError('lost', '/run/libvirt-sock'));
    await assert.rejects(reconciler.reconcile('instance', ID, 7), TransientError);
    assert.deepEqual(sent, []);
    assert.equal(ledger.size, 0);
  });

  test('settled: the power state is reported when it changes, an unknown instance never', async () => {
    spec = { ...newSpec(), vm_state: 'stopped', task_state: null };
    await reconciler.reconcile('instance', ID);
    await reconciler.reconcile('instance', ID);
    assert.deepEqual(sent, [{ host: HOST, instance_id: ID, power_state: 0, observed_task_id: 7 }]);
    spec = null;
    await reconciler.reconcile('instance', ID);
    assert.equal(sent.length, 1, 'nothing there, nothing to say');
    runner.verify();
  });
});
