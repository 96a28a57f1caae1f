/**
 * The compute agent's own logic: intentOf (vm_state, task_state → intent), desiredInstance
 * (root disk, kernel boot, VIF mode in the domain XML), planInstance for every intent
 * against the domain states that matter (none, running, paused, shut off, managed-saved,
 * another host's) and the instance directory's owner (ours, another host's, unmarked),
 * powerStateOf, parseKumoMetadata on XML as libvirt returns it, forgetFailures, and, on
 * a temporary directory, the instance directory's ownership marker, the host boot record,
 * the image cache's age-bounded prune and the console tail's line count and byte window.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hostBoot } from '../../agents/compute/boot.ts';
import { ConsoleLogMissingError, consoleTail, novaTail } from '../../agents/compute/console.ts';
import {
  type ComputeSettings,
  desiredInstance,
  InstanceSpecError,
  pathsOf,
} from '../../agents/compute/desired.ts';
import { createImageCache } from '../../agents/compute/image-cache.ts';
import { forgetFailures, type TaskLedger } from '../../agents/compute/instance.ts';
import {
  createInstanceDir,
  ForeignDirectoryError,
  ownInstanceIds,
  readOwner,
  referencedImages,
  removeInstanceDir,
} from '../../agents/compute/instance-dir.ts';
import {
  type ObservedDomain,
  type ObservedInstance,
  parseKumoMetadata,
} from '../../agents/compute/observe.ts';
import { planInstance, powerStateOf } from '../../agents/compute/plan.ts';
import type { InstanceStep } from '../../agents/compute/steps.ts';
import { type Intent, instanceTarget, intentOf } from '../../agents/compute/target.ts';
import type { InstanceSpec } from '../../contracts/instances.ts';
import type { TaskState, VmState } from '../../contracts/servers.ts';
import type { CommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { DomainState } from '../../host/libvirt/client.ts';
import { image, KERNEL, MACHINE, RAMDISK } from '../helpers/compute-fakes.ts';

const HOST = 'compute-1';
const ID = '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8';
const PORT = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const TAP = 'tap0a1b2c3d-4e';

const settings = (netns?: string): ComputeSettings => ({
  host: HOST,
  instancesPath: '/var/lib/kumo/instances',
  baseDir: '/var/lib/kumo/instances/_base',
  virtType: 'qemu',
  intBridge: 'br-int',
  ...(netns ? { vswitchdNetns: netns } : {}),
  vifPluggingTimeoutMs: 300_000,
  shutdownTimeoutMs: 60_000,
  stateDir: '/var/lib/kumo/compute',
  forceConfigDrive: false,
});

function spec(over: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
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
    ports: [
      {
        id: PORT,
        mac_address: 'FA:16:3E:00:00:01',
        network_id: '44444444-4444-4444-8444-444444444444',
        status: 'ACTIVE',
        mtu: 1450,
        fixed_ips: ['10.0.0.5'],
      },
    ],
    created_at: '2026-11-22T06:00:00Z',
    config_drive: false,
    volumes: [],
    ...over,
  };
}

const meta = (host: string | null) => ({ uuid: ID, host, vcpus: 1, memoryMiB: 512, diskGiB: 1 });
const dom = (state: number, o: Partial<ObservedDomain> = {}): ObservedDomain => ({
  dom: { name: 'instance-0000002a', uuid: ID, id: state === DomainState.SHUTOFF ? -1 : 5 },
  state,
  reason: 0,
  managedSave: false,
  meta: meta(HOST),
  ...o,
});
const RUNNING = dom(DomainState.RUNNING);
const PAUSED = dom(DomainState.PAUSED);
const SHUTOFF = dom(DomainState.SHUTOFF);
const SAVED = dom(DomainState.SHUTOFF, { managedSave: true });
const FOREIGN = dom(DomainState.RUNNING, { meta: meta('compute-2') });

const FILES = {
  dir: true,
  owner: HOST,
  staging: false,
  disk: true,
  kernel: true,
  ramdisk: true,
  configDrive: false,
};
const NO_FILES = {
  dir: false,
  owner: null,
  staging: false,
  disk: false,
  kernel: false,
  ramdisk: false,
  configDrive: false,
};
/** The directory of another host (shared instances_path), or one no Kumo agent made. */
const FOREIGN_FILES = { ...FILES, owner: 'compute-2' };
const UNMARKED_FILES = { ...FILES, owner: null };
const ROW = {
  uuid: 'p',
  name: TAP,
  bridge: 'br-int',
  ifaceId: PORT,
  attachedMac: 'fa:16:3e:00:00:01',
  vmUuid: ID,
};
const PLUGGED = { vifs: { ports: [ROW], taps: {} } };

function observed(domain: ObservedDomain | null, o: Partial<ObservedInstance> = {}) {
  return { domain, files: domain ? FILES : NO_FILES, vifs: null, ...o };
}

