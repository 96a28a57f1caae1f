/**
 * Pid-file daemons (dnsmasq, haproxy …), optionally started inside a network namespace:
 * start, find, signal, stop.
 *
 * Invariants: a pid from a pid file is trusted only while /proc/<pid>/cmdline contains
 * the caller's expected substring (e.g. `--pid-file=/var/lib/kumo/dhcp/<net>/pid`), so a
 * stale pid file never makes us signal an unrelated process that reused the pid; pid 0,
 * 1 and negative pids (process groups) are never signalled. A zombie (state Z/X in
 * /proc/<pid>/stat) counts as gone: detached daemons are re-parented to PID 1, which in
 * some containers never reaps them. `stop` re-checks identity (pid + start time) before
 * escalating to SIGKILL.
 */
import { readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';

export type DaemonSignal = 'SIGHUP' | 'SIGTERM' | 'SIGKILL' | 'SIGUSR1' | 'SIGUSR2';

function validPid(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 1;
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return null;
    throw e;
  }
}

/** The pid in a pid file; null when the file is missing, empty or not a bare number. */
export async function readPid(pidfile: string): Promise<number | null> {
  const text = await readOrNull(pidfile);
  const m = text === null ? null : /^\s*(\d{1,10})\s*$/.exec(text);
  if (!m) return null;
  const pid = Number(m[1]);
  return validPid(pid) ? pid : null;
}

export interface ProcStat {
  /** R, S, D, Z, T, t, X, I … (proc(5)). */
  state: string;
  ppid: number;
  /** Clock ticks after boot; with the pid it identifies one process. */
  startTime: string;
}

/** /proc/<pid>/stat, or null when no such process exists. */
export async function procStat(pid: number): Promise<ProcStat | null> {
  if (!validPid(pid)) return null;
  const text = await readOrNull(`/proc/${pid}/stat`);
  if (text === null) return null;
  // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', ppid: Number(rest[1]), startTime: rest[19] ?? '' };
}

/** The argv of a process (empty for zombies and kernel threads), or null if gone. */
export async function readCmdline(pid: number): Promise<string[] | null> {
  if (!validPid(pid)) return null;
  const text = await readOrNull(`/proc/${pid}/cmdline`);
  if (text === null) return null;
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

const dead = (s: ProcStat | null) => s === null || s.state === 'Z' || s.state === 'X';

/** True when `pid` is alive (not a zombie) and its command line contains `expected`. */
export async function isRunning(pid: number, expected: string): Promise<boolean> {
  if (expected === '') throw new Error('isRunning needs a non-empty expected cmdline substring');
  if (dead(await procStat(pid))) return false;
  const argv = await readCmdline(pid);
  return argv?.join(' ').includes(expected) ?? false;
}

/** The pid from `pidfile` if that process is running and is the expected one. */
export async function findRunning(pidfile: string, expected: string): Promise<number | null> {
  const pid = await readPid(pidfile);
  return pid !== null && (await isRunning(pid, expected)) ? pid : null;
}

/** Sends `sig`; false when the process no longer exists. */
export function signal(pid: number, sig: DaemonSignal): boolean {
  if (!validPid(pid)) throw new Error(`refusing to signal pid ${pid}`);
  try {
    process.kill(pid, sig);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

/** Signals the pid file's process if it is the expected one; false when none runs. */
export async function signalIfRunning(
  pidfile: string,
  expected: string,
  sig: DaemonSignal,
): Promise<boolean> {
  const pid = await findRunning(pidfile, expected);
  return pid !== null && signal(pid, sig);
}

async function waitGone(pid: number, startTime: string, ms: number, pollMs: number) {
  const until = Date.now() + ms;
  for (;;) {
    const s = await procStat(pid);
    if (dead(s) || s?.startTime !== startTime) return true;
    if (Date.now() >= until) return false;
    await sleep(pollMs);
  }
}

export type StopResult = 'not-running' | 'terminated' | 'killed';

/**
 * SIGTERM, wait up to `graceMs`, then SIGKILL and wait again. Nothing is signalled
 * unless the process is the expected one; throws if it survives SIGKILL.
 */
export async function stop(
  pid: number,
  expected: string,
  opts: { graceMs?: number; pollMs?: number } = {},
): Promise<StopResult> {
  const { graceMs = 5000, pollMs = 20 } = opts;
  const stat = await procStat(pid);
  if (stat === null || !(await isRunning(pid, expected))) return 'not-running';
  if (!signal(pid, 'SIGTERM')) return 'terminated';
  if (await waitGone(pid, stat.startTime, graceMs, pollMs)) return 'terminated';
  const again = await procStat(pid);
  if (again?.startTime === stat.startTime && (await isRunning(pid, expected)))
    signal(pid, 'SIGKILL');
  if (await waitGone(pid, stat.startTime, 2000, pollMs)) return 'killed';
  throw new Error(`pid ${pid} (${expected}) survived SIGKILL`);
}

/** Stops the pid file's process (if it is the expected one) and removes the pid file. */
export async function stopByPidfile(
  pidfile: string,
  expected: string,
  opts: { graceMs?: number } = {},
): Promise<StopResult> {
  const pid = await readPid(pidfile);
  const result = pid === null ? 'not-running' : await stop(pid, expected, opts);
  await unlink(pidfile).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  return result;
}

/**
 * Starts a self-daemonising program (`spec`, e.g. dnsmasq with `netns`) that writes
 * `pidfile`, and returns the daemon's pid once it runs with `expected` in its cmdline.
 * Refuses when the expected daemon already runs; a stale pid file is removed first so
 * an old pid can never be mistaken for the new daemon.
 */
export async function startDaemon(
  runner: CommandRunner,
  spec: CommandSpec,
  opts: { pidfile: string; expected: string; timeoutMs?: number },
): Promise<number> {
  const { pidfile, expected, timeoutMs = 10_000 } = opts;
  const existing = await findRunning(pidfile, expected);
  if (existing !== null) throw new Error(`${expected} already runs as pid ${existing}`);
  await unlink(pidfile).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await runner.run({ timeoutMs, ...spec });
  const until = Date.now() + timeoutMs;
  for (;;) {
    const pid = await readPid(pidfile);
    if (pid !== null && (await isRunning(pid, expected))) return pid;
    if (Date.now() >= until)
      throw new Error(
        pid === null
          ? `${spec.argv[0]} exited 0 but wrote no pid file ${pidfile}`
          : `${spec.argv[0]} wrote pid ${pid} to ${pidfile} but that process is not running`,
      );
    await sleep(20);
  }
}
