/**
 * How Kumo runs LVM commands: one volume group, one runner, one activation setting, and
 * LVM's failures turned into typed errors.
 *
 * Invariants: every LVM command is built by `lvmArgv`, so `activation: false` reaches each
 * of them the same way (`--config global{activation=0}`, one argv element: LVM edits
 * metadata only and never talks to device-mapper, which a host without it — this lab —
 * needs); a failed command raises an `LvmError` whose `kind` says why (no space, needs
 * device-mapper, not found, exists, in use) and whose message keeps LVM's own words, so
 * a volume's status_reason says what the host said.
 */
import { CommandError, type CommandResult, type CommandRunner } from '../../core/exec.ts';

export interface LvmContext {
  runner: CommandRunner;
  /** The volume group every command acts on ([volume] volume_group). */
  vg: string;
  /** false: metadata only (`global{activation=0}`), LVs are never activated. */
  activation: boolean;
}

export type LvmErrorKind =
  /** A name or size that never reached LVM. */
  | 'invalid'
  | 'insufficient-space'
  /** LVM needs device-mapper for this (thin pools, thin LVs, snapshots, resizing some). */
  | 'activation-required'
  | 'not-found'
  | 'exists'
  /** Open by a user (a target), or other LVs depend on it (snapshots, thin LVs). */
  | 'in-use'
  /** extend to a size smaller than the LV's. */
  | 'shrink'
  | 'failed';

export class LvmError extends Error {
  override name = 'LvmError';
  readonly kind: LvmErrorKind;
  constructor(kind: LvmErrorKind, message: string, cause?: CommandError) {
    super(message, cause === undefined ? undefined : { cause });
    this.kind = kind;
  }
}

export const NO_ACTIVATION = 'global{activation=0}';
const TIMEOUT_MS = 60_000;

/** LVM's rule for VG names (lvm(8) VALID NAMES), and never an option's leading dash. */
const VG_NAME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$/;

/** `cmd [--config global{activation=0}] args…`: the one place the activation option lives. */
export function lvmArgv(ctx: Pick<LvmContext, 'activation' | 'vg'>, cmd: string, args: string[]) {
  if (!VG_NAME.test(ctx.vg) || ctx.vg === '.' || ctx.vg === '..')
    throw new LvmError('invalid', `volume group name ${JSON.stringify(ctx.vg)} is not valid`);
  return [cmd, ...(ctx.activation ? [] : ['--config', NO_ACTIVATION]), ...args];
}

const KINDS: [RegExp, LvmErrorKind][] = [
  [
    /insufficient free space|Insufficient free extents|insufficient suitable allocatable/i,
    'insufficient-space',
  ],
  [
    /without using device-mapper|device-mapper target\(s\) not detected|Cannot activate/i,
    'activation-required',
  ],
  [/already exists/i, 'exists'],
  [/Failed to find logical volume|not found|doesn't exist/i, 'not-found'],
  [/in use|is used by|open count/i, 'in-use'],
];

/** LVM's own error lines, without the warnings every command prints with activation off. */
export function lvmErrorLines(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^WARNING:|^File descriptor \d+ .* leaked/.test(l))
    .join(' | ');
}

/** Which kind of failure LVM's stderr describes. Pure. */
export function classifyLvmStderr(stderr: string): LvmErrorKind {
  const lines = lvmErrorLines(stderr);
  return KINDS.find(([re]) => re.test(lines))?.[1] ?? 'failed';
}

/** Runs one LVM command; a failure becomes an LvmError of the kind its stderr says. */
export async function runLvm(
  ctx: LvmContext,
  cmd: string,
  args: string[],
  what: string,
): Promise<CommandResult> {
  const argv = lvmArgv(ctx, cmd, args);
  try {
    return await ctx.runner.run({ argv, timeoutMs: TIMEOUT_MS });
  } catch (e) {
    if (!(e instanceof CommandError) || e.timedOut || e.exitCode === null) throw e;
    const said = lvmErrorLines(e.stderr) || `${cmd} exited ${e.exitCode}`;
    throw new LvmError(classifyLvmStderr(e.stderr), `${what}: ${said}`, e);
  }
}
