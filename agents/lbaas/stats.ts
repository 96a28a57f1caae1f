/**
 * The LBaaS agent's stats loop: every `[lbaas] stats_interval` seconds, for each pool this
 * host serves, read haproxy's stats socket and cast `update_pool_stats` carrying the pool's
 * counters only when they changed since the last report, and its members' health (with the
 * reasons) only when that changed: busy counters never re-send unchanged health.
 *
 * Invariants:
 * - counters are summed across reloads: a reload starts a new haproxy process at zero, so
 *   when the process changes, what the old process last counted joins a per-pool base, kept
 *   in the pool's state directory (stats.json) so an agent restart does not lose it; the
 *   process is the one `show info` names before and after `show stat` on the same socket
 *   (the pid file may lag a reload), so rows are never credited to the wrong process; what
 *   an old process counts after the last read before its reload is not counted;
 *   active_connections is the current process's own (never summed);
 * - a member is ACTIVE while haproxy says UP (also mid-transition "UP 1/3"), "no check",
 *   NOLB or DRAIN, and INACTIVE when DOWN or MAINT, with haproxy's check status as reason;
 * - one pool's failing socket is logged and skipped: the others are still reported, and
 *   it is retried next period; a failed cast is retried next period (nothing marked sent,
 *   so both changed parts go again).
 */
import { readFile } from 'node:fs/promises';
import type { MemberHealth, PoolStats, UpdatePoolStatsArgs } from '../../contracts/lbaas.ts';
import type { Logger } from '../../core/log.ts';
import { writeFileAtomic } from '../../host/fs/atomic.ts';

/** The fields of one `show stat` row the agent reads (host/haproxy/stats.ts). */
export interface StatRowLike {
  pxname: string;
  svname: string;
  scur: number;
  stot: number;
  bin: number;
  bout: number;
  status: string;
  check_status: string;
}

type Counters = Omit<PoolStats, 'active_connections'>;

/** What stats.json holds: the pid last read, what it counted, and the earlier processes' sum. */
export interface StatsBase {
  pid: number;
  base: Counters;
  last: Counters;
}

const ZERO: Counters = { bytes_in: 0, bytes_out: 0, total_connections: 0 };
const add = (a: Counters, b: Counters): Counters => ({
  bytes_in: a.bytes_in + b.bytes_in,
  bytes_out: a.bytes_out + b.bytes_out,
  total_connections: a.total_connections + b.total_connections,
});

const UP = /^(UP|no check|NOLB|DRAIN)/;

/** The pool's counters and members' health as haproxy reports them now (one process). */
export function readRows(rows: readonly StatRowLike[], poolId: string) {
  const mine = rows.filter((r) => r.pxname === poolId);
  const backend = mine.find((r) => r.svname === 'BACKEND');
  const front = rows.find((r) => r.svname === 'FRONTEND');
  const row = backend ?? front;
  const now: Counters = row
    ? { bytes_in: row.bin, bytes_out: row.bout, total_connections: row.stot }
    : ZERO;
  const servers = mine.filter((r) => r.svname !== 'BACKEND' && r.svname !== 'FRONTEND');
  const members = servers.map((r) => ({
    id: r.svname,
    status: (UP.test(r.status) ? 'ACTIVE' : 'INACTIVE') as MemberHealth,
  }));
  const reasons = servers
    .filter((r) => !UP.test(r.status))
    .map((r) => ({ id: r.svname, reason: (r.check_status || r.status).slice(0, 255) }));
  return { now, active: row?.scur ?? 0, members, reasons };
}

const fell = (last: Counters, now: Counters) =>
  now.bytes_in < last.bytes_in ||
  now.bytes_out < last.bytes_out ||
  now.total_connections < last.total_connections;

/**
 * The base after reading `now` from process `pid`: a new process adds the old one's last to
 * the base; so does the same pid counting less than before (a new process that got the old
 * one's pid, e.g. after a host reboot: counters never fall within one process).
 */
export function advance(saved: StatsBase | null, pid: number, now: Counters): StatsBase {
  if (saved === null) return { pid, base: ZERO, last: now };
  if (saved.pid === pid && !fell(saved.last, now)) return { ...saved, last: now };
  return { pid, base: add(saved.base, saved.last), last: now };
}

