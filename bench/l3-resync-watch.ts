/**
 * What bench/l3-resync watches while a phase runs, at little cost to the machine: ping
 * processes that stamp the first reply through a rebuilt router (`ping -D`), the agent's
 * own step log (where its time goes), a process's CPU time, and the script's commands
 * timed by kind.
 *
 * Invariant: nothing here changes the host; every ping process started is killed by
 * `stopPingers`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Agent } from '../contracts/agents.ts';
import type { CommandRunner, CommandSpec } from '../core/exec.ts';

/** A `ping -D -i 0.1` from `netns` to `ip`; `first` is the wall time (ms) of its first reply. */
export interface Pinger {
  child: ChildProcess;
  first: number | null;
}

export function startPinger(netns: string, ip: string): Pinger {
  const child = spawn('ip', ['netns', 'exec', netns, 'ping', '-D', '-n', '-i', '0.1', ip], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const p: Pinger = { child, first: null };
  let buf = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    const m = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(buf);
    if (m && p.first === null) p.first = Number(m[1]) * 1000;
    if (buf.length > 4096) buf = buf.slice(-512);
  });
  return p;
}

export function stopPingers(pingers: Iterable<Pinger>) {
  for (const p of pingers) if (p.child.exitCode === null) p.child.kill('SIGKILL');
}

interface LogLine {
  time: number;
  msg: string;
  routerId?: string;
  step?: string;
  why?: string;
  ms?: number;
}

/** The agent's JSON log lines after byte `from` of its log, stamped `sinceWall` or later. */
export function logSince(path: string, from: number, sinceWall: number): LogLine[] {
  return readFileSync(path)
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.time >= sinceWall);
}

/** Per router, the wall time of its last logged step. */
export function lastSteps(lines: readonly LogLine[]): Map<string, number> {
  const last = new Map<string, number>();
  for (const l of lines)
    if (l.msg === 'step' && l.routerId)
      last.set(l.routerId, Math.max(last.get(l.routerId) ?? 0, l.time));
  return last;
}

/** A step's kind for the summary: its `why` without addresses and details. */
const stepKind = (l: LogLine) =>
  (l.why ?? l.step ?? '?')
    .replace(/^iptables .*/, 'iptables-restore')
    .replace(/^announce .*/, 'arping (background, not awaited)')
    .replace(/^forget connections .*/, 'conntrack -D');

/** Where the agent's apply time went: count, total and mean ms per step kind. */
export function stepSummary(lines: readonly LogLine[]): string {
  const kinds = new Map<string, { n: number; ms: number }>();
  for (const l of lines) {
    if (l.msg !== 'step') continue;
    const k = kinds.get(stepKind(l)) ?? { n: 0, ms: 0 };
    k.n++;
    k.ms += l.ms ?? 0;
    kinds.set(stepKind(l), k);
  }
  return [...kinds]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(
      ([k, v]) => `  ${k}: ${v.n} × ${(v.ms / v.n).toFixed(1)} ms = ${(v.ms / 1000).toFixed(2)} s`,
    )
    .join('\n');
}

/** A process's CPU seconds: [own, its reaped children's] from /proc/<pid>/stat. */
export function cpuOf(pid: number | undefined): [number, number] {
  if (pid === undefined) return [0, 0];
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    // Fields 14-17 (utime, stime, cutime, cstime) are at 11-14 after the comm field.
    return [((f[11] ?? 0) + (f[12] ?? 0)) / 100, ((f[13] ?? 0) + (f[14] ?? 0)) / 100];
  } catch {
    return [0, 0];
  }
}

/** A command's kind for the script's summary: argv without namespaces, sockets, values. */
function commandKind(spec: CommandSpec): string {
  const a = spec.argv.filter(
    (x, i, all) => x !== '-n' && all[i - 1] !== '-n' && !/^--(db|timeout)=/.test(x),
  );
  if (a[0] === 'ovs-vsctl')
    return a.includes('del-port') ? 'ovs-vsctl del-port ×3' : 'ovs-vsctl add-port ×3';
  if (a[0] === 'arping') return 'arping (background, not awaited)';
  if (a.includes('-batch'))
    return String(spec.stdin).includes(' netns ')
      ? 'ip -batch (move ports)'
      : 'ip -batch (links, addresses, route)';
  return a.slice(0, 3).join(' ');
}

/** `inner` timing each command by kind; `summary()` as stepSummary prints it. */
export function timedRunner(inner: CommandRunner) {
  const kinds = new Map<string, { n: number; ms: number }>();
  const runner: CommandRunner = {
    async run(spec) {
      const t = performance.now();
      try {
        return await inner.run(spec);
      } finally {
        const kind = commandKind(spec);
        const k = kinds.get(kind) ?? { n: 0, ms: 0 };
        k.n++;
        if (spec.argv[0] !== 'arping') k.ms += performance.now() - t;
        kinds.set(kind, k);
      }
    },
  };
  const summary = () =>
    [...kinds]
      .sort((a, b) => b[1].ms - a[1].ms)
      .map(
        ([k, v]) =>
          `  ${k}: ${v.n} × ${(v.ms / v.n).toFixed(1)} ms = ${(v.ms / 1000).toFixed(2)} s`,
      )
      .join('\n');
  return { runner, summary };
}

const maxOf = (xs: Iterable<number>) => Math.max(0, ...xs);

/**
 * The restarted agent's side of "done", in ms from t0: it reports every router served
 * (configurations.routers of a process started after t0, as kumo-api stores its
 * report_state; `servedAt` is when the bench saw it), and every deleted router's
 * iptables step is logged (the time is its last step's).
 */
export function agentDone(o: {
  exited(): boolean;
  agentRow(): Promise<Agent | undefined>;
  routers: number;
  deletedIds: readonly string[];
  t0Wall: number;
  log: { path: string; from: number };
}) {
  const since = () => performance.timeOrigin + performance.now() - o.t0Wall;
  const served = async () => {
    const a = await o.agentRow();
    const started = a ? Date.parse(`${a.started_at.replace(' ', 'T')}Z`) : 0;
    return started >= o.t0Wall - 1500 && a?.configurations.routers === o.routers ? since() : null;
  };
  const signal = {
    servedAt: null as number | null,
    async own(): Promise<number | null> {
      if (o.exited()) throw new Error('kumo-l3-agent exited');
      signal.servedAt ??= await served();
      if (signal.servedAt === null) return null;
      const lines = logSince(o.log.path, o.log.from, o.t0Wall);
      const restored = new Set(
        lines
          .filter((l) => l.msg === 'step' && l.why?.startsWith('iptables'))
          .map((l) => l.routerId),
      );
      if (o.deletedIds.some((id) => !restored.has(id))) return null;
      const last = lastSteps(lines);
      return Math.max(
        signal.servedAt,
        maxOf(o.deletedIds.map((id) => (last.get(id) as number) - o.t0Wall)),
      );
    },
  };
  return signal;
}