const TASK: Record<Intent, TaskState | null> = {
  absent: 'deleting',
  spawn: 'spawning',
  'reboot-soft': 'rebooting',
  'reboot-hard': 'rebooting_hard',
  stop: 'powering-off',
  start: 'powering-on',
  pause: 'pausing',
  unpause: 'unpausing',
  suspend: 'suspending',
  resume: 'resuming',
  rebuild: 'rebuilding',
  'soft-delete': 'soft-deleting',
  restore: 'restoring',
  settled: null,
};

/** The target of `intent` (vmState null: the API does not know the instance). */
function target(
  intent: Intent,
  extra: {
    netns?: string;
    onStart?: boolean;
    vmState?: VmState | null;
    over?: Partial<InstanceSpec>;
  } = {},
) {
  const vmState = extra.vmState === undefined ? 'active' : extra.vmState;
  const s =
    vmState === null ? null : spec({ vm_state: vmState, task_state: TASK[intent], ...extra.over });
  const fetched = { spec: s, onStart: extra.onStart ?? false, finished: null };
  return instanceTarget(fetched, ID, settings(extra.netns));
}

function plan(intent: Intent, o: ObservedInstance, extra: Parameters<typeof target>[1] = {}) {
  return planInstance(target(intent, extra), o);
}

/** Step kinds (the report step apart), `stop:graceful` for a graceful stop. */
const kinds = (steps: InstanceStep[]) =>
  steps
    .filter((s) => s.kind !== 'report')
    .map((s) => (s.kind === 'stop' ? `stop${s.graceful ? ':graceful' : ''}` : s.kind));

/** The report step's report; undefined without one. */
const reportOf = (steps: InstanceStep[]) => {
  const r = steps.find((s) => s.kind === 'report');
  return r?.kind === 'report' ? r : undefined;
};

const MAKE = ['image-fetch', 'instance-dir', 'disk', 'copy', 'copy', 'touch'];
const BOOT = ['define', 'start-paused', 'plug-vifs', 'resume'];
const SPAWN = [...MAKE, 'define', 'start-paused', 'plug-vifs', 'wait-ports', 'resume'];

describe('intentOf', () => {
  test('tasks map to Nova actions; no task is settled; deleting wins', () => {
    const cases: [VmState, TaskState | null, Intent][] = [
      ['building', 'spawning', 'spawn'],
      ['building', null, 'spawn'],
      ['active', 'rebooting', 'reboot-soft'],
      ['active', 'rebooting_hard', 'reboot-hard'],
      ['active', 'powering-off', 'stop'],
      ['stopped', 'powering-on', 'start'],
      ['active', 'pausing', 'pause'],
      ['paused', 'unpausing', 'unpause'],
      ['active', 'suspending', 'suspend'],
      ['suspended', 'resuming', 'resume'],
      ['active', 'rebuilding', 'rebuild'],
      ['stopped', 'rebuilding', 'rebuild'],
      ['active', 'soft-deleting', 'soft-delete'],
      ['soft-delete', 'restoring', 'restore'],
      ['soft-delete', null, 'settled'],
      ['active', 'deleting', 'absent'],
      ['error', 'deleting', 'absent'],
      ['deleted', null, 'absent'],
      ['active', null, 'settled'],
      ['error', null, 'settled'],
    ];
    for (const [vm, task, want] of cases)
      assert.equal(intentOf(spec({ vm_state: vm, task_state: task })), want, `${vm}/${task}`);
    assert.equal(intentOf(null), 'absent');
  });
});

