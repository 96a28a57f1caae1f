/**
 * bench/scale's simulated host: an OVS agent, a DHCP or L3 agent and a compute agent, with
 * each real agent's RPC behaviour and nothing of its host work (no OVS, namespaces, libvirt):
 *
 * - OVS (agents/ovs/l2.ts): one coalesced `sync` (one in flight, one more queued): tunnel_sync
 *   while the peers are unknown, get_devices_details for present ports not yet described,
 *   security_group_info when the groups in use were forgotten, update_device_list for
 *   status changes only. A `port` hint forgets that port (and the groups if it was ours),
 *   `tunnels` the peers, `security_group` the groups, a resync everything; each then syncs.
 *   "Present" stands for br-int: the bench plugs and unplugs ports (what nova's VIF plug
 *   does), and the DHCP agent plugs its own DHCP port.
 * - DHCP (agents/dhcp/agent.ts): a `network` hint → get_network_info (coalesced per
 *   network), its DHCP port plugged, report_status ACTIVE once; resync → get_active_networks
 *   and get_network_info for each.
 * - L3: resync → get_active_routers and get_router_info for each; a `router` hint →
 *   get_router_info. Compute: resync → get_host_instances; an `instance` hint → get_instance.
 *
 * Invariant: one host never has two syncs of one kind in flight; a failed call is counted
 * by the link and the next event or resync retries, as the real reconcile queue would.
 */

import type { AgentKind } from '../contracts/agents.ts';
import { agentTypeByKind } from '../contracts/agents.ts';
import type { DhcpNetwork } from '../contracts/dhcp.ts';
import type { DeviceDetails } from '../contracts/l2.ts';
import type { Message } from '../contracts/messages.ts';
import { computeConfigurations } from './heartbeat-reports.ts';
import type { Link } from './scale-sim-link.ts';

export type Role = 'dhcp' | 'l3';

/** Runs `work` now, or once more after the running one when asked again meanwhile. */
function coalesced(work: () => Promise<void>) {
  let running = false;
  let again = false;
  const run = async (): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await work().catch(() => {});
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      await run();
    }
  };
  return run;
}

export interface SimHostInit {
  name: string;
  role: Role;
  tunnelIp: string;
  link: Link;
  tunnels: boolean;
}

export class SimHost {
  readonly name: string;
  readonly role: Role;
  readonly kinds: AgentKind[];
  private readonly init: SimHostInit;
  private readonly present = new Set<string>();
  private readonly details = new Map<string, DeviceDetails>();
  private readonly unknown = new Set<string>();
  private readonly sent = new Map<string, 'up' | 'down'>();
  private peersKnown = false;
  private groupsKnown = false;
  private readonly networks = new Map<string, ReturnType<typeof coalesced>>();
  private readonly reported = new Set<string>();
  private readonly served = new Map<string, number>();
  readonly sync: () => Promise<void>;

  constructor(init: SimHostInit) {
    this.init = init;
    this.name = init.name;
    this.role = init.role;
    this.kinds = ['ovs', init.role, 'compute'];
    this.sync = coalesced(() => this.l2Sync());
  }

  private get link() {
    return this.init.link;
  }

  /** The configurations each agent type puts in report_state (as the real agents do). */
  configurations(kind: AgentKind): Record<string, unknown> {
    if (kind === 'ovs')
      return {
        integration_bridge: 'br-int',
        tunnel_bridge: 'br-tun',
        datapath_type: 'system',
        tunneling_ip: this.init.tunnelIp,
        tunnel_types: this.init.tunnels ? ['vxlan'] : [],
        bridge_mappings: { public: 'br-ex' },
        l2_population: false,
        arp_responder_enabled: false,
        ovs_version: '3.1.0',
        devices: this.present.size,
      };
    if (kind === 'dhcp') {
      const ports = [...this.served.values()].reduce((a, b) => a + b, 0);
      const nets = this.served.size;
      return {
        dhcp_driver: 'dnsmasq',
        dnsmasq_version: '2.89',
        dhcp_lease_duration: 86400,
        networks: nets,
        subnets: nets,
        ports,
      };
    }
    if (kind === 'l3')
      return { agent_mode: 'legacy', iptables_version: '1.8.9', routers: 0, interfaces: 0 };
    return computeConfigurations(this.name.length);
  }

  // ------------------------------------------------------------------ OVS

  plug(port: string): void {
    this.present.add(port);
    void this.sync();
  }

  unplug(port: string): void {
    this.present.delete(port);
    void this.sync();
  }

