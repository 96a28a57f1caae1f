/**
 * The LBaaS lab, for test/fullstack/lbaas-*.test.ts and bench/lbaas-*: three lab hosts — two
 * network hosts `lbHosts` (OVS + LBaaS agents, `[lbaas] stats_interval` small; the first runs
 * the DHCP agent too) and a backend host (OVS agent) — a real kumo-api, a tenant network
 * 10.60.0.0/24 with DHCP, the project's default security group opened to all IPv4 ingress, or
 * with `ingress: 'http'` to tcp 80 only (`ingressRuleId`; the VIP port gets the group, as in
 * the seed's walkthrough), and `backends` HTTP stand-ins vm1, vm2, … on port 80: ports
 * made through the API (addresses, default group) plugged into endpoint namespaces on the
 * backend host, each answering its name (http-backend.ts). Requests come from the network's
 * qdhcp namespace (`clientNetns`), as in the seed. No pool: the tests make it (`neutron`).
 *
 * API (lb-bench imports it): `buildLbaasLab(opts)` → `LbaasLab`; always `destroy()`.
 * `killHost`/`reviveHost` cut and restore a network host's power (host-power.ts, its agents
 * SIGKILLed and restarted); `killLbaas`/`startLbaas` the LBaaS agent alone.
 *
 * Invariant: everything it starts goes with `destroy()` — the Cluster's processes, the
 * backends, the request loops, and the qlbaas namespaces with their haproxies (they outlive their agents by
 * design; this lab's carry its hosts' netns prefixes); traffic stays in lab namespaces.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import {
  ADMIN_TOKEN,
  Cluster,
  type ClusterTiming,
  ovsOf,
  type Proc,
  type RunResult,
  runCommand,
} from './cluster.ts';
import { waitFor } from './env.ts';
import { powerOff, powerOn } from './host-power.ts';
import { type HttpBackend, httpBackend, stopBackends } from './http-backend.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from './lab.ts';
import {
  type CurlOptions,
  concurrentLoops,
  curlIn,
  type RequestLoop,
  requestLoop,
} from './lbaas-traffic.ts';
import { defaultGroupId } from './sg-open.ts';

export const LB_CIDR = '10.60.0.0/24';
export const BACKEND_PORT = 80;

type Kind = 'ovs' | 'dhcp' | 'lbaas';

export interface Backend extends HttpBackend {
  /** vm1, vm2, …: what it answers. */
  name: string;
  address: string;
  port: Port;
  endpoint: Endpoint;
}

export interface LbaasLab {
  lab: Lab;
  c: Cluster;
  network: Network;
  subnet: Subnet;
  projectId: string;
  /** The project's default group and the lab's ingress rule from 0.0.0.0/0 in it. */
  defaultGroup: string;
  ingressRuleId: string;
  /** The two LBaaS hosts; the first also runs the DHCP agent (and so the client namespace). */
  lbHosts: [LabHost, LabHost];
  backendHost: LabHost;
  backends: Backend[];
  /** The network's qdhcp namespace on lbHosts[0]: where requests come from. */
  clientNetns: string;
  /** The host name its agents report. */
  hostName(h: LabHost): string;
  /** A pool's qlbaas namespace on a host. */
  poolNetns(h: LabHost, poolId: string): string;
  /** A pool's state directory under the host's `state_path` (its agent's `<state_path>/lbaas`). */
  poolStateDir(h: LabHost, poolId: string): string;
  /** The haproxy.cfg the host's LBaaS agent wrote for the pool (null: none). */
  haproxyCfg(h: LabHost, poolId: string): string | null;
  /** The LBaaS host whose agent hosts the pool (null: none). */
  hostingHost(poolId: string): Promise<LabHost | null>;
  /** One GET from the client namespace: the body, trimmed; rejects on failure. */
  curl(url: string, o?: CurlOptions): Promise<string>;
  /** Back-to-back GETs from the client namespace until stopped. */
  loop(url: string, o?: CurlOptions): RequestLoop;
  /** `n` such loops side by side (concurrent load), one merged result. */
  loops(url: string, n: number, o?: CurlOptions): RequestLoop;
  /** The real `neutron` CLI (python3-neutronclient) as admin against kumo-api. */
  neutron(...args: string[]): Promise<RunResult>;
  /** `neutron` that must succeed: its stdout. */
  neutronOk(...args: string[]): Promise<string>;
  procs(h: LabHost): Map<Kind, Proc>;
  startLbaas(h: LabHost): Proc;
  killLbaas(h: LabHost): Promise<void>;
  killHost(h: LabHost): Promise<void>;
  reviveHost(h: LabHost): Promise<void>;
  destroy(): Promise<void>;
}

export interface LbaasLabOptions {
  /** HTTP stand-ins vm1..vmN; default 2. */
  backends?: number;
  /** `[lbaas] stats_interval` of both LBaaS agents; default 1. */
  statsInterval?: number;
  /** The default group's rule from 0.0.0.0/0: any IPv4 (default) or tcp 80 only. */
  ingress?: 'any' | 'http';
  /** Default: the Cluster's (report_interval 1, agent_down_time 3). */
  timing?: ClusterTiming;
}

