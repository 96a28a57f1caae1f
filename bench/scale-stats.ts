/**
 * bench/scale's measurements: percentiles, CPU and memory per component from /proc, and the
 * heartbeat lag (publish → row visible in PostgreSQL).
 *
 * Heartbeat lag: the simulators announce each report_state's publish time (wall clock,
 * taken just before the publish); a poller reads the agents table every POLL_MS for rows
 * whose heartbeat_timestamp changed (`>=` the newest stamp seen minus a margin, because two
 * replicas commit batches stamped by their own clocks in any order) and gives each change
 * the oldest unmatched publish time of that (agent_type, host): lag = the poll's answer
 * time − publish, an upper bound within one poll. A change seen before its publish time
 * arrives (the simulators announce them in batches every 200 ms) waits for it. A report never seen counts as lost. Matching is first in,
 * first out per agent: two reports stored between two polls would shift it by one interval,
 * which reports 10 s apart and lags under a second never do (lags over an interval fail the
 * step anyway).
 *
 * CPU: utime+stime of every process of a component (/proc/<pid>/stat, clock ticks of 10 ms),
 * the difference over the window, as a share of one core; memory: VmRSS summed.
 *
 * Invariant: only samples taken inside the window count; percentiles of nothing are NaN and
 * print as "n/a", never as 0.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export const wall = () => performance.timeOrigin + performance.now();

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
}

export const fmtMs = (x: number) => (Number.isNaN(x) ? 'n/a' : `${Math.round(x)} ms`);

// ------------------------------------------------------------------ CPU and memory

export interface Component {
  name: string;
  /** The processes of the component now (looked up again at each sample). */
  pids(): number[];
}

const TICKS_PER_S = 100;

function ticksOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Busy and total ticks of the whole machine (/proc/stat's cpu line). */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export interface CpuFigure {
  name: string;
  /** Share of one core over the window, in percent. */
  cpu: number;
  rssMb: number;
  processes: number;
}

/** Starts a CPU sample; `end()` gives each component's share over the time since. */
export function cpuSample(components: readonly Component[]) {
  const t0 = performance.now();
  const m0 = machineTicks();
  const start = components.map((c) => new Map(c.pids().map((p) => [p, ticksOf(p)])));
  return {
    end(): { figures: CpuFigure[]; machineBusy: number } {
      const seconds = (performance.now() - t0) / 1000;
      const m1 = machineTicks();
      const figures = components.map((c, i) => {
        const pids = c.pids();
        let ticks = 0;
        for (const p of pids) ticks += ticksOf(p) - (start[i]?.get(p) ?? 0);
        const rss = pids.reduce((a, p) => a + rssKb(p), 0);
        const cpu = (100 * ticks) / TICKS_PER_S / seconds;
        return { name: c.name, cpu, rssMb: rss / 1024, processes: pids.length };
      });
      const machineBusy = (100 * (m1.busy - m0.busy)) / (m1.total - m0.total || 1);
      return { figures, machineBusy };
    },
  };
}

/** Processes whose command line (NULs as spaces) `keep` accepts, from /proc. */
export function pidsWhere(keep: (cmdline: string) => boolean): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (keep(cmd)) found.push(Number(name));
  }
  return found;
}

/** Processes whose command line contains every one of `needles`. */
export const pidsMatching = (...needles: string[]) =>
  pidsWhere((cmd) => needles.every((n) => cmd.includes(n)));

// ------------------------------------------------------------------ heartbeat lag

const POLL_MS = 100;
const MARGIN_MS = 3000;

export interface LagWindow {
  lags: number[];
  published: number;
  stored: number;
  lost: number;
}

/** Matches announced publish times with heartbeat changes in the agents table. */
export function heartbeatTracker(pgUrl: string) {
  const unmatched = new Map<string, number[]>();
  const stamps = new Map<string, string>();
  let newest = '';
  let polling = false;
  let window:
    | { from: number; to: number; lags: number[]; published: number; stored: number }
    | undefined;
  const client = new pg.Client({ connectionString: pgUrl });

  /** Observations that came before their publish time was announced (IPC is batched). */
  const early = new Map<string, number[]>();

  const match = (sent: number, at: number) => {
    if (!window) return;
    if (sent >= window.from && sent < window.to) window.lags.push(at - sent);
    if (at >= window.from && at < window.to) window.stored++;
  };

  const poll = async () => {
    const since = newest ? new Date(Date.parse(newest) - MARGIN_MS).toISOString() : '';
    const { rows } = await client.query<{ agent_type: string; host: string; hb: string }>(
      'SELECT agent_type, host, heartbeat_timestamp AS hb FROM agents WHERE heartbeat_timestamp >= $1',
      [since],
    );
    const at = wall();
    for (const { agent_type, host, hb } of rows) {
      if (hb > newest) newest = hb;
      const key = `${agent_type}|${host}`;
      if (stamps.get(key) === hb) continue;
      stamps.set(key, hb);
      const sent = unmatched.get(key)?.shift();
      if (sent !== undefined) match(sent, at);
      else early.set(key, [...(early.get(key) ?? []), at]);
    }
  };

  return {
    async start() {
      await client.connect();
      polling = true;
      void (async () => {
        while (polling) {
          await poll().catch(() => {});
          await sleep(POLL_MS);
        }
      })();
    },
    /** A report of `agentType` on `host` was published at `at` (wall ms). */
    published(agentType: string, host: string, at: number) {
      const key = `${agentType}|${host}`;
      if (window && at >= window.from && at < window.to) window.published++;
      const seen = early.get(key);
      if (seen?.length && (seen[0] as number) >= at) return match(at, seen.shift() as number);
      const q = unmatched.get(key);
      if (q) q.push(at);
      else unmatched.set(key, [at]);
    },
    /** Reports published from now for `seconds` are this window's. */
    open(seconds: number) {
      const from = wall();
      window = { from, to: from + seconds * 1000, lags: [], published: 0, stored: 0 };
    },
    /** Waits up to `graceMs` after the window for its reports, then closes it. */
    async close(graceMs: number): Promise<LagWindow> {
      const w = window as NonNullable<typeof window>;
      const pendingIn = () => {
        let n = 0;
        for (const q of unmatched.values()) for (const t of q) if (t >= w.from && t < w.to) n++;
        return n;
      };
      const deadline = w.to + graceMs;
      while (wall() < w.to + 500 || (pendingIn() > 0 && wall() < deadline)) await sleep(POLL_MS);
      const lost = pendingIn();
      window = undefined;
      return { lags: w.lags, published: w.published, stored: w.stored, lost };
    },
    /** How many agent rows exist (registered agents). */
    async registered(): Promise<number> {
      const { rows } = await client.query<{ n: string }>('SELECT COUNT(*) AS n FROM agents');
      return Number(rows[0]?.n ?? 0);
    },
    async stop() {
      polling = false;
      await sleep(POLL_MS * 2);
      await client.end().catch(() => {});
    },
  };
}