describe('planInstance: rebuild, soft delete, restore', () => {
  const REBUILT = ['image-fetch', 'reset-files', 'instance-dir', 'disk', 'copy', 'copy', 'touch'];
  test('rebuild of a running guest: new image cached first, destroyed, files reset, defined, started', () => {
    const steps = plan('rebuild', observed(RUNNING));
    assert.deepEqual(kinds(steps), [
      'image-fetch',
      'stop',
      ...REBUILT.slice(1),
      'define',
      'start-paused',
      'plug-vifs',
      'resume',
    ]);
    const reset = steps.find((x) => x.kind === 'reset-files');
    assert.ok(reset?.kind === 'reset-files');
    assert.deepEqual(reset.imageIds, [MACHINE.id, KERNEL.id, RAMDISK.id], 'the new image list');
    assert.deepEqual(reportOf(steps)?.report, { task_done: 7, vm_state: 'active' });
    assert.deepEqual(reportOf(steps)?.onFailure?.report, { task_done: 7, vm_state: 'error' });
  });

  test('rebuild of a stopped server ends stopped and never starts it; error ends active', () => {
    const stopped = plan('rebuild', observed(SAVED), { vmState: 'stopped' });
    assert.deepEqual(kinds(stopped), [
      'image-fetch',
      'discard-save',
      ...REBUILT.slice(1),
      'define',
    ]);
    assert.deepEqual(reportOf(stopped)?.report, { task_done: 7, vm_state: 'stopped' });
    const errored = plan('rebuild', observed(null), { vmState: 'error' });
    assert.deepEqual(kinds(errored), [...REBUILT, ...BOOT]);
    assert.deepEqual(reportOf(errored)?.report, { task_done: 7, vm_state: 'active' });
  });

  test("the fetch step names each image's role, for a fault when the service lacks one", () => {
    const steps = plan('rebuild', observed(RUNNING));
    const fetch = steps.find((x) => x.kind === 'image-fetch');
    assert.ok(fetch?.kind === 'image-fetch');
    assert.deepEqual(fetch.roles, {
      [MACHINE.id]: `image ${MACHINE.id}`,
      [KERNEL.id]: `kernel image ${KERNEL.id} of image ${MACHINE.id}`,
      [RAMDISK.id]: `ramdisk image ${RAMDISK.id} of image ${MACHINE.id}`,
    });
  });

  test('soft delete powers off at once and ends soft-delete; restore starts it, ends active', () => {
    const soft = plan('soft-delete', observed(RUNNING));
    assert.deepEqual(kinds(soft), ['stop']);
    assert.deepEqual(reportOf(soft)?.report, { task_done: 7, vm_state: 'soft-delete' });
    assert.deepEqual(kinds(plan('soft-delete', observed(SHUTOFF))), [], 'already off');
    const restore = plan('restore', observed(SHUTOFF), { vmState: 'soft-delete' });
    assert.deepEqual(kinds(restore), BOOT);
    assert.deepEqual(reportOf(restore)?.report, { task_done: 7, vm_state: 'active' });
    const settled = plan('settled', observed(SHUTOFF), { vmState: 'soft-delete', onStart: true });
    assert.deepEqual(kinds(settled), [], 'a host boot does not run a soft-deleted guest');
  });

  test('a soft-deleted guest found running or paused (no task) is powered off, nothing reported', () => {
    for (const found of [RUNNING, PAUSED]) {
      const steps = plan('settled', observed(found), { vmState: 'soft-delete' });
      assert.deepEqual(kinds(steps), ['stop']);
      const stop = steps[0];
      assert.ok(stop?.kind === 'stop');
      assert.equal(stop.graceful, false, 'powered off, as the soft delete did');
    }
    assert.deepEqual(
      plan('settled', observed(RUNNING), { vmState: 'soft-delete', onStart: true }).map(
        (s) => s.kind,
      ),
      ['stop'],
    );
    assert.deepEqual(plan('settled', observed(SHUTOFF), { vmState: 'soft-delete' }), []);
  });
});

describe('desiredInstance', () => {
  test('UEC triple: overlay on the raw ami sized by the flavor, kernel + ramdisk copies', () => {
    const d = desiredInstance(spec(), settings());
    assert.deepEqual(d.rootDisk, {
      kind: 'overlay',
      image: MACHINE,
      baseFormat: 'raw',
      sizeBytes: 1024 ** 3,
    });
    assert.equal(d.name, 'instance-0000002a');
    assert.equal(d.paths.disk, `/var/lib/kumo/instances/${ID}/disk`);
    assert.match(d.xml, new RegExp(`<kernel>/var/lib/kumo/instances/${ID}/kernel</kernel>`));
    assert.match(d.xml, /<initrd>.*\/ramdisk<\/initrd>/);
    assert.match(d.xml, /<cmdline>console=ttyS0<\/cmdline>/);
    assert.match(d.xml, /<kumo:host>compute-1<\/kumo:host>/);
    assert.deepEqual(d.nics, [{ portId: PORT, mac: 'fa:16:3e:00:00:01', tap: TAP, mtu: 1450 }]);
  });

  test('VIF mode: OVS bridge in production, an ethernet tap with vswitchd in a netns', () => {
    const prod = desiredInstance(spec(), settings()).xml;
    assert.match(prod, /<interface type='bridge'>[\s\S]*<source bridge='br-int'\/>/);
    assert.match(prod, new RegExp(`<parameters interfaceid='${PORT}'/>`));
    const lab = desiredInstance(spec(), settings('lab-h1')).xml;
    assert.match(lab, /<interface type='ethernet'>/);
    assert.doesNotMatch(lab, /virtualport/);
  });

  test('whole-disk images, an aki booted directly, and what cannot boot', () => {
    const qcow = desiredInstance(
      spec({ image: image(MACHINE.id, 'qcow2'), kernel: null, ramdisk: null, cmdline: null }),
      settings(),
    );
    assert.equal(qcow.rootDisk.kind, 'overlay');
    assert.match(qcow.xml, /<boot dev='hd'\/>/);
    const noDisk = desiredInstance(
      spec({
        image: KERNEL,
        kernel: null,
        cmdline: null,
        flavor: { ...spec().flavor, disk: 0 },
      }),
      settings(),
    );
    assert.deepEqual(noDisk.rootDisk, { kind: 'none' });
    assert.equal(noDisk.kernel, KERNEL);
    assert.match(noDisk.xml, /<cmdline>console=tty0 console=ttyS0<\/cmdline>/);
    assert.doesNotMatch(noDisk.xml, /<disk /);
    const blank = desiredInstance(spec({ image: KERNEL, kernel: null }), settings());
    assert.deepEqual(blank.rootDisk, { kind: 'blank', sizeBytes: 1024 ** 3 });
    assert.throws(
      () => desiredInstance(spec({ image: RAMDISK, kernel: null }), settings()),
      InstanceSpecError,
    );
    assert.throws(
      () => desiredInstance(spec({ kernel: null, ramdisk: null }), settings()),
      /ami without a kernel_id/,
    );
  });
});