async function postOk<T>(c: Cluster, path: string, key: string, body: unknown): Promise<T> {
  const res = await c.http('POST', path, { [key]: body });
  if (res.status !== 201)
    throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, T>)[key] as T;
}

async function tenantNetwork(c: Cluster, ingress: 'any' | 'http') {
  const network = await postOk<Network>(c, '/v2.0/networks', 'network', { name: 'lb-net' });
  const subnet = await postOk<Subnet>(c, '/v2.0/subnets', 'subnet', {
    network_id: network.id,
    name: 'lb-subnet',
    cidr: LB_CIDR,
    ip_version: 4,
  });
  // The qdhcp namespace (the client) is no member of the VIP port's default group: open it.
  const defaultGroup = await defaultGroupId(c, network.project_id);
  const ingressRuleId = await allowIngress(c, defaultGroup, ingress);
  return { network, subnet, defaultGroup, ingressRuleId };
}

/** Adds `ingress IPv4 [tcp 80] from 0.0.0.0/0` to the group; resolves with the rule's id. */
export async function allowIngress(
  c: Cluster,
  groupId: string,
  ingress: 'any' | 'http',
): Promise<string> {
  const http = { protocol: 'tcp', port_range_min: BACKEND_PORT, port_range_max: BACKEND_PORT };
  const rule = { security_group_id: groupId, direction: 'ingress', ethertype: 'IPv4' };
  const body = { ...rule, ...(ingress === 'http' ? http : {}), remote_ip_prefix: '0.0.0.0/0' };
  const path = '/v2.0/security-group-rules';
  return (await postOk<{ id: string }>(c, path, 'security_group_rule', body)).id;
}

async function addBackend(c: Cluster, lab: Lab, host: LabHost, net: Network, i: number) {
  const name = `vm${i + 1}`;
  const port = await postOk<Port>(c, '/v2.0/ports', 'port', { network_id: net.id, name });
  const address = port.fixed_ips[0]?.ip_address as string;
  const endpoint = await lab.endpoint(host, {
    ifaceId: port.id,
    mac: port.mac_address,
    cidr: `${address}/24`,
  });
  const server = await httpBackend(endpoint.netns, BACKEND_PORT, name);
  return { ...server, name, address, port, endpoint };
}

/** The netns prefixes of this lab's hosts (as the Cluster gives them to agents). */
const prefixOf = (hostName: string) => `${hostName.slice(-8)}-`;

