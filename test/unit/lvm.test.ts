/**
 * host/lvm's pure parts: the argv each plan runs with activation on (production) and off
 * (this lab), how LVM's stderr is classified, lvs parsing, and Kumo ↔ LV names. The same
 * commands run against real LVM in test/integration/lvm.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CommandRunner } from '../../core/exec.ts';
import { classifyLvmStderr, type LvmContext, LvmError, lvmArgv } from '../../host/lvm/context.ts';
import {
  commandArgv,
  planExtend,
  planRemove,
  planSnapshot,
  planThick,
  planThin,
  planThinPool,
} from '../../host/lvm/lv.ts';
import { type LogicalVolume, parseLvs } from '../../host/lvm/lvs.ts';
import { kumoName, lvName } from '../../host/lvm/names.ts';

const ID = '0b5e2a1c-3d4f-4a6b-8c7d-9e0f1a2b3c4d';
const runner: CommandRunner = {
  run: () => Promise.reject(new Error('pure tests run nothing')),
};
const on: LvmContext = { runner, vg: 'cinder-volumes', activation: true };
const off: LvmContext = { ...on, activation: false };
const lv = (over: Partial<LogicalVolume>): LogicalVolume => ({
  name: `volume-${ID}`,
  sizeBytes: 1024 ** 3,
  attr: '-wi-a-----',
  type: 'linear',
  pool: null,
  origin: null,
  dataPercent: null,
  ...over,
});

describe('LVM argv', () => {
  test('activation off adds one --config element to every command', () => {
    assert.deepEqual(lvmArgv(off, 'lvs', ['x']), ['lvs', '--config', 'global{activation=0}', 'x']);
    assert.deepEqual(lvmArgv(on, 'lvs', ['x']), ['lvs', 'x']);
  });

  test('thick volumes', () => {
    const name = `volume-${ID}`;
    assert.deepEqual(commandArgv(on, planThick(on, name, 10)), [
      'lvcreate',
      '--yes',
      '-n',
      name,
      '-L',
      '10g',
      'cinder-volumes',
    ]);
    assert.deepEqual(commandArgv(off, planThick(off, name, 10)), [
      'lvcreate',
      '--config',
      'global{activation=0}',
      '-an',
      '-Zn',
      '-n',
      name,
      '-L',
      '10g',
      'cinder-volumes',
    ]);
  });

  test('the thin pool and thin volumes', () => {
    assert.deepEqual(commandArgv(on, planThinPool(on, { percentFree: 95 })), [
      'lvcreate',
      '--yes',
      '--type',
      'thin-pool',
      '-l',
      '95%FREE',
      '-n',
      'cinder-volumes-pool',
      'cinder-volumes',
    ]);
    assert.deepEqual(planThinPool(off, { sizeGb: 20 }).args, [
      '-an',
      '--type',
      'thin-pool',
      '-L',
      '20g',
      '-n',
      'cinder-volumes-pool',
      'cinder-volumes',
    ]);
    assert.deepEqual(planThin(on, `volume-${ID}`, 5).args, [
      '--yes',
      '--type',
      'thin',
      '-V',
      '5g',
      '--thinpool',
      'cinder-volumes-pool',
      '-n',
      `volume-${ID}`,
      'cinder-volumes',
    ]);
  });

  test('snapshots: a COW size for thick origins, none (and activatable) for thin ones', () => {
    const snap = `snapshot-${ID}`;
    assert.deepEqual(planSnapshot(on, snap, lv({}), 2).args, [
      '--yes',
      '--snapshot',
      '-L',
      '2g',
      '-n',
      `_snapshot-${ID}`,
      `cinder-volumes/volume-${ID}`,
    ]);
    const thin = lv({ type: 'thin', pool: 'cinder-volumes-pool' });
    assert.deepEqual(planSnapshot(on, snap, thin, 2).args, [
      '--yes',
      '-kn',
      '--snapshot',
      '-n',
      `_snapshot-${ID}`,
      `cinder-volumes/volume-${ID}`,
    ]);
    assert.deepEqual(planSnapshot(off, snap, thin, 2).args.slice(0, 2), ['-an', '--snapshot']);
    const ofSnapshot = lv({ name: `_snapshot-${ID}`, type: 'snapshot' });
    assert.throws(() => planSnapshot(on, snap, ofSnapshot, 1), /can't be a snapshot's origin/);
  });

  test('extend: grows, does nothing at the same size, refuses to shrink', () => {
    assert.deepEqual(planExtend(on, lv({}), 3)?.args, ['-L', '3g', `cinder-volumes/volume-${ID}`]);
    assert.equal(planExtend(on, lv({}), 1), null);
    assert.throws(() => planExtend(on, lv({ sizeBytes: 2 * 1024 ** 3 }), 1), { kind: 'shrink' });
  });

  test('remove: absent is nothing, a thick origin is refused, a thin one goes alone', () => {
    const vol = lv({ type: 'origin' });
    const snap = lv({ name: `_snapshot-${ID}`, type: 'snapshot', origin: vol.name });
    assert.equal(planRemove(on, [vol], `volume-${'1'.repeat(8)}`), null);
    assert.throws(() => planRemove(on, [vol, snap], vol.name), { kind: 'in-use' });
    const thin = lv({ type: 'thin' });
    const clone = lv({ name: `_snapshot-${ID}`, type: 'thin', origin: thin.name });
    assert.deepEqual(planRemove(on, [thin, clone], thin.name)?.args, [
      '-f',
      `cinder-volumes/${thin.name}`,
    ]);
    assert.deepEqual(planRemove(on, [vol, snap], snap.name)?.args, [
      '-f',
      `cinder-volumes/_snapshot-${ID}`,
    ]);
  });

  test('a VG name that could be an option is refused', () => {
    for (const vg of ['-a', '..', 'a b', '', 'x'.repeat(128)])
      assert.throws(() => lvmArgv({ activation: true, vg }, 'lvs', []), LvmError, vg);
  });
});

describe('LVM stderr', () => {
  const warn = '  WARNING: Activation disabled. No device-mapper interaction will be attempted.\n';
  const cases: [string, LvmError['kind']][] = [
    [
      '  Volume group "vg" has insufficient free space (205 extents): 2048 required.',
      'insufficient-space',
    ],
    ["  Can't create snapshot without using device-mapper kernel driver.", 'activation-required'],
    ["  Can't create thin-pool without using device-mapper kernel driver.", 'activation-required'],
    [
      '  thin-pool: Required device-mapper target(s) not detected in your kernel.',
      'activation-required',
    ],
    [
      '  Cannot activate thin pool vg/vg-pool.\n  Failed to update pool vg/vg-pool.',
      'activation-required',
    ],
    ['  Logical Volume "volume-x" already exists in volume group "vg"', 'exists'],
    ['  Failed to find logical volume "vg/volume-x"', 'not-found'],
    ['  Logical volume vg/volume-x in use.', 'in-use'],
    ['  New size given (25 extents) not larger than existing size (50 extents)', 'failed'],
  ];
  for (const [stderr, kind] of cases)
    test(`${kind}: ${stderr.trim().slice(0, 50)}`, () => {
      assert.equal(classifyLvmStderr(warn + stderr), kind);
    });
  test('the activation warning alone is not a reason', () => {
    assert.equal(classifyLvmStderr(warn), 'failed');
  });
});

describe('lvs and names', () => {
  test('lvs JSON rows are typed from lv_attr', () => {
    const out = JSON.stringify({
      report: [
        {
          lv: [
            {
              lv_name: 'p',
              lv_size: '209715200',
              lv_attr: 'twi-aotz--',
              pool_lv: '',
              origin: '',
              data_percent: '12.50',
            },
            {
              lv_name: `volume-${ID}`,
              lv_size: '1073741824',
              lv_attr: 'Vwi-a-tz--',
              pool_lv: 'p',
              origin: '',
              data_percent: '0.00',
            },
          ],
        },
      ],
    });
    const [pool, thin] = parseLvs(out);
    assert.equal(pool?.type, 'thin-pool');
    assert.equal(pool?.dataPercent, 12.5);
    assert.deepEqual([thin?.type, thin?.pool, thin?.sizeBytes], ['thin', 'p', 1024 ** 3]);
  });

  test('malformed lvs output is an error naming the field', () => {
    assert.throws(() => parseLvs('nope'), /not JSON/);
    const bad = {
      report: [
        {
          lv: [
            {
              lv_name: 'x',
              lv_size: '1.5',
              lv_attr: '-wi-------',
              pool_lv: '',
              origin: '',
              data_percent: '',
            },
          ],
        },
      ],
    };
    assert.throws(() => parseLvs(JSON.stringify(bad)), /lv_size of x/);
  });

  test('snapshots live as _snapshot-<uuid> (LVM reserves "snapshot…")', () => {
    assert.equal(lvName(`snapshot-${ID}`), `_snapshot-${ID}`);
    assert.equal(lvName(`volume-${ID}`), `volume-${ID}`);
    assert.deepEqual(kumoName(`_snapshot-${ID}`), {
      kind: 'snapshot',
      id: ID,
      name: `snapshot-${ID}`,
    });
    assert.equal(kumoName(`snapshot-${ID}`), null);
    assert.equal(kumoName('cinder-volumes-pool'), null);
    assert.throws(() => lvName(`volume-${ID.toUpperCase()}`), { kind: 'invalid' });
  });
});
