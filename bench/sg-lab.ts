/**
 * What the two security-group benches share: a one-host lab with the real kumo-api and
 * kumo-ovs-agent, Neutron API calls (groups, rules, ports, quotas), a 50-rule group, and
 * br-int's flow table as ovs-ofctl prints it.
 *
 * Invariant: everything is made through the lab (its namespaces and ovs-vswitchd) and the
 * Cluster (its vhost, database and processes), so `destroy()` removes all of it; only
 * Neutron's public API shapes are used, so the benches measure what a user would see.
 */
import { spawn } from 'node:child_process';
import { DEFAULT_PROJECT_ID } from '../contracts/network.ts';
import { Cluster, ovsOf, type Proc } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import { createLab, type Lab, type LabHost } from '../test/helpers/lab.ts';

export interface SgLab {
  lab: Lab;
  c: Cluster;
  host: LabHost;
  hostName: string;
  agent: Proc;
  /** The agent's exit as an error, while it has not exited: undefined. */
  agentDied(): Error | undefined;
}

/** What a bench has made so far: its cleanup removes exactly this, after any failure. */
export interface Made {
  lab?: Lab;
  c?: Cluster;
}

/** Stops the cluster's processes, then removes the lab. */
export async function destroyMade(made: Made) {
  await made.c?.cleanup().catch((e: Error) => console.error(`cleanup: ${e.message}`));
  await made.lab?.destroy().catch((e: Error) => console.error(`cleanup: ${e.message}`));
}

/** SIGKILLs the cluster's processes (the synchronous last resort on exit). */
export function killMade(made: Made) {
  for (const p of [made.c?.api, ...(made.c?.hostAgents.values() ?? [])])
    if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
}

/** A 1-host lab, kumo-api (SQLite) and one kumo-ovs-agent, until br-int carries its flows. */
export async function startSgLab(made: Made): Promise<SgLab> {
  const lab = await createLab({ hosts: 1 });
  made.lab = lab;
  const host = lab.hosts[0] as LabHost;
  const hostName = `lab-${lab.prefix}-${host.name}`;
  const c = await Cluster.create('sqlite', ovsOf(host));
  made.c = c;
  await c.startApi();
  const agent = c.startAgentOn('ovs', hostName, ovsOf(host));
  const agentDied = () =>
    agent.child.exitCode !== null || agent.child.signalCode !== null
      ? new Error(`kumo-ovs-agent exited (${agent.child.exitCode ?? agent.child.signalCode})`)
      : undefined;
  await waitFor(
    "the agent's first sync (br-int with its flows)",
    async () => {
      const err = agentDied();
      if (err) throw err;
      return (await dumpFlows(host, 'br-int').catch(() => [])).length > 0;
    },
    30_000,
    100,
  );
  return { lab, c, host, hostName, agent, agentDied };
}

/** One API call that must answer `want`; the body's `key` member. */
export async function call<T>(
  c: Cluster,
  method: string,
  path: string,
  key: string,
  body?: unknown,
  want = method === 'POST' ? 201 : 200,
): Promise<T> {
  const res = await c.http(method, path, body === undefined ? undefined : { [key]: body });
  if (res.status !== want)
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, T>)[key] as T;
}

/** Raises the admin project's security group rule quota (Neutron's default is 100). */
export async function raiseRuleQuota(c: Cluster, rules: number) {
  await call(c, 'PUT', `/v2.0/quotas/${DEFAULT_PROJECT_ID}`, 'quota', {
    security_group_rule: rules,
  });
}

export interface RuleSpec {
  direction: 'ingress' | 'egress';
  ethertype: 'IPv4' | 'IPv6';
  protocol?: string;
  port_range_min?: number;
  port_range_max?: number;
  remote_ip_prefix?: string;
  remote_group_id?: string;
}

/**
 * `count` distinct ingress rules of the kind a real group carries: TCP services from
 * anywhere, TCP and UDP ranges from /16 prefixes, ICMP types, IPv6, and `remoteGroup`
 * rules (TCP 3000+k from the group's members) when a group id is given, every
 * `remoteEvery`th rule. None allows TCP `keepClosed`.
 */
