/**
 * `vgs` in LVM's own vocabulary: the size and free space of one volume group.
 *
 * Invariant: read-only; an absent volume group is `null`, not an error, so a volume agent
 * on a host whose VG is not created yet reports that honestly instead of crashing.
 */
import { CommandError, type CommandRunner } from '../../core/exec.ts';
import { type LvmContext, lvmArgv } from './context.ts';

export interface VolumeGroup {
  name: string;
  sizeGb: number;
  freeGb: number;
}

interface VgsReport {
  report: { vg: { vg_name: string; vg_size: string; vg_free: string }[] }[];
}

const ARGS = [
  '--reportformat',
  'json',
  '--units',
  'g',
  '--nosuffix',
  '-o',
  'vg_name,vg_size,vg_free',
];

/** The group `name`, queried with LVM's defaults (activation on). */
export function volumeGroup(runner: CommandRunner, name: string): Promise<VolumeGroup | null> {
  return volumeGroupOf({ runner, vg: name, activation: true });
}

/** The context's group, with its activation setting. */
export async function volumeGroupOf(ctx: LvmContext): Promise<VolumeGroup | null> {
  const argv = lvmArgv(ctx, 'vgs', [...ARGS, ctx.vg]);
  try {
    const { stdout } = await ctx.runner.run({ argv, timeoutMs: 10_000 });
    const vg = (JSON.parse(stdout) as VgsReport).report[0]?.vg[0];
    if (!vg) return null;
    return { name: vg.vg_name, sizeGb: Number(vg.vg_size), freeGb: Number(vg.vg_free) };
  } catch (e) {
    if (e instanceof CommandError && e.exitCode === 5 && /not found/i.test(e.stderr)) return null;
    throw e;
  }
}