/** A pool's two reported parts as text: each is sent only when its text changed. */
export interface ReportParts {
  stats: string;
  members: string;
}

/**
 * The update_pool_stats arguments for one pool carrying only the parts whose text differs
 * from `last` (all when nothing was sent yet), and the parts now; null when nothing changed.
 */
export function poolReport(
  host: string,
  poolId: string,
  base: StatsBase,
  read: ReturnType<typeof readRows>,
  last?: ReportParts,
): { args: UpdatePoolStatsArgs; parts: ReportParts } | null {
  const sum = add(base.base, base.last);
  const stats = { ...sum, active_connections: read.active };
  const health = {
    members: read.members,
    ...(read.reasons.length ? { reasons: read.reasons } : {}),
  };
  const parts = { stats: JSON.stringify(stats), members: JSON.stringify(health) };
  const statsChanged = last?.stats !== parts.stats;
  const membersChanged = last?.members !== parts.members;
  if (!statsChanged && !membersChanged) return null;
  const args = {
    host,
    pool_id: poolId,
    ...(statsChanged ? { stats } : {}),
    ...(membersChanged ? health : {}),
  };
  return { args, parts };
}

const isCounters = (c: unknown): c is Counters =>
  typeof c === 'object' &&
  c !== null &&
  ['bytes_in', 'bytes_out', 'total_connections'].every((k) => {
    const v = (c as Record<string, unknown>)[k];
    return Number.isSafeInteger(v) && (v as number) >= 0;
  });

/** stats.json, checked; null when absent or not ours to trust. */
export async function readBase(path: string): Promise<StatsBase | null> {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null || text.length > 4096) return null;
  try {
    const v = JSON.parse(text) as StatsBase;
    const ok = Number.isSafeInteger(v.pid) && isCounters(v.base) && isCounters(v.last);
    return ok ? { pid: v.pid, base: v.base, last: v.last } : null;
  } catch {
    return null;
  }
}

export const writeBase = (path: string, base: StatsBase) =>
  writeFileAtomic(path, `${JSON.stringify(base)}\n`);

/** A served pool as the loop reads it. */
export interface StatsTarget {
  socket: string;
  /** stats.json. */
  basePath: string;
  /** The running haproxy's pid from its pid file (null: none runs, nothing to read). */
  pid(): Promise<number | null>;
}

export interface StatsLoopDeps {
  host: string;
  log: Logger;
  targets(): ReadonlyMap<string, StatsTarget>;
  showStat(socket: string): Promise<StatRowLike[]>;
  /** The pid of the haproxy answering on `socket` (`show info`). */
  showPid(socket: string): Promise<number>;
  send(args: UpdatePoolStatsArgs): Promise<void>;
}

/** One period: every served pool read and, when changed, reported. */
export function statsPass(deps: StatsLoopDeps) {
  const sent = new Map<string, ReportParts>();
  const one = async (poolId: string, t: StatsTarget) => {
    if ((await t.pid()) === null) return;
    // The rows' process: the one answering before and after them (a reload in between
    // hands the socket to a new process; that period is skipped).
    const pid = await deps.showPid(t.socket);
    const read = readRows(await deps.showStat(t.socket), poolId);
    if ((await deps.showPid(t.socket)) !== pid) return;
    const base = advance(await readBase(t.basePath), pid, read.now);
    const report = poolReport(deps.host, poolId, base, read, sent.get(poolId));
    if (report === null) return;
    await writeBase(t.basePath, base);
    await deps.send(report.args);
    sent.set(poolId, report.parts);
  };
  return async function pass(): Promise<void> {
    const targets = deps.targets();
    for (const id of sent.keys()) if (!targets.has(id)) sent.delete(id);
    for (const [id, t] of targets)
      await one(id, t).catch((e: Error) =>
        deps.log.warn({ poolId: id, err: e.message }, 'pool stats not read'),
      );
  };
}

/** Runs `pass` every `intervalMs` (never two at once); the returned function stops it. */
export function startStatsLoop(pass: () => Promise<void>, intervalMs: number): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(pass);
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