  private async l2Sync(): Promise<void> {
    const host = this.name;
    if (!this.peersKnown && this.init.tunnels) {
      const args = { host, tunnel_ip: this.init.tunnelIp, tunnel_types: ['vxlan'] };
      await this.link.call('tunnel_sync', args);
      this.peersKnown = true;
    }
    const ask = [...this.present].filter((p) => !this.details.has(p) && !this.unknown.has(p));
    if (ask.length > 0) {
      const res = (await this.link.call('get_devices_details', { host, devices: ask })) as {
        devices: DeviceDetails[];
        unknown: string[];
      };
      for (const d of res.devices) this.details.set(d.device, d);
      for (const id of res.unknown) this.unknown.add(id);
    }
    const groups = new Set<string>();
    for (const p of this.present)
      for (const g of this.details.get(p)?.security_groups ?? []) groups.add(g);
    if (!this.groupsKnown && groups.size > 0) {
      await this.link.call('security_group_info', { host, security_groups: [...groups] });
      this.groupsKnown = true;
    }
    await this.reportPorts();
  }

  private async reportPorts(): Promise<void> {
    const up: string[] = [];
    const down: string[] = [];
    for (const p of this.present) if (this.details.has(p) && this.sent.get(p) !== 'up') up.push(p);
    for (const [p, s] of this.sent)
      if (s === 'up' && (!this.present.has(p) || !this.details.has(p))) down.push(p);
    if (up.length + down.length === 0) return;
    await this.link.call('update_device_list', { host: this.name, up, down });
    for (const p of up) this.sent.set(p, 'up');
    for (const p of down) this.sent.delete(p);
    for (const p of [...this.details.keys()]) if (!this.present.has(p)) this.details.delete(p);
    for (const p of [...this.unknown]) if (!this.present.has(p)) this.unknown.delete(p);
  }

  private forgetPort(id: string): void {
    if (this.details.has(id) || this.unknown.has(id)) this.groupsKnown = false;
    this.details.delete(id);
    this.unknown.delete(id);
    this.sent.delete(id);
  }

  private forgetL2(): void {
    this.details.clear();
    this.unknown.clear();
    this.sent.clear();
    this.peersKnown = false;
    this.groupsKnown = false;
  }

  // ------------------------------------------------------------------ messages

  /** A delivery on one of this host's queues (host queue or fanout) for agent `kind`. */
  onMessage(kind: AgentKind, message: Message): void {
    if (message.method === 'resync') {
      void this.resync(kind);
      return;
    }
    if (message.method !== 'hint') return;
    const { resource, id } = message.args;
    if (kind === 'ovs') {
      if (resource === 'port') this.forgetPort(id);
      else if (resource === 'tunnels') this.peersKnown = false;
      else if (resource === 'security_group') this.groupsKnown = false;
      void this.sync();
    } else if (kind === 'dhcp' && resource === 'network') void this.network(id);
    else if (kind === 'l3' && resource === 'router')
      void this.link.call('get_router_info', { host: this.name, router_id: id }).catch(() => {});
    else if (kind === 'compute' && resource === 'instance')
      void this.link.call('get_instance', { host: this.name, instance_id: id }).catch(() => {});
  }

  /** A full resync of agent `kind`, as at start and every resync_interval. */
  async resync(kind: AgentKind): Promise<void> {
    const host = this.name;
    try {
      if (kind === 'ovs') {
        this.forgetL2();
        await this.sync();
      } else if (kind === 'dhcp') {
        const r = (await this.link.call('get_active_networks', { host })) as { networks: string[] };
        await Promise.all(r.networks.map((id) => this.network(id)));
      } else if (kind === 'l3') {
        const r = (await this.link.call('get_active_routers', { host })) as { routers: string[] };
        for (const id of r.routers ?? [])
          await this.link.call('get_router_info', { host, router_id: id });
      } else await this.link.call('get_host_instances', { host });
    } catch {
      /* counted by the link; the next resync retries */
    }
  }

  private network(id: string): Promise<void> {
    let run = this.networks.get(id);
    if (!run) {
      run = coalesced(() => this.serveNetwork(id));
      this.networks.set(id, run);
    }
    return run();
  }

  private async serveNetwork(id: string): Promise<void> {
    const host = this.name;
    const r = (await this.link.call('get_network_info', { host, network_id: id })) as {
      network: DhcpNetwork | null;
    };
    const net = r.network;
    if (!net) {
      this.served.delete(id);
      return;
    }
    this.served.set(id, net.ports.length);
    if (net.dhcp_port && !this.present.has(net.dhcp_port.id)) this.plug(net.dhcp_port.id);
    if (this.reported.has(id)) return;
    const status = { resource: 'network', id, status: 'ACTIVE' };
    const agent_type = agentTypeByKind('dhcp').agentType;
    await this.link.cast('q-plugin', 'report_status', { host, agent_type, statuses: [status] });
    this.reported.add(id);
  }
}
