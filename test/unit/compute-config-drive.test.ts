/**
 * The compute agent's config drive at agent level: the `instance` kind with a FakeRunner
 * for xorriso, the fake libvirt and OVSDB (test/helpers/compute-fakes.ts), real files in a
 * temporary instances_path, and a fake broker answering get_instance and get_config_drive
 * through the agent's real RPC calls (the contract validates the answer).
 *
 * Proves: a spawn of an instance that asks for a config drive (or of any instance under
 * [compute] force_config_drive) asks the API for its files, builds `disk.config` with
 * Nova's genisoimage options from exactly those files (bytes intact), renames it into place
 * readable by libvirt's qemu user with nothing left aside, and defines the domain with the
 * read-only IDE cdrom; without either, nothing is asked or built and the XML has no
 * cdrom; a rebuild builds it again from the API's current files (its reset removes the
 * old image, in this host's directory only); a delete removes it with
 * the directory; a `..` path or non-base64 content from the API, or no drive at all, fails
 * the spawn into ERROR naming why, with nothing left behind.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { type ComputeSettings, pathsOf } from '../../agents/compute/desired.ts';
import { createInstanceKind } from '../../agents/compute/instance.ts';
import {
  createInstanceDir,
  ForeignDirectoryError,
  resetInstanceFiles,
} from '../../agents/compute/instance-dir.ts';
import { getConfigDrive } from '../../agents/compute/rpc.ts';
import type { InstanceSpec, UpdateInstanceArgs } from '../../contracts/instances.ts';
import type { ConfigDriveFile } from '../../contracts/metadata.ts';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler, type Reconciler } from '../../core/reconciler.ts';
import { createStatusReporter } from '../../core/status.ts';
import { fakeLibvirt, fakeOvsdb, KERNEL } from '../helpers/compute-fakes.ts';
import { tempDir } from '../helpers/env.ts';
import { FakeRunner } from '../helpers/fake-runner.ts';

const HOST = 'cmp-1';
const ID = '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8';
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const FILES: ConfigDriveFile[] = [
  { path: 'openstack/latest/meta_data.json', content_base64: b64(`{"uuid": "${ID}"}`) },
  { path: 'openstack/latest/user_data', content_base64: b64(Buffer.from([0, 255, 10])) },
  { path: 'ec2/2009-04-04/meta-data.json', content_base64: b64('{}') },
];
const CDROM = [
  "    <disk type='file' device='cdrom'>",
  "      <driver name='qemu' type='raw'/>",
  "      <source file='DRIVE'/>",
  "      <target dev='hdd' bus='ide'/>",
  '      <readonly/>',
  '    </disk>',
].join('\n');

/** A kernel-only guest (no root disk, no NIC): the only command a spawn runs is xorriso's. */
const newSpec = (configDrive: boolean): InstanceSpec => ({
  id: ID,
  seq: 42,
  display_name: 'vm-1',
  host: HOST,
  vm_state: 'building',
  task_state: 'spawning',
  task_id: 7,
  flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 256, disk: 0 },
  image: KERNEL,
  kernel: null,
  ramdisk: null,
  cmdline: 'console=ttyS0',
  ports: [],
  created_at: '2026-11-22T06:00:00Z',
  config_drive: configDrive,
  volumes: [],
});

