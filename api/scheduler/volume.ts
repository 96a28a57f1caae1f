/**
 * Volume scheduling: an alive, admin-up volume agent whose backend matches the volume
 * type and whose reported free capacity, less what was scheduled to it since, holds the
 * volume.
 *
 * Invariants:
 * - a volume no agent can take is not placed anywhere (host NULL); the caller puts it in
 *   error with the reason, and nothing is asked of any host;
 * - a candidate's free room is its last reported free_capacity_gb less the sizes of the
 *   volumes placed on it that its report cannot have counted yet: created after that
 *   heartbeat, or still `creating`; of the agents that hold the volume the one with the
 *   most room wins, ties by host name (`planVolumePlacement` is pure);
 * - a requested availability zone must be the agent's (an agent in no zone is in `nova`);
 * - the read locks the volume agents' rows (PostgreSQL; SQLite has one writer), so when
 *   the caller runs it in the transaction that inserts the volume row, concurrent creates
 *   on any number of replicas never both count the same free room.
 */
import { agentTypeByKind } from '../../contracts/agents.ts';
import type { VolumeBackend } from '../../contracts/volume.ts';
import { DEFAULT_AZ, isAlive } from '../db/agents.ts';
import type { Queryable } from '../db/index.ts';
import { bool } from '../db/neutron.ts';
import { type Clock, systemClock } from '../liveness.ts';

export type VolumePlacement = { host: string } | { error: string };

const VOLUME_AGENT = agentTypeByKind('volume').agentType;
/** [DEFAULT] agent_down_time's default, when the caller gives none. */
const DEFAULT_AGENT_DOWN_TIME = 30;

export interface VolumeWant {
  sizeGb: number;
  backend: VolumeBackend;
  availabilityZone?: string;
}

export interface VolumeCandidate {
  host: string;
  alive: boolean;
  adminUp: boolean;
  zone: string;
  /** configurations.volume_backend_name (undefined: none reported). */
  backend: string | undefined;
  /** configurations.free_capacity_gb (undefined: none reported). */
  freeGb: number | undefined;
  /** GiB placed on it that its last report cannot have counted. */
  pendingGb: number;
}

/** Why `c` cannot take `want`, or undefined when it can. */
function refusal(c: VolumeCandidate, want: VolumeWant): string | undefined {
  if (!c.alive) return `${c.host}: volume agent is not alive`;
  if (!c.adminUp) return `${c.host}: volume agent is administratively down`;
  if (c.backend !== want.backend) return `${c.host}: backend ${c.backend ?? 'unknown'}`;
  if (want.availabilityZone !== undefined && c.zone !== want.availabilityZone)
    return `${c.host}: availability zone ${c.zone}`;
  if (c.freeGb === undefined) return `${c.host}: no free capacity reported`;
  const room = c.freeGb - c.pendingGb;
  return room < want.sizeGb
    ? `${c.host}: ${Math.max(0, room)} GiB free < ${want.sizeGb}`
    : undefined;
}

/** The host for `want`: the most free room among those that hold it, ties by host name. */
export function planVolumePlacement(
  candidates: readonly VolumeCandidate[],
  want: VolumeWant,
): VolumePlacement {
  const reasons: string[] = [];
  let best: { host: string; room: number } | undefined;
  for (const c of [...candidates].sort((a, b) =>
    a.host < b.host ? -1 : a.host > b.host ? 1 : 0,
  )) {
    const why = refusal(c, want);
    if (why) {
      reasons.push(why);
      continue;
    }
    const room = (c.freeGb as number) - c.pendingGb;
    if (!best || room > best.room) best = { host: c.host, room };
  }
  if (best) return { host: best.host };
  const detail = reasons.length ? reasons.join('; ') : 'no volume agent is registered';
  return { error: `No valid backend was found. ${detail}` };
}

const gb = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;

/** GiB on `host` that a report stamped `heartbeat` cannot have counted. */
async function pendingOf(db: Queryable, host: string, heartbeat: string): Promise<number> {
  const rows = await db.query<{ size: number; status: string; created_at: string }>(
    'SELECT size, status, created_at FROM volumes WHERE host = ?',
    [host],
  );
  const since = Date.parse(heartbeat);
  const uncounted = (r: { status: string; created_at: string }) =>
    r.status === 'creating' || !(Date.parse(`${r.created_at.replace(/Z$/, '')}Z`) <= since);
  return rows.filter(uncounted).reduce((sum, r) => sum + Number(r.size), 0);
}

/** Every volume agent as a candidate, its rows locked (see the module invariants). */
export async function volumeCandidates(
  db: Queryable,
  now: Date,
  agentDownTime: number,
): Promise<VolumeCandidate[]> {
  const agents = await db.query<{
    host: string;
    admin_state_up: unknown;
    heartbeat_timestamp: string;
    configurations: string;
    availability_zone: string | null;
  }>(
    `UPDATE agents SET admin_state_up = admin_state_up WHERE agent_type = ?
      RETURNING host, admin_state_up, heartbeat_timestamp, configurations, availability_zone`,
    [VOLUME_AGENT],
  );
  const out: VolumeCandidate[] = [];
  for (const a of agents) {
    const conf = JSON.parse(a.configurations) as Record<string, unknown>;
    const backend = conf.volume_backend_name;
    out.push({
      host: a.host,
      alive: isAlive(a.heartbeat_timestamp, now, agentDownTime),
      adminUp: bool(a.admin_state_up),
      zone: a.availability_zone || DEFAULT_AZ,
      backend: typeof backend === 'string' ? backend : undefined,
      freeGb: gb(conf.free_capacity_gb),
      pendingGb: await pendingOf(db, a.host, a.heartbeat_timestamp),
    });
  }
  return out;
}

/**
 * Where a new volume goes (run it in the transaction that inserts the volume row).
 * `liveness`: the API's clock and [DEFAULT] agent_down_time; the system clock and the
 * option's default when absent.
 */
export async function scheduleVolume(
  db: Queryable,
  want: VolumeWant,
  liveness: { clock?: Clock; agentDownTime?: number } = {},
): Promise<VolumePlacement> {
  const now = (liveness.clock ?? systemClock).now();
  const candidates = await volumeCandidates(
    db,
    now,
    liveness.agentDownTime ?? DEFAULT_AGENT_DOWN_TIME,
  );
  return planVolumePlacement(candidates, want);
}
