/**
 * kumo-ovs-agent: binds the ports it sees on br-int to their networks (local VLAN on
 * br-int, VLAN ↔ tunnel key on br-tun), keeps the GRE/VXLAN mesh to its peers, and
 * reports ports ACTIVE.
 *
 * Invariants:
 * - event-driven: an OVSDB monitor on Bridge/Port/Interface feeds one coalesced `l2:sync`
 *   reconcile; hints (`port`, `tunnels`) and resyncs feed the same one;
 * - a sync computes the whole desired state before it touches the host, and applies it
 *   with one OVSDB transaction and one atomic replace-flows per bridge, so a restarted
 *   agent (new flow cookie) swaps its predecessor's flows in place and traffic goes on;
 * - the only memory kept between syncs is what the API said (port details, peers) and
 *   what was reported; OVS itself is observed, never remembered.
 */
import { randomBytes } from 'node:crypto';
import {
  type DeviceDetails,
  GetDevicesDetailsResult,
  type TunnelPeer,
  TunnelSyncResult,
} from '../../contracts/l2.ts';
import { PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { UUID } from '../../contracts/schema.ts';
import type { AgentControl, AgentHooks } from '../../core/agent.ts';
import { required } from '../../core/config.ts';
import { createOvsdbClient, type OvsdbClient } from '../../host/ovs/ovsdb.ts';
import { toolVersion } from '../../host/version.ts';
import type { HookDeps } from '../run.ts';
import { applyPlan } from './apply.ts';
import { desiredOvs, type OvsSettings, vmPorts } from './desired.ts';
import { applyUpdates, emptyReplica, MONITORED, type Replica, readState } from './observe.ts';
import { planOvs } from './plan.ts';

const MONITOR_ID = 'kumo-ovs-agent';

export function ovsSettings(config: HookDeps['config']): OvsSettings {
  return {
    intBridge: config.ovs.integration_bridge,
    tunBridge: config.ovs.tunnel_bridge,
    datapathType: config.ovs.datapath_type,
    localIp: config.ovs.local_ip ?? null,
    tunnelTypes: config.agent.tunnel_types,
  };
}

/** Waiters for ovs-vswitchd's cur_cfg, settled from monitor updates. */
function createCfgWaiter(replica: () => Replica) {
  let waiters: { cfg: number; resolve: () => void }[] = [];
  const current = () => readState(replica()).curCfg;
  return {
    check() {
      const cur = current();
      for (const w of waiters.filter((x) => cur >= x.cfg)) w.resolve();
      waiters = waiters.filter((x) => cur < x.cfg);
    },
    wait(cfg: number, timeoutMs: number) {
      if (current() >= cfg) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`ovs-vswitchd did not reach cfg ${cfg} in ${timeoutMs} ms`)),
          timeoutMs,
        );
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        waiters.push({ cfg, resolve: done });
      });
    },
  };
}

export async function ovsHooks({ config, runner, log, broker }: HookDeps): Promise<AgentHooks> {
  const settings = ovsSettings(config);
  const host = config.DEFAULT.host;
  const rundir = config.ovs.ovs_rundir;
  const cookie = `0x6b756d6f${randomBytes(4).toString('hex')}`;
  const ovsVersion = await toolVersion(runner, ['ovs-vswitchd', '--version']);
  let replica = emptyReplica();
  let ovsdb: OvsdbClient | undefined;
  let ctl: AgentControl | undefined;
  const details = new Map<string, DeviceDetails>();
  const unknown = new Set<string>();
  const reportedUp = new Set<string>();
  let peers: TunnelPeer[] = [];
  let peersKnown = false;
  const cfg = createCfgWaiter(() => replica);

  const call = async <T>(
    method: 'get_devices_details' | 'tunnel_sync',
    args: never,
    schema: { parse(v: unknown): T },
  ) => schema.parse(await broker.call(PLUGIN_TOPIC, method, args));

  const fetchDetails = async (ids: string[]) => {
    for (const id of ids.filter((i) => !UUID.test(i))) unknown.add(id);
    const ask = ids.filter((i) => UUID.test(i));
    if (ask.length === 0) return;
    const res = await call(
      'get_devices_details',
      { host, devices: ask } as never,
      GetDevicesDetailsResult,
    );
    for (const d of res.devices) details.set(d.device, d);
    for (const id of res.unknown) unknown.add(id);
  };

  const syncPeers = async () => {
    if (!settings.localIp) return;
    const args = { host, tunnel_ip: settings.localIp, tunnel_types: [...settings.tunnelTypes] };
    peers = (await call('tunnel_sync', args as never, TunnelSyncResult)).peers;
    peersKnown = true;
  };

  const reportStatus = async (present: Map<string, string>) => {
    const ids = new Set(present.values());
    const up = [...ids].filter((id) => details.get(id)?.admin_state_up && !reportedUp.has(id));
    const down = [...reportedUp].filter((id) => !ids.has(id) || !details.get(id)?.admin_state_up);
    if (up.length === 0 && down.length === 0) return;
    await broker.call(PLUGIN_TOPIC, 'update_device_list', { host, up, down });
    for (const id of up) reportedUp.add(id);
    for (const id of down) reportedUp.delete(id);
    log.info({ up: up.length, down: down.length }, 'port status reported');
  };

  const sync = async () => {
    if (!ovsdb) throw new Error('OVSDB not connected');
    if (!peersKnown) await syncPeers();
    const before = readState(replica);
    const present = vmPorts(before, settings.intBridge);
    await fetchDetails(
      [...new Set(present.values())].filter((id) => !details.has(id) && !unknown.has(id)),
    );
    const state = readState(replica);
    const plan = planOvs(settings, desiredOvs(settings, state, details, peers), state, cookie);
    log.debug({ ports: present.size, ops: plan.ops.length, peers: peers.length }, 'l2 sync');
    await applyPlan({ ovsdb, runner, rundir, waitCfg: cfg.wait }, plan);
    await reportStatus(vmPorts(state, settings.intBridge));
  };

  const onUpdates = () => {
    cfg.check();
    ctl?.enqueue('l2', 'sync');
  };

  return {
    configurations: async () => ({
      integration_bridge: settings.intBridge,
      tunnel_bridge: settings.tunBridge,
      datapath_type: settings.datapathType,
      tunneling_ip: settings.localIp,
      tunnel_types: [...settings.tunnelTypes],
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
      details.clear();
      unknown.clear();
      reportedUp.clear();
      peersKnown = false;
      ctl?.enqueue('l2', 'sync');
    },
    async reconcile(resource, id) {
      if (resource === 'l2') return sync();
      if (resource === 'port') {
        details.delete(id);
        unknown.delete(id);
        reportedUp.delete(id);
      } else if (resource === 'tunnels') peersKnown = false;
      else throw new Error(`kumo-ovs-agent does not manage ${resource}`);
      ctl?.enqueue('l2', 'sync');
    },
  };
}
