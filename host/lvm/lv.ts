/**
 * Kumo's volumes and snapshots as LVM logical volumes: thick LVs, a thin pool and thin
 * LVs in it, snapshots (`lvcreate --snapshot`), extend and remove.
 *
 * Invariants:
 * - nothing runs before its names and sizes are checked (names.ts): a bad one is an
 *   LvmError 'invalid' and no command at all;
 * - every command is planned by a pure function (`plan*`: argv from the observed LVs) and
 *   run by `execute`, so what LVM is asked to do is testable without LVM;
 * - nothing is lost by accident: `remove` refuses an LV that thick snapshots name as origin
 *   (`lvremove -f` of a thick origin silently removes its snapshots too, LVM 2.03; thin
 *   snapshots are independent thin LVs and stay),
 *   never touches the thin pool, and `extend` never shrinks;
 * - LVM decides whether there is room: its refusal ("Volume group … has insufficient free
 *   space") comes back as LvmError 'insufficient-space', and lvcreate leaves no LV then.
 */
import { type LvmContext, LvmError, lvmArgv, runLvm } from './context.ts';
import { findLv, type LogicalVolume, lvs } from './lvs.ts';
import {
  checkSizeGb,
  type KumoLvKind,
  kumoName,
  lvName,
  snapshotLvName,
  thinPoolName,
  volumeLvName,
} from './names.ts';

/** One LVM command, planned: what to run and how to name it in an error. */
export interface LvmCommand {
  cmd: 'lvcreate' | 'lvextend' | 'lvremove';
  args: string[];
  what: string;
}

export type PoolSize = { sizeGb: number } | { percentFree: number };

/** New LVs are not activated without device-mapper; `-Zn` because zeroing needs it. */
const createFlags = (ctx: LvmContext, thick: boolean) =>
  ctx.activation ? ['--yes'] : thick ? ['-an', '-Zn'] : ['-an'];

export function planThick(ctx: LvmContext, name: string, sizeGb: number): LvmCommand {
  const lv = volumeLvName(name);
  checkSizeGb(sizeGb);
  const args = [...createFlags(ctx, true), '-n', lv, '-L', `${sizeGb}g`, ctx.vg];
  return { cmd: 'lvcreate', args, what: `lvcreate ${lv} (${sizeGb} GiB) in ${ctx.vg}` };
}

export function planThinPool(ctx: LvmContext, size: PoolSize): LvmCommand {
  const pool = thinPoolName(ctx.vg);
  let extent: string[];
  if ('sizeGb' in size) extent = ['-L', `${checkSizeGb(size.sizeGb, 'thin pool size')}g`];
  else if (Number.isInteger(size.percentFree) && size.percentFree >= 1 && size.percentFree <= 100)
    extent = ['-l', `${size.percentFree}%FREE`];
  else throw new LvmError('invalid', `percentFree must be 1..100, got ${size.percentFree}`);
  const args = [...createFlags(ctx, false), '--type', 'thin-pool', ...extent, '-n', pool, ctx.vg];
  return { cmd: 'lvcreate', args, what: `lvcreate thin pool ${pool} in ${ctx.vg}` };
}

export function planThin(ctx: LvmContext, name: string, sizeGb: number): LvmCommand {
  const lv = volumeLvName(name);
  checkSizeGb(sizeGb);
  const pool = thinPoolName(ctx.vg);
  const args = [...createFlags(ctx, false), '--type', 'thin', '-V', `${sizeGb}g`];
  args.push('--thinpool', pool, '-n', lv, ctx.vg);
  return { cmd: 'lvcreate', args, what: `lvcreate thin ${lv} (${sizeGb} GiB) in ${pool}` };
}

/**
 * A snapshot of `origin` (observed): thin origins get a thin snapshot (no size, and `-kn`
 * so it activates like any LV), thick ones a COW area of `sizeGb`.
 */
export function planSnapshot(
  ctx: LvmContext,
  name: string,
  origin: LogicalVolume,
  sizeGb: number,
): LvmCommand {
  const lv = snapshotLvName(name);
  const originName = kumoName(origin.name);
  if (originName?.kind !== 'volume' || !['linear', 'origin', 'thin'].includes(origin.type))
    throw new LvmError('invalid', `${origin.name} (${origin.type}) can't be a snapshot's origin`);
  const source = `${ctx.vg}/${origin.name}`;
  const what = `lvcreate snapshot ${lv} of ${source}`;
  if (origin.type === 'thin') {
    const flags = ctx.activation ? ['--yes', '-kn'] : ['-an'];
    return { cmd: 'lvcreate', args: [...flags, '--snapshot', '-n', lv, source], what };
  }
  checkSizeGb(sizeGb, 'snapshot size');
  const args = [...createFlags(ctx, false), '--snapshot', '-L', `${sizeGb}g`, '-n', lv, source];
  return { cmd: 'lvcreate', args, what };
}

