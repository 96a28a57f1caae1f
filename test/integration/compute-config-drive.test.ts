/**
 * The compute agent's config drive with the real tools: the `instance` kind on
 * core/reconciler.ts with the real command runner (xorriso), the real libvirtd
 * (qemu:///system, a TCG guest: the test guest's kernel and initramfs, no NIC) and real
 * files; the broker is the test playing the API (get_instance, get_config_drive). The
 * guest has no NIC, so OVSDB, only read for its (no) ports, is the fake of the unit tests.
 *
 * Proves: a spawn with `config_drive` builds `<instance dir>/disk.config`, an ISO 9660
 * image labelled `config-2` holding exactly the API's files (read back with osirrox, bytes
 * intact), readable by libvirt's qemu user; the domain libvirt holds carries it as a
 * read-only IDE cdrom `hdd`; qemu opens it (the guest starts and boots to its marker);
 * a delete removes the domain, the image and the directory.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ComputeSettings } from '../../agents/compute/desired.ts';
import { instanceName } from '../../agents/compute/domain.ts';
import { createInstanceKind } from '../../agents/compute/instance.ts';
import { getConfigDrive } from '../../agents/compute/rpc.ts';
import type { InstanceSpec, UpdateInstanceArgs } from '../../contracts/instances.ts';
import type { ConfigDriveFile } from '../../contracts/metadata.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler, type Reconciler } from '../../core/reconciler.ts';
import { createStatusReporter } from '../../core/status.ts';
import { createLibvirtClient, type LibvirtClient } from '../../host/libvirt/client.ts';
import { isoVolumeId, listIsoFiles, readIsoFile } from '../../host/xorriso/xorriso.ts';
import { fakeOvsdb, KERNEL, RAMDISK } from '../helpers/compute-fakes.ts';
import { tempDir, waitFor } from '../helpers/env.ts';
import { buildTestGuest, GUEST_UP_MARKER } from '../helpers/guest.ts';

const HOST = 'cdrive-host';
const ID = '5c0e9f3a-7b1d-4e2f-9a8b-c7d6e5f4a3b2';
const FILES: ConfigDriveFile[] = [
  { path: 'openstack/latest/meta_data.json', content: `{"uuid": "${ID}", "name": "vm"}` },
  { path: 'openstack/latest/user_data', content: '#!/bin/sh\necho hello\n' },
  { path: 'ec2/2009-04-04/meta-data.json', content: '{"instance-id": "i-0000002a"}' },
].map((f) => ({ path: f.path, content_base64: Buffer.from(f.content).toString('base64') }));

describe('compute config drive on libvirt (qemu:///system) with xorriso', {
  timeout: 120_000,
}, () => {
  const tmp = tempDir('kumo-cdrive-');
  const runner = createCommandRunner();
  const instances = join(tmp.path, 'instances');
  const dir = join(instances, ID);
  const drive = join(dir, 'disk.config');
  const seq = randomInt(0x10000000, 0xffffffff);
  const sent: UpdateInstanceArgs[] = [];
  let lv: LibvirtClient;
  let reconciler: Reconciler;
  let spec: InstanceSpec;
  /** The guest has no NIC: OVSDB is only read (for its ports, none), so a fake serves. */
  const ovs = fakeOvsdb();

  before(async () => {
    chmodSync(tmp.path, 0o755); // qemu (libvirt-qemu) reads the instance files below
    const guest = await buildTestGuest();
    const settings: ComputeSettings = {
      host: HOST,
      instancesPath: instances,
      baseDir: join(instances, '_base'),
      virtType: 'qemu',
      intBridge: 'br-int',
      vifPluggingTimeoutMs: 1000,
      shutdownTimeoutMs: 0,
      stateDir: join(tmp.path, 'compute'),
      forceConfigDrive: false,
    };
    mkdirSync(settings.baseDir, { recursive: true, mode: 0o755 });
    copyFileSync(guest.kernel, join(settings.baseDir, KERNEL.id));
    copyFileSync(guest.initrd, join(settings.baseDir, RAMDISK.id));
    spec = {
      id: ID,
      seq,
      display_name: 'cdrive-vm',
      host: HOST,
      vm_state: 'building',
      task_state: 'spawning',
      task_id: 1,
      flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 256, disk: 0 },
      image: KERNEL,
      kernel: null,
      ramdisk: RAMDISK,
      cmdline: `${guest.cmdline} kumo.nodhcp`,
      ports: [],
      created_at: '2026-12-05T07:00:00Z',
      config_drive: true,
      volumes: [],
    };
    lv = await createLibvirtClient({ uri: 'qemu:///system', timeoutMs: 120_000 });
    const broker = {
      call: async (_topic: string, method: string) =>
        method === 'get_config_drive' ? { files: FILES } : { instance: structuredClone(spec) },
      cast: async () => {},
    };
    const kind = createInstanceKind({
      libvirt: lv,
      runner,
      log: silentLogger(),
      broker,
      host: HOST,
      settings,
      ovsdb: async () => ovs.client,
      images: () => ({ ensure: async (i) => join(settings.baseDir, i.id), prune: async () => [] }),
      waitPorts: async () => {},
      configDrive: (id) => getConfigDrive({ broker, host: HOST }, id),
      reporter: createStatusReporter<UpdateInstanceArgs>({
        send: async (changes) => void sent.push(...changes.map((c) => c.value)),
      }),
      ledger: new Map(),
      onStart: new Set(),
      applied: () => {},
    });
    reconciler = createReconciler({ log: silentLogger(), kinds: { instance: kind } });
  });

  after(async () => {
    await runner.run({
      argv: ['virsh', '-c', 'qemu:///system', 'destroy', instanceName(seq)],
      okExitCodes: [1],
    });
    await runner.run({
      argv: ['virsh', '-c', 'qemu:///system', 'undefine', instanceName(seq)],
      okExitCodes: [1],
    });
    await lv?.close();
    tmp.cleanup();
  });

  test('spawn: disk.config holds the files, the domain has the read-only cdrom, the guest boots', async () => {
    await reconciler.reconcile('instance', ID, 1);
    assert.deepEqual(
      sent.map((r) => [r.task_done, r.vm_state, r.fault]),
      [[1, 'active', undefined]],
    );
    assert.equal(await isoVolumeId(runner, drive), 'config-2');
    assert.deepEqual(await listIsoFiles(runner, drive), FILES.map((f) => `/${f.path}`).sort());
    for (const f of FILES)
      assert.equal(
        (await readIsoFile(runner, drive, `/${f.path}`)).toString('base64'),
        f.content_base64,
      );
    assert.equal(statSync(drive).mode & 0o777, 0o644);
    assert.ok(!existsSync(`${drive}.part`) && !existsSync(join(dir, '.config-drive.part')));

    const xml = await lv.getXmlDesc(await lv.lookupByUuid(ID));
    const cdrom = /<disk type='file' device='cdrom'>[\s\S]*?<\/disk>/.exec(xml)?.[0] ?? '';
    assert.ok(cdrom.includes(`<source file='${drive}'`), xml);
    assert.match(cdrom, /<target dev='hdd' bus='ide'\/>/);
    assert.match(cdrom, /<readonly\/>/);
    assert.match(cdrom, /<driver name='qemu' type='raw'\/>/);
    const consoleLog = join(dir, 'console.log');
    await waitFor(
      'the guest to boot with its config drive attached',
      () => readFileSync(consoleLog, 'utf8').includes(GUEST_UP_MARKER),
      60_000,
      200,
    );
  });

  test('delete: the domain, the image and the directory are gone', async () => {
    spec = { ...spec, vm_state: 'active', task_state: 'deleting', task_id: 2 };
    await reconciler.reconcile('instance', ID, 2);
    assert.equal(sent.at(-1)?.deleted, true);
    await assert.rejects(lv.lookupByUuid(ID));
    assert.ok(!existsSync(dir));
    assert.deepEqual(
      ovs.transactions.flat().filter((o) => o.op !== 'select'),
      [],
      'OVSDB was only read',
    );
  });
});
