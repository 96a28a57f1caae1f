/**
 * host/lvm against the real LVM tools on loop-file volume groups with activation disabled
 * (this kernel has no device-mapper: HOST-LAB). Thick LVs are made, grown, listed and
 * removed by lvcreate/lvextend/lvremove themselves; LVM refuses to make thin pools, thin
 * LVs and snapshots without device-mapper, and the tests prove that refusal comes back
 * typed with LVM's words and leaves nothing. The thin and snapshot layouts lvs must read
 * and remove must guard are written into a second group's metadata (helpers/lvm-lab.ts).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { MAX_VOLUME_GB } from '../../contracts/volume.ts';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { type LvmContext, LvmError } from '../../host/lvm/context.ts';
import {
  createSnapshot,
  createThick,
  createThin,
  devicePath,
  ensureThinPool,
  extend,
  kumoLvs,
  remove,
} from '../../host/lvm/lv.ts';
import { findLv, lvs } from '../../host/lvm/lvs.ts';
import { volumeGroupOf } from '../../host/lvm/vgs.ts';
import {
  type LoopVolumeGroup,
  loopVolumeGroup,
  lvmTool,
  metadataText,
  restoreLayout,
} from '../helpers/lvm-lab.ts';

const GiB = 1024 ** 3;
const vol = () => `volume-${randomUUID()}`;
const snap = () => `snapshot-${randomUUID()}`;

function isLvmError(kind: LvmError['kind'], message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof LvmError, `an LvmError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

/** The real runner, counting what it is asked to run. */
function counting(ctx: LvmContext): { ctx: LvmContext; calls: CommandSpec[] } {
  const calls: CommandSpec[] = [];
  const runner: CommandRunner = {
    run: (spec) => {
      calls.push(spec);
      return ctx.runner.run(spec);
    },
  };
  return { ctx: { ...ctx, runner }, calls };
}

