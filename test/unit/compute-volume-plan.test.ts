/**
 * agents/compute/volume-plan.ts: an instance's attachments against its domain's iSCSI
 * disks and this host's attachment secrets → steps (secrets before the instance's steps,
 * plugs and unplugs after), and the statuses a successful apply reports. Pure.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ComputeSettings } from '../../agents/compute/desired.ts';
import type { ObservedDomain } from '../../agents/compute/observe.ts';
import type { ComputeStep } from '../../agents/compute/steps.ts';
import { instanceTarget } from '../../agents/compute/target.ts';
import { planVolumes, volumeStatuses } from '../../agents/compute/volume-plan.ts';
import type { FoundVolumeDisk, ObservedVolumes } from '../../agents/compute/volume-xml.ts';
import type { InstanceSpec } from '../../contracts/instances.ts';
import type { InstanceVolume } from '../../contracts/volume.ts';
import { DomainState } from '../../host/libvirt/client.ts';
import { KERNEL, MACHINE, RAMDISK } from '../helpers/compute-fakes.ts';

const HOST = 'compute-1';
const ID = '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8';
const A1 = 'aaaaaaaa-1111-4111-8111-111111111111';
const V1 = 'bbbbbbbb-2222-4222-8222-222222222222';
const A2 = 'cccccccc-3333-4333-8333-333333333333';
const V2 = 'dddddddd-4444-4444-8444-444444444444';

const settings: ComputeSettings = {
  host: HOST,
  instancesPath: '/var/lib/kumo/instances',
  baseDir: '/var/lib/kumo/instances/_base',
  virtType: 'qemu',
  intBridge: 'br-int',
  vifPluggingTimeoutMs: 1000,
  shutdownTimeoutMs: 1000,
  stateDir: '/var/lib/kumo/compute',
  forceConfigDrive: false,
};

const entry = (att: string, vol: string, over: Partial<InstanceVolume> = {}): InstanceVolume => ({
  attachment_id: att,
  volume_id: vol,
  device: att === A1 ? 'vdb' : 'vdc',
  action: 'attach',
  connection: {
    driver_volume_type: 'iscsi',
    target_iqn: `iqn.2010-10.org.openstack:volume-${vol}`,
    target_portal: '192.0.2.10:3260',
    target_lun: 1,
    auth_method: 'CHAP',
    auth_username: 'Ab3dEfGh1jKlMn0pQrSt',
    auth_password: 'S3cretS3cretS3cr',
  },
  revision: 2,
  ...over,
});

function target(volumes: InstanceVolume[], over: Partial<InstanceSpec> = {}) {
  const spec: InstanceSpec = {
    id: ID,
    seq: 42,
    display_name: 'vm-1',
    host: HOST,
    vm_state: 'active',
    task_state: null,
    task_id: 7,
    flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 },
    image: MACHINE,
    kernel: KERNEL,
    ramdisk: RAMDISK,
    cmdline: 'console=ttyS0',
    ports: [],
    created_at: '2026-11-22T06:00:00Z',
    config_drive: false,
    volumes,
    ...over,
  };
  return instanceTarget({ spec, onStart: false, finished: null }, ID, settings);
}

const domain = (host = HOST): ObservedDomain => ({
  dom: { name: 'instance-0000002a', uuid: ID, id: 5 },
  state: DomainState.RUNNING,
  reason: 0,
  managedSave: false,
  meta: { uuid: ID, host, vcpus: 1, memoryMiB: 512, diskGiB: 1 },
});
const disk = (vol: string, secret: string | null): FoundVolumeDisk => ({
  volumeId: vol,
  device: 'vdb',
  secretUuid: secret,
  xml: `<disk type='network'><serial>${vol}</serial></disk>`,
});
const seen = (disks: FoundVolumeDisk[], secrets: string[]): ObservedVolumes => ({
  disks,
  secrets: new Set(secrets),
});
const kinds = (steps: ComputeStep[]) =>
  steps.map((s) => `${s.kind}:${'attachmentId' in s ? s.attachmentId : ''}`);

describe('volume plan', () => {
  test('attach on a running domain: the secret before, the hot-plug after', () => {
    const p = planVolumes(target([entry(A1, V1)]), domain(), seen([], []));
    assert.deepEqual(kinds(p.before), [`volume-secret:${A1}`]);
    assert.deepEqual(kinds(p.after), [`volume-attach:${A1}`]);
    const attach = p.after[0] as Extract<ComputeStep, { kind: 'volume-attach' }>;
    assert.equal(attach.uuid, ID);
    assert.equal(attach.volumeId, V1);
    assert.match(attach.xml, new RegExp(`<serial>${V1}</serial>`));
    assert.match(attach.xml, /<iqn name='iqn\.2010-10\.org\.kumo:compute-1'\/>/);
    assert.equal(attach.secret.value, 'S3cretS3cretS3cr');
  });

  test('converged: the disk and its secret are there, nothing to do', () => {
    const p = planVolumes(target([entry(A1, V1)]), domain(), seen([disk(V1, A1)], [A1]));
    assert.deepEqual(p, { before: [], after: [] });
  });

  test('the secret is there but the disk not (a crash between): only the hot-plug', () => {
    const p = planVolumes(target([entry(A1, V1)]), domain(), seen([], [A1]));
    assert.deepEqual([kinds(p.before), kinds(p.after)], [[], [`volume-attach:${A1}`]]);
  });

  test('detach: unplug (which removes the secret); already unplugged: only the secret', () => {
    const t = target([entry(A1, V1, { action: 'detach', connection: null })]);
    assert.deepEqual(kinds(planVolumes(t, domain(), seen([disk(V1, A1)], [A1])).after), [
      `volume-detach:${A1}`,
    ]);
    assert.deepEqual(kinds(planVolumes(t, domain(), seen([], [A1])).after), [
      `volume-secret-remove:${A1}`,
    ]);
    assert.deepEqual(planVolumes(t, domain(), seen([], [])), { before: [], after: [] });
  });

  test('a disk of ours whose attachment the spec no longer lists is unplugged, its secret removed', () => {
    const p = planVolumes(target([]), domain(), seen([disk(V2, A2), disk(V1, null)], [A2]));
    assert.deepEqual(kinds(p.after), ['volume-detach:null', `volume-secret-remove:${A2}`]);
    const d = p.after[0] as Extract<ComputeStep, { kind: 'volume-detach' }>;
    assert.equal(d.volumeId, V2, 'a disk naming no attachment secret is not ours: left alone');
  });

  test('deleting the instance: the secrets its disks named go (after the teardown)', () => {
    const t = target([], { task_state: 'deleting' });
    const p = planVolumes(t, domain(), seen([disk(V1, A1)], [A1]));
    assert.deepEqual([kinds(p.before), kinds(p.after)], [[], [`volume-secret-remove:${A1}`]]);
    assert.deepEqual(volumeStatuses(t, new Map()), []);
  });

  test("another host's domain: nothing planned", () => {
    const p = planVolumes(target([entry(A1, V1)]), domain('compute-2'), seen([], []));
    assert.deepEqual(p, { before: [], after: [] });
    assert.deepEqual(planVolumes(target([entry(A1, V1)]), domain(), undefined), p);
  });

  test('statuses: ACTIVE with the revision; ERROR for a failed step or an entry that is no disk', () => {
    const bad = entry(A2, V2, { device: 'vdc' });
    const t = target([
      entry(A1, V1),
      {
        ...bad,
        connection: {
          ...(bad.connection as NonNullable<InstanceVolume['connection']>),
          target_lun: 999,
        },
      },
    ]);
    const p = planVolumes(t, domain(), seen([], []));
    assert.deepEqual(kinds(p.after), [`volume-attach:${A1}`], 'the bad entry plans nothing');
    assert.deepEqual(volumeStatuses(t, new Map()), [
      { resource: 'attachment', id: A1, status: 'ACTIVE', revision: 2 },
      {
        resource: 'attachment',
        id: A2,
        status: 'ERROR',
        reason:
          'invalid volume attachment: connection.target_lun must be an integer in 0..255, got 999',
        revision: 2,
      },
    ]);
    const failed = volumeStatuses(t, new Map([[A1, 'iSCSI login failed']]));
    assert.deepEqual(failed[0], {
      resource: 'attachment',
      id: A1,
      status: 'ERROR',
      reason: 'iSCSI login failed',
      revision: 2,
    });
  });

  test('two entries on the same device: the second is ERROR, not plugged', () => {
    const t = target([entry(A1, V1), entry(A2, V2, { device: 'vdb' })]);
    assert.deepEqual(kinds(planVolumes(t, domain(), seen([], [])).after), [`volume-attach:${A1}`]);
    assert.match(t.volumeProblems.get(A2) ?? '', /vdb is attached twice/);
  });
});
