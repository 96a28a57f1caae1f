/**
 * DHCP scheduling: which DHCP agents serve which networks (network_dhcp_agent_bindings),
 * the DHCP port each hosting agent listens on, the periodic failover sweep, and the hints
 * that tell DHCP agents to reconcile a network.
 *
 * Invariants:
 * - a network with a DHCP-enabled subnet is bound to up to `dhcp_agents_per_network`
 *   alive, admin-up DHCP agents, least loaded (fewest bindings) first, ties by host name;
 *   nothing is ever scheduled to a dead or admin-down agent;
 * - with automatic failover, a binding on a dead or admin-down agent is removed when an
 *   eligible agent can take its place (or the network already has enough eligible ones);
 *   otherwise it stays, so a network never loses its last DHCP server for nothing;
 * - binding decisions run in one transaction under one lock (a PostgreSQL advisory lock;
 *   SQLite's single writer serialises), so two API replicas never double-schedule;
 * - every bound agent has exactly one scheduler-made DHCP port on the network
 *   (device_owner network:dhcp, device_id `dhcp<uuid5(host)>-<network>`, bound to its
 *   host, one fixed IP per DHCP-enabled subnet); a port whose binding is gone is deleted;
 * - whenever bindings change, every agent that hosts the network, and every agent that
 *   lost it, gets a `hint {resource: network}` on its host queue (hints.ts).
 */
import { DHCP_OWNER, type Port } from '../../contracts/network.ts';
import {
  addBinding,
  allBindings,
  dhcpAgentInfos,
  dhcpHostsOf,
  dhcpSubnetIds,
  networksNeedingDhcp,
  networksWithStaleDhcpPorts,
  removeBinding,
  schedulerTransaction,
} from '../db/dhcp-bindings.ts';
import type { Db } from '../db/index.ts';
import { createPort, deletePort, listPorts, updatePort } from '../db/ports.ts';
import { type HintDeps, hintDhcpAgents } from '../hints.ts';
import type { Clock } from '../liveness.ts';
import { dhcpDeviceId, planBindings } from './dhcp-plan.ts';

export interface DhcpSettings {
  agentDownTime: number;
  /** [DEFAULT] dhcp_agents_per_network; default 1. */
  dhcpAgentsPerNetwork?: number;
  /** [api] allow_automatic_failover; default true. */
  allowAutomaticFailover?: boolean;
}

export interface DhcpDeps extends HintDeps {
  db: Db;
  clock: Clock;
  settings: DhcpSettings;
}

/** A change of one network's bindings: the hosts that lost it (to be hinted). */
export interface NetworkChange {
  networkId: string;
  added: string[];
  lostHosts: string[];
}

/**
 * Binds `networkIds` (all networks needing DHCP when undefined) to agents as the plan
 * says, in one locked transaction. Returns what changed, per network.
 */
export async function rescheduleNetworks(
  deps: DhcpDeps,
  networkIds?: readonly string[],
): Promise<NetworkChange[]> {
  const perNetwork = deps.settings.dhcpAgentsPerNetwork ?? 1;
  const failover = deps.settings.allowAutomaticFailover ?? true;
  const now = deps.clock.now();
  return schedulerTransaction(deps.db, async (tx) => {
    const wanted = networkIds ? new Set(networkIds) : undefined;
    const networks = (await networksNeedingDhcp(tx)).filter((id) => !wanted || wanted.has(id));
    if (networks.length === 0) return [];
    const agents = await dhcpAgentInfos(tx, now, deps.settings.agentDownTime);
    const bindings = await allBindings(tx);
    const plan = planBindings(networks, bindings, agents, perNetwork, failover);
    const hostOf = new Map(agents.map((a) => [a.id, a.host]));
    const changes = new Map<string, NetworkChange>();
    const change = (networkId: string) => {
      let c = changes.get(networkId);
      if (!c) {
        c = { networkId, added: [], lostHosts: [] };
        changes.set(networkId, c);
      }
      return c;
    };
    for (const r of plan.remove) {
      if (await removeBinding(tx, r.networkId, r.agentId))
        change(r.networkId).lostHosts.push(hostOf.get(r.agentId) ?? '');
    }
    for (const a of plan.add) {
      if (await addBinding(tx, a.networkId, a.agentId))
        change(a.networkId).added.push(hostOf.get(a.agentId) ?? '');
    }
    return [...changes.values()];
  });
}