/** null: already that size. */
export function planExtend(ctx: LvmContext, lv: LogicalVolume, sizeGb: number): LvmCommand | null {
  checkSizeGb(sizeGb);
  const bytes = sizeGb * 1024 ** 3;
  if (lv.sizeBytes === bytes) return null;
  if (lv.sizeBytes > bytes)
    throw new LvmError(
      'shrink',
      `${lv.name} is ${lv.sizeBytes} bytes: won't shrink it to ${sizeGb} GiB`,
    );
  const args = ['-L', `${sizeGb}g`, `${ctx.vg}/${lv.name}`];
  return { cmd: 'lvextend', args, what: `lvextend ${lv.name} to ${sizeGb} GiB` };
}

/**
 * null: nothing to remove. Refuses the origin of thick (COW) snapshots, which lvremove -f
 * would take along; a thin origin goes alone (its thin snapshots are independent thin LVs:
 * a volume made from a snapshot or cloned from a volume, thin, must not pin its source).
 */
export function planRemove(ctx: LvmContext, all: LogicalVolume[], lv: string): LvmCommand | null {
  if (!all.some((x) => x.name === lv)) return null;
  const dependents = all.filter((x) => x.origin === lv && x.type === 'snapshot').map((x) => x.name);
  if (dependents.length > 0)
    throw new LvmError(
      'in-use',
      `${lv} has snapshots (${dependents.join(', ')}): remove them first`,
    );
  return { cmd: 'lvremove', args: ['-f', `${ctx.vg}/${lv}`], what: `lvremove ${ctx.vg}/${lv}` };
}

/** The argv a planned command runs as. Pure. */
export const commandArgv = (ctx: LvmContext, c: LvmCommand) => lvmArgv(ctx, c.cmd, c.args);

async function execute(ctx: LvmContext, c: LvmCommand): Promise<void> {
  await runLvm(ctx, c.cmd, c.args, c.what);
}

export async function createThick(ctx: LvmContext, name: string, sizeGb: number): Promise<void> {
  await execute(ctx, planThick(ctx, name, sizeGb));
}

/** Creates the group's thin pool unless there is one; false when it was there. */
export async function ensureThinPool(ctx: LvmContext, size: PoolSize): Promise<boolean> {
  const command = planThinPool(ctx, size);
  const pool = await findLv(ctx, thinPoolName(ctx.vg));
  if (pool?.type === 'thin-pool') return false;
  if (pool)
    throw new LvmError('exists', `${pool.name} exists and is not a thin pool (${pool.attr})`);
  await execute(ctx, command);
  return true;
}

export async function createThin(ctx: LvmContext, name: string, sizeGb: number): Promise<void> {
  await execute(ctx, planThin(ctx, name, sizeGb));
}

/** `originName` is the volume's Kumo name; `sizeGb` is the COW size of a thick one. */
export async function createSnapshot(
  ctx: LvmContext,
  name: string,
  originName: string,
  sizeGb: number,
): Promise<void> {
  snapshotLvName(name);
  const originLv = volumeLvName(originName);
  const origin = await findLv(ctx, originLv);
  if (!origin) throw new LvmError('not-found', `origin ${ctx.vg}/${originLv} does not exist`);
  await execute(ctx, planSnapshot(ctx, name, origin, sizeGb));
}

/** Grows a volume to `sizeGb`; false when it already is that size. */
export async function extend(ctx: LvmContext, name: string, sizeGb: number): Promise<boolean> {
  const lv = volumeLvName(name);
  checkSizeGb(sizeGb);
  const found = await findLv(ctx, lv);
  if (!found) throw new LvmError('not-found', `${ctx.vg}/${lv} does not exist`);
  const command = planExtend(ctx, found, sizeGb);
  if (command) await execute(ctx, command);
  return command !== null;
}

/**
 * Removes a volume's or snapshot's LV; false when there was none. A failed lvremove is
 * judged by what it left: without device-mapper, LVM drops a thin LV from the metadata,
 * queues the pool's `delete` message for the pool's next activation and still exits 5
 * ("Cannot activate thin pool"); the LV is gone, which is what was asked.
 */
export async function remove(ctx: LvmContext, name: string): Promise<boolean> {
  const lv = lvName(name);
  const command = planRemove(ctx, await lvs(ctx), lv);
  if (!command) return false;
  try {
    await execute(ctx, command);
  } catch (e) {
    if (!(e instanceof LvmError) || (await findLv(ctx, lv)) !== null) throw e;
  }
  return true;
}

/** The block device of an active LV. */
export const devicePath = (ctx: LvmContext, name: string) => `/dev/${ctx.vg}/${lvName(name)}`;

export interface KumoLv {
  kind: KumoLvKind;
  id: string;
  /** Kumo's name (`volume-…`, `snapshot-…`). */
  name: string;
  lv: LogicalVolume;
}

/** The group's LVs that are Kumo's volumes and snapshots (what a resync compares). */
export async function kumoLvs(ctx: LvmContext): Promise<KumoLv[]> {
  return (await lvs(ctx)).flatMap((lv) => {
    const k = kumoName(lv.name);
    return k ? [{ ...k, lv }] : [];
  });
}
