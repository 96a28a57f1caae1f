/**
 * Tool versions for agent `configurations`: `<tool> --version` and the first version
 * number in its output.
 *
 * Invariant: a missing tool is reported as null (the agent still runs and says so), any
 * other failure is a CommandError the caller sees.
 */
import { CommandError, type CommandRunner } from '../core/exec.ts';

const VERSION = /(\d+\.\d+(?:\.\d+)?)/;

export async function toolVersion(
  runner: CommandRunner,
  argv: readonly string[],
): Promise<string | null> {
  try {
    const { stdout, stderr } = await runner.run({ argv, timeoutMs: 5000 });
    return VERSION.exec(`${stdout}\n${stderr}`)?.[1] ?? null;
  } catch (e) {
    if (e instanceof CommandError && e.exitCode === null && /ENOENT/.test(e.stderr)) return null;
    throw e;
  }
}
