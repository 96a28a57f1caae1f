/**
 * Where the walkthrough's services run, as the API and the hosts' Open vSwitch say: the
 * agent hosting a network, router or pool (by reported host name), the ports each copy
 * listens on, and whether an old copy is fenced — its OVS port gone from br-int or on the
 * dead VLAN 4095 — so a failover test counts only answers the new host can have given (a
 * killed agent's dnsmasq, router namespace and haproxy keep running by design).
 *
 * Invariant: reads only; a read that fails is an error, never "fenced".
 */
import assert from 'node:assert/strict';
import type { Cluster } from './cluster.ts';
import type { LabHost } from './lab.ts';
import { getOk } from './lbaas-status.ts';

interface PortRow {
  id: string;
  fixed_ips: { ip_address: string }[];
  'binding:host_id': string;
}

export function whereOf(c: Cluster, labHostOf: (host: string) => LabHost) {
  const get = <T>(path: string, key: string) => getOk<T>(c, path, key);
  const hostOf = async (path: string) => (await get<{ host: string }[]>(path, 'agents'))[0]?.host;
  return {
    get,
    dhcpHost: (netId: string) => hostOf(`/v2.0/networks/${netId}/dhcp-agents`),
    routerHost: (routerId: string) => hostOf(`/v2.0/routers/${routerId}/l3-agents`),
    poolHost: async (poolId: string) =>
      (await get<{ host: string } | null>(`/v2.0/lb/pools/${poolId}/loadbalancer-agent`, 'agent'))
        ?.host,
    /** The DHCP port the agent on `host` serves `netId` on. */
    async dhcpPort(netId: string, host: string): Promise<PortRow | undefined> {
      const q = `network_id=${netId}&device_owner=network:dhcp`;
      const ports = await get<PortRow[]>(`/v2.0/ports?${q}`, 'ports');
      return ports.find((p) => p['binding:host_id'] === host);
    },
    async gatewayPort(routerId: string): Promise<PortRow> {
      const q = `device_id=${routerId}&device_owner=network:router_gateway`;
      const [port] = await get<PortRow[]>(`/v2.0/ports?${q}`, 'ports');
      assert.ok(port, `router ${routerId} has no gateway port`);
      return port;
    },
    /** Whether `device`'s OVS port on `host` is gone or on the dead VLAN. */
    async fenced(host: string, device: string): Promise<boolean> {
      const h = labHostOf(host);
      const out = await h.vsctl(['--bare', '--columns=name,tag', 'find', 'Port', `name=${device}`]);
      const [name = '', tag = ''] = out.split('\n').map((l) => l.trim());
      return name !== device || tag === '4095';
    },
  };
}

export type Where = ReturnType<typeof whereOf>;
