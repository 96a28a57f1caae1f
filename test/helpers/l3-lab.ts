/**
 * One L3 topology on the multi-host lab, for fullstack tests and benches of kumo-l3-agent:
 * two network hosts (OVS + L3 agents, `bridge_mappings = public:br-ex`, br-ex linked to the
 * outside world on 203.0.113.0/24) and `computeHosts` compute-side hosts (OVS agents), a
 * real kumo-api; an external flat network `public`, one router with its gateway there, one
 * tenant network 10.0.<i+1>.0/24 per compute host on the router with one endpoint each,
 * and a floating IP on the first endpoint, reachable from outside when `buildL3Lab`
 * resolves.
 *
 * API (kept small; benches import it): `buildL3Lab(opts)` → `L3Lab`; `destroy()` always.
 * `killHost`/`reviveHost` take a whole network host down and up (host-power.ts: agents
 * SIGKILLed, ovs-vswitchd gone, underlay and outside links down; and back, agents restarted).
 *
 * Invariant: everything it starts belongs to the lab or the Cluster and goes with
 * `destroy()`, the qrouter namespaces the L3 agents made too (they outlive their agents by
 * design; theirs are named with this lab's host prefixes); traffic stays in the lab's
 * namespaces.
 */
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { portDevice } from '../../host/ip/names.ts';
import { Cluster, type ClusterTiming, ovsOf, type Proc, runCommand } from './cluster.ts';
import { waitFor } from './env.ts';
import { powerOff, powerOn } from './host-power.ts';
import { createLab, type Endpoint, type Lab, type LabHost } from './lab.ts';
import { openDefaultGroup } from './sg-open.ts';
import { stopPeers, tcpServer } from './tcp-peer.ts';

export const OUTSIDE_IP = '203.0.113.1';
/** The TCP port of the tell-me-my-source servers (outside and on every endpoint). */
export const SERVER_PORT = 7000;

export interface L3Lab {
  lab: Lab;
  c: Cluster;
  /** The outside world's namespace (OUTSIDE_IP on its bridge br-out). */
  outside: string;
  network: [LabHost, LabHost];
  endpoints: Endpoint[];
  routerId: string;
  gateway: { portId: string; device: string; ip: string };
  fip: { id: string; address: string };
  /** `lab-<prefix>-<h>`: the host name its agents report. */
  hostName(h: LabHost): string;
  /** The router's namespace on a network host. */
  routerNetns(h: LabHost): string;
  /** The network host the API binds the router's gateway port to (null: none). */
  bindingHost(): Promise<LabHost | null>;
  /** The network host whose L3 agent hosts the router (null: none). */
  hostingHost(): Promise<LabHost | null>;
  /** The agents running on a host, by kind. */
  procs(h: LabHost): Map<'ovs' | 'l3', Proc>;
  startL3(h: LabHost): Proc;
  killL3(h: LabHost): Promise<void>;
  killHost(h: LabHost): Promise<void>;
  reviveHost(h: LabHost): Promise<void>;
  /** `count` pings 200 ms apart (1 s deadline each) from `netns`: all answered? */
  ping(netns: string, ip: string, count?: number): Promise<boolean>;
  destroy(): Promise<void>;
}

export interface L3LabOptions {
  computeHosts?: number;
  /** Default: the Cluster's (report_interval 1, agent_down_time 3). */
  timing?: ClusterTiming;
}

const OUTSIDE_DEV = 'o-br-ex';

async function postOk<T>(c: Cluster, path: string, key: string, body: unknown): Promise<T> {
  const res = await c.http('POST', path, { [key]: body });
  if (res.status !== 201)
    throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, T>)[key] as T;
}

