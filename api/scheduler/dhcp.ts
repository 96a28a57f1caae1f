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
 *   lost it, gets a `hint {resource: network}` on its host queue.
 */
import { createHash } from 'node:crypto';
import { agentTypeByKind } from '../../contracts/agents.ts';
import { hostQueue } from '../../contracts/messages.ts';
import { DHCP_OWNER, type Port } from '../../contracts/network.ts';
import type { Broker } from '../../core/amqp.ts';
import type { Logger } from '../../core/log.ts';
import { isAlive } from '../db/agents.ts';
import type { Db, Queryable } from '../db/index.ts';
import { bool } from '../db/neutron.ts';
import { createPort, deletePort, listPorts, updatePort } from '../db/ports.ts';
import type { Clock } from '../liveness.ts';

const DHCP = agentTypeByKind('dhcp');
export const DHCP_AGENT_TYPE = DHCP.agentType;
export const DHCP_TOPIC = DHCP.topic;
/** pg_advisory_xact_lock key for DHCP scheduling ("kumo dhcp"). */
const SCHEDULER_LOCK = 0x6b756d6f_01;

export interface DhcpSettings {
  agentDownTime: number;
  /** [DEFAULT] dhcp_agents_per_network; default 1. */
  dhcpAgentsPerNetwork?: number;
  /** [api] allow_automatic_failover; default true. */
  allowAutomaticFailover?: boolean;
}

export interface HintDeps {
  db: Db;
  broker: Pick<Broker, 'cast'>;
  log: Logger;
}

export interface DhcpDeps extends HintDeps {
  clock: Clock;
  settings: DhcpSettings;
}

const NAMESPACE_DNS = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';

/** RFC 4122 name-based UUID (SHA-1), as Python's uuid.uuid5. */
export function uuid5(namespace: string, name: string): string {
  const hash = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name, 'utf8')
    .digest();
  const b = hash.subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x50;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Neutron's DHCP port device_id: `dhcp<uuid5(NAMESPACE_DNS, host)>-<network_id>`. */
export function dhcpDeviceId(host: string, networkId: string): string {
  return `dhcp${uuid5(NAMESPACE_DNS, host)}-${networkId}`;
}

// ---------------------------------------------------------------- planning (pure)

export interface DhcpAgentInfo {
  id: string;
  host: string;
  /** Alive and admin-up: may be scheduled to. */
  eligible: boolean;
  /** Networks bound to it. */
  load: number;
}

export interface BindingPlan {
  add: { networkId: string; agentId: string }[];
  remove: { networkId: string; agentId: string }[];
}

/**
 * The binding changes for `networks` (each needing DHCP), given the current bindings and
 * agents. Pure; `agents[].load` is updated as bindings are planned so one sweep spreads
 * networks over agents.
 */
export function planBindings(
  networks: readonly string[],
  bindings: ReadonlyMap<string, readonly string[]>,
  agents: DhcpAgentInfo[],
  perNetwork: number,
  failover: boolean,
): BindingPlan {
  const byId = new Map(agents.map((a) => [a.id, a]));
  const plan: BindingPlan = { add: [], remove: [] };
  for (const networkId of [...networks].sort()) {
    const hosting = new Set(bindings.get(networkId) ?? []);
    const candidates = () =>
      agents
        .filter((a) => a.eligible && !hosting.has(a.id))
        .sort((x, y) => x.load - y.load || (x.host < y.host ? -1 : x.host > y.host ? 1 : 0));
    const add = (agent: DhcpAgentInfo) => {
      hosting.add(agent.id);
      agent.load++;
      plan.add.push({ networkId, agentId: agent.id });
    };
    if (failover) {
      for (const agentId of [...hosting]) {
        const agent = byId.get(agentId);
        if (agent?.eligible) continue;
        const eligibleHosting = [...hosting].filter((id) => byId.get(id)?.eligible).length;
        const replacement = candidates()[0];
        if (!replacement && eligibleHosting < perNetwork) continue;
        hosting.delete(agentId);
        if (agent) agent.load--;
        plan.remove.push({ networkId, agentId });
        if (replacement && eligibleHosting < perNetwork) add(replacement);
      }
    }
    while (hosting.size < perNetwork) {
      const next = candidates()[0];
      if (!next) break;
      add(next);
    }
  }
  return plan;
}

// ---------------------------------------------------------------- database

/**
 * A transaction holding the scheduler lock: on PostgreSQL an advisory lock every replica
 * takes before reading or changing bindings; SQLite's BEGIN IMMEDIATE already serialises.
 */
export function schedulerTransaction<T>(db: Db, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query(`SELECT pg_advisory_xact_lock(${SCHEDULER_LOCK})`);
    return fn(tx);
  });
}