const DEVICE_ID = /^dhcp[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-/;

/** A DHCP port this scheduler made (ports a client made by hand are left alone). */
const isSchedulerPort = (p: Port) =>
  p.device_owner === DHCP_OWNER &&
  DEVICE_ID.test(p.device_id) &&
  p.device_id.endsWith(`-${p.network_id}`);

type Warn = (e: unknown, what: string, extra: Record<string, unknown>) => void;

/** Deletes the ports whose (device, host) no bound host expects; whether any went. */
async function deleteUnexpected(
  deps: DhcpDeps,
  ports: Port[],
  expected: Map<string, string>,
  warn: Warn,
) {
  let changed = false;
  for (const p of ports) {
    if (expected.get(p.device_id) === p['binding:host_id']) continue;
    try {
      await deletePort(deps.db, p.id);
      changed = true;
      deps.log.info(
        { networkId: p.network_id, portId: p.id, host: p['binding:host_id'] },
        'DHCP port deleted',
      );
    } catch (e) {
      warn(e, 'DHCP port not deleted', { portId: p.id });
    }
  }
  return changed;
}

/** Creates the DHCP port of `host`, with an address on every DHCP subnet. */
async function createDhcpPort(
  deps: DhcpDeps,
  networkId: string,
  deviceId: string,
  host: string,
  subnets: string[],
) {
  const created = await createPort(
    deps.db,
    {
      network_id: networkId,
      device_owner: DHCP_OWNER,
      device_id: deviceId,
      'binding:host_id': host,
      fixed_ips: subnets.map((subnet_id) => ({ subnet_id })),
    },
    deps.clock.now(),
  );
  deps.log.info(
    { networkId, portId: created.id, host, fixedIps: created.fixed_ips },
    'DHCP port created',
  );
}

/** Adds an address on every DHCP subnet the port has none on; whether it had to. */
async function completeAddresses(deps: DhcpDeps, port: Port, subnets: string[]) {
  const missing = subnets.filter((s) => !port.fixed_ips.some((ip) => ip.subnet_id === s));
  if (missing.length === 0) return false;
  const kept = port.fixed_ips.map((ip) => ({ subnet_id: ip.subnet_id, ip_address: ip.ip_address }));
  const fixed_ips = [...kept, ...missing.map((subnet_id) => ({ subnet_id }))];
  await updatePort(deps.db, port.id, { fixed_ips }, deps.clock.now());
  return true;
}

/** One bound host's DHCP port: created if missing, completed if short of addresses. */
async function ensureDhcpPort(
  deps: DhcpDeps,
  networkId: string,
  [deviceId, host]: [string, string],
  ctx: { ports: Port[]; subnets: string[]; warn: Warn },
): Promise<boolean> {
  const port = ctx.ports.find((p) => p.device_id === deviceId && p['binding:host_id'] === host);
  try {
    if (port) return await completeAddresses(deps, port, ctx.subnets);
    if (ctx.subnets.length === 0) return false;
    await createDhcpPort(deps, networkId, deviceId, host, ctx.subnets);
    return true;
  } catch (e) {
    // A create may fail because another replica made the port at the same moment.
    if (port) ctx.warn(e, 'DHCP port addresses not updated', { portId: port.id });
    else ctx.warn(e, 'DHCP port not created', { host });
    return false;
  }
}

/**
 * Makes a network's scheduler-made DHCP ports match its bindings: one per bound host with
 * an address on every DHCP-enabled subnet; ports of hosts no longer bound are deleted.
 * Returns whether anything changed. A failure on one port is logged and left for the next
 * sweep.
 */
export async function syncDhcpPorts(deps: DhcpDeps, networkId: string): Promise<boolean> {
  const hosts = await dhcpHostsOf(deps.db, networkId);
  const subnets = await dhcpSubnetIds(deps.db, networkId);
  const ports = (
    await listPorts(deps.db, {
      columns: { network_id: [networkId], device_owner: [DHCP_OWNER] },
      clauses: [],
    })
  ).filter(isSchedulerPort);
  const expected = new Map(hosts.map((h) => [dhcpDeviceId(h, networkId), h]));
  const warn: Warn = (e, what, extra) =>
    deps.log.warn({ err: (e as Error).message, networkId, ...extra }, what);
  let changed = await deleteUnexpected(deps, ports, expected, warn);
  for (const entry of expected)
    if (await ensureDhcpPort(deps, networkId, entry, { ports, subnets, warn })) changed = true;
  return changed;
}

/**
 * Schedules one network (a DHCP-enabled subnet was created or changed), makes its DHCP
 * ports match and hints its agents. Never rejects: the sweep retries what failed.
 */
export async function scheduleNetwork(deps: DhcpDeps, networkId: string): Promise<void> {
  let lost: string[] = [];
  try {
    const changes = await rescheduleNetworks(deps, [networkId]);
    lost = changes.flatMap((c) => c.lostHosts);
    for (const c of changes)
      if (c.added.length)
        deps.log.info({ networkId, hosts: c.added }, 'network scheduled to DHCP agents');
    await syncDhcpPorts(deps, networkId);
  } catch (e) {
    deps.log.warn({ err: (e as Error).message, networkId }, 'DHCP scheduling failed');
  }
  await hintDhcpAgents(deps, networkId, lost);
}

export interface SweepResult {
  /** Networks whose bindings changed. */
  changes: NetworkChange[];
  /** Networks whose DHCP ports changed without a binding change (e.g. an agent deleted). */
  portsFixed: string[];
}

/**
 * One failover/scheduling pass over every network: moves networks off dead or admin-down
 * agents (when failover is allowed), schedules networks with too few agents, deletes DHCP
 * ports whose binding is gone, and hints every agent concerned. Callable from tests with
 * an injected clock.
 */
export async function runDhcpSweep(deps: DhcpDeps): Promise<SweepResult> {
  const changes = await rescheduleNetworks(deps);
  for (const c of changes) {
    deps.log.info(
      { networkId: c.networkId, added: c.added, removedFrom: c.lostHosts },
      'DHCP bindings changed by the sweep',
    );
  }
  const touched = new Set(changes.map((c) => c.networkId));
  // Scheduler-made DHCP ports whose (network, host) has no binding any more, and bound
  // agents whose port is missing.
  const stale = await networksWithStaleDhcpPorts(deps.db);
  const portsFixed: string[] = [];
  for (const network_id of stale) {
    const changed = await syncDhcpPorts(deps, network_id).catch((e: Error) => {
      deps.log.warn({ err: e.message, networkId: network_id }, 'DHCP ports not synced');
      return false;
    });
    if (changed && !touched.has(network_id)) {
      portsFixed.push(network_id);
      await hintDhcpAgents(deps, network_id);
    }
  }
  for (const c of changes) {
    if (!stale.includes(c.networkId)) await syncDhcpPorts(deps, c.networkId);
    await hintDhcpAgents(deps, c.networkId, c.lostHosts);
  }
  return { changes, portsFixed };
}