/** The lab and the Cluster with every agent running and two L3 agents alive. */
async function startHosts(opts: L3LabOptions) {
  const lab = await createLab({ hosts: 2 + (opts.computeHosts ?? 1) });
  try {
    const outside = (await lab.outside()).netns;
    const c = await Cluster.create('sqlite', undefined, [], opts.timing);
    return { lab, c, outside };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

async function routerWithGateway(c: Cluster) {
  const pub = await postOk<Network>(c, '/v2.0/networks', 'network', {
    name: 'public',
    'router:external': true,
    'provider:network_type': 'flat',
    'provider:physical_network': 'public',
  });
  await postOk<Subnet>(c, '/v2.0/subnets', 'subnet', {
    network_id: pub.id,
    cidr: '203.0.113.0/24',
    gateway_ip: OUTSIDE_IP,
    allocation_pools: [{ start: '203.0.113.10', end: '203.0.113.200' }],
    enable_dhcp: false,
  });
  const router = await postOk<{ id: string }>(c, '/v2.0/routers', 'router', {
    name: 'r1',
    external_gateway_info: { network_id: pub.id },
  });
  return { publicId: pub.id, routerId: router.id };
}

/** A tenant network 10.0.<i+1>.0/24 on the router, one endpoint on `host`. */
async function tenantEndpoint(c: Cluster, lab: Lab, routerId: string, host: LabHost, i: number) {
  const net = await postOk<Network>(c, '/v2.0/networks', 'network', { name: `net-${i}` });
  const sub = await postOk<Subnet>(c, '/v2.0/subnets', 'subnet', {
    network_id: net.id,
    cidr: `10.0.${i + 1}.0/24`,
    enable_dhcp: false,
  });
  const res = await c.http('PUT', `/v2.0/routers/${routerId}/add_router_interface`, {
    subnet_id: sub.id,
  });
  if (res.status !== 200) throw new Error(`add_router_interface: ${JSON.stringify(res.body)}`);
  const port = await postOk<Port>(c, '/v2.0/ports', 'port', { network_id: net.id });
  // The outside world is no member of the port's default group: open it, as the seed does.
  await openDefaultGroup(c, port.project_id);
  const ip = port.fixed_ips[0]?.ip_address;
  const ep = await lab.endpoint(host, {
    ifaceId: port.id,
    mac: port.mac_address,
    cidr: `${ip}/24`,
  });
  await lab.exec(ep.netns, ['ip', 'route', 'add', 'default', 'via', `10.0.${i + 1}.1`]);
  return { ep, port };
}

async function routerPorts(c: Cluster, routerId: string): Promise<Port[]> {
  const res = await c.http('GET', `/v2.0/ports?device_id=${routerId}`);
  return (res.body as { ports: Port[] }).ports;
}

type Start = (kind: 'ovs' | 'l3', h: LabHost) => Proc;

/** Agents started, two L3 agents alive, then the API objects and the endpoints. */
async function startTopology(lab: Lab, c: Cluster, network: LabHost[], start: Start) {
  await c.startApi();
  for (const h of lab.hosts) start('ovs', h);
  for (const h of network) {
    await lab.connectOutside(h, 'br-ex');
    start('l3', h);
  }
  await waitFor('two L3 agents alive', async () => {
    const res = await c.http('GET', '/v2.0/agents?agent_type=L3%20agent&alive=true');
    return (res.body as { agents: Agent[] }).agents.length === 2;
  });
  const { publicId, routerId } = await routerWithGateway(c);
  const tenants = [];
  for (const [i, h] of lab.hosts.slice(2).entries())
    tenants.push(await tenantEndpoint(c, lab, routerId, h, i));
  const fip = await postOk<{ id: string; floating_ip_address: string }>(
    c,
    '/v2.0/floatingips',
    'floatingip',
    { floating_network_id: publicId, port_id: tenants[0]?.port.id },
  );
  const gw = (await routerPorts(c, routerId)).find(
    (p) => p.device_owner === 'network:router_gateway',
  ) as Port;
  return { routerId, endpoints: tenants.map((t) => t.ep), fip, gw };
}

type Topology = Awaited<ReturnType<typeof startTopology>>;

interface Parts {
  lab: Lab;
  c: Cluster;
  outside: string;
  network: [LabHost, LabHost];
  start: Start;
  procsOf: L3Lab['procs'];
  destroy(): Promise<void>;
}

function labApi(p: Parts, t: Topology): L3Lab {
  const { lab, c, network } = p;
  const hostName = (h: LabHost) => `lab-${lab.prefix}-${h.name}`;
  const byName = (host: unknown) => network.find((h) => hostName(h) === host) ?? null;
  const l3lab: L3Lab = {
    ...{ lab, c, outside: p.outside, network, endpoints: t.endpoints, routerId: t.routerId },
    gateway: {
      portId: t.gw.id,
      device: portDevice('qg-', t.gw.id),
      ip: t.gw.fixed_ips[0]?.ip_address ?? '',
    },
    fip: { id: t.fip.id, address: t.fip.floating_ip_address },
    hostName,
    routerNetns: (h) => `${hostName(h).slice(-8)}-qrouter-${t.routerId}`,
    async bindingHost() {
      const gw = (await routerPorts(c, t.routerId)).find((x) => x.id === t.gw.id);
      return byName((gw as Record<string, unknown> | undefined)?.['binding:host_id']);
    },
    async hostingHost() {
      const res = await c.http('GET', `/v2.0/routers/${t.routerId}/l3-agents`);
      return byName((res.body as { agents: Agent[] }).agents[0]?.host);
    },
    procs: p.procsOf,
    startL3: (h) => p.start('l3', h),
    killL3: async (h) => void (await c.stop(p.procsOf(h).get('l3'), 'SIGKILL')),
    killHost: (h) => killHost(l3lab, h),
    async reviveHost(h) {
      await powerOn(lab, h, LINKS);
      p.start('ovs', h);
      p.start('l3', h);
    },
    ping: (netns, ip, count = 3) => ping(lab, netns, ip, count),
    destroy: p.destroy,
  };
  return l3lab;
}

/** Builds the topology; resolves once the outside pings the floating IP. */
export async function buildL3Lab(opts: L3LabOptions = {}): Promise<L3Lab> {
  const { lab, c, outside } = await startHosts(opts);
  const procs = new Map<string, Map<'ovs' | 'l3', Proc>>();
  const network = [lab.hosts[0], lab.hosts[1]] as [LabHost, LabHost];
  const procsOf = (h: LabHost) => {
    const m = procs.get(h.name) ?? new Map<'ovs' | 'l3', Proc>();
    procs.set(h.name, m);
    return m;
  };
  const start: Start = (kind, h) => {
    const extra = network.includes(h) ? ['[ovs]', 'bridge_mappings = public:br-ex'] : [];
    const proc = c.startAgentOn(kind, `lab-${lab.prefix}-${h.name}`, ovsOf(h), extra);
    procsOf(h).set(kind, proc);
    return proc;
  };
  const destroy = async () => {
    stopPeers();
    await c.cleanup();
    await removeRouterNamespaces(network.map((h) => `${`lab-${lab.prefix}-${h.name}`.slice(-8)}-`));
    await lab.destroy();
  };
  try {
    const t = await startTopology(lab, c, network, start);
    const l3lab = labApi({ lab, c, outside, network, start, procsOf, destroy }, t);
    await tcpServer(outside, SERVER_PORT);
    for (const ep of t.endpoints) await tcpServer(ep.netns, SERVER_PORT);
    const fip = t.fip.floating_ip_address;
    await waitFor('outside pings the FIP', () => l3lab.ping(outside, fip, 1), 60_000, 500);
    return l3lab;
  } catch (e) {
    await destroy();
    throw e;
  }
}

/** qrouter namespaces outlive their agents by design; this lab's carry its hosts' prefixes. */
async function removeRouterNamespaces(prefixes: string[]) {
  const list = await runCommand(['ip', 'netns', 'list']);
  for (const name of list.stdout.split('\n').map((l) => l.split(' ')[0] ?? '')) {
    if (prefixes.some((p) => name.startsWith(`${p}qrouter-`)))
      await runCommand(['ip', 'netns', 'del', name]);
  }
}

function ping(lab: Lab, netns: string, ip: string, count: number) {
  return lab.exec(netns, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', ip]).then(
    () => true,
    () => false,
  );
}

/** The links a network host has to the rest of the lab: underlay and outside. */
const LINKS = ['eth-u', OUTSIDE_DEV];

function killHost(l: L3Lab, h: LabHost) {
  const procs = l.procs(h);
  return powerOff(l.lab, h, LINKS, [
    l.c.stop(procs.get('ovs'), 'SIGKILL'),
    l.c.stop(procs.get('l3'), 'SIGKILL'),
  ]);
}