describe('planInstance', () => {
  test('spawn: full boot from nothing, only what is missing otherwise; its report', () => {
    const fresh = plan('spawn', observed(null));
    assert.deepEqual(kinds(fresh), SPAWN);
    assert.deepEqual(reportOf(fresh)?.report, { task_done: 7, vm_state: 'active' });
    assert.equal(reportOf(fresh)?.timings, true);
    assert.deepEqual(reportOf(fresh)?.onFailure, {
      report: { task_done: 7, vm_state: 'error' },
      teardown: true,
    });
    assert.deepEqual(kinds(plan('spawn', observed(SHUTOFF))), [
      'define',
      'start-paused',
      'plug-vifs',
      'wait-ports',
      'resume',
    ]);
    const disk = { ...FILES, disk: false };
    assert.deepEqual(kinds(plan('spawn', observed(SHUTOFF, { files: disk }))).slice(0, 4), [
      'image-fetch',
      'instance-dir',
      'disk',
      'touch',
    ]);
    const up = plan('spawn', observed(RUNNING));
    assert.deepEqual(kinds(up), ['plug-vifs', 'wait-ports']);
    assert.equal(reportOf(up)?.timings, false, 'nothing booted: no timings');
    assert.deepEqual(kinds(plan('spawn', observed(PAUSED))), ['plug-vifs', 'wait-ports', 'resume']);
    assert.deepEqual(kinds(plan('spawn', observed(SAVED))), [
      'discard-save',
      'define',
      'start-paused',
      'plug-vifs',
      'wait-ports',
      'resume',
    ]);
  });

  test('steps carry their payload: XML, paths, images, VIFs, timeouts', () => {
    const steps = plan('spawn', observed(null), { netns: 'lab-h1' });
    const d = desiredInstance(spec(), settings('lab-h1'));
    const by = <K extends InstanceStep['kind']>(k: K) =>
      steps.find((s) => s.kind === k) as Extract<InstanceStep, { kind: K }>;
    assert.deepEqual(
      by('image-fetch').images.map((i) => i.id),
      [MACHINE.id, KERNEL.id, RAMDISK.id],
    );
    assert.deepEqual(by('disk').base, `/var/lib/kumo/instances/_base/${MACHINE.id}`);
    assert.equal(by('define').xml, d.xml);
    assert.equal(by('start-paused').uuid, ID);
    assert.deepEqual(by('plug-vifs').vifs, {
      vmUuid: ID,
      bridge: 'br-int',
      netns: 'lab-h1',
      nics: d.nics,
    });
    assert.equal(by('wait-ports').timeoutMs, 300_000);
  });

  test('a spec that cannot become a domain fails its spawn: leftovers removed, ERROR', () => {
    const bad = { over: { image: RAMDISK, kernel: null } };
    const steps = plan('spawn', observed(SHUTOFF, PLUGGED), bad);
    assert.deepEqual(kinds(steps), ['undefine', 'ovsdb', 'remove-instance-dir']);
    const r = reportOf(steps)?.report;
    assert.equal(r?.vm_state, 'error');
    assert.match(r?.fault?.message ?? '', /ramdisk \(ari\): it cannot be booted/);
    assert.deepEqual(plan('settled', observed(RUNNING), bad), [], 'no task: nothing to do');
  });

  test("another host's domain (or a foreign one) is never touched", () => {
    const p = plan('spawn', observed(FOREIGN));
    assert.deepEqual(kinds(p), []);
    assert.match(reportOf(p)?.report.fault?.message ?? '', /belongs to host compute-2/);
    assert.equal(reportOf(p)?.report.vm_state, 'error');
    const hand = plan('pause', observed(dom(DomainState.RUNNING, { meta: null })));
    assert.match(reportOf(hand)?.report.fault?.message ?? '', /nothing Kumo knows/);
    assert.equal(reportOf(hand)?.report.vm_state, 'active', 'another task keeps its vm_state');
    assert.deepEqual(plan('settled', observed(FOREIGN)), []);
    const gone = plan('absent', observed(FOREIGN, { ...PLUGGED, files: FOREIGN_FILES }), {
      vmState: null,
    });
    assert.deepEqual(gone, [], 'not its directory, not its OVS port, nothing to report');
  });

  test("another host's instance directory (shared instances_path) is never touched", () => {
    for (const files of [FOREIGN_FILES, UNMARKED_FILES]) {
      const gone = plan('absent', observed(null, { files }), { vmState: null });
      assert.deepEqual(gone, []);
      const ours = plan('absent', observed(RUNNING, { ...PLUGGED, files }), { vmState: null });
      assert.deepEqual(kinds(ours), ['stop', 'undefine', 'ovsdb'], 'our domain, not the dir');
      const spawn = plan('spawn', observed(null, { files }));
      assert.deepEqual(kinds(spawn), []);
      assert.match(
        reportOf(spawn)?.report.fault?.message ?? '',
        /instance directory belongs to (host compute-2|no host)/,
      );
      assert.deepEqual(plan('settled', observed(null, { files }), { onStart: true }), []);
    }
    const staged = plan('absent', observed(null, { files: { ...NO_FILES, staging: true } }), {
      vmState: null,
    });
    assert.deepEqual(kinds(staged), ['remove-instance-dir'], 'our staging directory');
  });

  test('absent: destroy, undefine, unplug from the bridge, remove files; deleted when anything was there', () => {
    const running = plan('absent', observed(RUNNING, PLUGGED), { vmState: null });
    assert.deepEqual(kinds(running), ['stop', 'undefine', 'ovsdb', 'remove-instance-dir']);
    const unplug = running.find((s) => s.kind === 'ovsdb');
    assert.deepEqual(unplug?.kind === 'ovsdb' && unplug.ops[0], {
      op: 'mutate',
      table: 'Bridge',
      where: [['name', '==', 'br-int']],
      mutations: [['ports', 'delete', ['set', [['uuid', 'p']]]]],
    });
    assert.equal(unplug?.kind === 'ovsdb' && unplug.applied, true);
    assert.deepEqual(reportOf(running)?.report, { deleted: true });
    assert.equal(reportOf(running)?.onFailure, null, 'no task: a failure is retried');
    assert.deepEqual(kinds(plan('absent', observed(SAVED))), ['undefine', 'remove-instance-dir']);
    assert.deepEqual(plan('absent', observed(null), { vmState: null }), []);
    const deleting = plan('absent', observed(null), { vmState: 'active' });
    assert.deepEqual(reportOf(deleting)?.report, { task_done: 7, deleted: true });
    assert.deepEqual(reportOf(deleting)?.onFailure?.report, { task_done: 7, vm_state: 'error' });
    const leftovers = plan('absent', observed(null, { ...PLUGGED, files: FILES }), {
      vmState: null,
    });
    assert.deepEqual(kinds(leftovers), ['ovsdb', 'remove-instance-dir']);
    const unreferenced = { vifs: { ports: [{ ...ROW, bridge: null }], taps: {} } };
    assert.deepEqual(plan('absent', observed(null, unreferenced), { vmState: null }), []);
  });

  test('reboots: soft shuts down first when running; hard powers off; both boot again', () => {
    assert.deepEqual(kinds(plan('reboot-soft', observed(RUNNING))), ['stop:graceful', ...BOOT]);
    assert.deepEqual(kinds(plan('reboot-soft', observed(PAUSED))), ['stop', ...BOOT]);
    assert.deepEqual(kinds(plan('reboot-hard', observed(RUNNING))), ['stop', ...BOOT]);
    assert.deepEqual(kinds(plan('reboot-hard', observed(SHUTOFF))), BOOT);
    assert.deepEqual(kinds(plan('reboot-hard', observed(null))), [...MAKE, ...BOOT]);
    const r = reportOf(plan('reboot-hard', observed(RUNNING)));
    assert.deepEqual(r?.report, { task_done: 7, vm_state: 'active' });
    assert.deepEqual(r?.onFailure, {
      report: { task_done: 7, vm_state: 'active' },
      teardown: false,
    });
  });

  test('stop and start', () => {
    assert.deepEqual(kinds(plan('stop', observed(RUNNING))), ['stop:graceful']);
    assert.deepEqual(kinds(plan('stop', observed(PAUSED))), ['stop:graceful']);
    const off = plan('stop', observed(SHUTOFF));
    assert.deepEqual(kinds(off), [], 'already off: only the report');
    assert.deepEqual(reportOf(off)?.report, { task_done: 7, vm_state: 'stopped' });
    assert.deepEqual(kinds(plan('start', observed(SHUTOFF))), BOOT);
    assert.deepEqual(kinds(plan('start', observed(SHUTOFF, { files: NO_FILES }))), [
      ...MAKE,
      ...BOOT,
    ]);
    assert.deepEqual(kinds(plan('start', observed(RUNNING))), []);
    assert.deepEqual(kinds(plan('start', observed(PAUSED))), ['resume']);
  });

  test('pause, unpause, suspend, resume; impossible ones are faults', () => {
    const fault = (steps: InstanceStep[]) => reportOf(steps)?.report.fault?.message ?? '';
    assert.deepEqual(kinds(plan('pause', observed(RUNNING))), ['pause']);
    assert.equal(reportOf(plan('pause', observed(RUNNING)))?.report.vm_state, 'paused');
    assert.deepEqual(kinds(plan('pause', observed(PAUSED))), []);
    assert.match(fault(plan('pause', observed(SHUTOFF))), /not running/);
    assert.deepEqual(kinds(plan('unpause', observed(PAUSED))), ['resume']);
    assert.deepEqual(kinds(plan('unpause', observed(RUNNING))), []);
    assert.match(fault(plan('unpause', observed(null))), /not paused/);
    assert.deepEqual(kinds(plan('suspend', observed(RUNNING))), ['managed-save']);
    assert.deepEqual(kinds(plan('suspend', observed(PAUSED))), ['managed-save']);
    assert.deepEqual(kinds(plan('suspend', observed(SAVED))), []);
    assert.match(fault(plan('suspend', observed(SHUTOFF))), /not running/);
    assert.deepEqual(kinds(plan('resume', observed(SAVED))), [
      'start-paused',
      'plug-vifs',
      'resume',
    ]);
    assert.deepEqual(
      kinds(plan('start', observed(SAVED))),
      ['discard-save', ...BOOT],
      'os-start boots afresh, as Nova power_on does',
    );
    assert.equal(reportOf(plan('resume', observed(SAVED)))?.report.vm_state, 'active');
    assert.deepEqual(kinds(plan('resume', observed(RUNNING))), []);
    assert.deepEqual(kinds(plan('resume', observed(SHUTOFF))), BOOT);
  });

  test('settled: power left alone, except an active guest that is off when the agent starts', () => {
    assert.deepEqual(plan('settled', observed(SHUTOFF)), []);
    assert.deepEqual(plan('settled', observed(RUNNING)), []);
    const onStart = { onStart: true };
    assert.deepEqual(
      plan('settled', observed(SHUTOFF), onStart).map((s) => s.kind),
      BOOT,
    );
    assert.deepEqual(kinds(plan('settled', observed(null), onStart)), [...MAKE, ...BOOT]);
    const crashed = dom(DomainState.CRASHED);
    assert.deepEqual(kinds(plan('settled', observed(crashed), onStart)), BOOT);
    // a restart cut short after its start (the plug failed): the retry plugs and resumes
    assert.deepEqual(kinds(plan('settled', observed(PAUSED), onStart)), ['plug-vifs', 'resume']);
    assert.deepEqual(plan('settled', observed(PAUSED)), [], 'no boot: left as it is');
    assert.deepEqual(plan('settled', observed(PAUSED), { onStart: true, vmState: 'paused' }), []);
    for (const vmState of ['stopped', 'suspended', 'error'] as const)
      assert.deepEqual(plan('settled', observed(SHUTOFF), { onStart: true, vmState }), []);
    assert.deepEqual(plan('settled', observed(SAVED), onStart), []);
  });

  test('a task this process finished plans nothing', () => {
    const finished = { taskId: 7, report: { task_done: 7 }, failed: false };
    const t = { ...target('reboot-hard'), finished };
    assert.deepEqual(planInstance(t, observed(RUNNING)), []);
  });

  test('ethernet VIFs of an active guest are plugged again when not in the bridge', () => {
    const netns = 'lab-h1';
    const vifs = (place: 'root' | 'vswitchd', ports = [ROW]) => ({
      vifs: { ports, taps: { [TAP]: place } },
    });
    assert.deepEqual(plan('settled', observed(RUNNING, vifs('vswitchd')), { netns }), []);
    const unmoved = plan('settled', observed(RUNNING, vifs('root')), { netns });
    assert.deepEqual(
      unmoved.map((s) => (s.kind === 'command' ? s.spec.argv.join(' ') : s.kind)),
      [`ip link set dev ${TAP} netns lab-h1`, 'ip -n lab-h1 -batch -', 'ovsdb', 'ovsdb'],
    );
    const noRow = plan('start', observed(RUNNING, vifs('vswitchd', [])), { netns });
    assert.deepEqual(kinds(noRow), ['ovsdb']);
    assert.deepEqual(plan('settled', observed(RUNNING, vifs('root'))), [], 'ovs mode: libvirt');
  });
});

