/**
 * CommandRunner: the one way Kumo runs host tools.
 *
 * Invariant: commands are argv arrays (never a shell); a non-zero exit, a signal or a
 * timeout raises a CommandError carrying argv, netns, exit code and stderr, so nothing is
 * swallowed and a caller can always say exactly which command failed and why.
 */
import { spawn } from 'node:child_process';

export interface CommandSpec {
  argv: readonly string[];
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  stdin?: string | Buffer;
  timeoutMs?: number;
  /** Exit codes other than 0 that count as success (e.g. `ip netns` probes). */
  okExitCodes?: readonly number[];
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface CommandRunner {
  run(spec: CommandSpec): Promise<CommandResult>;
}

export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly netns: string | undefined;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderr: string;
  readonly timedOut: boolean;
  constructor(
    spec: CommandSpec,
    fields: { exitCode: number | null; signal: string | null; stderr: string; timedOut: boolean },
    cause?: unknown,
  ) {
    const what = fields.timedOut
      ? `timed out after ${spec.timeoutMs} ms`
      : fields.signal
        ? `killed by ${fields.signal}`
        : `exited ${fields.exitCode}`;
    const ns = spec.netns ? ` (netns ${spec.netns})` : '';
    const err = fields.stderr.trim().split('\n').slice(-3).join(' | ');
    super(`${spec.argv.join(' ')}${ns} ${what}${err ? `: ${err}` : ''}`, { cause });
    this.name = 'CommandError';
    this.argv = spec.argv;
    this.netns = spec.netns;
    this.exitCode = fields.exitCode;
    this.signal = fields.signal;
    this.stderr = fields.stderr;
    this.timedOut = fields.timedOut;
  }
}

const NETNS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const MAX_OUTPUT = 16 * 1024 * 1024;

export function fullArgv(spec: CommandSpec): string[] {
  if (spec.argv.length === 0) throw new Error('empty argv');
  if (spec.netns === undefined) return [...spec.argv];
  if (!NETNS.test(spec.netns)) throw new Error(`invalid netns name ${JSON.stringify(spec.netns)}`);
  return ['ip', 'netns', 'exec', spec.netns, ...spec.argv];
}

export function createCommandRunner(opts: { defaultTimeoutMs?: number } = {}): CommandRunner {
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
  return {
    run(spec) {
      const timed = { ...spec, timeoutMs: spec.timeoutMs ?? defaultTimeoutMs };
      return runOnce(timed);
    },
  };
}

function runOnce(spec: CommandSpec & { timeoutMs: number }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = fullArgv(spec);
    const child = spawn(cmd as string, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_OUTPUT) into.push(chunk);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, spec.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(
        new CommandError(spec, { exitCode: null, signal: null, stderr: e.message, timedOut }, e),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode: code ?? -1,
      };
      const ok = code === 0 || (code !== null && spec.okExitCodes?.includes(code));
      if (ok && !timedOut) resolve(result);
      else
        reject(new CommandError(spec, { exitCode: code, signal, stderr: result.stderr, timedOut }));
    });
    child.stdin.on('error', () => {});
    child.stdin.end(spec.stdin ?? '');
  });
}
