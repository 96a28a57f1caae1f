/**
 * kumo-ovs-agent: binds the ports it sees on br-int to their networks (local VLAN on
 * br-int, VLAN ↔ tunnel key on br-tun, VLAN ↔ physical network on the bridges of
 * [ovs] bridge_mappings), keeps the GRE/VXLAN mesh to its peers, and reports ports ACTIVE.
 *
 * Invariants:
 * - event-driven: an OVSDB monitor on Bridge/Port/Interface feeds one coalesced `l2:sync`
 *   reconcile (l2.ts, a kit resource kind); hints (`port`, `tunnels`, `security_group`)
 *   forget what the API said about that port, the peers or the groups and feed the same
 *   one, and so does a resync;
 * - a sync computes the whole desired state before it touches the host, and applies it
 *   with one OVSDB transaction and one atomic replace-flows per bridge, so a restarted
 *   agent (new flow cookie) swaps its predecessor's flows in place and traffic goes on;
 * - the only memory kept between syncs is what the API said (port details, peers) and
 *   what was reported; OVS itself is observed, never remembered.
 */
import { randomBytes } from 'node:crypto';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import { ConfigError, required } from '../../core/config.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { toolVersion } from '../../host/version.ts';
import type { HookDeps } from '../run.ts';
import { type OvsSettings, vmPorts } from './desired.ts';
import { createL2 } from './l2.ts';
import { applyUpdates, emptyReplica, MONITORED, readState } from './observe.ts';

const MONITOR_ID = 'kumo-ovs-agent';

/** One bridge per physical network and one physical network per bridge, never br-int/br-tun. */
function checkMappings(mappings: readonly (readonly [string, string])[], own: string[]) {
  const physnets = new Set<string>();
  const bridges = new Set<string>(own);
  for (const [physnet, bridge] of mappings) {
    if (physnets.has(physnet))
      throw new ConfigError(`[ovs] bridge_mappings: physical network ${physnet} mapped twice`);
    if (bridges.has(bridge))
      throw new ConfigError(
        `[ovs] bridge_mappings: bridge ${bridge} is mapped twice or is the integration/tunnel bridge`,
      );
    physnets.add(physnet);
    bridges.add(bridge);
  }
}

export function ovsSettings(config: HookDeps['config']): OvsSettings {
  const intBridge = config.ovs.integration_bridge;
  const tunBridge = config.ovs.tunnel_bridge;
  checkMappings(config.ovs.bridge_mappings, [intBridge, tunBridge]);
  return {
    intBridge,
    tunBridge,
    datapathType: config.ovs.datapath_type,
    localIp: config.ovs.local_ip ?? null,
    tunnelTypes: config.agent.tunnel_types,
    bridgeMappings: config.ovs.bridge_mappings,
  };
}

export async function ovsHooks({
  config,
  runner,
  log,
  broker,
  metrics,
}: HookDeps): Promise<AgentHooks> {
  const settings = ovsSettings(config);
  const host = config.DEFAULT.host;
  const cookie = `0x6b756d6f${randomBytes(4).toString('hex')}`;
  const ovsVersion = await toolVersion(runner, ['ovs-vswitchd', '--version']);
  let replica = emptyReplica();
  let ovsdb: OvsdbClient | undefined;
  let ctl: AgentControl | undefined;
  const l2 = createL2({
    settings,
    host,
    cookie,
    rundir: config.ovs.ovs_rundir,
    broker,
    runner,
    log,
    metrics: metrics?.steps,
    replica: () => replica,
    ovsdb: async () => {
      if (!ovsdb) throw new Error('OVSDB not connected');
      return ovsdb;
    },
  });

  const onUpdates = () => {
    l2.noteUpdate();
    ctl?.enqueue('l2', 'sync');
  };

  return {
    configurations: async () => ({
      integration_bridge: settings.intBridge,
      tunnel_bridge: settings.tunBridge,
      datapath_type: settings.datapathType,
      tunneling_ip: settings.localIp,
      tunnel_types: [...settings.tunnelTypes],
      bridge_mappings: Object.fromEntries(settings.bridgeMappings ?? []),
      l2_population: false,
      arp_responder_enabled: false,
      ovs_version: ovsVersion,
      devices: vmPorts(readState(replica), settings.intBridge).size,
    }),
    async start(control) {
      ctl = control;
      const socket = required(config.ovs.ovsdb_connection, 'ovs', 'ovsdb_connection');
      ovsdb = await createOvsdbClient({ socket, log, reconnect: { initialMs: 200, maxMs: 5000 } });
      ovsdb.onUpdate(MONITOR_ID, (u) => {
        applyUpdates(replica, u);
        onUpdates();
      });
      ovsdb.onReconnected((ev) => {
        metrics?.links.ovsdbReconnects.inc();
        replica = emptyReplica();
        applyUpdates(replica, ev.monitors[MONITOR_ID] ?? {});
        log.warn('ovsdb reconnected; resyncing');
        onUpdates();
      });
      applyUpdates(replica, await ovsdb.monitor('Open_vSwitch', MONITOR_ID, MONITORED));
      log.info(
        { cookie, ports: vmPorts(readState(replica), settings.intBridge).size },
        'ovsdb monitor established',
      );
    },
    async stop() {
      await ovsdb?.close();
    },
    // Every path ends in the one `l2:sync` key, so two syncs never run at once.
    async resync() {
      l2.forget();
      ctl?.enqueue('l2', 'sync');
    },
    async reconcile(resource, id, revision) {
      if (resource === 'port') l2.forgetPort(id);
      else if (resource === 'tunnels') l2.forgetPeers();
      else if (resource === 'security_group') l2.forgetGroups();
      else return l2.reconcile(resource, id, revision);
      ctl?.enqueue('l2', 'sync');
    },
  };
}