export function ruleSet(
  count: number,
  opts: { remoteGroup?: string; remoteEvery?: number; keepClosed?: number } = {},
): RuleSpec[] {
  const rules: RuleSpec[] = [];
  for (let i = 0; rules.length < count; i++) {
    const k = rules.length;
    if (opts.remoteGroup && opts.remoteEvery && k % opts.remoteEvery === opts.remoteEvery - 1) {
      const port = 3000 + k;
      rules.push(tcp(port, port, { remote_group_id: opts.remoteGroup }));
      continue;
    }
    const rule = plainRule(i);
    if (opts.keepClosed === undefined || !opens(rule, opts.keepClosed)) rules.push(rule);
  }
  return rules;
}

const tcp = (min: number, max: number, more: Partial<RuleSpec> = {}): RuleSpec => ({
  direction: 'ingress',
  ethertype: 'IPv4',
  protocol: 'tcp',
  port_range_min: min,
  port_range_max: max,
  ...more,
});

/** The i-th rule of a cycle of five kinds, each with its own ports or prefix. */
function plainRule(i: number): RuleSpec {
  const n = Math.floor(i / 5);
  switch (i % 5) {
    case 0:
      return tcp(1000 + n, 1000 + n, { remote_ip_prefix: '0.0.0.0/0' });
    case 1:
      return tcp(10_000 + 100 * n, 10_000 + 100 * n + 99, {
        remote_ip_prefix: `10.${n + 1}.0.0/16`,
      });
    case 2:
      return { ...tcp(20_000 + n, 20_000 + n), protocol: 'udp', remote_ip_prefix: '0.0.0.0/0' };
    case 3:
      return {
        direction: 'ingress',
        ethertype: 'IPv4',
        protocol: 'icmp',
        port_range_min: n % 20,
        remote_ip_prefix: `172.16.${n}.0/24`,
      };
    default:
      return { ...tcp(30_000 + n, 30_000 + n), ethertype: 'IPv6', remote_ip_prefix: '::/0' };
  }
}

function opens(r: RuleSpec, port: number): boolean {
  if (r.protocol !== 'tcp' || r.ethertype !== 'IPv4') return false;
  return (r.port_range_min ?? 0) <= port && port <= (r.port_range_max ?? 65535);
}

/** Creates a group and its rules; returns its id and how many rules it holds in all. */
export async function makeGroup(
  c: Cluster,
  name: string,
  rules: (groupId: string) => RuleSpec[],
): Promise<{ id: string; rules: number }> {
  const group = await call<{ id: string; security_group_rules: unknown[] }>(
    c,
    'POST',
    '/v2.0/security-groups',
    'security_group',
    { name, description: `bench group ${name}` },
  );
  const specs = rules(group.id);
  for (const r of specs)
    await call(c, 'POST', '/v2.0/security-group-rules', 'security_group_rule', {
      ...r,
      security_group_id: group.id,
    });
  return { id: group.id, rules: group.security_group_rules.length + specs.length };
}

/** A bridge's flows as `ovs-ofctl -O OpenFlow14 dump-flows --no-stats` prints them, sorted. */
export async function dumpFlows(h: LabHost, bridge: string): Promise<string[]> {
  const argv = ['-O', 'OpenFlow14', 'dump-flows', '--no-stats', `unix:${h.dir}/${bridge}.mgmt`];
  const out = await new Promise<string>((resolve, reject) => {
    // A firewall's table runs to megabytes: no output limit (execFile's is 1 MiB).
    const child = spawn('ovs-ofctl', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(Buffer.concat(chunks).toString())
        : reject(new Error(`ovs-ofctl ${argv.join(' ')}: ${stderr.trim() || `exit ${code}`}`)),
    );
  });
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('OFPST_FLOW') && !l.startsWith('NXST_FLOW'))
    .sort();
}

export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
