/**
 * Compute scheduling: which compute agent's host a new instance goes to.
 *
 * Invariants:
 * - a host is a candidate only while its compute agent is alive and admin-up, and only if
 *   the instance fits its free vcpus, RAM and disk: capacity from what the agent reports
 *   (× allocation ratios, RAM minus reserved_host_memory_mb), usage from the API's own
 *   live instances on that host, so boots still in flight count;
 * - of the hosts that fit, the one with the most free RAM wins (Nova's default RAM
 *   weigher), ties by host name; `planPlacement` is pure;
 * - the pick and the instance row's insert run in one transaction that starts by bumping
 *   the instance_sequence row: PostgreSQL holds that row lock until commit and SQLite has
 *   one writer, so concurrent boots on any number of API replicas never overcommit a host;
 * - an instance is handed to its host (task scheduling → spawning, then the hint) only
 *   once its ports exist, bound to that host, so the agent never sees it without its NICs;
 *   ports go through the ports API's db functions and hints, so DHCP agents follow.
 */
import { agentTypeByKind } from '../../contracts/agents.ts';
import { ApiError } from '../../contracts/errors.ts';
import { agentsOfType, heartbeatOf, isAlive } from '../db/agents.ts';
import type { Db, Queryable } from '../db/index.ts';
import { type QuotaGuard, resourceTime } from '../db/neutron.ts';
import { createPort, updatePort } from '../db/ports.ts';
import { failBuild, handOver } from '../db/server-tasks.ts';
import { claimPort, type Fault, hostUsage, nextInstanceSeq } from '../db/servers.ts';
import { hintDhcpAgents, hintInstance, hintPort } from '../hints.ts';
import { type ComputeDeps, releasePorts } from '../instance-ports.ts';
import type { Clock } from '../liveness.ts';
import { sgMembersChanged } from '../sg-hints.ts';

export const COMPUTE_AGENT = agentTypeByKind('compute');

export interface Capacity {
  vcpus: number;
  memoryMb: number;
  localGb: number;
  cpuRatio: number;
  ramRatio: number;
  diskRatio: number;
  reservedMb: number;
}

/** vcpus, RAM (MiB) and disk (GiB): an instance's demand, a host's usage or free room. */
export interface Resources {
  vcpus: number;
  ramMb: number;
  diskGb: number;
}

export interface ComputeCandidate {
  host: string;
  alive: boolean;
  adminUp: boolean;
  /** undefined: the agent reports no usable resources. */
  capacity: Capacity | undefined;
  used: Resources;
}

export type Placement = { host: string } | { host: null; reasons: string[] };

export const NO_VALID_HOST = 'No valid host was found. There are not enough hosts available.';
export const COMPUTE_OWNER = 'compute:nova';

/** A requested NIC: a new port on a network (maybe with a fixed IP), or the user's port. */
export type Nic =
  | { kind: 'network'; networkId: string; fixedIp?: string }
  | { kind: 'port'; portId: string };

const count = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
const ratio = (v: unknown): number => {
  const n = count(v);
  return n !== undefined && n > 0 ? n : 1.0;
};

/** A compute agent's `configurations` → its capacity; missing ratios are 1.0, reserve 0. */
export function capacityOf(conf: Record<string, unknown>): Capacity | undefined {
  const vcpus = count(conf.vcpus);
  const memoryMb = count(conf.memory_mb);
  const localGb = count(conf.local_gb);
  if (vcpus === undefined || memoryMb === undefined || localGb === undefined) return undefined;
  return {
    vcpus,
    memoryMb,
    localGb,
    cpuRatio: ratio(conf.cpu_allocation_ratio),
    ramRatio: ratio(conf.ram_allocation_ratio),
    diskRatio: ratio(conf.disk_allocation_ratio),
    reservedMb: count(conf.reserved_host_memory_mb) ?? 0,
  };
}

export function freeOf(c: Capacity, used: Resources): Resources {
  return {
    vcpus: c.vcpus * c.cpuRatio - used.vcpus,
    ramMb: (c.memoryMb - c.reservedMb) * c.ramRatio - used.ramMb,
    diskGb: c.localGb * c.diskRatio - used.diskGb,
  };
}

/** Why `c` cannot take `demand`, or undefined when it can. */
function refusal(c: ComputeCandidate, demand: Resources): string | undefined {
  if (!c.alive) return `${c.host}: compute agent is not alive`;
  if (!c.adminUp) return `${c.host}: compute agent is administratively down`;
  if (!c.capacity) return `${c.host}: compute agent reports no resources`;
  const free = freeOf(c.capacity, c.used);
  const short = (['vcpus', 'ramMb', 'diskGb'] as const)
    .filter((k) => free[k] < demand[k])
    .map((k) => `${k} ${Math.max(0, free[k])} free < ${demand[k]}`);
  return short.length ? `${c.host}: ${short.join(', ')}` : undefined;
}

/** The host for `demand`: most free RAM among those that fit, ties by host name. */
export function planPlacement(
  candidates: readonly ComputeCandidate[],
  demand: Resources,
): Placement {
  const reasons: string[] = [];
  let best: { host: string; ram: number } | undefined;
  for (const c of [...candidates].sort((a, b) =>
    a.host < b.host ? -1 : a.host > b.host ? 1 : 0,
  )) {
    const why = refusal(c, demand);
    if (why) {
      reasons.push(why);
      continue;
    }
    const ram = freeOf(c.capacity as Capacity, c.used).ramMb;
    if (!best || ram > best.ram) best = { host: c.host, ram };
  }
  if (best) return { host: best.host };
  return { host: null, reasons: reasons.length ? reasons : ['no compute agent is registered'] };
}

