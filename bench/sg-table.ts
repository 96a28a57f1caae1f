/**
 * secgroup-apply's view of br-int: its flow table dumped over and over until it settles,
 * and the agent's log line for the sync that wrote it.
 *
 * Invariant: read-only (ovs-ofctl dump-flows, the agent's log file); a table counts as
 * settled only when the same dump repeats for SETTLE_MS, so a half-applied change is
 * never taken for the final one.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { dumpFlows, type SgLab } from './sg-lab.ts';

export const SETTLE_MS = 4000;
/** Between two dumps, so the polling leaves the agent and ovs-vswitchd some CPU. */
export const POLL_GAP_MS = 100;
const PHASE_TIMEOUT_MS = 90_000;
const now = () => performance.now();

export const digest = (flows: string[]) =>
  createHash('sha1').update(flows.join('\n')).digest('hex');
/** Whether some flow matches TCP/UDP destination `port` (as ovs-ofctl prints it). */
export const names = (flows: string[], port: number) =>
  flows.some((f) => new RegExp(`tp_dst=(${port}|0x${port.toString(16)})\\b`).test(f));

export interface Dump {
  sent: number;
  arrived: number;
  hash: string;
  flows: string[];
}

/** Dumps br-int back to back until `done(dumps)`; fails after PHASE_TIMEOUT_MS. */
export async function watchTable(
  l: SgLab,
  t0: number,
  done: (d: Dump[]) => boolean,
): Promise<Dump[]> {
  const dumps: Dump[] = [];
  while (!done(dumps)) {
    const err = l.agentDied();
    if (err) throw err;
    if (now() - t0 > PHASE_TIMEOUT_MS)
      throw new Error(`br-int did not settle within ${PHASE_TIMEOUT_MS / 1000} s`);
    const sent = now();
    const flows = await dumpFlows(l.host, 'br-int');
    dumps.push({ sent, arrived: now(), hash: digest(flows), flows });
    await sleep(POLL_GAP_MS);
  }
  return dumps;
}

/** The dumps since the table last changed (the final run). */
export function finalRun(dumps: Dump[]): Dump[] {
  const last = dumps.at(-1);
  if (!last) return [];
  let j = dumps.length - 1;
  while (j > 0 && dumps[j - 1]?.hash === last.hash) j--;
  return dumps.slice(j);
}

/** Whether the table has held for SETTLE_MS and its last dump passes `ok`. */
export const settled = (ok: (flows: string[]) => boolean) => (dumps: Dump[]) => {
  const run = finalRun(dumps);
  const [first, last] = [run[0], run.at(-1)];
  return !!first && !!last && ok(last.flows) && last.arrived - first.arrived >= SETTLE_MS;
};

/** What the agent's log says of the sync that wrote the final table. */
export interface AgentSync {
  /** Wall clock ms: the sync's start and its replace-flows' end. */
  startedAt: number;
  flowsEnd: number;
  flowsMs: number;
  sgInfoMs?: number;
}

/**
 * The agent's last replace-flows that ended in (`from`, `to`] (wall clock ms), with its
 * sync's `l2 sync` line: the one that wrote the table the bench first saw at `to` (a dump
 * sent during a bundle is answered after it, so `to` is the dump's arrival).
 */
export function agentSync(logPath: string, from: number, to: number): AgentSync | undefined {
  let found: AgentSync | undefined;
  let pending: { time: number; ms: number } | undefined;
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const x = JSON.parse(line) as Record<string, number | string>;
    if (x.msg === 'step' && x.step === 'flows')
      pending = { time: Number(x.time), ms: Number(x.ms) };
    if (x.msg !== 'l2 sync' || !pending) continue;
    if (pending.time > from && pending.time <= to)
      found = {
        startedAt: Number(x.startedAt),
        flowsEnd: pending.time,
        flowsMs: pending.ms,
        ...(x.sgInfoMs !== undefined ? { sgInfoMs: Number(x.sgInfoMs) } : {}),
      };
    pending = undefined;
  }
  return found;
}