describe('LVM on a loop-file volume group, activation disabled', () => {
  let lab: LoopVolumeGroup;
  let ctx: LvmContext;
  before(() => {
    lab = loopVolumeGroup(4096);
    ctx = lab.ctx;
  });
  after(() => lab.cleanup());

  test('a thick volume is created, listed, grown and removed', async () => {
    const name = vol();
    const free = (await volumeGroupOf(ctx))?.freeGb ?? 0;
    await createThick(ctx, name, 1);
    assert.deepEqual(await findLv(ctx, name), {
      name,
      sizeBytes: GiB,
      attr: '-wi-XX----',
      type: 'linear',
      pool: null,
      origin: null,
      dataPercent: null,
    });
    assert.ok(((await volumeGroupOf(ctx))?.freeGb ?? 0) <= free - 1, 'the group lost 1 GiB');
    assert.equal(await extend(ctx, name, 2), true);
    assert.equal((await findLv(ctx, name))?.sizeBytes, 2 * GiB);
    assert.equal(await extend(ctx, name, 2), false, 'the same size is nothing to do');
    await assert.rejects(extend(ctx, name, 1), isLvmError('shrink'));
    assert.equal((await findLv(ctx, name))?.sizeBytes, 2 * GiB);
    assert.equal(await remove(ctx, name), true);
    assert.equal(await findLv(ctx, name), null);
    assert.equal(await remove(ctx, name), false, 'removing what is gone is nothing to do');
  });

  test('kumoLvs lists Kumo volumes only, by id', async () => {
    const name = vol();
    await createThick(ctx, name, 1);
    lvmTool('lvcreate', ['-an', '-Zn', '-n', 'not-kumo', '-L', '8m', ctx.vg]);
    const listed = await kumoLvs(ctx);
    assert.deepEqual(
      listed.map((k) => [k.kind, k.name, k.id]),
      [['volume', name, name.slice('volume-'.length)]],
    );
    assert.ok((await lvs(ctx)).some((lv) => lv.name === 'not-kumo'));
    await remove(ctx, name);
    lvmTool('lvremove', ['-f', `${ctx.vg}/not-kumo`]);
  });

  test('more than the free space: LVM says so, typed, and no LV is left', async () => {
    const name = vol();
    await assert.rejects(
      createThick(ctx, name, 64),
      isLvmError('insufficient-space', /insufficient free space/),
    );
    assert.equal(await findLv(ctx, name), null);
    await createThick(ctx, name, 1);
    await assert.rejects(extend(ctx, name, 64), isLvmError('insufficient-space'));
    assert.equal((await findLv(ctx, name))?.sizeBytes, GiB, 'the LV kept its size');
    await remove(ctx, name);
  });

  test('bad names and sizes are refused before anything runs', async () => {
    const { ctx: watched, calls } = counting(ctx);
    const good = vol();
    const bad: [() => Promise<unknown>, string][] = [
      [() => createThick(watched, `${good}\n`, 1), 'newline'],
      [() => createThick(watched, 'volume-../../x', 1), 'path'],
      [() => createThick(watched, snap(), 1), 'a snapshot name for a volume'],
      [() => createThick(watched, `${ctx.vg}-pool`, 1), 'the pool'],
      [() => createThick(watched, '-n', 1), 'an option'],
      [() => createThick(watched, good, 0), 'zero'],
      [() => createThick(watched, good, -1), 'negative'],
      [() => createThick(watched, good, 1.5), 'fractional'],
      [() => createThick(watched, good, MAX_VOLUME_GB + 1), 'huge'],
      [() => createThin(watched, good, Number.NaN), 'NaN'],
      [() => extend(watched, 'volume-1', 2), 'not a uuid'],
      [() => remove(watched, 'lvol0'), "not Kumo's"],
      [() => createSnapshot(watched, good, good, 1), 'a volume name for a snapshot'],
      [() => ensureThinPool(watched, { percentFree: 101 }), 'percent'],
      [() => lvs({ ...watched, vg: '--all' }), 'a VG name like an option'],
    ];
    for (const [call, why] of bad) await assert.rejects(call(), isLvmError('invalid'), why);
    assert.deepEqual(calls, [], 'no command ran');
  });

  test('a thin pool needs device-mapper: LVM refuses, typed, and leaves nothing', async () => {
    await assert.rejects(
      ensureThinPool(ctx, { percentFree: 50 }),
      isLvmError('activation-required', /without using device-mapper/),
    );
    assert.deepEqual(await lvs(ctx), []);
  });

  test('a thick snapshot needs device-mapper: LVM refuses, typed, and leaves nothing', async () => {
    const origin = vol();
    const name = snap();
    await createThick(ctx, origin, 1);
    await assert.rejects(
      createSnapshot(ctx, name, origin, 1),
      isLvmError('activation-required', /Can't create snapshot without using device-mapper/),
    );
    assert.deepEqual(
      (await lvs(ctx)).map((lv) => [lv.name, lv.type]),
      [[origin, 'linear']],
    );
    await assert.rejects(createSnapshot(ctx, snap(), vol(), 1), isLvmError('not-found'));
    await remove(ctx, origin);
  });
});

describe('LVM thin and snapshot layouts (metadata restored), activation disabled', () => {
  let lab: LoopVolumeGroup;
  let ctx: LvmContext;
  const thinOrigin = vol();
  const thinSnap = snap();
  const thickOrigin = vol();
  const thickSnap = snap();
  const lv = (kumo: string) => kumo.replace(/^snapshot-/, '_snapshot-');
  before(() => {
    lab = loopVolumeGroup(1024);
    ctx = lab.ctx;
    for (const [name, size] of [
      ['data', '64m'],
      ['meta', '4m'],
      [thickOrigin, '32m'],
      [lv(thickSnap), '8m'],
    ])
      lvmTool('lvcreate', ['-an', '-Zn', '-n', name as string, '-L', size as string, ctx.vg]);
    restoreLayout(ctx.vg, {
      pool: { data: 'data', meta: 'meta', extents: 16 },
      thin: [
        { name: thinOrigin, extents: 256 },
        { name: lv(thinSnap), extents: 256, origin: thinOrigin },
      ],
      snapshots: [{ cow: lv(thickSnap), origin: thickOrigin, extents: 8 }],
    });
  });
  after(() => lab.cleanup());

  test('lvs types each LV, and Kumo names map back from LV names', async () => {
    const rows = (await lvs(ctx)).map((r) => [r.name, r.type, r.pool, r.origin, r.sizeBytes]);
    const pool = `${ctx.vg}-pool`;
    assert.deepEqual(
      rows.sort(),
      [
        [lv(thickSnap), 'snapshot', null, thickOrigin, 8 * 1024 ** 2],
        [lv(thinSnap), 'thin', pool, thinOrigin, GiB],
        [pool, 'thin-pool', null, null, 64 * 1024 ** 2],
        [thickOrigin, 'origin', null, null, 32 * 1024 ** 2],
        [thinOrigin, 'thin', pool, null, GiB],
      ].sort(),
    );
    const kinds = (await kumoLvs(ctx)).map((k) => `${k.kind} ${k.name}`).sort();
    assert.deepEqual(
      kinds,
      [
        `snapshot ${thickSnap}`,
        `snapshot ${thinSnap}`,
        `volume ${thickOrigin}`,
        `volume ${thinOrigin}`,
      ].sort(),
    );
    assert.equal(devicePath(ctx, thickSnap), `/dev/${ctx.vg}/_snapshot-${thickSnap.slice(9)}`);
  });

  test('an existing thin pool is kept: ensureThinPool runs only lvs', async () => {
    const { ctx: watched, calls } = counting(ctx);
    assert.equal(await ensureThinPool(watched, { percentFree: 100 }), false);
    assert.deepEqual(
      calls.map((c) => c.argv[0]),
      ['lvs'],
    );
  });

  test('thin LVs and thin snapshots need device-mapper: refused, typed, nothing made', async () => {
    const name = vol();
    await assert.rejects(createThin(ctx, name, 1), isLvmError('activation-required'));
    await assert.rejects(
      createSnapshot(ctx, snap(), thinOrigin, 1),
      isLvmError('activation-required'),
    );
    assert.equal((await lvs(ctx)).length, 5);
  });

  test('a thick origin with snapshots is refused, and nothing is removed', async () => {
    await assert.rejects(remove(ctx, thickOrigin), isLvmError('in-use', /has snapshots/));
    assert.equal((await lvs(ctx)).length, 5);
  });

  test('a thin origin, then its thin snapshot (independent), are removed; the pool queues both', async () => {
    assert.equal(await remove(ctx, thinOrigin), true, 'a thin snapshot does not hold its origin');
    assert.equal(await findLv(ctx, thinOrigin), null);
    const left = await findLv(ctx, lv(thinSnap));
    assert.equal(left?.type, 'thin', 'the thin snapshot stays, whole');
    assert.equal(left?.sizeBytes, GiB);
    assert.equal(await remove(ctx, thinSnap), true);
    assert.equal(await findLv(ctx, lv(thinSnap)), null);
    const text = metadataText(ctx.vg);
    for (const id of [1, 2])
      assert.match(text, new RegExp(`delete = ${id}\\b`), `pool deletes ${id}`);
    assert.equal((await findLv(ctx, `${ctx.vg}-pool`))?.type, 'thin-pool', 'the pool stays');
  });

  test('a thick snapshot is removed and its origin is a plain LV again', async () => {
    assert.equal(await remove(ctx, thickSnap), true);
    assert.equal(await findLv(ctx, lv(thickSnap)), null);
    assert.equal((await findLv(ctx, thickOrigin))?.type, 'linear');
  });

  test('why remove guards origins: lvremove -f of a thick origin takes its snapshots along', () => {
    const origin = vol();
    const cow = lv(snap());
    lvmTool('lvcreate', ['-an', '-Zn', '-n', origin, '-L', '8m', ctx.vg]);
    lvmTool('lvcreate', ['-an', '-Zn', '-n', cow, '-L', '4m', ctx.vg]);
    restoreLayout(ctx.vg, { snapshots: [{ cow, origin, extents: 2 }] });
    lvmTool('lvremove', ['-f', `${ctx.vg}/${origin}`]);
    const left = lvmTool('lvs', ['--noheadings', '-o', 'lv_name', ctx.vg]);
    assert.ok(!left.includes(cow), `LVM removed the snapshot with its origin: ${left}`);
  });
});