describe('powerStateOf', () => {
  test("Nova's power states; a managed-saved guest is SUSPENDED", () => {
    assert.equal(powerStateOf(null), 0);
    assert.equal(powerStateOf(RUNNING), 1);
    assert.equal(powerStateOf(dom(DomainState.BLOCKED)), 1);
    assert.equal(powerStateOf(PAUSED), 3);
    assert.equal(powerStateOf(SHUTOFF), 4);
    assert.equal(powerStateOf(dom(DomainState.SHUTDOWN)), 4);
    assert.equal(powerStateOf(dom(DomainState.CRASHED)), 6);
    assert.equal(powerStateOf(SAVED), 7);
  });
});

describe('parseKumoMetadata', () => {
  test('reads our metadata as libvirt writes it back; other domains have none', () => {
    const xml = `<domain type='qemu' id='3'>
  <name>instance-0000002a</name>
  <metadata>
    <kumo:instance xmlns:kumo="https://kumo.dev/xmlns/instance/1.0">
      <kumo:uuid>${ID}</kumo:uuid>
      <kumo:name>a &amp; b</kumo:name>
      <kumo:host>compute-1</kumo:host>
      <kumo:flavor name="m1.tiny">
        <kumo:memory>512</kumo:memory>
        <kumo:vcpus>2</kumo:vcpus>
        <kumo:disk>1</kumo:disk>
      </kumo:flavor>
    </kumo:instance>
  </metadata>
</domain>`;
    assert.deepEqual(parseKumoMetadata(xml), {
      uuid: ID,
      host: 'compute-1',
      vcpus: 2,
      memoryMiB: 512,
      diskGiB: 1,
    });
    assert.equal(parseKumoMetadata(xml.replace('kumo.dev', 'example.org')), null);
    assert.equal(parseKumoMetadata("<domain type='kvm'><name>x</name></domain>"), null);
    const renderedByUs = desiredInstance(spec(), settings()).xml;
    assert.equal(parseKumoMetadata(renderedByUs)?.host, HOST);
  });
});

function withTempDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-compute-unit-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

describe('instance directory ownership', () => {
  const OTHER = '55555555-5555-4555-8555-555555555555';
  const UNMARKED = '66666666-6666-4666-8666-666666666666';

  test(
    'made whole with its marker and image list; enumerated, written and removed only by its host',
    withTempDir(async (root) => {
      const mine = { ...settings(), instancesPath: root };
      const theirs = { ...mine, host: 'compute-2' };
      const images = [MACHINE.id, KERNEL.id];
      await createInstanceDir(pathsOf(mine, ID), HOST, images);
      assert.equal(readFileSync(join(root, ID, 'host'), 'utf8'), `${HOST}\n`);
      assert.equal(await readOwner(join(root, ID)), HOST);
      await createInstanceDir(pathsOf(mine, ID), HOST, images); // already there: a no-op
      await createInstanceDir(pathsOf(theirs, OTHER), 'compute-2', [RAMDISK.id]);
      mkdirSync(join(root, UNMARKED));
      writeFileSync(join(root, UNMARKED, 'images'), `${KERNEL.id}\nnot-a-uuid\n`);
      assert.deepEqual(readdirSync(root).sort(), [ID, OTHER, UNMARKED].sort(), 'no staging left');
      assert.deepEqual(await ownInstanceIds(root, HOST), [ID]);
      assert.deepEqual(await ownInstanceIds(root, 'compute-2'), [OTHER]);
      assert.deepEqual(
        [...(await referencedImages(root))].sort(),
        [MACHINE.id, KERNEL.id, RAMDISK.id].sort(),
        "every directory's images, whoever owns it; garbage ignored",
      );
      for (const id of [OTHER, UNMARKED])
        await assert.rejects(
          createInstanceDir(pathsOf(mine, id), HOST, images),
          (e: unknown) => e instanceof ForeignDirectoryError,
        );
      for (const id of [OTHER, UNMARKED]) await removeInstanceDir(pathsOf(mine, id), HOST);
      assert.ok(existsSync(join(root, OTHER)) && existsSync(join(root, UNMARKED)), 'left alone');
      await removeInstanceDir(pathsOf(mine, ID), HOST);
      assert.ok(!existsSync(join(root, ID)));
    }),
  );

  test(
    "a staging directory a crash left is this host's: enumerated, replaced by the next build, removed",
    withTempDir(async (root) => {
      const paths = pathsOf({ ...settings(), instancesPath: root }, ID);
      mkdirSync(paths.staging);
      writeFileSync(join(paths.staging, 'host'), 'half');
      assert.deepEqual(await ownInstanceIds(root, HOST), [ID]);
      assert.deepEqual(await ownInstanceIds(root, 'compute-2'), []);
      await removeInstanceDir(paths, HOST);
      assert.deepEqual(readdirSync(root), []);
      mkdirSync(paths.staging);
      await createInstanceDir(paths, HOST, []);
      assert.deepEqual(readdirSync(root), [ID]);
      assert.equal(await readOwner(paths.dir), HOST);
    }),
  );
});