/** Every file under `root`, relative, with its bytes. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(root, p)] = readFileSync(p).toString('base64');
    }
  };
  walk(root);
  return out;
}

describe('compute config drive (FakeRunner, fake libvirt, fake broker)', () => {
  const root = tempDir('kumo-config-drive-');
  after(() => root.cleanup());
  const instances = join(root.path, 'instances');
  const dir = join(instances, ID);
  const drive = join(dir, 'disk.config');
  let spec: InstanceSpec;
  let answer: ConfigDriveFile[] | null;
  let asked: unknown[];
  let built: Record<string, string>[];
  let runner: FakeRunner;
  let lv: ReturnType<typeof fakeLibvirt>;
  let sent: UpdateInstanceArgs[];

  const settings = (force: boolean): ComputeSettings => ({
    host: HOST,
    instancesPath: instances,
    baseDir: join(instances, '_base'),
    virtType: 'qemu',
    intBridge: 'br-int',
    vifPluggingTimeoutMs: 1000,
    shutdownTimeoutMs: 0,
    stateDir: join(root.path, 'compute'),
    forceConfigDrive: force,
  });

  /** The runner the agent gets: scripted, and a xorriso call records its tree and writes. */
  const xorrisoWrites = (): CommandRunner => ({
    async run(cmd: CommandSpec) {
      const r = await runner.run(cmd);
      if (cmd.argv[0] === 'xorriso') {
        const t = tree(cmd.argv.at(-1) as string);
        built.push(t);
        writeFileSync(cmd.argv[4] as string, JSON.stringify(t));
      }
      return r;
    },
  });

  const broker = {
    call: async (_topic: string, method: string, args: unknown) => {
      if (method !== 'get_config_drive') return { instance: structuredClone(spec) };
      asked.push(args);
      return { files: answer };
    },
    cast: async () => {},
  };

  const reconcilerWith = (s: ComputeSettings): Reconciler => {
    const kind = createInstanceKind({
      libvirt: lv.client,
      runner: xorrisoWrites(),
      log: silentLogger(),
      broker,
      host: HOST,
      settings: s,
      ovsdb: async () => fakeOvsdb().client,
      images: () => ({ ensure: async (i) => join(s.baseDir, i.id), prune: async () => [] }),
      waitPorts: async () => {},
      configDrive: (id) => getConfigDrive({ broker, host: HOST }, id),
      reporter: createStatusReporter<UpdateInstanceArgs>({
        send: async (changes) => void sent.push(...changes.map((c) => c.value)),
      }),
      ledger: new Map(),
      onStart: new Set(),
      applied: () => {},
    });
    return createReconciler({ log: silentLogger(), kinds: { instance: kind } });
  };

  const mkisofs = (): string[] => [
    ...['xorriso', '-as', 'mkisofs', '-o', `${drive}.part`, '-ldots', '-allow-lowercase'],
    ...['-allow-multidot', '-l', '-publisher', 'Kumo Compute', '-quiet', '-J', '-r'],
    ...['-V', 'config-2', join(dir, '.config-drive.part')],
  ];
  const expected = (files: ConfigDriveFile[]) =>
    Object.fromEntries(files.map((f) => [f.path, f.content_base64]));

  beforeEach(() => {
    rmSync(instances, { recursive: true, force: true });
    mkdirSync(join(instances, '_base'), { recursive: true });
    writeFileSync(join(instances, '_base', KERNEL.id), 'kernel');
    answer = structuredClone(FILES);
    asked = [];
    built = [];
    runner = new FakeRunner();
    lv = fakeLibvirt();
    sent = [];
  });

  const xml = () => lv.domains.get(ID)?.xml ?? '';

  test('config_drive: built from the API files, renamed into place, attached as a read-only cdrom', async () => {
    spec = newSpec(true);
    runner.expect({ argv: mkisofs() });
    await reconcilerWith(settings(false)).reconcile('instance', ID, 7);
    runner.verify();
    assert.deepEqual(asked, [{ host: HOST, instance_id: ID }]);
    assert.deepEqual(built, [expected(FILES)], 'the tree holds exactly the files, bytes intact');
    assert.equal(readFileSync(drive, 'utf8'), JSON.stringify(built[0]));
    assert.equal(statSync(drive).mode & 0o777, 0o644, 'readable by libvirt-qemu');
    assert.deepEqual(readdirSync(dir).sort(), [
      'console.log',
      'disk.config',
      'host',
      'images',
      'kernel',
    ]);
    assert.ok(xml().includes(CDROM.replace('DRIVE', drive)), xml());
    assert.equal(sent[0]?.vm_state, 'active');

    spec = { ...spec, task_state: 'deleting', task_id: 8 };
    await reconcilerWith(settings(false)).reconcile('instance', ID, 8);
    assert.ok(!existsSync(dir), 'the drive goes with the instance directory');
  });

  test('without config_drive nor force_config_drive: nothing asked, built or attached', async () => {
    spec = newSpec(false);
    await reconcilerWith(settings(false)).reconcile('instance', ID, 7);
    runner.verify();
    assert.deepEqual(asked, []);
    assert.ok(!existsSync(drive));
    assert.ok(xml().includes('<kernel>') && !xml().includes("device='cdrom'"), xml());
    assert.equal(sent[0]?.vm_state, 'active');
  });

  test('force_config_drive gives every instance its drive', async () => {
    spec = newSpec(false);
    runner.expect({ argv: mkisofs() });
    await reconcilerWith(settings(true)).reconcile('instance', ID, 7);
    runner.verify();
    assert.deepEqual(built, [expected(FILES)]);
    assert.ok(xml().includes(CDROM.replace('DRIVE', drive)));
  });

  test("a rebuild builds the drive again from the API's current files", async () => {
    spec = newSpec(true);
    runner.expect({ argv: mkisofs() }, { argv: mkisofs() });
    const r = reconcilerWith(settings(false));
    await r.reconcile('instance', ID, 7);
    answer = [{ path: 'openstack/latest/user_data', content_base64: b64('new') }];
    spec = { ...spec, vm_state: 'active', task_state: 'rebuilding', task_id: 9 };
    await r.reconcile('instance', ID, 9);
    runner.verify();
    assert.deepEqual(built[1], expected(answer));
    assert.equal(readFileSync(drive, 'utf8'), JSON.stringify(built[1]));
    assert.deepEqual(
      sent.map((s) => [s.task_done, s.vm_state]),
      [
        [7, 'active'],
        [9, 'active'],
      ],
    );
  });

  test("a rebuild's reset removes disk.config with the old image's files, and only in this host's directory", async () => {
    const paths = pathsOf(settings(false), ID);
    await createInstanceDir(paths, HOST, [KERNEL.id]);
    for (const f of [paths.kernel, paths.configDrive, paths.console]) writeFileSync(f, 'x');
    await assert.rejects(resetInstanceFiles(paths, 'cmp-2', []), ForeignDirectoryError);
    assert.ok(existsSync(paths.configDrive), 'a foreign reset changes nothing');
    await resetInstanceFiles(paths, HOST, [KERNEL.id]);
    assert.deepEqual(readdirSync(dir).sort(), ['console.log', 'host', 'images']);
  });

  for (const [what, files, fault] of [
    [
      'a .. path',
      [{ path: 'openstack/../../escape', content_base64: '' }],
      'config drive: refused file path "openstack/../../escape"',
    ],
    [
      'content that is not base64',
      [{ path: 'ec2/latest/user-data', content_base64: 'ab*=' }],
      'files[0].content_base64: must be base64',
    ],
    [
      'a file that is also a directory',
      [
        { path: 'openstack/latest', content_base64: '' },
        { path: 'openstack/latest/user_data', content_base64: '' },
      ],
      'config drive: openstack/latest is a file and a directory',
    ],
    [
      'no drive at all (null)',
      null,
      'config drive: the API has none for this instance on this host',
    ],
  ] as const)
    test(`${what} from the API: the spawn ends in ERROR saying so, nothing left`, async () => {
      spec = newSpec(true);
      answer = files === null ? null : (structuredClone(files) as unknown as ConfigDriveFile[]);
      await reconcilerWith(settings(false)).reconcile('instance', ID, 7);
      runner.verify();
      assert.deepEqual(built, [], 'xorriso never ran');
      assert.deepEqual(lv.calls, [], 'no domain defined');
      assert.deepEqual(readdirSync(instances), ['_base'], 'nothing left, nothing outside');
      assert.equal(sent[0]?.vm_state, 'error');
      assert.equal(sent[0]?.fault?.message, fault);
    });
});
