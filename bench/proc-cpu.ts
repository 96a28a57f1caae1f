/**
 * CPU time of the processes a bench measures, read from /proc: so a bench can say which
 * process was at 100 % of a core when a figure falls short.
 *
 * Invariant: read-only; a process that is gone (or a listener nobody holds) reads as
 * undefined, never as zero, so a missing figure cannot pass for an idle process.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ: 100 on every Linux ABI Node supports

/** User + system CPU seconds of `pid` so far, or undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** The socket inode listening on 127.0.0.1 or 0.0.0.0 / :: at `port`, from /proc/net. */
function listeningInode(port: number): string | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let lines: string[];
    try {
      lines = readFileSync(table, 'utf8').split('\n').slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A') return f[9];
    }
  }
  return undefined;
}

/** The pid of the process listening on TCP `port` in this namespace (e.g. the broker). */
export function listenerPid(port: number): number | undefined {
  const inode = listeningInode(port);
  if (!inode) return undefined;
  const target = `socket:[${inode}]`;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${name}/fd/${fd}`) === target) return Number(name);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return undefined;
}

/** Meters several processes over one interval: `% of one core` each, from start to stop. */
export function cpuMeter(pids: Record<string, number | undefined>) {
  const start = new Map<string, number | undefined>();
  const t0 = performance.now();
  for (const [name, pid] of Object.entries(pids))
    start.set(name, pid === undefined ? undefined : cpuSeconds(pid));
  const used = (name: string): number | undefined => {
    const pid = pids[name];
    const a = start.get(name);
    const b = pid === undefined ? undefined : cpuSeconds(pid);
    return a === undefined || b === undefined ? undefined : b - a;
  };
  return {
    /** CPU seconds `name` used since creation, or undefined when unknown. */
    used,
    /** `name X%` per process (`name ?` when unknown), over the wall time since creation. */
    read(): string {
      const wallS = (performance.now() - t0) / 1000;
      return Object.keys(pids)
        .map((name) => {
          const s = used(name);
          return s === undefined ? `${name} ?` : `${name} ${Math.round((s / wallS) * 100)}%`;
        })
        .join(', ');
    },
  };
}