describe('host boot', () => {
  const BOOT_A = '91fbe54a-c8fc-446c-bbc1-c72509c0eb6e';
  const BOOT_B = '0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';

  test(
    'no record is a boot; recorded, the same boot is not; another boot id is',
    withTempDir(async (root) => {
      const kernel = join(root, 'boot_id');
      const state = join(root, 'state', 'compute');
      writeFileSync(kernel, `${BOOT_A}\n`);
      const first = await hostBoot(state, kernel);
      assert.equal(first.rebooted, true);
      assert.equal((await hostBoot(state, kernel)).rebooted, true, 'not recorded yet');
      await first.record();
      assert.equal(readFileSync(join(state, 'boot_id'), 'utf8'), `${BOOT_A}\n`);
      assert.equal((await hostBoot(state, kernel)).rebooted, false);
      writeFileSync(kernel, `${BOOT_B}\n`);
      assert.equal((await hostBoot(state, kernel)).rebooted, true);
      writeFileSync(join(state, 'boot_id'), 'garbage');
      assert.equal((await hostBoot(state, kernel)).rebooted, true, 'an unreadable record');
      writeFileSync(kernel, 'nonsense');
      await assert.rejects(hostBoot(state, kernel), /holds no boot id/);
    }),
  );
});

describe('forgetFailures', () => {
  test('a resync forgets failed tasks (tried again), not succeeded ones', () => {
    const ledger: TaskLedger = new Map();
    ledger.set('a', { taskId: 3, report: { task_done: 3, vm_state: 'error' }, failed: true });
    ledger.set('b', { taskId: 4, report: { task_done: 4, vm_state: 'active' }, failed: false });
    forgetFailures(ledger);
    assert.deepEqual([...ledger.keys()], ['b']);
  });
});

