/**
 * bench/lbaas-throughput: HTTP requests per second through a VIP (client namespace → the
 * pool's qlbaas namespace → haproxy → a member) against the same client hitting one member
 * directly, in the same run, with the same concurrency and connection mode. Ratio
 * VIP/direct printed last (target ≥ 0.5).
 *
 * The lab is bench/lbaas-bench-lab.ts: the pool is pinned to the LBaaS host that holds the
 * client (the qdhcp namespace), so both paths cross the same VXLAN tunnel to the member
 * host once; the VIP path adds one hop through the local br-int and haproxy. Members are
 * bench/lbaas-backends.ts (one haproxy answering on `--members` ports). Rounds alternate
 * ABBA so drift hits both; the medians are compared.
 *
 * Invariant: all traffic stays in the lab's namespaces; everything goes at exit, also after
 * a failure or Ctrl-C.
 */
import { parseArgs } from 'node:util';
import { FIRST_PORT, runLbaasBench, setUpLbaasBench } from './lbaas-bench-lab.ts';
import { describeLoad, type LoadSpec, rate, runLoad } from './lbaas-load.ts';

const TARGET = 0.5;

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    // keepalive: each client connection carries many requests; close: one per connection
    mode: { type: 'string', default: 'keepalive' },
  },
});
if (args.mode !== 'keepalive' && args.mode !== 'close')
  throw new Error('--mode must be keepalive or close');
const mode = args.mode;
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function measure(spec: LoadSpec, what: string): Promise<number> {
  const r = await runLoad(spec, seconds);
  if (r.failed > 0 || r.ok === 0) throw new Error(`${what}: ${describeLoad(r)}`);
  console.log(`  ${what}: ${describeLoad(r)}`);
  return rate(r);
}

async function main() {
  const b = await setUpLbaasBench(Number(args.members));
  const base = {
    netns: b.lab.clientNetns,
    concurrency: Number(args.concurrency),
    mode,
    expect: b.members.anyBody,
  } as const;
  const vip: LoadSpec = { ...base, url: b.vipUrl };
  const direct: LoadSpec = { ...base, url: `http://${b.members.address}:${FIRST_PORT}/` };
  await runLoad(vip, 1);
  await runLoad(direct, 1);
  const byVip: number[] = [];
  const byDirect: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const order = r % 2 === 1 ? ['vip', 'direct'] : ['direct', 'vip'];
    for (const which of order) {
      if (which === 'vip') byVip.push(await measure(vip, `round ${r} VIP`));
      else byDirect.push(await measure(direct, `round ${r} direct`));
    }
  }
  const v = median(byVip);
  const d = median(byDirect);
  console.log(
    `median of ${rounds} rounds of ${seconds} s at concurrency ${args.concurrency} (${mode}): ` +
      `VIP ${v.toFixed(0)} req/s (round robin over ${args.members} members), direct ${d.toFixed(0)} req/s (one member)`,
  );
  console.log(`target (VIP/direct ≥ ${TARGET}): ${v / d >= TARGET ? 'met' : 'MISSED'}`);
  console.log(`ratio VIP/direct (req/s): ${(v / d).toFixed(2)}`);
}

await runLbaasBench(main);