/** qlbaas namespaces outlive their agents: this lab's, with whatever runs in them, go. */
export async function removePoolNamespaces(prefixes: string[]) {
  const list = await runCommand(['ip', 'netns', 'list']);
  for (const ns of list.stdout.split('\n').map((l) => l.split(' ')[0] ?? '')) {
    if (!prefixes.some((p) => ns.startsWith(`${p}qlbaas-`))) continue;
    const pids = await runCommand(['ip', 'netns', 'pids', ns]);
    for (const pid of pids.stdout.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    await runCommand(['ip', 'netns', 'del', ns]);
  }
}

function findCfg(root: string, poolId: string): string | null {
  if (!existsSync(root)) return null;
  const hit = readdirSync(root, { recursive: true, encoding: 'utf8' }).find(
    (p) => p.endsWith('haproxy.cfg') && p.includes(poolId),
  );
  return hit ? join(root, hit) : null;
}

async function startAgents(lab: Lab, c: Cluster, o: LbaasLabOptions) {
  const procs = new Map<string, Map<Kind, Proc>>();
  // Short: haproxy refuses a stats socket path over 97 characters, and the agent's lies
  // under <cluster dir>/hosts/<host>/lbaas/<pool id>/ (lab prefix 'kl' + 4 hex digits).
  const hostName = (h: LabHost) => `${lab.prefix.slice(2)}${h.name}`;
  const procsOf = (h: LabHost) => {
    const m = procs.get(h.name) ?? new Map<Kind, Proc>();
    procs.set(h.name, m);
    return m;
  };
  const extra = ['[lbaas]', `stats_interval = ${o.statsInterval ?? 1}`];
  const start = (kind: Kind, h: LabHost) => {
    const proc = c.startAgentOn(kind, hostName(h), ovsOf(h), kind === 'lbaas' ? extra : []);
    procsOf(h).set(kind, proc);
    return proc;
  };
  await c.startApi();
  const [a, b, backendHost] = lab.hosts as [LabHost, LabHost, LabHost];
  for (const h of [a, b, backendHost]) start('ovs', h);
  start('dhcp', a);
  for (const h of [a, b]) start('lbaas', h);
  await waitFor(
    'two LBaaS agents and the DHCP agent alive',
    async () => {
      const res = await c.http('GET', '/v2.0/agents?alive=true');
      const bins = (res.body as { agents: Agent[] }).agents.map((x) => x.binary);
      const lbaas = bins.filter((x) => x === 'kumo-lbaas-agent').length;
      return lbaas === 2 && bins.includes('kumo-dhcp-agent');
    },
    30_000,
  );
  // Backends are plugged into br-int next: each OVS agent must have made it first.
  for (const h of [a, b, backendHost])
    await waitFor(
      `br-int on ${h.name}`,
      () =>
        h.vsctl(['br-exists', 'br-int']).then(
          () => true,
          () => false,
        ),
      30_000,
    );
  return { hostName, procsOf, start, lbHosts: [a, b] as [LabHost, LabHost], backendHost };
}

type Agents = Awaited<ReturnType<typeof startAgents>>;

function labApi(lab: Lab, c: Cluster, ag: Agents, destroy: () => Promise<void>) {
  const { hostName, procsOf, start, lbHosts } = ag;
  const neutron = (...args: string[]) =>
    runCommand(['neutron', '--os-token', ADMIN_TOKEN, '--os-url', c.url, ...args], {
      OS_AUTH_TYPE: 'admin_token',
    });
  const killAgents = (h: LabHost) => [...procsOf(h).values()].map((p) => c.stop(p, 'SIGKILL'));
  return {
    hostName,
    poolNetns: (h: LabHost, poolId: string) => `${prefixOf(hostName(h))}qlbaas-${poolId}`,
    poolStateDir: (h: LabHost, poolId: string) =>
      join(c.dir.path, 'hosts', hostName(h), 'lbaas', poolId),
    haproxyCfg: (h: LabHost, poolId: string) =>
      findCfg(join(c.dir.path, 'hosts', hostName(h)), poolId),
    async hostingHost(poolId: string) {
      const res = await c.http('GET', `/v2.0/lb/pools/${poolId}/loadbalancer-agent`);
      const host = (res.body as { agent?: Agent | null } | null)?.agent?.host;
      return lbHosts.find((h) => hostName(h) === host) ?? null;
    },
    neutron,
    async neutronOk(...args: string[]) {
      const r = await neutron(...args);
      if (r.code !== 0) throw new Error(`neutron ${args.join(' ')}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    procs: procsOf,
    startLbaas: (h: LabHost) => start('lbaas', h),
    killLbaas: async (h: LabHost) => void (await c.stop(procsOf(h).get('lbaas'), 'SIGKILL')),
    killHost: (h: LabHost) => powerOff(lab, h, ['eth-u'], killAgents(h)),
    async reviveHost(h: LabHost) {
      await powerOn(lab, h, ['eth-u']);
      for (const kind of procsOf(h).keys()) start(kind, h);
    },
    destroy,
  };
}

/** Builds the lab; resolves once the client namespace reaches every backend directly. */
export async function buildLbaasLab(opts: LbaasLabOptions = {}): Promise<LbaasLab> {
  const lab = await createLab({ hosts: 3 });
  let c: Cluster | undefined;
  let prefixes: string[] = [];
  const loops = new Set<RequestLoop>();
  const destroy = async () => {
    await Promise.all([...loops].map((x) => x.stop()));
    stopBackends();
    await c?.cleanup();
    await removePoolNamespaces(prefixes);
    await lab.destroy();
  };
  try {
    c = await Cluster.create('sqlite', undefined, [], opts.timing);
    const ag = await startAgents(lab, c, opts);
    prefixes = ag.lbHosts.map((h) => prefixOf(ag.hostName(h)));
    const ingress = opts.ingress ?? 'any';
    const { network, subnet, defaultGroup, ingressRuleId } = await tenantNetwork(c, ingress);
    const backends: Backend[] = [];
    for (let i = 0; i < (opts.backends ?? 2); i++)
      backends.push(await addBackend(c, lab, ag.backendHost, network, i));
    const clientNetns = `${prefixOf(ag.hostName(ag.lbHosts[0]))}qdhcp-${network.id}`;
    const curl = (url: string, o?: CurlOptions) => curlIn(lab, clientNetns, url, o);
    for (const b of backends)
      await waitFor(
        `the client reaches ${b.name}`,
        async () => (await curl(`http://${b.address}/`, { maxTime: 2 })) === b.name,
        60_000,
        200,
      );
    const cl = c;
    return {
      ...{ lab, c, network, subnet, projectId: network.project_id, backends, clientNetns },
      ...{ lbHosts: ag.lbHosts, backendHost: ag.backendHost, curl, defaultGroup, ingressRuleId },
      loop(url, o) {
        const loop = requestLoop(lab, clientNetns, url, o);
        loops.add(loop);
        return loop;
      },
      loops(url, n, o) {
        const loop = concurrentLoops(lab, clientNetns, url, n, o);
        loops.add(loop);
        return loop;
      },
      ...labApi(lab, cl, ag, destroy),
    };
  } catch (e) {
    await destroy();
    throw e;
  }
}
