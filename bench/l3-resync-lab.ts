/**
 * bench/l3-resync's environment: a 1-host lab whose outside world (100.64.0.1/22 on
 * br-out) hangs off br-ex, a Cluster (own vhost, SQLite, the real kumo-api, quotas off)
 * with the real kumo-ovs-agent (bridge_mappings public:br-ex) and kumo-l3-agent on that
 * host (report_interval 0.2 s, see L3_REPORT_INTERVAL), endpoint namespaces behind sample
 * routers, and the forwarding check through them.
 *
 * Invariants: every namespace, process and directory made here belongs to the lab or the
 * cluster, which `hold` hands to the caller's cleanup as soon as they exist (also when a
 * later step fails); pings go only between the lab's namespaces.
 */
import { Cluster, ovsOf, type Proc } from '../test/helpers/cluster.ts';
import { waitFor } from '../test/helpers/env.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from '../test/helpers/lab.ts';
import type { OvsAt } from './l3-resync-host.ts';
import { type BenchRouter, EXT_GATEWAY } from './l3-resync-topology.ts';

/**
 * The L3 agent's report_interval (s): its served-router count is how the bench sees that
 * it verified the intact routers, so it reaches kumo-api five times a second (the
 * Cluster's other agents report every second); a report_state cast costs it little.
 */
export const L3_REPORT_INTERVAL = 0.2;

export interface Env {
  lab: Lab;
  c: Cluster;
  h: LabHost;
  /** The lab host's name for Kumo (its agents' `host`). */
  host: string;
  ovs: OvsAt;
  /** The outside world's namespace. */
  outside: string;
  /** The L3 agent's own config lines. */
  l3Config: string[];
  /** The L3 agent as first started. */
  l3: Proc;
}

export async function environment(hold: { lab?: Lab; cluster?: Cluster }): Promise<Env> {
  const lab = await createLab({ hosts: 1 });
  hold.lab = lab;
  const h = lab.hosts[0] as LabHost;
  const outside = (await lab.outside(['100.64.0.1/22'])).netns;
  const c = await Cluster.create('sqlite', ovsOf(h), [
    '[quotas]',
    ...['network', 'subnet', 'port', 'router', 'floatingip'].map((k) => `quota_${k} = -1`),
  ]);
  hold.cluster = c;
  await c.startApi();
  const host = `lab-${lab.prefix}-h1`;
  const extra = ['[ovs]', 'bridge_mappings = public:br-ex'];
  c.startAgentOn('ovs', host, ovsOf(h), extra);
  await lab.connectOutside(h, 'br-ex');
  const l3Config = [...extra, '[agent]', `report_interval = ${L3_REPORT_INTERVAL}`];
  const l3 = c.startAgentOn('l3', host, ovsOf(h), l3Config);
  await waitFor(
    'the OVS and L3 agents alive',
    async () => {
      const res = await c.http('GET', `/v2.0/agents?host=${host}&alive=true`);
      return (res.body as { agents: unknown[] }).agents.length === 2;
    },
    30_000,
  );
  const ovs = { dbSocket: h.dbSocket, netns: h.netns };
  return { lab, c, h, host, ovs, outside, l3Config, l3 };
}

/** An endpoint holding each sample router's first floating IP's fixed address. */
export async function sampleEndpoints(
  e: Env,
  samples: readonly BenchRouter[],
): Promise<Map<BenchRouter, Endpoint>> {
  const eps = new Map<BenchRouter, Endpoint>();
  for (const r of samples) {
    const f = r.fips[0] as BenchRouter['fips'][number];
    const ep = await e.lab.endpoint(e.h, {
      ifaceId: f.portId,
      mac: f.mac,
      cidr: `${f.fixedIp}/24`,
    });
    const gw = f.fixedIp.replace(/\.\d+$/, '.1');
    await e.lab.exec(ep.netns, ['ip', 'route', 'add', 'default', 'via', gw]);
    eps.set(r, ep);
  }
  return eps;
}

/** One echo request from `netns` to `ip`, a second to answer. */
export const ping = (e: Env, netns: string, ip: string) =>
  e.lab.exec(netns, ['ping', '-c', '1', '-W', '1', ip]).then(
    () => true,
    () => false,
  );

/** Every sample router forwards both ways (three tries each, for ARP); what does not. */
export async function forwardingWrong(e: Env, eps: Map<BenchRouter, Endpoint>): Promise<string[]> {
  const bad: string[] = [];
  for (const [r, ep] of eps) {
    const fip = r.fips[0]?.floatingIp as string;
    const tries = async (f: () => Promise<boolean>) => (await f()) || (await f()) || f();
    if (!(await tries(() => ping(e, e.outside, fip))))
      bad.push(`outside → ${fip} (router ${r.index})`);
    if (!(await tries(() => ping(e, ep.netns, EXT_GATEWAY))))
      bad.push(`router ${r.index}'s endpoint → outside`);
  }
  return bad;
}
