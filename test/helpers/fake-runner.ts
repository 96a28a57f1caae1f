/**
 * FakeRunner: a CommandRunner scripted with the commands a test expects, for agent tests
 * of our own apply logic (ARCHITECTURE §9). Every tool module also has a test against
 * the real tool; this only checks what the agent asks the tools to do.
 *
 * Invariants: commands must arrive in the scripted order with exactly the scripted argv,
 * netns and stdin (when scripted); an unexpected command throws, naming it and what was
 * expected instead; `verify()` fails when an expectation was never used; a scripted
 * failure is raised as the real runner would, a CommandError with argv and stderr.
 */
import assert from 'node:assert/strict';
import {
  CommandError,
  type CommandResult,
  type CommandRunner,
  type CommandSpec,
} from '../../core/exec.ts';

export interface Expectation {
  argv: readonly string[];
  netns?: string;
  /** Checked when given. */
  stdin?: string;
  /** What the command prints (default ''). */
  stdout?: string;
  /** Fail like the real runner: a CommandError with this exit code and stderr. */
  fail?: { exitCode: number; stderr: string };
}

const show = (spec: { argv: readonly string[]; netns?: string | undefined }) =>
  `${spec.netns ? `[netns ${spec.netns}] ` : ''}${spec.argv.join(' ')}`;

export class FakeRunner implements CommandRunner {
  readonly calls: CommandSpec[] = [];
  private readonly queue: Expectation[] = [];

  /** Adds expectations, in the order the commands must come. */
  expect(...expectations: Expectation[]): this {
    this.queue.push(...expectations);
    return this;
  }

  async run(spec: CommandSpec): Promise<CommandResult> {
    this.calls.push(spec);
    const next = this.queue.shift();
    if (!next) throw new Error(`FakeRunner: unexpected command ${show(spec)} (none expected)`);
    const same =
      JSON.stringify(next.argv) === JSON.stringify(spec.argv) && next.netns === spec.netns;
    if (!same)
      throw new Error(`FakeRunner: unexpected command ${show(spec)}; expected ${show(next)}`);
    if (next.stdin !== undefined) assert.equal(String(spec.stdin ?? ''), next.stdin, show(spec));
    if (next.fail)
      throw new CommandError(spec, {
        exitCode: next.fail.exitCode,
        signal: null,
        stderr: next.fail.stderr,
        timedOut: false,
      });
    return { stdout: next.stdout ?? '', stderr: '', exitCode: 0 };
  }

  /** Fails when a scripted command never ran. */
  verify(): void {
    assert.deepEqual(this.queue.map(show), [], 'FakeRunner: expected commands that never ran');
  }
}
