/**
 * Debian's OpenStack CLIs (`openstack`, `neutron`, `glance`) and the openstacksdk script
 * test/fullstack/openstack_sdk.py run by long-lived workers
 * (test/helpers/python_cli.py) instead of one Python process per command: the clients'
 * imports and plugin scan cost about a second per process on the project's machines, and
 * the CLI suites run hundreds of commands.
 *
 * Invariant: a command's result is what its console script as a process would give: the
 * same entry point, argv, environment (the test process's, plus the call's), empty stdin,
 * exit code, stdout and stderr. A worker runs one command at a time; concurrent commands
 * get more workers. A command that outlives its timeout kills its worker and answers code
 * 1, as execFile's timeout does; a worker that dies answers its command with its stderr.
 * Idle workers never keep the test process alive.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { REPO } from './env.ts';

/** The console scripts python_cli.py runs, by the name a test spawns them under. */
export const PYTHON_CLIS = new Set(['openstack', 'neutron', 'glance']);
/** python_cli.py's name for test/fullstack/openstack_sdk.py (`python3 openstack_sdk.py …`). */
export const SDK_SCRIPT = 'openstack_sdk.py';

const RUNNER = join(REPO, 'test', 'helpers', 'python_cli.py');

interface Answer {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Worker {
  child: ChildProcessWithoutNullStreams;
  pending?: (a: Answer) => void;
  stderrTail: string;
  dead: boolean;
}

const idle: Worker[] = [];

const unref = (s: Readable | Writable) => (s as unknown as { unref?: () => void }).unref?.();

function startWorker(): Worker {
  const child = spawn('/usr/bin/python3', [RUNNER], { stdio: ['pipe', 'pipe', 'pipe'] });
  const w: Worker = { child, stderrTail: '', dead: false };
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      settle(w, JSON.parse(line) as Answer);
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    w.stderrTail = (w.stderrTail + chunk).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    w.dead = true;
    const at = idle.indexOf(w);
    if (at >= 0) idle.splice(at, 1);
    settle(w, {
      code: 1,
      stdout: '',
      stderr: `python_cli.py worker exited (${code ?? signal}): ${w.stderrTail}`,
    });
  });
  child.stdin.on('error', () => {});
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) unref(s);
  return w;
}

function settle(w: Worker, a: Answer) {
  const resolve = w.pending;
  w.pending = undefined;
  resolve?.(a);
}

/** `prog argv` with `env` over the test process's environment, as execFile would run it. */
export function runPythonCli(
  prog: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<Answer> {
  const w = idle.pop() ?? startWorker();
  return new Promise<Answer>((resolve) => {
    const timer = setTimeout(() => {
      w.dead = true;
      w.child.kill('SIGKILL');
      settle(w, { code: 1, stdout: '', stderr: `${prog} timed out after ${timeoutMs} ms` });
    }, timeoutMs);
    w.pending = (a) => {
      clearTimeout(timer);
      if (!w.dead) idle.push(w);
      resolve(a);
    };
    w.child.stdin.write(`${JSON.stringify({ prog, argv, env: { ...process.env, ...env } })}\n`);
  });
}
