/**
 * Volume attachments of the compute agent with the real pieces: the `instance` kind on
 * core/reconciler.ts against the real libvirtd (qemu:///system, a TCG guest: the test
 * guest's kernel and initramfs, no NIC) and a real tgtd this test starts on loopback (a
 * sparse file as LUN 1 of target `iqn.2010-10.org.openstack:volume-<id>`, one CHAP
 * account, an ACL admitting only this host's initiator name). The broker is the test
 * playing the API (get_instance answers the spec it holds); attachment statuses are
 * what the agent's report_status reporter would send. The guest has no NIC, so OVSDB,
 * only read for its (no) ports, is the fake of the unit tests. The guest's kernel prints
 * its disks (`loglevel=6` on its command line): `[vdX] 131072 512-byte logical blocks`
 * when the 64 MiB LUN comes (the guest has no root disk, so it names the volume `vda`:
 * libvirt's target `vdb` is only a hint to a guest, as Nova documents).
 *
 * Proves: attach to the running guest defines the private CHAP secret (uuid = attachment
 * id, usage `kumo-attachment-<id>`), hot-plugs the iSCSI disk live and in the config
 * (serial = volume id), the guest's kernel sees the 64 MiB disk, tgtd shows the session of this
 * host's initiator, the attachment is reported ACTIVE with its revision; a hard reboot
 * (the domain redefined from the spec) brings the disk back, and so does a rebuild (the
 * instance's files made again, the domain redefined: disk live and in the config, the
 * secret kept, the guest sees it, the session back); detach unplugs it (live and
 * config), removes the secret, tgtd shows no session, ACTIVE with the new revision; a
 * wrong CHAP secret is reported ERROR with the reason and leaves no disk and no secret;
 * deleting the instance removes its attachment's secret; a resync's prune removes an
 * orphan attachment secret and keeps a known one.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ComputeSettings } from '../../agents/compute/desired.ts';
import { instanceName } from '../../agents/compute/domain.ts';
import { createInstanceKind } from '../../agents/compute/instance.ts';
import { renderSecretXml } from '../../agents/compute/volume-xml.ts';
import { attachmentSecrets, pruneSecrets } from '../../agents/compute/volumes.ts';
import type { InstanceSpec, UpdateInstanceArgs } from '../../contracts/instances.ts';
import type { ResourceStatus } from '../../contracts/status.ts';
import { type InstanceVolume, TARGET_LUN, targetIqn } from '../../contracts/volume.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { createReconciler, type Reconciler } from '../../core/reconciler.ts';
import { createStatusReporter } from '../../core/status.ts';
import {
  createLibvirtClient,
  DomainXmlFlags,
  type LibvirtClient,
} from '../../host/libvirt/client.ts';
import { freePort } from '../helpers/cluster.ts';
import { fakeOvsdb, KERNEL, RAMDISK } from '../helpers/compute-fakes.ts';
import { tempDir, waitFor } from '../helpers/env.ts';
import { buildTestGuest, GUEST_UP_MARKER } from '../helpers/guest.ts';

const HOST = 'vol-host';
const INITIATOR = 'iqn.2010-10.org.kumo:vol-host';
const ID = randomUUID();
const VOLUME = randomUUID();
const CHAP = { user: 'Ab3dEfGh1jKlMn0pQrSt', secret: 'S3cretS3cretS3cr' };

describe('compute volume attachments: libvirt (qemu:///system) + a real tgtd', {
  timeout: 300_000,
}, () => {
  const tmp = tempDir('kumo-cvol-');
  const runner = createCommandRunner();
  const seq = randomInt(0x10000000, 0xffffffff);
  const sent: UpdateInstanceArgs[] = [];
  const statuses: ResourceStatus[] = [];
  const ovs = fakeOvsdb();
  let lv: LibvirtClient;
  let reconciler: Reconciler;
  let spec: InstanceSpec;
  let tgtd: ChildProcess | undefined;
  let portal = '';
  let ctl = 0;
  let consoleLog = '';

  const tgtadm = async (...args: string[]) =>
    (await runner.run({ argv: ['tgtadm', '-C', String(ctl), '--lld', 'iscsi', ...args] })).stdout;
  const sessions = async () =>
    (await tgtadm('--op', 'show', '--mode', 'target')).match(/Initiator: \S+/g) ?? [];
  const domXml = async (flags = 0) => lv.getXmlDesc(await lv.lookupByUuid(ID), flags);
  const secretIds = async () => (await attachmentSecrets(lv)).map((s) => s.uuid);
  const reconcile = () => reconciler.reconcile('instance', ID);
  const conn = (v: InstanceVolume) => v.connection as NonNullable<InstanceVolume['connection']>;
  const lastStatus = (id: string) => statuses.filter((s) => s.id === id).at(-1);

  const volume = (attachmentId: string, over: Partial<InstanceVolume> = {}): InstanceVolume => ({
    attachment_id: attachmentId,
    volume_id: VOLUME,
    device: 'vdb',
    action: 'attach',
    connection: {
      driver_volume_type: 'iscsi',
      target_iqn: targetIqn(VOLUME),
      target_portal: portal,
      target_lun: TARGET_LUN,
      auth_method: 'CHAP',
      auth_username: CHAP.user,
      auth_password: CHAP.secret,
    },
    revision: 1,
    ...over,
  });

  async function startTgtd() {
    do
      ctl = randomInt(2000, 30000); // tgtd takes -C up to 32767
    while (existsSync(`/var/run/tgtd/socket.${ctl}`));
    const port = await freePort();
    portal = `127.0.0.1:${port}`;
    tgtd = spawn('tgtd', ['-f', '-C', String(ctl), '--iscsi', `portal=${portal}`], {
      stdio: 'ignore',
    });
    await waitFor(
      'tgtd to answer',
      () =>
        tgtadm('--op', 'show', '--mode', 'sys').then(
          () => true,
          () => undefined,
        ),
      15_000,
      100,
    );
    const lun = join(tmp.path, 'volume.img');
    await runner.run({ argv: ['truncate', '-s', '64M', lun] });
    await tgtadm('--op', 'new', '--mode', 'target', '--tid', '1', '-T', targetIqn(VOLUME));
    await tgtadm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', lun);
    await tgtadm(
      '--op',
      'new',
      '--mode',
      'account',
      '--user',
      CHAP.user,
      '--password',
      CHAP.secret,
    );
    await tgtadm('--op', 'bind', '--mode', 'account', '--tid', '1', '--user', CHAP.user);
    await tgtadm('--op', 'bind', '--mode', 'target', '--tid', '1', '--initiator-name', INITIATOR);
  }

  before(async () => {
    chmodSync(tmp.path, 0o755); // qemu (libvirt-qemu) reads the instance files below
    const guest = await buildTestGuest();
    await startTgtd();
    const instances = join(tmp.path, 'instances');
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
      iscsiInitiator: INITIATOR,
    };
    consoleLog = join(instances, ID, 'console.log');
    mkdirSync(settings.baseDir, { recursive: true, mode: 0o755 });
    copyFileSync(guest.kernel, join(settings.baseDir, KERNEL.id));
    copyFileSync(guest.initrd, join(settings.baseDir, RAMDISK.id));
    spec = {
      id: ID,
      seq,
      display_name: 'vol-vm',
      host: HOST,
      vm_state: 'building',
      task_state: 'spawning',
      task_id: 1,
      flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 256, disk: 0 },
      image: KERNEL,
      kernel: null,
      ramdisk: RAMDISK,
      cmdline: `${guest.cmdline} loglevel=6 kumo.nodhcp`,
      ports: [],
      created_at: '2026-12-05T07:00:00Z',
      config_drive: false,
      volumes: [],
    };
    lv = await createLibvirtClient({ uri: 'qemu:///system', timeoutMs: 120_000 });
    const broker = {
      call: async () => ({ instance: spec === null ? null : structuredClone(spec) }),
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
      configDrive: async () => null,
      reporter: createStatusReporter<UpdateInstanceArgs>({
        send: async (changes) => void sent.push(...changes.map((c) => c.value)),
      }),
      ledger: new Map(),
      onStart: new Set(),
      applied: () => {},
      attachments: createStatusReporter<ResourceStatus>({
        send: async (changes) => void statuses.push(...changes.map((c) => c.value)),
      }),
      volumeIds: new Map(),
    });
    reconciler = createReconciler({ log: silentLogger(), kinds: { instance: kind } });
    await reconcile();
    assert.deepEqual(
      sent.map((r) => [r.task_done, r.vm_state, r.fault]),
      [[1, 'active', undefined]],
    );
    spec = { ...spec, vm_state: 'active', task_state: null };
    await waitFor(
      'the guest to boot',
      () => readFileSync(consoleLog, 'utf8').includes(GUEST_UP_MARKER),
      90_000,
      200,
    );
  });

  after(async () => {
    for (const cmd of ['destroy', 'undefine'])
      await runner.run({
        argv: ['virsh', '-c', 'qemu:///system', cmd, instanceName(seq)],
        okExitCodes: [1],
      });
    for (const id of made)
      await lv
        .secretLookupByUuid(id)
        .then((x) => lv.secretUndefine(x))
        .catch(() => {});
    await lv?.close();
    tgtd?.kill('SIGKILL'); // tgtd ignores SIGTERM
    tmp.cleanup();
  });

  /** Attachment ids this test made (only these are cleaned up). */
  const made = new Set<string>();
  const consoleTail = () => readFileSync(consoleLog, 'utf8').slice(-3000);
  const diskCount = () =>
    (readFileSync(consoleLog, 'utf8').match(/\[vd[a-z]+\] 131072 512-byte logical blocks/g) ?? [])
      .length;

  test('attach: secret, live + config disk, the guest sees the disk, tgtd has the session, ACTIVE', async () => {
    const att = randomUUID();
    made.add(att);
    spec = { ...spec, volumes: [volume(att)] };
    await reconcile();
    assert.deepEqual(lastStatus(att), {
      resource: 'attachment',
      id: att,
      status: 'ACTIVE',
      revision: 1,
    });
    const secret = await lv.secretLookupByUuid(att);
    assert.equal(secret.usageId, `kumo-attachment-${att}`);
    for (const xml of [await domXml(), await domXml(DomainXmlFlags.INACTIVE)]) {
      assert.ok(xml.includes(`<serial>${VOLUME}</serial>`), xml);
      assert.match(xml, new RegExp(`<source protocol='iscsi' name='${targetIqn(VOLUME)}/1'`));
      assert.match(xml, new RegExp(`<secret type='iscsi' uuid='${att}'/>`));
    }
    await waitFor(
      'the guest kernel to see the 64 MiB disk',
      () => diskCount() === 1 || undefined,
      30_000,
      200,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; console:\n${consoleTail()}`);
    });
    assert.deepEqual(await sessions(), [`Initiator: ${INITIATOR}`]);
    await reconcile();
    assert.equal(statuses.filter((s) => s.id === att).length, 1, 'a settled attach reports once');
  });

  test('a hard reboot redefines the domain from the spec: the disk is back', async () => {
    const before = readFileSync(consoleLog, 'utf8');
    /** What the guest printed since the reboot (libvirt may truncate the file, or append). */
    const since = () => {
      const now = readFileSync(consoleLog, 'utf8');
      return now.startsWith(before) ? now.slice(before.length) : now;
    };
    spec = { ...spec, task_state: 'rebooting_hard', task_id: spec.task_id + 1 };
    await reconcile();
    assert.equal(sent.at(-1)?.task_done, spec.task_id);
    spec = { ...spec, task_state: null };
    assert.ok((await domXml()).includes(`<serial>${VOLUME}</serial>`));
    await waitFor(
      'the rebooted guest kernel to see the disk',
      () => /\[vd[a-z]+\] 131072 512-byte logical blocks/.test(since()) || undefined,
      90_000,
      200,
    );
    await waitFor(
      'the session back',
      async () => (await sessions()).length === 1 || undefined,
      30_000,
      200,
    );
  });

  test('a rebuild (files made again, the domain redefined) puts the attached disk back', async () => {
    const before = readFileSync(consoleLog, 'utf8');
    const since = () => {
      const now = readFileSync(consoleLog, 'utf8');
      return now.startsWith(before) ? now.slice(before.length) : now;
    };
    const att = spec.volumes[0]?.attachment_id as string;
    spec = { ...spec, task_state: 'rebuilding', task_id: spec.task_id + 1 };
    await reconcile();
    const done = sent.at(-1);
    assert.deepEqual(
      [done?.task_done, done?.vm_state, done?.fault],
      [spec.task_id, 'active', undefined],
    );
    spec = { ...spec, task_state: null };
    for (const xml of [await domXml(), await domXml(DomainXmlFlags.INACTIVE)]) {
      assert.ok(xml.includes(`<serial>${VOLUME}</serial>`), xml);
      assert.match(xml, new RegExp(`<secret type='iscsi' uuid='${att}'/>`));
    }
    assert.equal((await lv.secretLookupByUuid(att)).usageId, `kumo-attachment-${att}`);
    await waitFor(
      'the rebuilt guest kernel to see the disk',
      () => /\[vd[a-z]+\] 131072 512-byte logical blocks/.test(since()) || undefined,
      90_000,
      200,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; console:\n${consoleTail()}`);
    });
    await waitFor(
      'the session back',
      async () => (await sessions()).length === 1 || undefined,
      30_000,
      200,
    );
    assert.equal(lastStatus(att)?.status, 'ACTIVE');
  });

  test('detach: unplugged live and in the config, secret gone, no session, ACTIVE', async () => {
    const att = spec.volumes[0]?.attachment_id as string;
    spec = { ...spec, volumes: [volume(att, { action: 'detach', connection: null, revision: 2 })] };
    await reconcile();
    assert.deepEqual(lastStatus(att), {
      resource: 'attachment',
      id: att,
      status: 'ACTIVE',
      revision: 2,
    });
    for (const xml of [await domXml(), await domXml(DomainXmlFlags.INACTIVE)])
      assert.ok(!xml.includes(VOLUME), xml);
    assert.ok(!(await secretIds()).includes(att));
    await waitFor(
      'tgtd to show no session',
      async () => (await sessions()).length === 0 || undefined,
      30_000,
      200,
    );
    made.delete(att);
  });

  test('a wrong CHAP secret: ERROR with the reason, no disk, no secret', async () => {
    const att = randomUUID();
    made.add(att);
    const bad = volume(att);
    spec = {
      ...spec,
      volumes: [{ ...bad, connection: { ...conn(bad), auth_password: 'WrongWrongWrong0' } }],
    };
    await reconcile();
    const st = lastStatus(att);
    assert.equal(st?.status, 'ERROR');
    assert.equal(st?.revision, 1);
    assert.ok(st?.reason && st.reason.length > 0, JSON.stringify(st));
    assert.ok(!(await domXml()).includes(VOLUME));
    assert.ok(!(await domXml(DomainXmlFlags.INACTIVE)).includes(VOLUME));
    assert.ok(!(await secretIds()).includes(att));
    assert.deepEqual(await sessions(), []);
    made.delete(att);
  });

  test("a resync's prune removes this host's orphan secret, keeps a known one and another host's", async () => {
    const orphan = randomUUID();
    const known = randomUUID();
    const otherHosts = randomUUID();
    const owners: [string, string][] = [
      [orphan, INITIATOR],
      [known, INITIATOR],
      [otherHosts, 'iqn.2010-10.org.kumo:another-host'],
    ];
    for (const [id, owner] of owners) {
      made.add(id);
      await lv.secretDefineXml(renderSecretXml(id, owner));
    }
    const removed = await pruneSecrets(
      lv,
      INITIATOR,
      async () => [await domXml()],
      () => new Set([known]),
    );
    assert.deepEqual(removed, [orphan]);
    const left = await secretIds();
    assert.ok(!left.includes(orphan) && left.includes(known) && left.includes(otherHosts));
    for (const id of [known, otherHosts]) {
      await lv.secretUndefine(await lv.secretLookupByUuid(id));
      made.delete(id);
    }
    made.delete(orphan);
  });

  test('delete: the domain and its attachment secret are gone, the volume data stays on tgtd', async () => {
    const att = randomUUID();
    made.add(att);
    spec = { ...spec, volumes: [volume(att)] };
    await reconcile();
    assert.equal(lastStatus(att)?.status, 'ACTIVE');
    spec = { ...spec, task_state: 'deleting', task_id: spec.task_id + 1, volumes: [] };
    await reconcile();
    assert.equal(sent.at(-1)?.deleted, true);
    await assert.rejects(lv.lookupByUuid(ID));
    assert.ok(!(await secretIds()).includes(att));
    await waitFor(
      'tgtd to show no session',
      async () => (await sessions()).length === 0 || undefined,
      30_000,
      200,
    );
    assert.match(await tgtadm('--op', 'show', '--mode', 'target'), /LUN: 1/);
    made.delete(att);
  });
});
