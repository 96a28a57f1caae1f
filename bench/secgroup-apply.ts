#!/usr/bin/env node
/**
 * bench/secgroup-apply: how long a security group change takes from the API call to the
 * firewall flows on br-int, for --ports ports in one group of 50 rules with remote-group
 * rules, against installing the same flows with one `ovs-ofctl add-flow` process per flow.
 *
 *   node bench/secgroup-apply.ts [--ports 100] [--rules 50] [--remote-every 6] [--baseline-max 6000]
 *
 * Standalone: a 1-host lab (test/helpers/lab.ts) and a Cluster (test/helpers/cluster.ts:
 * own vhost, SQLite, the real kumo-api) with one real kumo-ovs-agent. Not timed: the admin
 * project's rule quota raised, a vxlan network with a /16, a group holding --rules − 1
 * rules (Neutron's two egress rules and ingress rules of five kinds; every --remote-every-th
 * ingress rule has remote_group_id = the group itself), --ports API ports in that group
 * (port security on, the network's default), plugged into br-int in one `ovs-vsctl`
 * transaction; then until every port is ACTIVE and br-int's table has not changed for
 * SETTLE_MS.
 *
 * kumo: t0 = just before the POST of the group's last rule, ingress TCP 4242 from
 * remote_group_id = the group (so every port's firewall changes, with every member's
 * address). br-int is dumped (`ovs-ofctl dump-flows --no-stats`) every POLL_GAP_MS after the
 * last dump returned (bench/sg-table.ts); done = the arrival of the first dump equal to the
 * final table, which must allow TCP 4242 and then stay unchanged for SETTLE_MS (an upper
 * bound by one dump and the gap). The agent's log gives the tighter figure: when the sync
 * that wrote that table began, its security_group_info call and its replace-flows' end.
 *
 * baseline (same run, agent stopped): that final table, line by line, into a fresh bridge
 * (netdev, fail_mode=secure, empty) with one `ovs-ofctl -O OpenFlow14 add-flow` per flow,
 * as a `sh -e` loop (one process per flow, no Node in between); its table must then equal
 * what was added. A table over --baseline-max flows is sampled evenly and the time scaled
 * to the whole (printed as extrapolated; ~13 ms a process here would otherwise take minutes).
 * Last line: `ratio baseline/kumo (time to install): X`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Network, Port } from '../contracts/network.ts';
import { runCommand } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import { logTail, runBench } from './lib.ts';
import {
  call,
  destroyMade,
  dumpFlows,
  killMade,
  type Made,
  makeGroup,
  raiseRuleQuota,
  ruleSet,
  type SgLab,
  startSgLab,
} from './sg-lab.ts';
import {
  agentSync,
  type Dump,
  digest,
  finalRun,
  names,
  POLL_GAP_MS,
  settled,
  watchTable,
} from './sg-table.ts';

const MARK_PORT = 4242;
const BASE_BRIDGE = 'br-sgbase';
/** The port of the group's first ingress rule (bench/sg-lab.ts ruleSet). */
const FIRST_RULE_PORT = 1000;

const { values: opts } = parseArgs({
  options: {
    ports: { type: 'string', default: '100' },
    rules: { type: 'string', default: '50' },
    'remote-every': { type: 'string', default: '6' },
    'baseline-max': { type: 'string', default: '6000' },
  },
  strict: true,
});
const N = Number(opts.ports);
const RULES = Number(opts.rules);
const REMOTE_EVERY = Number(opts['remote-every']);
const BASELINE_MAX = Number(opts['baseline-max']);
for (const [k, v, max] of [
  ['ports', N, 500],
  ['rules', RULES, 500],
  ['remote-every', REMOTE_EVERY, 500],
  ['baseline-max', BASELINE_MAX, 1_000_000],
] as const)
  if (!Number.isInteger(v) || v < 3 || v > max)
    throw new Error(`--${k} must be an integer in 3..${max} (got ${v})`);

