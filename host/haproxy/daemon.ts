/**
 * Running haproxy: the argv of `haproxy -c` (check), of a start (`-D -p pidfile`, inside a
 * namespace through the runner) and of a hitless reload (`-sf <old pid>`: the new process
 * binds, then tells the old one to finish its connections and exit; with `-x <stats socket>`
 * it takes the old one's listening sockets instead of binding anew, so no connection attempt
 * meets a closed port in between), and finding the
 * running one by its pid file (host/process/daemon.ts).
 *
 * Invariants: a haproxy is identified by `-f <its config path>` in its command line, so a
 * stale pid file never names an unrelated process; the paths are checked (config.ts
 * checkPath) before they become argv; the old pid of a reload is a positive integer > 1.
 * Pure except `findHaproxy`, `inNetns`, `haproxysInNetns` and `openFileLimit`, which only
 * read (`ip netns pids` and /proc).
 */
import { readFile, stat } from 'node:fs/promises';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { NETNS_RUN_DIR } from '../ip/netns.ts';
import { findRunning, isRunning } from '../process/daemon.ts';
import { checkPath } from './config.ts';

const NETNS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export interface HaproxyPaths {
  config: string;
  pidfile: string;
  /**
   * The config's `stats socket` (with `expose-fd listeners`): a reload passes it as `-x` so the
   * new process takes the listening sockets over from the old one and no connection is refused.
   * Only when the running process serves that socket (stats.ts servesSocket): haproxy 2.6 refuses
   * to start when it cannot get the listeners over `-x`.
   */
  socket?: string;
}

/** What a running haproxy's command line carries: `-f <config>`. */
export const haproxyExpected = (p: HaproxyPaths) => `-f ${checkPath(p.config, 'config')} `;

function base(p: HaproxyPaths): string[] {
  return [
    'haproxy',
    '-f',
    checkPath(p.config, 'config'),
    '-p',
    checkPath(p.pidfile, 'pidfile'),
    '-D',
  ];
}

/**
 * `haproxy -c -f <config>`: exits non-zero on a bad config, its ALERT lines on stderr saying
 * why (not `-q`: haproxy 2.6 then keeps the reason to itself).
 */
export function checkCommand(config: string): CommandSpec {
  return { argv: ['haproxy', '-c', '-f', checkPath(config, 'config')] };
}

export function startCommand(p: HaproxyPaths, netns?: string): CommandSpec {
  return { argv: base(p), ...(netns ? { netns } : {}) };
}

export function reloadCommand(p: HaproxyPaths, oldPid: number, netns?: string): CommandSpec {
  if (!Number.isSafeInteger(oldPid) || oldPid <= 1) throw new Error(`bad old pid ${oldPid}`);
  const x = p.socket === undefined ? [] : ['-x', checkPath(p.socket, 'socket')];
  return { argv: [...base(p), ...x, '-sf', String(oldPid)], ...(netns ? { netns } : {}) };
}

/** The running haproxy of these paths, or null. */
export function findHaproxy(p: HaproxyPaths): Promise<number | null> {
  return findRunning(p.pidfile, haproxyExpected(p));
}

/**
 * Whether `pid` lives in the named namespace: its /proc/<pid>/ns/net and /run/netns/<name>
 * are the same nsfs inode (what `ip netns identify` compares, without a process). False
 * when either is gone, e.g. a haproxy left in a namespace that was deleted and remade.
 */
export async function inNetns(pid: number, netns: string): Promise<boolean> {
  if (!NETNS.test(netns) || !Number.isSafeInteger(pid) || pid <= 1) return false;
  const [a, b] = await Promise.all([
    stat(`/proc/${pid}/ns/net`).catch(() => null),
    stat(`${NETNS_RUN_DIR}/${netns}`).catch(() => null),
  ]);
  return a !== null && b !== null && a.dev === b.dev && a.ino === b.ino;
}

/**
 * Every live haproxy of these paths in the named namespace (`ip netns pids`, then each
 * one's /proc/<pid>/cmdline must carry `-f <config>`): the running one and any old process
 * still finishing its connections after a reload (`-sf`). Ascending; none when the
 * namespace is gone.
 */
export async function haproxysInNetns(
  runner: CommandRunner,
  netns: string,
  p: HaproxyPaths,
): Promise<number[]> {
  if (!NETNS.test(netns)) throw new Error(`bad namespace name ${JSON.stringify(netns)}`);
  const out = await runner.run({ argv: ['ip', 'netns', 'pids', netns] });
  const pids = out.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[1-9][0-9]*$/.test(l))
    .map(Number)
    .filter((pid) => pid > 1);
  const expected = haproxyExpected(p);
  const ours = await Promise.all(pids.map((pid) => isRunning(pid, expected)));
  return pids.filter((_, i) => ours[i]).sort((a, b) => a - b);
}

/**
 * The hard limit of open files a haproxy started by this process inherits (its
 * RLIMIT_NOFILE, from /proc/self/limits; Infinity when unlimited). haproxy raises its soft
 * limit to about 2 × maxconn + one per server and listener, and refuses to start above this.
 */
export async function openFileLimit(): Promise<number> {
  const text = await readFile('/proc/self/limits', 'utf8');
  const cells = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!cells) throw new Error('/proc/self/limits has no "Max open files" line');
  return cells[2] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(cells[2]);
}
