/**
 * What both LBaaS benches stand on: the LBaaS lab (test/helpers/lbaas-lab.ts) with one
 * backend stand-in, whose namespace and address also carry the bench's member set
 * (bench/lbaas-backends.ts: `members` ports from FIRST_PORT), the pool pinned to the LBaaS
 * host that holds the client namespace, and the pool with its VIP served. `runLbaasBench`
 * wires it into bench/lib.ts runBench: cleanup, a last-resort kill, logs on failure.
 *
 * Invariant: everything made here — load clients, member set, baseline, lab, temp dir —
 * is removed by cleanup, also after a failure or Ctrl-C.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLbaasLab, type LbaasLab } from '../test/helpers/lbaas-lab.ts';
import { type BackendSet, startBackends } from './lbaas-backends.ts';
import { killLoads } from './lbaas-load.ts';
import { type BenchPool, createPool, pinLbaasHost } from './lbaas-pool.ts';
import { logTail, runBench } from './lib.ts';

export const FIRST_PORT = 8000;

export interface LbaasBenchLab {
  lab: LbaasLab;
  members: BackendSet;
  pool: BenchPool;
  /** Where the member set (and a baseline) runs: the backend stand-in's namespace. */
  backendNetns: string;
  dir: string;
  vipUrl: string;
}

interface State {
  lab?: LbaasLab;
  members?: BackendSet;
  dir?: string;
  /** More to stop before the member set (e.g. a baseline haproxy). */
  extra: (() => Promise<void>)[];
}

const state: State = { extra: [] };

/**
 * haproxy refuses a stats socket path over 97 characters, and the agent's is
 * `<state_path>/lbaas/<pool id>/haproxy.sock`; the lab's state_path is
 * `<tmpdir>/kumo-fullstack-XXXXXX/hosts/<host>`, 4 characters too long under /tmp. The lab
 * (and so the agents' state) goes under `/` unless KUMO_BENCH_TMPDIR says otherwise.
 */
function shortTmpdir() {
  process.env.TMPDIR = process.env.KUMO_BENCH_TMPDIR ?? '/';
}

/** Lab, member set, pool and VIP; resolves when the VIP answers. */
export async function setUpLbaasBench(memberCount: number): Promise<LbaasBenchLab> {
  const t0 = Date.now();
  shortTmpdir();
  state.dir = mkdtempSync(join(tmpdir(), 'kumo-bench-lbaas-'));
  const lab = await buildLbaasLab({ backends: 1 });
  state.lab = lab;
  const stand = lab.backends[0];
  if (!stand) throw new Error('the lab has no backend stand-in');
  await pinLbaasHost(lab, lab.lbHosts[0]);
  const members = await startBackends({
    netns: stand.endpoint.netns,
    address: stand.address,
    firstPort: FIRST_PORT,
    count: memberCount,
    dir: state.dir,
  });
  state.members = members;
  const targets = members.ports.map((port) => ({ address: stand.address, port }));
  const pool = await createPool(lab, targets);
  console.log(
    `lab up in ${((Date.now() - t0) / 1000).toFixed(1)} s: pool ${pool.id} with ${pool.members.length} members, ` +
      `VIP ${pool.vip.address}:${pool.vip.port} on ${lab.hostName(pool.host)}`,
  );
  return {
    lab,
    members,
    pool,
    backendNetns: stand.endpoint.netns,
    dir: state.dir,
    vipUrl: `http://${pool.vip.address}:${pool.vip.port}/`,
  };
}

/** Registers something to stop at cleanup, before the member set and the lab. */
export function onCleanup(fn: () => Promise<void>): void {
  state.extra.push(fn);
}

async function cleanup() {
  killLoads();
  const say = (e: Error) => console.error(`cleanup: ${e.message}`);
  for (const fn of state.extra) await fn().catch(say);
  await state.members?.stop().catch(say);
  await state.lab?.destroy().catch(say);
  if (state.dir) rmSync(state.dir, { recursive: true, force: true });
}

/** runBench with the LBaaS benches' cleanup and diagnostics. */
export function runLbaasBench(main: () => Promise<void>): Promise<void> {
  return runBench({
    main,
    cleanup,
    lastly: () => {
      killLoads();
      const c = state.lab?.c;
      for (const p of [c?.api, ...(c?.hostAgents.values() ?? [])])
        if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
    },
    onFailure: () => {
      const l = state.lab;
      if (!l) return;
      console.error(`kumo-api log (last lines):\n${logTail(l.c.api?.logPath ?? '', 15)}`);
      for (const h of l.lbHosts) {
        const agent = l.procs(h).get('lbaas');
        console.error(
          `LBaaS agent on ${l.hostName(h)} (last lines):\n${logTail(agent?.logPath ?? '', 15)}`,
        );
      }
    },
  });
}
