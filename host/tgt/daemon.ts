/**
 * Running tgtd (for tests and stack.sh; the volume agent only talks to one): start it
 * daemonized with a pid file on its own control port and iSCSI portal, wait until its
 * control socket answers, stop it, and tell its version.
 *
 * Invariants: a tgtd is ours only while its command line carries `-p <our pid file> `
 * (host/process/daemon.ts), so nothing else is ever signalled; a control port some tgtd
 * already answers on is refused before starting (a second tgtd would fork, exit 0 and die
 * quietly); `stopTgtd` is graceful first — offline, every target deleted with --force,
 * `--op delete --mode sys`, on which tgtd exits (tgt 1.0.85 ignores SIGTERM) — and only
 * then SIGKILLs the pid it started.
 * Beware: tgtd inherits every descriptor its starter holds open; started under
 * `flock <lock> node …` it keeps the lock until it exits (run such tests with `flock -o`).
 */
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { findRunning, procStat, type StopResult, startDaemon, stop } from '../process/daemon.ts';
import { toolVersion } from '../version.ts';
import { checkControlPort, checkPath, checkPortal } from './args.ts';
import { deleteSystemCommand, offlineCommand, showSystemCommand } from './argv.ts';
import { deleteTarget, showTargets } from './tgtadm.ts';

export interface TgtdOptions {
  /** 0: tgtd's default control socket. */
  controlPort: number;
  /** `ip:port` the iSCSI portal listens on. */
  portal: string;
  pidfile: string;
}

const expected = (o: TgtdOptions) => `-p ${checkPath('pidfile', o.pidfile)} `;

export function tgtdCommand(o: TgtdOptions): CommandSpec {
  const port = checkControlPort(o.controlPort);
  const control = port === 0 ? [] : ['-C', String(port)];
  const portal = `portal=${checkPortal(o.portal)}`;
  return { argv: ['tgtd', '-p', checkPath('pidfile', o.pidfile), ...control, '--iscsi', portal] };
}

async function answers(runner: CommandRunner, port: number): Promise<boolean> {
  try {
    await runner.run({ ...showSystemCommand(port), timeoutMs: 2000 });
    return true;
  } catch {
    return false;
  }
}

/** Starts tgtd; resolves with its pid once `tgtadm --op show --mode sys` answers. */
export async function startTgtd(
  runner: CommandRunner,
  o: TgtdOptions,
  timeoutMs = 10_000,
): Promise<number> {
  const spec = tgtdCommand(o);
  if (await answers(runner, o.controlPort))
    throw new Error(`a tgtd already answers on control port ${o.controlPort}`);
  const pid = await startDaemon(runner, spec, { pidfile: o.pidfile, expected: expected(o) });
  const until = Date.now() + timeoutMs;
  while (!(await answers(runner, o.controlPort))) {
    if (Date.now() >= until)
      throw new Error(`tgtd (pid ${pid}) never answered on control port ${o.controlPort}`);
    await sleep(50);
  }
  return pid;
}

/** The running tgtd of these options (by its pid file), or null. */
export const findTgtd = (o: TgtdOptions) => findRunning(o.pidfile, expected(o));

async function exitsWithin(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    const s = await procStat(pid);
    if (s === null || s.state === 'Z' || s.state === 'X') return true;
    if (Date.now() >= until) return false;
    await sleep(20);
  }
}

async function shutdown(runner: CommandRunner, port: number): Promise<void> {
  const t = { runner, controlPort: port };
  await runner.run(offlineCommand(port));
  for (const target of await showTargets(t)) await deleteTarget(t, target.tid, true);
  await runner.run(deleteSystemCommand(port));
}

/** Stops our tgtd: gracefully, else SIGKILL (its targets vanish either way). */
export async function stopTgtd(runner: CommandRunner, o: TgtdOptions): Promise<StopResult> {
  const pid = await findTgtd(o);
  if (pid === null) return 'not-running';
  const graceful = await shutdown(runner, o.controlPort).then(
    () => true,
    () => false,
  );
  if (graceful && (await exitsWithin(pid, 5000))) return 'terminated';
  return stop(pid, expected(o), { graceMs: 500 });
}

/** Where tgtd keeps the control socket of port N: `socket.N` (and its `socket.N.lock`). */
export const TGTD_SOCKET_DIR = '/var/run/tgtd';

/**
 * A control port for a tgtd of one's own (tests): one no tgtd answers on and that has no
 * socket file, so no running tgtd and no stale one's leftovers share it.
 */
export async function unusedControlPort(runner: CommandRunner): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = randomInt(1000, 32_768);
    if (existsSync(`${TGTD_SOCKET_DIR}/socket.${port}`)) continue;
    if (!(await answers(runner, port))) return port;
  }
  throw new Error(`no unused tgtd control port found (${TGTD_SOCKET_DIR} is crowded)`);
}

/** tgtd's version (`tgtd -V`), null when tgt is not installed. */
export const tgtVersion = (runner: CommandRunner) => toolVersion(runner, ['tgtd', '-V']);
