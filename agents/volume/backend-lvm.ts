/**
 * The LVM backend: each volume an LV `volume-<id>` in [volume] volume_group, thick or thin
 * in the group's thin pool `<vg>-pool` (made on first use, 95% of the group's free space,
 * as Cinder does), each snapshot `lvcreate --snapshot` of its volume (host/lvm/lv.ts).
 *
 * Invariants:
 * - nothing but `volume-<uuid>` / `_snapshot-<uuid>` LVs is listed or changed, and every
 *   LVM command goes through host/lvm (names checked, activation applied the same way);
 * - a volume from a source is a thin snapshot of it (thin), or a new thick LV with the
 *   source's blocks copied by `dd` (thick, activation required: plan.ts refuses the copy
 *   without it), then grown to its size;
 * - zeroing writes the device (or a thick snapshot's COW device, which holds the origin's
 *   old blocks) with O_DIRECT: only with activation, only thick (plan.ts decides).
 */
import type { CommandRunner } from '../../core/exec.ts';
import { type LvmContext, LvmError, runLvm } from '../../host/lvm/context.ts';
import {
  createSnapshot,
  createThick,
  createThin,
  ensureThinPool,
  extend,
  kumoLvs,
  remove,
} from '../../host/lvm/lv.ts';
import { findLv } from '../../host/lvm/lvs.ts';
import { lvName, thinPoolName } from '../../host/lvm/names.ts';
import { volumeGroupOf } from '../../host/lvm/vgs.ts';
import type { Capacity, DataBackend } from './backend.ts';
import type { DataSource } from './desired.ts';
import type { VolumeSettings } from './settings.ts';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const DD_TIMEOUT_MS = 24 * 3600_000;
const gb = (bytes: number) => Math.floor((bytes / GIB) * 100) / 100;

/** device-mapper's name of an LV's device (`-` doubled in each part). */
const dmName = (vg: string, lv: string) =>
  `/dev/mapper/${vg.replaceAll('-', '--')}-${lv.replaceAll('-', '--')}`;

/** A group that does not exist (yet) holds nothing: lvs's 'not-found' as `absent`. */
async function orAbsent<T>(read: Promise<T>, absent: T): Promise<T> {
  try {
    return await read;
  } catch (e) {
    if (e instanceof LvmError && e.kind === 'not-found') return absent;
    throw e;
  }
}

async function sizeOf(ctx: LvmContext, name: string): Promise<number | null> {
  return (await orAbsent(findLv(ctx, lvName(name)), null))?.sizeBytes ?? null;
}

async function dd(ctx: LvmContext, from: string, to: string, bytes: number): Promise<void> {
  const argv = ['dd', `if=${from}`, `of=${to}`, 'bs=1M', `count=${Math.ceil(bytes / MIB)}`];
  await ctx.runner.run({ argv: [...argv, 'oflag=direct', 'conv=fsync'], timeoutMs: DD_TIMEOUT_MS });
}

async function copy(
  ctx: LvmContext,
  thin: boolean,
  name: string,
  source: DataSource,
  sizeGb: number,
) {
  const src = await findLv(ctx, lvName(source.name));
  if (!src)
    throw new LvmError(
      'not-found',
      `${source.kind} ${ctx.vg}/${lvName(source.name)} does not exist`,
    );
  const lv = lvName(name);
  if (thin) {
    const flags = ctx.activation ? ['--yes', '-kn'] : ['-an'];
    await runLvm(
      ctx,
      'lvcreate',
      [...flags, '--snapshot', '-n', lv, `${ctx.vg}/${src.name}`],
      `lvcreate ${lv} from ${src.name}`,
    );
  } else {
    await createThick(ctx, name, Math.max(sizeGb, Math.ceil(src.sizeBytes / GIB)));
    await dd(ctx, `/dev/${ctx.vg}/${src.name}`, `/dev/${ctx.vg}/${lv}`, src.sizeBytes);
  }
  await extend(ctx, name, sizeGb);
}

async function zero(ctx: LvmContext, name: string): Promise<void> {
  const lv = await findLv(ctx, lvName(name));
  if (!lv) return;
  const device =
    lv.type === 'snapshot' ? `${dmName(ctx.vg, lv.name)}-cow` : `/dev/${ctx.vg}/${lv.name}`;
  await dd(ctx, '/dev/zero', device, lv.sizeBytes);
}

async function capacity(ctx: LvmContext, thin: boolean): Promise<Capacity> {
  const facts = { volume_group: ctx.vg, lvm_type: thin ? 'thin' : 'default' };
  const vg = await volumeGroupOf(ctx);
  if (!vg) return { totalGb: 0, freeGb: 0, facts: { ...facts, volume_group_present: false } };
  const present = { ...facts, volume_group_present: true };
  if (!thin) return { totalGb: vg.sizeGb, freeGb: vg.freeGb, facts: present };
  const pool = await findLv(ctx, thinPoolName(ctx.vg));
  if (!pool)
    return { totalGb: vg.sizeGb, freeGb: Math.floor(vg.freeGb * 0.95 * 100) / 100, facts: present };
  const used = ((pool.dataPercent ?? 0) / 100) * pool.sizeBytes;
  return { totalGb: gb(pool.sizeBytes), freeGb: gb(pool.sizeBytes - used), facts: present };
}

export function lvmBackend(s: VolumeSettings, runner: CommandRunner): DataBackend {
  const ctx: LvmContext = { runner, vg: s.vg, activation: s.activation };
  const thin = s.lvmType === 'thin';
  return {
    list: async () => (await orAbsent(kumoLvs(ctx), [])).map((k) => k.name),
    sizeOf: (name) => sizeOf(ctx, name),
    async create(name, sizeGb) {
      if (!thin) return createThick(ctx, name, sizeGb);
      await ensureThinPool(ctx, { percentFree: 95 });
      await createThin(ctx, name, sizeGb);
    },
    copy: (name, source, sizeGb) => copy(ctx, thin, name, source, sizeGb),
    snapshot: (name, origin, sizeGb) => createSnapshot(ctx, name, origin, sizeGb),
    async extend(name, sizeGb) {
      await extend(ctx, name, sizeGb);
    },
    zero: (name) => zero(ctx, name),
    async remove(name) {
      await remove(ctx, name);
    },
    capacity: () => capacity(ctx, thin),
  };
}