export async function dhcpAgentInfos(
  tx: Queryable,
  now: Date,
  downTime: number,
): Promise<DhcpAgentInfo[]> {
  const rows = await tx.query<{
    id: string;
    host: string;
    admin_state_up: unknown;
    heartbeat_timestamp: string;
    load: unknown;
  }>(
    `SELECT a.id, a.host, a.admin_state_up, a.heartbeat_timestamp,
        (SELECT COUNT(*) FROM network_dhcp_agent_bindings b WHERE b.agent_id = a.id) AS load
       FROM agents a WHERE a.agent_type = ? ORDER BY a.host`,
    [DHCP_AGENT_TYPE],
  );
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    eligible: bool(r.admin_state_up) && isAlive(r.heartbeat_timestamp, now, downTime),
    load: Number(r.load),
  }));
}

/** Hosts of the DHCP agents bound to a network. */
export async function dhcpHostsOf(db: Queryable, networkId: string): Promise<string[]> {
  const rows = await db.query<{ host: string }>(
    `SELECT a.host FROM network_dhcp_agent_bindings b JOIN agents a ON a.id = b.agent_id
      WHERE b.network_id = ? ORDER BY a.host`,
    [networkId],
  );
  return rows.map((r) => r.host);
}

/** Ids of the DHCP agents bound to a network. */
export async function dhcpAgentIdsOf(db: Queryable, networkId: string): Promise<string[]> {
  const rows = await db.query<{ agent_id: string }>(
    'SELECT agent_id FROM network_dhcp_agent_bindings WHERE network_id = ? ORDER BY agent_id',
    [networkId],
  );
  return rows.map((r) => r.agent_id);
}

/** Binds a network to an agent; false when it already was. */
export async function addBinding(tx: Queryable, networkId: string, agentId: string) {
  const rows = await tx.query(
    `INSERT INTO network_dhcp_agent_bindings (network_id, agent_id) VALUES (?, ?)
     ON CONFLICT DO NOTHING RETURNING network_id`,
    [networkId, agentId],
  );
  return rows.length > 0;
}

