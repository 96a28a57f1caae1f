/**
 * `lvs` in LVM's own vocabulary: the logical volumes of one volume group, typed.
 *
 * Invariants: read-only; sizes are exact bytes (`--units b --nosuffix`), never rounded;
 * every row is validated before anyone trusts it (a field that is not what LVM documents
 * is an error naming the field, not a guess); the LV's type comes from lv_attr's first
 * character (lvs(8): `o` origin, `s` snapshot, `t` thin pool, `V` thin, `-` linear), so a
 * caller can tell an origin with snapshots from a plain LV without a second command.
 */
import { type LvmContext, LvmError, runLvm } from './context.ts';

export type LvType = 'linear' | 'origin' | 'snapshot' | 'thin-pool' | 'thin' | 'other';

export interface LogicalVolume {
  /** The LV's name in LVM (`_snapshot-…` for a snapshot: see names.ts). */
  name: string;
  sizeBytes: number;
  /** lvs(8)'s lv_attr, 10 characters. */
  attr: string;
  type: LvType;
  /** The thin pool of a thin LV. */
  pool: string | null;
  /** The origin LV of a snapshot (thick or thin). */
  origin: string | null;
  /** How full a thin pool, thin LV or snapshot is; null when LVM can't tell (inactive). */
  dataPercent: number | null;
}

const FIELDS = 'lv_name,lv_size,lv_attr,pool_lv,origin,data_percent';
const TYPES: Record<string, LvType> = {
  '-': 'linear',
  o: 'origin',
  s: 'snapshot',
  t: 'thin-pool',
  V: 'thin',
};

function field(row: Record<string, unknown>, key: string): string {
  const v = row[key];
  if (typeof v !== 'string')
    throw new LvmError('failed', `lvs: ${key} is not a string: ${JSON.stringify(v)}`);
  return v;
}

function parseRow(row: Record<string, unknown>): LogicalVolume {
  const name = field(row, 'lv_name');
  const size = field(row, 'lv_size');
  const attr = field(row, 'lv_attr');
  if (!/^[0-9]+$/.test(size))
    throw new LvmError('failed', `lvs: lv_size of ${name} is ${JSON.stringify(size)}`);
  if (attr.length < 6)
    throw new LvmError('failed', `lvs: lv_attr of ${name} is ${JSON.stringify(attr)}`);
  const percent = field(row, 'data_percent');
  return {
    name,
    sizeBytes: Number(size),
    attr,
    type: TYPES[attr[0] as string] ?? 'other',
    pool: field(row, 'pool_lv') || null,
    origin: field(row, 'origin') || null,
    dataPercent: percent === '' ? null : Number(percent),
  };
}

/** Parses `lvs --reportformat json` output. Pure. */
export function parseLvs(stdout: string): LogicalVolume[] {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch (e) {
    throw new LvmError('failed', `lvs: output is not JSON: ${(e as Error).message}`);
  }
  const report = (json as { report?: { lv?: unknown }[] } | null)?.report;
  if (!Array.isArray(report)) throw new LvmError('failed', 'lvs: no "report" in the output');
  return report.flatMap((r) => {
    if (!Array.isArray(r?.lv)) throw new LvmError('failed', 'lvs: a report has no "lv" list');
    return (r.lv as Record<string, unknown>[]).map(parseRow);
  });
}

/** The visible LVs of the context's volume group (a thin pool's _tdata/_tmeta are not). */
export async function lvs(ctx: LvmContext): Promise<LogicalVolume[]> {
  const args = ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', FIELDS, ctx.vg];
  const { stdout } = await runLvm(ctx, 'lvs', args, `lvs ${ctx.vg}`);
  return parseLvs(stdout);
}

/** One LV of the group by its LVM name, or null. */
export async function findLv(ctx: LvmContext, name: string): Promise<LogicalVolume | null> {
  return (await lvs(ctx)).find((lv) => lv.name === name) ?? null;
}
