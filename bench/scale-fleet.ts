/**
 * bench/scale's simulator processes seen from the bench: forks `n` bench/scale-sim.ts
 * children, hands each its share of the hosts (host i goes to child i mod n), routes plug /
 * unplug to the child owning the host, forwards announced report publish times, and merges
 * the children's RPC statistics.
 *
 * Invariant: a child that exits or reports an error fails the next fleet operation with
 * its message; `stop()` ends every child (SIGKILL after 5 s), and `lastly()` kills them
 * synchronously on exit.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { agentTypeByKind } from '../contracts/agents.ts';
import type { FromSim, HostSpec, SimStats, ToSim } from './scale-sim.ts';
import { KINDS } from './scale-sim.ts';

export interface FleetOptions {
  processes: number;
  urls: string[];
  hostsPerConn: number;
  interval: number;
  resyncInterval: number;
  tunnels: boolean;
  logDir: string;
  /** A report of `agentType` on `host` was published at wall time `at`. */
  onPublished(agentType: string, host: string, at: number): void;
}

export const hostName = (i: number) => `sim-${String(i + 1).padStart(5, '0')}`;

export function hostSpec(i: number): HostSpec {
  const n = i + 1;
  return {
    index: i,
    name: hostName(i),
    role: i % 2 === 0 ? 'dhcp' : 'l3',
    tunnelIp: `10.${128 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`,
  };
}

/** `a` and `b` in one array (no spread into arguments: lists may be long). */
const concat = (a: number[] | undefined, b: number[]) => (a ? a.concat(b) : b);

export function startFleet(o: FleetOptions) {
  const children: ChildProcess[] = [];
  const waiters: ((m: FromSim, i: number) => void)[] = [];
  let failure: Error | undefined;
  const owner = new Map<string, ChildProcess>();
  const agentTypes = KINDS.map((k) => agentTypeByKind(k).agentType);

  for (let i = 0; i < o.processes; i++) {
    const fd = openSync(join(o.logDir, `sim-${i}.log`), 'a');
    const child = fork(join(import.meta.dirname, 'scale-sim.ts'), [], {
      stdio: ['ignore', fd, fd, 'ipc'],
    });
    closeSync(fd);
    child.on('message', (m: FromSim) => {
      if (m.type === 'published') {
        for (const [host, kind, at] of m.at)
          o.onPublished(agentTypes[kind] as string, hostName(host), at);
      } else if (m.type === 'error') failure ??= new Error(`simulator ${i}: ${m.message}`);
      else for (const w of waiters.splice(0)) w(m, i);
    });
    child.on('exit', (code, sig) => {
      failure ??= new Error(`simulator ${i} exited (${code ?? sig}); see ${o.logDir}/sim-${i}.log`);
      for (const w of waiters.splice(0)) w({ type: 'error', message: failure.message }, i);
    });
    children.push(child);
    const init: ToSim = {
      type: 'init',
      urls: o.urls,
      hostsPerConn: o.hostsPerConn,
      interval: o.interval,
      resyncInterval: o.resyncInterval,
      tunnels: o.tunnels,
      slot: i,
    };
    child.send(init);
  }

  const check = () => {
    if (failure) throw failure;
  };

  /** Sends `m` to every child and collects one answer of `type` from each. */
  const ask = <T extends FromSim['type']>(
    msgs: (ToSim | undefined)[],
    type: T,
    timeoutMs: number,
  ) =>
    new Promise<Extract<FromSim, { type: T }>[]>((resolve, reject) => {
      check();
      const expected = msgs.filter(Boolean).length;
      const got: Extract<FromSim, { type: T }>[] = [];
      const timer = setTimeout(
        () => reject(new Error(`simulators did not answer ${type} within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      const listen = (m: FromSim) => {
        if (m.type === 'error') {
          clearTimeout(timer);
          return reject(new Error(m.message));
        }
        if (m.type === type) got.push(m as Extract<FromSim, { type: T }>);
        if (got.length === expected) {
          clearTimeout(timer);
          resolve(got);
        } else waiters.push(listen);
      };
      waiters.push(listen);
      msgs.forEach((m, i) => {
        if (m) children[i]?.send(m);
      });
      if (expected === 0) resolve(got);
    });

  return {
    pids: () => children.flatMap((c) => (c.pid && c.exitCode === null ? [c.pid] : [])),
    check,
    /** Adds hosts [from, to): the slowest child's declaration time, the broker's refusals. */
    async add(from: number, to: number) {
      const per = children.map(() => [] as HostSpec[]);
      for (let i = from; i < to; i++) per[i % children.length]?.push(hostSpec(i));
      for (let i = from; i < to; i++)
        owner.set(hostName(i), children[i % children.length] as ChildProcess);
      const msgs = per.map((hosts): ToSim | undefined =>
        hosts.length ? { type: 'add', hosts } : undefined,
      );
      const added = await ask(msgs, 'added', 600_000);
      return {
        declareMs: Math.max(...added.map((a) => a.declareMs)),
        refused: added.flatMap((a) => a.refused),
      };
    },
    plug(host: string, port: string) {
      owner.get(host)?.send({ type: 'plug', host, port } satisfies ToSim);
    },
    unplug(host: string, port: string) {
      owner.get(host)?.send({ type: 'unplug', host, port } satisfies ToSim);
    },
    reset() {
      check();
      for (const c of children) c.send({ type: 'reset' } satisfies ToSim);
    },
    async stats(): Promise<SimStats> {
      const all = await ask(
        children.map(() => ({ type: 'stats' }) as ToSim),
        'stats',
        30_000,
      );
      const out: SimStats = { latency: {}, errors: {}, received: {} };
      for (const { stats } of all) {
        for (const [k, v] of Object.entries(stats.latency))
          out.latency[k] = concat(out.latency[k], v);
        for (const [k, v] of Object.entries(stats.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
        for (const [k, v] of Object.entries(stats.received))
          out.received[k] = (out.received[k] ?? 0) + v;
      }
      return out;
    },
    async stop() {
      failure ??= new Error('fleet stopped');
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              const t = setTimeout(() => c.kill('SIGKILL'), 5000);
              c.once('exit', () => {
                clearTimeout(t);
                resolve();
              });
              if (c.connected) c.send({ type: 'stop' } satisfies ToSim);
              else c.kill('SIGTERM');
            }),
        ),
      );
    },
    lastly() {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    },
  };
}
