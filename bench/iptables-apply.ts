#!/usr/bin/env node
/**
 * bench/iptables-apply: one router with --fips floating IPs (default 1,000), its NAT from
 * agents/l3/nat.ts applied to a fresh namespace by host/iptables (Kumo: one iptables-save,
 * one iptables-restore --noflush), against the same rules added by one `iptables` process
 * per chain, jump and rule (baseline: the way a shell script or a rule-at-a-time agent
 * does it), in the same run.
 *
 *   node bench/iptables-apply.ts [--fips 1000]
 *
 * Needs root (network namespaces) and iptables. The router: gateway 198.18.0.1 on
 * `qg-bench`, SNAT on, two internal /24s; floating IPs 198.18.1.0 onwards (RFC 2544's
 * benchmarking range), fixed IPs 10.0.0.10 onwards. No interface exists: rules only.
 *
 * Kumo: t0 → applyIptables returns (validation, observe, render, the restore). Baseline: one
 * `ip netns exec NS sh -e` whose stdin is one iptables line per chain (-N), jump (-I) and
 * rule (-A), in the restore's order; `ip netns exec` is paid once, not per rule, in the
 * baseline's favour. Both namespaces are then checked to hold exactly the model (host/
 * iptables observe: a second apply would run nothing), and the no-op apply is timed too.
 * Both namespaces are deleted at the end, also on error or Ctrl-C.
 *
 * Last line: `ratio baseline/kumo (time to apply): X.X` (higher = Kumo faster).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type NatInput, natModel } from '../agents/l3/nat.ts';
import { formatIp } from '../contracts/inet.ts';
import { createCommandRunner } from '../core/exec.ts';
import { applyIptables, observeIptables, planIptables } from '../host/iptables/apply.ts';
import { chainName, type OwnedState, validateModel } from '../host/iptables/model.ts';
import { runBench } from './lib.ts';

const { values: opts } = parseArgs({
  options: { fips: { type: 'string', default: '1000' } },
  strict: true,
});
const N = Number(opts.fips);
if (!Number.isInteger(N) || N < 1 || N > 60000)
  throw new Error(`--fips must be an integer in 1..60000 (got ${opts.fips})`);

const runner = createCommandRunner({ defaultTimeoutMs: 600_000 });
const tag = randomBytes(3).toString('hex');
const KUMO_NS = `kumo-bench-ipt-${tag}-k`;
const BASE_NS = `kumo-bench-ipt-${tag}-b`;
const made: string[] = [];
const now = () => performance.now();
const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

function router(): NatInput {
  const fip = (i: number) => formatIp(4, (198n << 24n) + (18n << 16n) + 256n + BigInt(i));
  const fixed = (i: number) => formatIp(4, (10n << 24n) + BigInt(10 + i));
  return {
    qgDevice: 'qg-bench',
    gatewayIp: '198.18.0.1',
    enableSnat: true,
    internalCidrs: ['10.0.0.0/16', '10.1.0.0/24'],
    floatingIps: Array.from({ length: N }, (_, i) => ({ floatingIp: fip(i), fixedIp: fixed(i) })),
  };
}

/** The same chains, jumps and rules as the restore, one iptables invocation each. */
function baselineScript(state: OwnedState): string[] {
  const out: string[] = [];
  for (const [table, owned] of state.tables) {
    for (const chain of owned.chains.keys()) out.push(`iptables -t ${table} -N ${chain}`);
    for (const builtin of owned.jumps.keys())
      out.push(`iptables -t ${table} -I ${builtin} 1 -j ${chainName(state.prefix, builtin)}`);
    for (const [chain, rules] of owned.chains)
      for (const rule of rules) out.push(`iptables -t ${table} -A ${chain} ${rule.join(' ')}`);
  }
  return out;
}

/** Throws unless the namespace holds exactly the model under its prefix. */
async function check(desired: OwnedState, netns: string, who: string) {
  const observed = await observeIptables(runner, { family: 4, prefix: desired.prefix, netns });
  const steps = planIptables(desired, observed, netns);
  if (steps.length > 0) throw new Error(`${who}: the namespace differs: ${steps[0]?.why}`);
}

async function main() {
  for (const ns of [KUMO_NS, BASE_NS]) {
    await runner.run({ argv: ['ip', 'netns', 'add', ns] });
    made.push(ns);
  }
  const model = natModel(router());
  const desired = validateModel(model);
  const script = baselineScript(desired);
  const rules = script.filter((l) => l.includes(' -A ')).length;
  console.log(`router: ${N} floating IPs, ${rules} rules, ${script.length} iptables processes`);

  let t0 = now();
  const steps = await applyIptables(runner, model, KUMO_NS);
  const kumo = now() - t0;
  if (steps.length !== 1) throw new Error(`kumo: expected one restore, planned ${steps.length}`);
  await check(desired, KUMO_NS, 'kumo');
  t0 = now();
  const again = await applyIptables(runner, model, KUMO_NS);
  const noop = now() - t0;
  if (again.length !== 0) throw new Error('kumo: the second apply was not a no-op');
  console.log(
    `kumo: one iptables-restore --noflush: ${s(kumo)}; a second apply (no-op): ${s(noop)}`,
  );

  t0 = now();
  await runner.run({ argv: ['sh', '-e'], netns: BASE_NS, stdin: `${script.join('\n')}\n` });
  const baseline = now() - t0;
  await check(desired, BASE_NS, 'baseline');
  console.log(
    `baseline: ${script.length} iptables processes: ${s(baseline)} (${(baseline / script.length).toFixed(1)} ms each)`,
  );
  console.log('both namespaces hold exactly the model');
  console.log(`ratio baseline/kumo (time to apply): ${(baseline / kumo).toFixed(1)}`);
}

async function cleanup() {
  for (const ns of made) await runner.run({ argv: ['ip', 'netns', 'del', ns] }).catch(() => {});
}

await runBench({ main, cleanup });
