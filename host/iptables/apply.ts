/**
 * Observe, plan and apply one agent's iptables model in one namespace.
 *
 * observe = one `iptables-save` (or `ip6tables-save`) run read-only in the namespace;
 * plan = pure: no step when the namespace already holds exactly the model under the prefix,
 * otherwise a single `iptables-restore --noflush` step whose stdin is render()'s text;
 * apply = validate, observe, plan, run the step.
 *
 * Invariants: the model is validated before any command runs, so a bad token never reaches
 * a process; applying the same model twice runs `iptables-save` once and nothing else; all
 * changes of one apply are one restore process (each table committed atomically), and only
 * our chains and our jumps from builtin chains change.
 */
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { type IpFamily, type IptablesModel, type OwnedState, validateModel } from './model.ts';
import { differences, render } from './render.ts';
import { ownedState, parseSave } from './save.ts';

/** A CommandSpec with the reason it is needed (ARCHITECTURE §4 steps are data). */
export type IptablesStep = CommandSpec & { why: string };

const TOOLS = {
  4: { save: 'iptables-save', restore: 'iptables-restore' },
  6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
} as const;

/** `iptables-save` (all tables) in the namespace. */
export function saveCommand(family: IpFamily, netns?: string): CommandSpec {
  return { argv: [TOOLS[family].save], ...(netns === undefined ? {} : { netns }) };
}

/** What the namespace holds under `prefix`: one read-only `iptables-save`. */
export async function observeIptables(
  runner: CommandRunner,
  opts: { family: IpFamily; prefix: string; netns?: string },
): Promise<OwnedState> {
  const { stdout } = await runner.run(saveCommand(opts.family, opts.netns));
  return ownedState(parseSave(stdout), opts.family, opts.prefix);
}

/** [] when observed equals desired; else the one restore that makes it so. */
export function planIptables(
  desired: OwnedState,
  observed: OwnedState,
  netns?: string,
): IptablesStep[] {
  const diff = differences(desired, observed);
  if (diff.size === 0) return [];
  const why = [...diff].map(([table, reasons]) => `${table}: ${reasons.join(', ')}`).join('; ');
  return [
    {
      argv: [TOOLS[desired.family].restore, '--noflush'],
      ...(netns === undefined ? {} : { netns }),
      stdin: render(desired, observed),
      why,
    },
  ];
}

/** Validates the model, observes the namespace, and runs the plan (zero or one command). */
export async function applyIptables(
  runner: CommandRunner,
  model: IptablesModel,
  netns?: string,
): Promise<IptablesStep[]> {
  const desired = validateModel(model);
  const observed = await observeIptables(runner, {
    family: desired.family,
    prefix: desired.prefix,
    ...(netns === undefined ? {} : { netns }),
  });
  const steps = planIptables(desired, observed, netns);
  for (const step of steps) await runner.run(step);
  return steps;
}