/** Unbinds; false when there was no such binding. */
export async function removeBinding(tx: Queryable, networkId: string, agentId: string) {
  const rows = await tx.query(
    'DELETE FROM network_dhcp_agent_bindings WHERE network_id = ? AND agent_id = ? RETURNING network_id',
    [networkId, agentId],
  );
  return rows.length > 0;
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
    const dhcpNets = await tx.query<{ network_id: string }>(
      'SELECT DISTINCT network_id FROM subnets WHERE enable_dhcp = ? ORDER BY network_id',
      [true],
    );
    const wanted = networkIds ? new Set(networkIds) : undefined;
    const networks = dhcpNets.map((r) => r.network_id).filter((id) => !wanted || wanted.has(id));
    if (networks.length === 0) return [];
    const agents = await dhcpAgentInfos(tx, now, deps.settings.agentDownTime);
    const rows = await tx.query<{ network_id: string; agent_id: string }>(
      'SELECT network_id, agent_id FROM network_dhcp_agent_bindings',
    );
    const bindings = new Map<string, string[]>();
    for (const r of rows)
      bindings.set(r.network_id, [...(bindings.get(r.network_id) ?? []), r.agent_id]);
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

/** SQL LIKE pattern of a scheduler-made DHCP port's device_id (see dhcpDeviceId). */
const DEVICE_ID_LIKE = 'dhcp________-____-5___-____-____________-%';
const DEVICE_ID = /^dhcp[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-/;

/** A DHCP port this scheduler made (ports a client made by hand are left alone). */
const isSchedulerPort = (p: Port) =>
  p.device_owner === DHCP_OWNER &&
  DEVICE_ID.test(p.device_id) &&
  p.device_id.endsWith(`-${p.network_id}`);

/**
 * Makes a network's scheduler-made DHCP ports match its bindings: one per bound host with
 * an address on every DHCP-enabled subnet; ports of hosts no longer bound are deleted.
 * Returns whether anything changed. A failure on one port is logged and left for the next
 * sweep.
 */
export async function syncDhcpPorts(deps: DhcpDeps, networkId: string): Promise<boolean> {
  const hosts = await dhcpHostsOf(deps.db, networkId);
  const subnets = (
    await deps.db.query<{ id: string }>(
      'SELECT id FROM subnets WHERE network_id = ? AND enable_dhcp = ? ORDER BY created_at, id',
      [networkId, true],
    )
  ).map((r) => r.id);
  const ports = (
    await listPorts(deps.db, {
      columns: { network_id: [networkId], device_owner: [DHCP_OWNER] },
      clauses: [],
    })
  ).filter(isSchedulerPort);
  const expected = new Map(hosts.map((h) => [dhcpDeviceId(h, networkId), h]));
  let changed = false;
  const warn = (e: unknown, what: string, extra: Record<string, unknown>) =>
    deps.log.warn({ err: (e as Error).message, networkId, ...extra }, what);
  for (const p of ports) {
    if (expected.has(p.device_id) && p['binding:host_id'] === expected.get(p.device_id)) continue;
    try {
      await deletePort(deps.db, p.id);
      changed = true;
      deps.log.info({ networkId, portId: p.id, host: p['binding:host_id'] }, 'DHCP port deleted');
    } catch (e) {
      warn(e, 'DHCP port not deleted', { portId: p.id });
    }
  }
  for (const [deviceId, host] of expected) {
    const port = ports.find((p) => p.device_id === deviceId && p['binding:host_id'] === host);
    if (!port) {
      if (subnets.length === 0) continue;
      try {
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
        changed = true;
        deps.log.info(
          { networkId, portId: created.id, host, fixedIps: created.fixed_ips },
          'DHCP port created',
        );
      } catch (e) {
        // Another replica may have created it at the same moment (unique device_id).
        warn(e, 'DHCP port not created', { host });
      }
      continue;
    }
    const missing = subnets.filter((s) => !port.fixed_ips.some((ip) => ip.subnet_id === s));
    if (missing.length === 0) continue;
    try {
      await updatePort(
        deps.db,
        port.id,
        {
          fixed_ips: [
            ...port.fixed_ips.map((ip) => ({ subnet_id: ip.subnet_id, ip_address: ip.ip_address })),
            ...missing.map((subnet_id) => ({ subnet_id })),
          ],
        },
        deps.clock.now(),
      );
      changed = true;
    } catch (e) {
      warn(e, 'DHCP port addresses not updated', { portId: port.id });
    }
  }
  return changed;
}

/**
 * Casts `hint {resource: network, id}` to the DHCP agent of every host that serves the
 * network, plus `extraHosts` (agents that just lost it). Never rejects: a hint that cannot
 * be sent is logged; the agents' periodic resync catches up.
 */
export async function hintDhcpAgents(
  deps: HintDeps,
  networkId: string,
  extraHosts: Iterable<string> = [],
): Promise<void> {
  let hosts: string[] = [];
  try {
    hosts = await dhcpHostsOf(deps.db, networkId);
  } catch (e) {
    deps.log.warn({ err: (e as Error).message, networkId }, 'DHCP agents of network not read');
  }
  const all = new Set([...hosts, ...extraHosts].filter((h) => h !== ''));
  await Promise.all(
    [...all].map((host) =>
      deps.broker
        .cast(hostQueue(DHCP_TOPIC, host), 'hint', { resource: 'network', id: networkId })
        .catch((e: Error) =>
          deps.log.warn({ err: e.message, networkId, host }, 'DHCP hint not sent'),
        ),
    ),
  );
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
  const stale = await deps.db.query<{ network_id: string }>(
    `SELECT DISTINCT p.network_id FROM ports p
      WHERE p.device_owner = ? AND p.device_id LIKE ? AND NOT EXISTS (
        SELECT 1 FROM network_dhcp_agent_bindings b JOIN agents a ON a.id = b.agent_id
         WHERE b.network_id = p.network_id AND a.host = p.host_id)
     UNION
     SELECT DISTINCT b.network_id FROM network_dhcp_agent_bindings b
       JOIN agents a ON a.id = b.agent_id
      WHERE EXISTS (SELECT 1 FROM subnets s WHERE s.network_id = b.network_id AND s.enable_dhcp = ?)
        AND NOT EXISTS (SELECT 1 FROM ports p WHERE p.network_id = b.network_id
          AND p.device_owner = ? AND p.host_id = a.host)`,
    [DHCP_OWNER, DEVICE_ID_LIKE, true, DHCP_OWNER],
  );
  const portsFixed: string[] = [];
  for (const { network_id } of stale) {
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
    if (!stale.some((s) => s.network_id === c.networkId)) await syncDhcpPorts(deps, c.networkId);
    await hintDhcpAgents(deps, c.networkId, c.lostHosts);
  }
  return { changes, portsFixed };
}

/** Runs the sweep every `intervalMs` (never two at once) until stopped. */
export function startDhcpSweeper(deps: DhcpDeps, intervalMs: number) {
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = runDhcpSweep(deps)
      .catch((e: Error) => deps.log.error({ err: e.message }, 'DHCP sweep failed'))
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