const made: Made = {};
const now = () => performance.now();
const allowsMark = (flows: string[]) => names(flows, MARK_PORT);
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
/** Network, subnet, the group with RULES − 1 rules, N ports in it plugged into br-int. */
async function setup(l: SgLab) {
  await raiseRuleQuota(l.c, 10 * RULES);
  const net = await call<Network>(l.c, 'POST', '/v2.0/networks', 'network', {
    name: 'sg-bench',
    'provider:network_type': 'vxlan',
  });
  await call(l.c, 'POST', '/v2.0/subnets', 'subnet', {
    network_id: net.id,
    cidr: '10.0.0.0/16',
    ip_version: 4,
  });
  const group = await makeGroup(l.c, 'sg-bench', (id) =>
    ruleSet(RULES - 3, { remoteGroup: id, remoteEvery: REMOTE_EVERY }),
  );
  const ports: Port[] = [];
  for (let i = 0; i < N; i++)
    ports.push(
      await call<Port>(l.c, 'POST', '/v2.0/ports', 'port', {
        network_id: net.id,
        name: `sgb${i}`,
        security_groups: [group.id],
      }),
    );
  const argv = ports.flatMap((p, i) => {
    const name = `sgb${String(i).padStart(3, '0')}`;
    return [
      ...(i ? ['--'] : []),
      'add-port',
      'br-int',
      name,
      '--',
      'set',
      'Interface',
      name,
      'type=internal',
      `external_ids:iface-id=${p.id}`,
      `external_ids:attached-mac=${p.mac_address}`,
      'external_ids:iface-status=active',
    ];
  });
  await l.host.vsctl(argv);
  await waitFor(
    `${N} ports ACTIVE`,
    async () => {
      const err = l.agentDied();
      if (err) throw err;
      const res = await l.c.http('GET', `/v2.0/ports?network_id=${net.id}&status=ACTIVE&fields=id`);
      return (res.body as { ports: unknown[] }).ports.length === N;
    },
    60_000,
    200,
  );
  return { group, net };
}

/** The agent's phase: the last rule's POST → br-int's final table. */
async function kumoPhase(l: SgLab, groupId: string) {
  const t0 = now();
  await call(l.c, 'POST', '/v2.0/security-group-rules', 'security_group_rule', {
    security_group_id: groupId,
    direction: 'ingress',
    ethertype: 'IPv4',
    protocol: 'tcp',
    port_range_min: MARK_PORT,
    port_range_max: MARK_PORT,
    remote_group_id: groupId,
  });
  const apiMs = now() - t0;
  const dumps = await watchTable(l, t0, settled(allowsMark));
  const run = finalRun(dumps);
  const [first, final] = [run[0] as Dump, run.at(-1) as Dump];
  const dumpMs = dumps.reduce((n, d) => n + d.arrived - d.sent, 0) / dumps.length;
  const epoch = (t: number) => performance.timeOrigin + t;
  const sync = agentSync(l.agent.logPath, epoch(t0), epoch(first.arrived));
  return {
    flows: final.flows,
    ms: first.arrived - t0,
    apiMs,
    dumpMs,
    sync: sync && {
      began: sync.startedAt - epoch(t0),
      sgInfoMs: sync.sgInfoMs,
      flowsMs: sync.flowsMs,
      ended: sync.flowsEnd - epoch(t0),
    },
  };
}

/** Every k-th flow, so that at most `max` remain (all of them when they fit). */
function sampleOf(flows: string[], max: number): string[] {
  if (flows.length <= max) return flows;
  const step = flows.length / max;
  return Array.from({ length: max }, (_, i) => flows[Math.floor(i * step)] as string);
}

/**
 * One `ovs-ofctl add-flow` process per flow into a fresh, empty bridge, for at most
 * BASELINE_MAX of `flows` (evenly spaced); its time, scaled to all of them when sampled.
 */
