/**
 * bench/l3-failover: how long a floating IP is unreachable when the network host serving
 * its router dies, with report_interval = 2 and agent_down_time = 6 (Neutron's
 * rescheduling needs 75 s of detection and more).
 *
 * The topology is test/helpers/l3-lab.ts (two network hosts, one compute-side host with
 * an endpoint behind the router, a floating IP, the real kumo-api and agents). The outside
 * world pings the floating IP every 100 ms (`ping -D`: each reply's wall time and RTT);
 * then the hosting network host dies as a power cut looks (agents SIGKILLed, links down,
 * ovs-vswitchd stopped). Outage = the first lost request's send time → the send time of
 * the first request answered again (a request's send time is its reply's time minus its
 * RTT; a lost one's is its predecessor's plus the interval).
 *
 * Invariant: everything runs in the lab's namespaces and goes with `destroy()`, also
 * after a failure or Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { waitFor } from '../test/helpers/env.ts';
import { buildL3Lab, type L3Lab } from '../test/helpers/l3-lab.ts';
import { logTail, runBench } from './lib.ts';

const REPORT_INTERVAL = 2;
const AGENT_DOWN_TIME = 6;
const INTERVAL_S = 0.1;
const TARGET_S = 10;

const { values: args } = parseArgs({ options: { timeout: { type: 'string', default: '60' } } });
const timeoutS = Number(args.timeout);

let l3: L3Lab | undefined;
let pinger: ChildProcess | undefined;

interface Reply {
  seq: number;
  /** When the request left (ms, wall clock). */
  sent: number;
}

/** `ping -D -i 0.1` from the outside namespace; replies as they come. */
function startPing(l: L3Lab, replies: Reply[]) {
  const child = spawn(
    'ip',
    ['netns', 'exec', l.outside, 'ping', '-n', '-D', '-i', String(INTERVAL_S), l.fip.address],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let buf = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) .*time=([\d.]+) ms/.exec(line);
      if (m) replies.push({ seq: Number(m[2]), sent: Number(m[1]) * 1000 - Number(m[3]) });
    }
  });
  return child;
}

/** The outage around `killedAt` from the replies: first lost → first answered again. */
function outageOf(replies: readonly Reply[], killedAt: number) {
  const sorted = [...replies].sort((a, b) => a.seq - b.seq);
  const i = sorted.findIndex(
    (r, k) => r.sent >= killedAt - 1000 && (sorted[k + 1]?.seq ?? r.seq + 1) > r.seq + 1,
  );
  const last = sorted[i];
  const back = sorted[i + 1];
  if (!last || !back) return null;
  const firstLost = last.sent + INTERVAL_S * 1000;
  return {
    ms: back.sent - firstLost,
    lost: back.seq - last.seq - 1,
    firstLostSeq: last.seq + 1,
    backSeq: back.seq,
    firstLostAfterKill: firstLost - killedAt,
    back: back.sent,
  };
}

/** When kumo-api's sweep moved the router after `since` (its log's wall time). */
function movedAt(l: L3Lab, since: number): number | undefined {
  for (const line of l.c.log('kumo-api').split('\n')) {
    if (!line.includes('"msg":"router moved by the L3 sweep"')) continue;
    const x = JSON.parse(line) as { time: number; routerId: string };
    if (x.routerId === l.routerId && x.time > since) return x.time;
  }
  return undefined;
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main() {
  const t0 = Date.now();
  l3 = await buildL3Lab({
    computeHosts: 1,
    timing: { reportInterval: REPORT_INTERVAL, agentDownTime: AGENT_DOWN_TIME },
  });
  const l = l3;
  const victim = await l.hostingHost();
  if (!victim) throw new Error('the router is not hosted');
  console.log(`lab up in ${s(Date.now() - t0)}; the router is on ${victim.name}`);
  const replies: Reply[] = [];
  pinger = startPing(l, replies);
  await new Promise((r) => setTimeout(r, 3000));
  const before = replies.length;
  if (before < 20) throw new Error(`only ${before} replies in 3 s before the kill`);
  const killedAt = Date.now();
  await l.killHost(victim);
  console.log(`${victim.name} down (agents, links, ovs-vswitchd) in ${s(Date.now() - killedAt)}`);
  await waitFor(
    'the floating IP answering again',
    async () => outageOf(replies, killedAt) !== null,
    timeoutS * 1000,
    50,
  );
  await new Promise((r) => setTimeout(r, 1000));
  pinger.kill('SIGINT');
  report(l, replies, killedAt, victim.name);
}

function report(l: L3Lab, replies: readonly Reply[], killedAt: number, victim: string) {
  const o = outageOf(replies, killedAt);
  if (!o) throw new Error('no outage measured');
  const moved = movedAt(l, killedAt);
  const hosting = moved === undefined ? NaN : moved - killedAt;
  console.log(
    `outage: ${s(o.ms)} (${o.lost} requests lost, seq ${o.firstLostSeq}–${o.backSeq - 1}; ` +
      `the first lost left ${s(o.firstLostAfterKill)} after the kill)`,
  );
  console.log(
    `kill → kumo-api's sweep moved the router off ${victim}: ${s(hosting)} ` +
      `(agent_down_time ${AGENT_DOWN_TIME} s after the last heartbeat, report_interval ` +
      `${REPORT_INTERVAL} s, sweep every ${AGENT_DOWN_TIME / 2} s); move → first request ` +
      `answered again: ${s(o.back - (moved ?? NaN))} (L2 and L3 agents on the other host, GARP)`,
  );
  console.log(`target (outage < ${TARGET_S} s): ${o.ms < TARGET_S * 1000 ? 'met' : 'MISSED'}`);
  console.log(`ratio outage/agent_down_time: ${(o.ms / 1000 / AGENT_DOWN_TIME).toFixed(2)}`);
}

await runBench({
  main,
  async cleanup() {
    pinger?.kill('SIGKILL');
    await l3?.destroy().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  },
  lastly: () => {
    pinger?.kill('SIGKILL');
    const c = l3?.c;
    for (const p of [c?.api, ...(c?.hostAgents.values() ?? [])])
      if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
  },
  onFailure: () => {
    if (!l3) return;
    console.error(`kumo-api log (last lines):\n${logTail(l3.c.api?.logPath ?? '', 15)}`);
  },
});