describe('image cache prune', () => {
  test(
    'removes unkept images and stale parts only once unused longer than the threshold',
    withTempDir(async (dir) => {
      const noRunner = {} as CommandRunner;
      const cache = createImageCache({
        dir,
        apiUrl: 'http://127.0.0.1:9',
        token: 't',
        runner: noRunner,
        log: silentLogger(),
      });
      const old = new Date(Date.now() - 2 * 86_400_000);
      const file = (name: string, aged: boolean) => {
        writeFileSync(join(dir, name), 'x');
        if (aged) utimesSync(join(dir, name), old, old);
      };
      file(MACHINE.id, true); // kept: an instance uses it
      file(KERNEL.id, true); // unused for two days
      file(RAMDISK.id, false); // unused, but just used or downloaded
      file(`.${KERNEL.id}.part-0123456789abcdef`, true);
      file(`.${RAMDISK.id}.part-0123456789abcdef`, false);
      const removed = await cache.prune(new Set([MACHINE.id]), { olderThanMs: 86_400_000 });
      assert.deepEqual(removed, [KERNEL.id]);
      assert.deepEqual(
        readdirSync(dir).sort(),
        [MACHINE.id, RAMDISK.id, `.${RAMDISK.id}.part-0123456789abcdef`].sort(),
      );
      // ensure() of a cached copy (no request: the API address is dead) marks it used
      writeFileSync(join(dir, MACHINE.id), Buffer.alloc(MACHINE.size));
      utimesSync(join(dir, MACHINE.id), old, old);
      assert.equal(await cache.ensure(MACHINE), join(dir, MACHINE.id));
      assert.deepEqual(await cache.prune(new Set(), { olderThanMs: 86_400_000 }), []);
    }),
  );
});

describe('consoleTail', () => {
  test("Nova's tail: a client splitting on '\\n' gets exactly N parts, \\r\\n lines too", () => {
    const log = 'boot\r\nlogin: \r\nkernel\r\nready\r\n';
    for (const n of [1, 2, 3, 4, 5]) {
      const parts = novaTail(log, n).split('\n');
      assert.equal(parts.length, n, `length ${n}`);
    }
    assert.equal(novaTail(log, 3), 'kernel\r\nready\r\n');
    assert.equal(novaTail(log, 0), '');
    assert.equal(novaTail(log, -1), log);
    assert.equal(novaTail(log), log);
    assert.equal(novaTail(log, 100), log);
    assert.equal(novaTail('no newline at all', 2), 'no newline at all');
  });

  test('last N lines, all lines, a bounded window that drops the cut line; missing log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-console-'));
    try {
      const path = join(dir, 'console.log');
      writeFileSync(path, 'one\ntwo\nthree\n');
      // Nova's _tail_log: the last 2 of the '\n'-separated parts ('three' and '').
      assert.equal(await consoleTail(path, 2), 'three\n');
      assert.equal(await consoleTail(path, 3), 'two\nthree\n');
      assert.equal(await consoleTail(path, -1), 'one\ntwo\nthree\n');
      assert.equal(await consoleTail(path), 'one\ntwo\nthree\n');
      assert.equal(await consoleTail(path, 0), '');
      assert.equal(await consoleTail(path, 10, 9), 'three\n', 'a 9-byte window: wo\nthree\n');
      await assert.rejects(consoleTail(join(dir, 'none.log')), ConsoleLogMissingError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
