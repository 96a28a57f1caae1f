/**
 * The config drive in the compute agent's pure code: desiredInstance (asked for by the
 * spec or forced by [compute] force_config_drive; the cdrom in the XML only then) and
 * planInstance (the `config-drive` step comes after the directory and before the define,
 * only when the image is missing; a rebuild and its reset make it again; a boot of a
 * shut-off guest whose image went missing makes it again, one that has it does not).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ComputeSettings, desiredInstance } from '../../agents/compute/desired.ts';
import type { ObservedInstance } from '../../agents/compute/observe.ts';
import { planInstance } from '../../agents/compute/plan.ts';
import type { InstanceStep } from '../../agents/compute/steps.ts';
import { instanceTarget } from '../../agents/compute/target.ts';
import type { InstanceSpec } from '../../contracts/instances.ts';
import type { TaskState, VmState } from '../../contracts/servers.ts';
import { DomainState } from '../../host/libvirt/client.ts';
import { KERNEL, MACHINE, RAMDISK } from '../helpers/compute-fakes.ts';

const HOST = 'compute-1';
const ID = '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8';
const DIR = `/var/lib/kumo/instances/${ID}`;

const settings = (force = false): ComputeSettings => ({
  host: HOST,
  instancesPath: '/var/lib/kumo/instances',
  baseDir: '/var/lib/kumo/instances/_base',
  virtType: 'qemu',
  intBridge: 'br-int',
  vifPluggingTimeoutMs: 300_000,
  shutdownTimeoutMs: 60_000,
  stateDir: '/var/lib/kumo/compute',
  forceConfigDrive: force,
});

const spec = (configDrive: boolean, vm: VmState, task: TaskState | null): InstanceSpec => ({
  id: ID,
  seq: 42,
  display_name: 'vm-1',
  host: HOST,
  vm_state: vm,
  task_state: task,
  task_id: 7,
  flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 },
  image: MACHINE,
  kernel: KERNEL,
  ramdisk: RAMDISK,
  cmdline: null,
  ports: [],
  created_at: '2026-11-22T06:00:00Z',
  config_drive: configDrive,
  volumes: [],
});

const files = (configDrive: boolean) => ({
  dir: true,
  owner: HOST,
  staging: false,
  disk: true,
  kernel: true,
  ramdisk: true,
  configDrive,
});
const NO_FILES = { ...files(false), dir: false, owner: null, disk: false, kernel: false };
const domain = (state: number) => ({
  dom: { name: 'instance-0000002a', uuid: ID, id: state === DomainState.SHUTOFF ? -1 : 5 },
  state,
  reason: 0,
  managedSave: false,
  meta: { uuid: ID, host: HOST, vcpus: 1, memoryMiB: 512, diskGiB: 1 },
});

function plan(s: InstanceSpec, o: ObservedInstance, force = false): InstanceStep[] {
  const t = instanceTarget({ spec: s, onStart: false, finished: null }, ID, settings(force));
  return planInstance(t, o);
}
const kinds = (steps: InstanceStep[]) =>
  steps.filter((s) => s.kind !== 'report').map((s) => s.kind);

describe('config drive: desired and plan', () => {
  test('asked for, or forced by the host: configDrive and the cdrom; otherwise neither', () => {
    const cases: [boolean, boolean, boolean][] = [
      [true, false, true],
      [false, true, true],
      [true, true, true],
      [false, false, false],
    ];
    for (const [asked, force, want] of cases) {
      const d = desiredInstance(spec(asked, 'building', 'spawning'), settings(force));
      assert.equal(d.configDrive, want, `asked ${asked}, forced ${force}`);
      assert.equal(d.paths.configDrive, `${DIR}/disk.config`);
      assert.equal(d.xml.includes(`<source file='${DIR}/disk.config'/>`), want);
      assert.equal(d.xml.includes("device='cdrom'"), want);
    }
  });

  test('spawn: the config-drive step after the directory and the files, before define', () => {
    const steps = plan(spec(true, 'building', 'spawning'), {
      domain: null,
      files: NO_FILES,
      vifs: null,
    });
    assert.deepEqual(kinds(steps), [
      ...['image-fetch', 'instance-dir', 'disk', 'copy', 'copy', 'config-drive', 'touch'],
      ...['define', 'start-paused', 'plug-vifs', 'wait-ports', 'resume'],
    ]);
    const step = steps.find((x) => x.kind === 'config-drive');
    assert.ok(step?.kind === 'config-drive');
    assert.deepEqual(
      { id: step.instanceId, host: step.host, path: step.paths.configDrive },
      { id: ID, host: HOST, path: `${DIR}/disk.config` },
    );
    const forced = plan(
      spec(false, 'building', 'spawning'),
      {
        domain: null,
        files: NO_FILES,
        vifs: null,
      },
      true,
    );
    assert.ok(kinds(forced).includes('config-drive'), 'forced');
    const none = plan(spec(false, 'building', 'spawning'), {
      domain: null,
      files: NO_FILES,
      vifs: null,
    });
    assert.ok(!kinds(none).includes('config-drive'), 'neither asked nor forced');
  });

  test('a start makes the image again only when it is missing', () => {
    const off = domain(DomainState.SHUTOFF);
    const missing = plan(spec(true, 'stopped', 'powering-on'), {
      domain: off,
      files: files(false),
      vifs: null,
    });
    assert.ok(kinds(missing).includes('config-drive'), kinds(missing).join(' '));
    assert.ok(kinds(missing).indexOf('config-drive') < kinds(missing).indexOf('define'));
    const there = plan(spec(true, 'stopped', 'powering-on'), {
      domain: off,
      files: files(true),
      vifs: null,
    });
    assert.deepEqual(kinds(there), ['define', 'start-paused', 'plug-vifs', 'resume']);
  });

  test('a rebuild resets the files (disk.config with them) and makes the image again', () => {
    const steps = plan(spec(true, 'active', 'rebuilding'), {
      domain: domain(DomainState.RUNNING),
      files: files(true),
      vifs: null,
    });
    const k = kinds(steps);
    assert.ok(k.indexOf('reset-files') < k.indexOf('config-drive'), k.join(' '));
    assert.ok(k.indexOf('config-drive') < k.indexOf('define'), k.join(' '));
  });
});
