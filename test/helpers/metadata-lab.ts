/**
 * The metadata lab, for test/fullstack/metadata-lab.test.ts and bench/metadata.ts: two lab
 * hosts, a network host (OVS, DHCP and L3 agents) and a compute host (OVS and compute
 * agents), a real kumo-api whose metadata listener and every relay share the Cluster's
 * `[metadata]` secret and port; network `routed` 10.0.0.0/24 on router `r1` and network
 * `isolated`, also 10.0.0.0/24, with no router (its metadata comes through the DHCP
 * namespace). Nothing else: the servers and endpoints are the caller's.
 *
 * Invariant: everything it starts belongs to the lab or the Cluster and goes with
 * `destroy()` (the Cluster stops the haproxies its agents left in qrouter and qdhcp
 * namespaces); traffic stays in the lab's namespaces and on loopback.
 */
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { Cluster, METADATA_SECRET, ovsOf } from './cluster.ts';
import { waitFor } from './env.ts';
import { createLab, type Lab, type LabHost } from './lab.ts';

export const CIDR = '10.0.0.0/24';

export interface MetaNet {
  network: Network;
  subnet: Subnet;
}

export interface MetadataLab {
  lab: Lab;
  c: Cluster;
  /** The network host (DHCP + L3) and the compute host. */
  networkHost: LabHost;
  computeHost: LabHost;
  secret: string;
  /** kumo-api's metadata listener on 127.0.0.1. */
  metadataPort: number;
  routed: MetaNet;
  isolated: MetaNet;
  routerId: string;
  hostName(h: LabHost): string;
  /** A port on `net` with fixed IP `ip` (`extra`: more port attributes). */
  port(net: MetaNet, ip: string, extra?: Record<string, unknown>): Promise<Port>;
  /** The router's namespace on the network host. */
  routerNetns(): string;
  destroy(): Promise<void>;
}

async function postOk<T>(c: Cluster, path: string, key: string, body: unknown): Promise<T> {
  const res = await c.http('POST', path, { [key]: body });
  if (res.status !== 201)
    throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Record<string, T>)[key] as T;
}

async function network(c: Cluster, name: string): Promise<MetaNet> {
  const net = await postOk<Network>(c, '/v2.0/networks', 'network', { name });
  const subnet = await postOk<Subnet>(c, '/v2.0/subnets', 'subnet', {
    network_id: net.id,
    name: `${name}-v4`,
    cidr: CIDR,
    ip_version: 4,
  });
  return { network: net, subnet };
}

async function routed(c: Cluster): Promise<{ net: MetaNet; routerId: string }> {
  const net = await network(c, 'routed');
  const router = await postOk<{ id: string }>(c, '/v2.0/routers', 'router', { name: 'r1' });
  const res = await c.http('PUT', `/v2.0/routers/${router.id}/add_router_interface`, {
    subnet_id: net.subnet.id,
  });
  if (res.status !== 200) throw new Error(`add_router_interface: ${JSON.stringify(res.body)}`);
  return { net, routerId: router.id };
}

async function startAgents(lab: Lab, c: Cluster) {
  const hostName = (h: LabHost) => `md-${lab.prefix}-${h.name}`;
  const [net, cmp] = lab.hosts as [LabHost, LabHost];
  const start = (kind: 'ovs' | 'dhcp' | 'l3' | 'compute', h: LabHost) =>
    c.startAgentOn(kind, hostName(h), ovsOf(h));
  await c.startApi();
  for (const h of [net, cmp]) start('ovs', h);
  start('dhcp', net);
  start('l3', net);
  start('compute', cmp);
  await waitFor(
    'DHCP, L3 and compute agents alive',
    async () => {
      const res = await c.http('GET', '/v2.0/agents?alive=true');
      const types = new Set((res.body as { agents: Agent[] }).agents.map((a) => a.binary));
      return ['kumo-dhcp-agent', 'kumo-l3-agent', 'kumo-compute-agent'].every((b) => types.has(b));
    },
    30_000,
  );
  return hostName;
}

/** Builds the lab; resolves once the agents are alive and both networks exist. */
export async function buildMetadataLab(): Promise<MetadataLab> {
  const lab = await createLab({ hosts: 2 });
  let c: Cluster | undefined;
  const destroy = async () => {
    await c?.cleanup();
    await lab.destroy();
  };
  try {
    c = await Cluster.create('sqlite');
    const hostName = await startAgents(lab, c);
    const r = await routed(c);
    const isolated = await network(c, 'isolated');
    const cl = c;
    return {
      lab,
      c,
      networkHost: lab.hosts[0] as LabHost,
      computeHost: lab.hosts[1] as LabHost,
      secret: METADATA_SECRET,
      metadataPort: c.metadataPort,
      routed: r.net,
      isolated,
      routerId: r.routerId,
      hostName,
      port: (net, ip, extra = {}) =>
        postOk<Port>(cl, '/v2.0/ports', 'port', {
          network_id: net.network.id,
          fixed_ips: [{ subnet_id: net.subnet.id, ip_address: ip }],
          ...extra,
        }),
      routerNetns: () => `${hostName(lab.hosts[0] as LabHost).slice(-8)}-qrouter-${r.routerId}`,
      destroy,
    };
  } catch (e) {
    await destroy();
    throw e;
  }
}
