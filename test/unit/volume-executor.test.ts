/**
 * The volume agent's executor (agents/volume/executor.ts) on recording fakes of tgtd and
 * the data backend — a pure unit test of its logic: a target is made whole or not at all
 * (a LUN tgtd refuses deletes the target it just made; a refused target itself deletes
 * nothing), and a copy that fails removes what it made, unless the object was already
 * there ('exists': someone else's, left alone).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DataBackend } from '../../agents/volume/backend.ts';
import { applyVolumeSteps } from '../../agents/volume/executor.ts';
import type { VolumeStep } from '../../agents/volume/plan.ts';
import type { Tgt, TgtOps } from '../../agents/volume/tgt.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';

const ID = '3f6c2d8e-9a41-4b7c-8e2f-5d1a6b9c0e21';
const IQN = `iqn.2010-10.org.openstack:volume-${ID}`;

function fakeTgt(failOn: keyof TgtOps | null, calls: string[]): Tgt {
  const op =
    (name: keyof TgtOps) =>
    async (...args: unknown[]) => {
      calls.push(`${name} ${args.join(' ')}`);
      if (name === failOn) throw new Error(`tgtadm refused ${name}`);
    };
  const ops = {
    freeTid: async () => 7,
    ...Object.fromEntries(
      (
        [
          'newTarget',
          'deleteTarget',
          'newLun',
          'newAccount',
          'deleteAccount',
          'bindAccount',
          'unbindAccount',
          'bindInitiator',
          'unbindInitiator',
        ] as const
      ).map((n) => [n, op(n)]),
    ),
  } as TgtOps;
  return { show: async () => [], accounts: async () => [], exclusive: (fn) => fn(ops) };
}

function fakeBackend(copyError: Error & { kind?: string }, calls: string[]): DataBackend {
  const none = async () => {};
  return {
    list: async () => [],
    sizeOf: async () => null,
    create: none,
    copy: async (name) => {
      calls.push(`copy ${name}`);
      throw copyError;
    },
    snapshot: none,
    extend: none,
    zero: none,
    remove: async (name) => {
      calls.push(`remove ${name}`);
    },
    capacity: async () => ({ totalGb: 0, freeGb: 0, facts: {} }),
  };
}

const target: VolumeStep = {
  kind: 'target-create',
  target: {
    iqn: IQN,
    lun: 1,
    backing: `/var/lib/kumo/volume-${ID}`,
    user: 'kumoTestUser01234567',
    secret: 'kumoTestSecret01',
    initiators: ['iqn.2010-10.org.kumo:a'],
  },
  why: 'export',
};

const run = (tgt: Tgt, backend: DataBackend, steps: VolumeStep[]) =>
  applyVolumeSteps({ tgt, backend, log: silentLogger(), runner: createCommandRunner() }, steps, {
    volumeId: ID,
  });

test('a target tgtd refuses a LUN for is deleted again; one it refuses is not touched', async () => {
  const calls: string[] = [];
  await assert.rejects(run(fakeTgt('newLun', calls), fakeBackend(new Error(), []), [target]));
  assert.deepEqual(calls, [
    `newTarget 7 ${IQN}`,
    `newLun 7 1 /var/lib/kumo/volume-${ID}`,
    'deleteTarget 7 true',
  ]);
  const refused: string[] = [];
  await assert.rejects(run(fakeTgt('newTarget', refused), fakeBackend(new Error(), []), [target]));
  assert.deepEqual(refused, [`newTarget 7 ${IQN}`]);
  const whole: string[] = [];
  await run(fakeTgt(null, whole), fakeBackend(new Error(), []), [target]);
  assert.equal(whole.at(-1), 'bindInitiator 7 iqn.2010-10.org.kumo:a');
  assert.ok(!whole.some((c) => c.startsWith('deleteTarget')));
});

test('a failed copy removes what it made, never an object that was there', async () => {
  const copy: VolumeStep = {
    kind: 'data-copy',
    name: `volume-${ID}`,
    source: { kind: 'snapshot', name: `snapshot-${ID}` },
    sizeGb: 2,
    why: 'from a snapshot',
  };
  const calls: string[] = [];
  const noRoom = Object.assign(new Error('insufficient free space'), {
    kind: 'insufficient-space',
  });
  await assert.rejects(run(fakeTgt(null, []), fakeBackend(noRoom, calls), [copy]), noRoom);
  assert.deepEqual(calls, [`copy volume-${ID}`, `remove volume-${ID}`]);
  const there: string[] = [];
  const exists = Object.assign(new Error('already exists'), { kind: 'exists' });
  await assert.rejects(run(fakeTgt(null, []), fakeBackend(exists, there), [copy]), exists);
  assert.deepEqual(there, [`copy volume-${ID}`]);
});