async function baselinePhase(l: SgLab, flows: string[]) {
  await l.host.vsctl([
    'add-br',
    BASE_BRIDGE,
    '--',
    'set',
    'Bridge',
    BASE_BRIDGE,
    'datapath_type=netdev',
    'fail_mode=secure',
  ]);
  if ((await dumpFlows(l.host, BASE_BRIDGE)).length !== 0)
    throw new Error(`${BASE_BRIDGE} is not empty`);
  const installed = sampleOf(flows, BASELINE_MAX);
  const file = join(l.c.dir.path, 'baseline-flows.txt');
  writeFileSync(file, `${installed.join('\n')}\n`);
  const script =
    'while IFS= read -r flow; do ovs-ofctl -O OpenFlow14 add-flow "$1" "$flow"; done < "$2"';
  const target = `unix:${l.host.dir}/${BASE_BRIDGE}.mgmt`;
  const t0 = now();
  const res = await runCommand(['sh', '-e', '-c', script, 'sh', target, file], {}, 600_000);
  const measured = now() - t0;
  if (res.code !== 0) throw new Error(`baseline add-flow loop failed: ${res.stderr.trim()}`);
  const got = await dumpFlows(l.host, BASE_BRIDGE);
  const want = [...installed].sort();
  if (digest(got) !== digest(want))
    throw new Error(
      `${BASE_BRIDGE} differs from what was added: ${got.length} flows against ${want.length}; ` +
        `first missing: ${want.find((f) => !got.includes(f)) ?? '(none)'}`,
    );
  return {
    measured,
    installed: installed.length,
    ms: (measured * flows.length) / installed.length,
  };
}

async function main() {
  const started = now();
  const l = await startSgLab(made);
  const { group } = await setup(l);
  const before = await watchTable(
    l,
    now(),
    settled(() => true),
  );
  const base = before.at(-1) as Dump;
  if (allowsMark(base.flows)) throw new Error(`br-int allows TCP ${MARK_PORT} before the rule`);
  if (!names(base.flows, FIRST_RULE_PORT))
    throw new Error(`no firewall on br-int: no flow for the group's TCP ${FIRST_RULE_PORT} rule`);
  console.log(
    `secgroup-apply bench: ${N} ports on br-int of 1 lab host, all in one group of ` +
      `${group.rules + 1} rules (every ${REMOTE_EVERY}th ingress rule from remote_group_id = ` +
      `the group); ${base.flows.length} flows on br-int before; setup ${s(now() - started)}`,
  );
  const kumo = await kumoPhase(l, group.id);
  const marked = kumo.flows.filter((f) => f.includes(String(MARK_PORT))).length;
  console.log(
    `kumo: POST of rule ${group.rules + 1} (ingress TCP ${MARK_PORT} from remote_group_id = ` +
      `the group) → br-int holds the final table: ${s(kumo.ms)} (POST answered in ` +
      `${s(kumo.apiMs)}; one dump-flows takes ${s(kumo.dumpMs)}, every ${POLL_GAP_MS} ms); ` +
      `${kumo.flows.length} flows, ${marked} naming ${MARK_PORT}`,
  );
  const y = kumo.sync;
  console.log(
    y
      ? `  from the agent's log: its sync began ${s(y.began)} after the POST, ` +
          `security_group_info ${y.sgInfoMs === undefined ? '?' : s(y.sgInfoMs)}, ` +
          `replace-flows ${s(y.flowsMs)}, which ended ${s(y.ended)} after the POST`
      : "  the agent's log shows no replace-flows between the POST and that dump",
  );
  await l.c.stop(l.agent, 'SIGTERM');
  const baseline = await baselinePhase(l, kumo.flows);
  const perFlow = baseline.measured / baseline.installed;
  const how =
    baseline.installed === kumo.flows.length
      ? `the same ${kumo.flows.length} flows, one ovs-ofctl add-flow each, into an empty bridge: ` +
        `${s(baseline.ms)} (${perFlow.toFixed(2)} ms per flow); its table equals br-int's`
      : `${baseline.installed} of the ${kumo.flows.length} flows (every ` +
        `${(kumo.flows.length / baseline.installed).toFixed(1)}th; --baseline-max), one ovs-ofctl ` +
        `add-flow each, into an empty bridge: ${s(baseline.measured)} (${perFlow.toFixed(2)} ms per ` +
        `flow; its table equals them), so all ${kumo.flows.length}: ${s(baseline.ms)} (extrapolated)`;
  console.log(`baseline: ${how}; bench took ${s(now() - started)}`);
  console.log(`ratio baseline/kumo (time to install): ${(baseline.ms / kumo.ms).toFixed(1)}`);
}

await runBench({
  main,
  cleanup: () => destroyMade(made),
  lastly: () => killMade(made),
  onFailure: () => {
    const agent = made.c?.hostAgents.values().next().value;
    if (agent) console.error(`kumo-ovs-agent log (last lines):\n${logTail(agent.logPath)}`);
    if (made.c?.api) console.error(`kumo-api log (last lines):\n${logTail(made.c.api.logPath)}`);
  },
});