/** Every compute agent with its usage, read inside the scheduling transaction. */
export async function computeCandidates(
  tx: Queryable,
  now: Date,
  agentDownTime: number,
): Promise<ComputeCandidate[]> {
  const agents = await agentsOfType(tx, COMPUTE_AGENT.agentType);
  const used = await hostUsage(tx);
  return agents.map((a) => ({
    host: a.host,
    alive: isAlive(a.heartbeat, now, agentDownTime),
    adminUp: a.adminStateUp,
    capacity: capacityOf(a.configurations),
    used: used.get(a.host) ?? { vcpus: 0, ramMb: 0, diskGb: 0 },
  }));
}

/**
 * Picks a host for `demand` and runs `insert` with the pick and a new instance seq, all
 * in one transaction serialised by the instance_sequence row (see the module comment).
 */
export async function placeInstance(
  db: Db,
  opts: { now: Date; agentDownTime: number },
  demand: Resources,
  insert: (tx: Queryable, placement: Placement, seq: number) => Promise<void>,
): Promise<Placement & { seq: number }> {
  return db.transaction(async (tx) => {
    const seq = await nextInstanceSeq(tx);
    const placement = planPlacement(
      await computeCandidates(tx, opts.now, opts.agentDownTime),
      demand,
    );
    await insert(tx, placement, seq);
    return { ...placement, seq };
  });
}

/** Whether the compute agent of `host` is alive (Nova's "is the service up"). */
export async function computeAgentAlive(
  db: Queryable,
  host: string,
  now: Date,
  agentDownTime: number,
): Promise<boolean> {
  const heartbeat = await heartbeatOf(db, COMPUTE_AGENT.agentType, host);
  return heartbeat !== undefined && isAlive(heartbeat, now, agentDownTime);
}

/** What the hand-over needs: the compute plumbing with a clock. */
export type HandOverDeps = ComputeDeps & { clock: Clock };

export const buildFault = (message: string, details: string, now: Date): Fault => ({
  code: 500,
  message,
  details,
  created: resourceTime(now),
});

export const keptOf = (nics: Nic[]) => nics.flatMap((n) => (n.kind === 'port' ? [n.portId] : []));

/**
 * Whose ports the hand-over makes: the server's project (Nova creates a server's ports in
 * its project, whatever the network's owner), checked against that project's port quota.
 */
export interface PortOwner {
  projectId: string;
  quota?: QuotaGuard;
  /** The new ports' security groups; undefined: Neutron's default for the project. */
  securityGroups?: string[];
}

/** Creates a new port for `nic`, or claims the user's; bound to `host` either way. */
async function attachPort(
  deps: HandOverDeps,
  id: string,
  host: string,
  nic: Nic,
  owner?: PortOwner,
) {
  const binding = { device_id: id, device_owner: COMPUTE_OWNER, 'binding:host_id': host };
  if (nic.kind === 'port') {
    if (!(await claimPort(deps.db, nic.portId, id)))
      throw new ApiError('Conflict', `Port ${nic.portId} is still in use.`);
    const port = await updatePort(deps.db, nic.portId, binding, deps.clock.now());
    await hintPort(deps, port);
    return port.id;
  }
  const fixed = nic.fixedIp === undefined ? {} : { fixed_ips: [{ ip_address: nic.fixedIp }] };
  const project = owner ? { project_id: owner.projectId } : {};
  const groups = owner?.securityGroups ? { security_groups: owner.securityGroups } : {};
  const port = await createPort(
    deps.db,
    { network_id: nic.networkId, ...project, ...binding, ...fixed, ...groups },
    deps.clock.now(),
    owner?.quota,
  );
  deps.log.info({ instanceId: id, portId: port.id, fixedIps: port.fixed_ips }, 'port created');
  await hintDhcpAgents(deps, port.network_id);
  if (port.security_groups.length) void sgMembersChanged(deps, port.security_groups);
  return port.id;
}

/**
 * The instance's ports in NIC order; on a failure, releases what was made (every port
 * touched carries device_id = the instance) and rethrows.
 */
async function attachPorts(
  deps: HandOverDeps,
  id: string,
  host: string,
  nics: Nic[],
  owner?: PortOwner,
) {
  const ids: string[] = [];
  try {
    for (const nic of nics) ids.push(await attachPort(deps, id, host, nic, owner));
    return ids;
  } catch (e) {
    await releasePorts(deps, { id, keptPorts: keptOf(nics) });
    throw e;
  }
}

/** Ports, then scheduling → spawning and the hint; a port failure is the build's ERROR. */
export async function handOverInstance(
  deps: HandOverDeps,
  id: string,
  host: string,
  nics: Nic[],
  owner?: PortOwner,
) {
  let ports: string[];
  try {
    ports = await attachPorts(deps, id, host, nics, owner);
  } catch (e) {
    const err = (e as Error).message;
    deps.log.warn({ instanceId: id, host, err }, 'ports not attached');
    const message = `Build of instance ${id} aborted: Failed to allocate the network(s), not rescheduling.`;
    const now = deps.clock.now();
    await failBuild(deps.db, id, buildFault(message, err, now), now);
    return;
  }
  if (await handOver(deps.db, id, ports, deps.clock.now())) {
    deps.log.info({ instanceId: id, host }, 'instance handed to its host');
    await hintInstance(deps, host, id, 1);
    return;
  }
  // Deleted while its ports were being made: they go with it.
  await releasePorts(deps, { id, keptPorts: keptOf(nics) });
}
