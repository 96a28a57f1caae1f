/**
 * bench/lbaas-reload's baseline: the older way to change a load balancer — rewrite
 * haproxy.cfg, stop haproxy (SIGTERM, wait until it is gone), start it again; no `-sf`, no
 * `-x`, so the listening socket is closed between the two processes. The config comes from
 * the same renderer the agent uses (host/haproxy/config.ts renderConfig): one frontend on
 * the baseline's address, one round-robin backend with the pool's members (named by their
 * ids, as the agent names them), the agent's global maxconn, user and timeouts, an admin stats socket.
 *
 * Invariant: only the haproxy of this baseline's own pid file and config is ever signalled;
 * stop() leaves nothing running. Every change is timed from the start of its rewrite until
 * the stats socket shows the new weight (the new config in force).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MAXCONN, HARD_STOP_AFTER, RUN_AS } from '../agents/lbaas/desired.ts';
import { createCommandRunner } from '../core/exec.ts';
import { renderConfig } from '../host/haproxy/config.ts';
import {
  checkCommand,
  findHaproxy,
  type HaproxyPaths,
  haproxyExpected,
  startCommand,
} from '../host/haproxy/daemon.ts';
import { startDaemon, stop, stopByPidfile } from '../host/process/daemon.ts';
import { waitWeight } from './lbaas-stats.ts';

export interface BaselineMember {
  id: string;
  address: string;
  port: number;
  weight: number;
}

export interface Baseline {
  /** The frontend's address and port. */
  address: string;
  port: number;
  /** Rewrites the config with `member`'s new weight, restarts; ms until in force. */
  change(id: string, weight: number): Promise<number>;
  stop(): Promise<void>;
}

const runner = createCommandRunner();

function render(paths: HaproxyPaths, bind: { address: string; port: number }, m: BaselineMember[]) {
  return renderConfig({
    maxconn: DEFAULT_MAXCONN,
    runAs: RUN_AS,
    hardStopAfter: HARD_STOP_AFTER,
    timeouts: { connect: 5, client: 50, server: 50, httpRequest: 10 },
    stats: { socket: paths.socket as string },
    frontends: [{ name: 'vip', mode: 'http', bind, defaultBackend: 'pool' }],
    backends: [
      {
        name: 'pool',
        mode: 'http',
        balance: 'roundrobin',
        servers: m.map((s) => ({
          name: s.id,
          address: s.address,
          port: s.port,
          weight: s.weight,
        })),
      },
    ],
  });
}

async function write(paths: HaproxyPaths, text: string) {
  writeFileSync(`${paths.config}.tmp`, text);
  renameSync(`${paths.config}.tmp`, paths.config);
  await runner.run(checkCommand(paths.config));
}

const start = (paths: HaproxyPaths, netns: string) =>
  startDaemon(runner, startCommand(paths, netns), {
    pidfile: paths.pidfile,
    expected: haproxyExpected(paths),
  });

/** Starts the baseline haproxy in `netns` on `address:port` for `members`. */
export async function startBaseline(opts: {
  netns: string;
  address: string;
  port: number;
  dir: string;
  members: BaselineMember[];
}): Promise<Baseline> {
  const paths: HaproxyPaths = {
    config: join(opts.dir, 'baseline.cfg'),
    pidfile: join(opts.dir, 'baseline.pid'),
    socket: join(opts.dir, 'baseline.sock'),
  };
  const bind = { address: opts.address, port: opts.port };
  const members = opts.members.map((m) => ({ ...m }));
  await write(paths, render(paths, bind, members));
  await start(paths, opts.netns);
  return {
    address: opts.address,
    port: opts.port,
    async change(id, weight) {
      const t0 = performance.now();
      const m = members.find((x) => x.id === id);
      if (!m) throw new Error(`no member ${id}`);
      m.weight = weight;
      await write(paths, render(paths, bind, members));
      const pid = await findHaproxy(paths);
      if (pid !== null) await stop(pid, haproxyExpected(paths), { graceMs: 5000, pollMs: 2 });
      await start(paths, opts.netns);
      await waitWeight(paths.socket as string, id, weight);
      return performance.now() - t0;
    },
    async stop() {
      await stopByPidfile(paths.pidfile, haproxyExpected(paths), { graceMs: 1000 });
    },
  };
}
