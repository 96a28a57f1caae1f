/**
 * The domain XML carries only characters XML 1.0 can: U+FFFE and U+FFFF (which no escape
 * can write, and libvirt refuses at define: "Char 0xFFFE out of allowed range") in a
 * display name, flavor name or command line are the spec's problem, refused naming the
 * field before anything exists on the host; their neighbours (U+FFFD, U+E000, U+10FFFF)
 * render. Found by test/integration/renderers-property-agents.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DomainSpecError, renderDomainXml } from '../../agents/compute/domain.ts';
import type { DomainSpec } from '../../agents/compute/domain-spec.ts';
import { planInstance } from '../../agents/compute/plan.ts';
import { instanceTarget } from '../../agents/compute/target.ts';
import type { InstanceSpec } from '../../contracts/instances.ts';
import { KERNEL, MACHINE } from '../helpers/compute-fakes.ts';

const ID = '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8';
const HOST = 'compute-1';

function domain(over: { displayName?: string; flavorName?: string; cmdline?: string }) {
  const spec: DomainSpec = {
    uuid: ID,
    name: 'instance-0000002a',
    displayName: over.displayName ?? 'vm',
    flavor: { vcpus: 1, ramMiB: 64 },
    virtType: 'qemu',
    kernel: '/var/lib/kumo/instances/x/kernel',
    cmdline: over.cmdline ?? 'console=ttyS0',
    nics: [],
    consoleLog: '/var/lib/kumo/instances/x/console.log',
    metadata: {
      flavorName: over.flavorName ?? 'm1.tiny',
      imageId: ID,
      created: '2026-11-22T06:00:00Z',
      host: HOST,
    },
  };
  return spec;
}

const FIELDS = {
  displayName: 'displayName',
  flavorName: 'metadata.flavorName',
  cmdline: 'cmdline',
} as const;

describe('domain XML characters', () => {
  test('U+FFFE and U+FFFF are refused naming the field; their neighbours render', () => {
    for (const [key, field] of Object.entries(FIELDS)) {
      for (const bad of ['\ufffe', '\uffff', 'a\uffffb'])
        assert.throws(
          () => renderDomainXml(domain({ [key]: `vm${bad}` })),
          (e: unknown) =>
            e instanceof DomainSpecError && e.field === field && /U\+FFFE/.test(e.message),
          `${key} ${JSON.stringify(bad)}`,
        );
      const fine = 'vm\ufffd\ue000\u{10ffff}\u{1fffe}';
      assert.ok(renderDomainXml(domain({ [key]: fine })).includes(fine), key);
    }
  });

  test('a spawn of such a spec fails with its fault before anything is made', () => {
    const spec: InstanceSpec = {
      id: ID,
      seq: 42,
      display_name: 'vm\ufffe',
      host: HOST,
      vm_state: 'building',
      task_state: 'spawning',
      task_id: 1,
      flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 },
      image: MACHINE,
      kernel: KERNEL,
      ramdisk: null,
      cmdline: null,
      ports: [],
      created_at: '2026-11-22T06:00:00Z',
      config_drive: false,
      volumes: [],
    };
    const settings = {
      host: HOST,
      instancesPath: '/var/lib/kumo/instances',
      baseDir: '/var/lib/kumo/instances/_base',
      virtType: 'qemu' as const,
      intBridge: 'br-int',
      vifPluggingTimeoutMs: 1000,
      shutdownTimeoutMs: 1000,
      stateDir: '/var/lib/kumo/compute',
      forceConfigDrive: false,
    };
    const t = instanceTarget({ spec, onStart: false, finished: null }, ID, settings);
    assert.match(t.problem ?? '', /displayName must not contain U\+FFFE or U\+FFFF/);
    const nothing = {
      domain: null,
      files: {
        dir: false,
        owner: null,
        staging: false,
        disk: false,
        kernel: false,
        ramdisk: false,
        configDrive: false,
      },
      vifs: null,
    };
    const steps = planInstance(t, nothing);
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['report'],
    );
    const report = steps[0]?.kind === 'report' ? steps[0].report : undefined;
    assert.equal(report?.vm_state, 'error');
    assert.match(String(report?.fault?.message), /U\+FFFE/);
  });
});
