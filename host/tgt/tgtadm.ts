/**
 * tgtadm in tgt's own vocabulary: targets, LUNs, CHAP accounts and initiator ACLs on one
 * tgtd, reached through its control port (`-C N`; 0 = tgtd's default socket).
 *
 * Invariants:
 * - every argument is validated (args.ts) before any command runs: a bad one is a
 *   TgtArgumentError and the runner sees nothing;
 * - the operations are strict, as tgtadm is: creating what exists (a target, an account, an
 *   account binding, an ACL entry) or removing what does not fails with a CommandError.
 *   Callers observe first (`showTargets`, `showAccounts`) and plan only what is missing —
 *   the agents' observe → plan pattern; there are no "ensure" helpers. `tgtadmRefusal`
 *   names tgtadm's reason when a caller lost a race and wants to tell which;
 * - a CHAP secret never leaves in an error: a failed `newAccount` raises a CommandError
 *   whose argv and message show `********` for it;
 * - `showTargets` is the whole truth of a tgtd: tgtd keeps nothing across a restart, so an
 *   empty answer after one is normal and a caller re-creates from its desired state.
 */
import { CommandError, type CommandRunner, type CommandSpec } from '../../core/exec.ts';
import {
  bindAccountCommand,
  bindInitiatorCommand,
  deleteAccountCommand,
  deleteLunCommand,
  deleteTargetCommand,
  newAccountCommand,
  newLunCommand,
  newTargetCommand,
  showAccountsCommand,
  showTargetsCommand,
  unbindAccountCommand,
  unbindInitiatorCommand,
} from './argv.ts';
import { parseAccounts, parseTargets, type TgtTarget } from './show.ts';

export { TgtArgumentError } from './args.ts';
export { freeTid, type TgtLun, type TgtSession, type TgtTarget } from './show.ts';

/** One tgtd: the runner that runs tgtadm and the control port it listens on. */
export interface TgtControl {
  runner: CommandRunner;
  controlPort: number;
}

async function run(spec: CommandSpec, t: TgtControl): Promise<void> {
  await t.runner.run(spec);
}

export const newTarget = async (t: TgtControl, tid: number, iqn: string) =>
  run(newTargetCommand(t.controlPort, tid, iqn), t);

/** Without `force` tgtd refuses while an initiator is connected ("still active"). */
export const deleteTarget = async (t: TgtControl, tid: number, force: boolean) =>
  run(deleteTargetCommand(t.controlPort, tid, force), t);

export const newLun = async (t: TgtControl, tid: number, lun: number, backingStorePath: string) =>
  run(newLunCommand(t.controlPort, tid, lun, backingStorePath), t);

export const deleteLun = async (t: TgtControl, tid: number, lun: number) =>
  run(deleteLunCommand(t.controlPort, tid, lun), t);

/** A failure's CommandError names the password as `********` (its message becomes a status). */
export async function newAccount(t: TgtControl, user: string, secret: string): Promise<void> {
  const spec = newAccountCommand(t.controlPort, user, secret);
  try {
    await run(spec, t);
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    const argv = spec.argv.map((a, i) => (spec.argv[i - 1] === '--password' ? '********' : a));
    throw new CommandError({ ...spec, argv }, e);
  }
}

/** Also unbinds the account from every target that has it. */
export const deleteAccount = async (t: TgtControl, user: string) =>
  run(deleteAccountCommand(t.controlPort, user), t);

export const bindAccount = async (t: TgtControl, tid: number, user: string) =>
  run(bindAccountCommand(t.controlPort, tid, user), t);

export const unbindAccount = async (t: TgtControl, tid: number, user: string) =>
  run(unbindAccountCommand(t.controlPort, tid, user), t);

/** Admits the initiator (tgt's ACL); with no ACL entry at all a target admits nobody. */
export const bindInitiator = async (t: TgtControl, tid: number, initiatorName: string) =>
  run(bindInitiatorCommand(t.controlPort, tid, initiatorName), t);

/** Refuses the initiator's next login; a session it already has stays connected. */
export const unbindInitiator = async (t: TgtControl, tid: number, initiatorName: string) =>
  run(unbindInitiatorCommand(t.controlPort, tid, initiatorName), t);

export async function showTargets(t: TgtControl): Promise<TgtTarget[]> {
  const { stdout } = await t.runner.run(showTargetsCommand(t.controlPort));
  return parseTargets(stdout);
}

export async function showAccounts(t: TgtControl): Promise<string[]> {
  const { stdout } = await t.runner.run(showAccountsCommand(t.controlPort));
  return parseAccounts(stdout);
}

/** `no-daemon`: no tgtd answers on the control port (down, or restarting). */
export type TgtRefusal = 'exists' | 'not-found' | 'active' | 'invalid' | 'no-daemon';

const REFUSALS: [RegExp, TgtRefusal][] = [
  [/to (the )?tgt daemon/, 'no-daemon'],
  [/already exists/, 'exists'],
  [/can't find|does not exist/, 'not-found'],
  [/still active/, 'active'],
  [/invalid request/, 'invalid'],
];

/**
 * Why tgtadm refused (its stderr: exit 22, or 107 "failed to send request hdr to tgt
 * daemon" when no tgtd answers), or null when `e` is no tgtadm refusal.
 */
export function tgtadmRefusal(e: unknown): TgtRefusal | null {
  if (!(e instanceof CommandError) || e.argv[0] !== 'tgtadm' || e.exitCode === null) return null;
  return REFUSALS.find(([re]) => re.test(e.stderr))?.[1] ?? null;
}
