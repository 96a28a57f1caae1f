/**
 * POST /v3/{project}/volumes: a new volume, empty on a scheduled host, or made from a
 * snapshot's or another volume's data on that source's host (no scheduling, as Cinder's
 * LVM driver clones in place).
 *
 * Invariants: the body, the type, the zone and the source are checked before anything is
 * written; the quota check, the placement and the insert run in one transaction (the
 * scheduler counts the rows placed so far, db/volume-quotas.ts the project's usage), so
 * racing creates neither overrun a quota nor double-count a host's free room; a copy
 * locks its source row and finds it still usable in that transaction, and the source's
 * delete is refused while a copy of it is `creating` (volume-delete.ts, snapshots.ts),
 * so the data a copy reads is never removed under it; a volume no
 * host can take is stored in `error` with its reason and a user message, host NULL, and
 * no host is hinted; a placed one is `creating` at revision 1 and its host is hinted.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { agentTypeByKind } from '../../contracts/agents.ts';
import { ApiError } from '../../contracts/errors.ts';
import type { VolumeBackend } from '../../contracts/volume.ts';
import { parseVolumeCreate, type VolumeCreate } from '../../contracts/volume-api.ts';
import { DEFAULT_AZ } from '../db/agents.ts';
import type { Queryable } from '../db/index.ts';
import { getSnapshot } from '../db/snapshots.ts';
import { recordMessage } from '../db/volume-messages.ts';
import { admitCinder, CINDER_QUOTA_DEFAULTS } from '../db/volume-quotas.ts';
import { lockSource } from '../db/volume-sources.ts';
import { findVolumeType, getVolume, insertVolume, type VolumeType } from '../db/volumes.ts';
import type { AppDeps } from '../deps.ts';
import { hintVolume } from '../hints.ts';
import { scheduleVolume, type VolumePlacement } from '../scheduler/volume.ts';
import {
  callerUser,
  type InProject,
  snapshotNotFound,
  visible,
  volumeNotFound,
} from './cinder-common.ts';

/** Where a copied volume must go and what it inherits. */
interface Source {
  kind: 'snapshot' | 'volume';
  id: string;
  host: string;
  backend: VolumeBackend;
  typeId: string;
  size: number;
  zone: string;
}

export const cinderQuotaDefaults = (deps: AppDeps) => ({
  ...CINDER_QUOTA_DEFAULTS,
  ...(deps.settings.quotas?.cinder ?? {}),
});

const invalid = (what: string) => new ApiError('BadRequest', what);

/** The snapshot a copy is made of: the caller's, `available`, on its volume's host. */
async function snapshotSource(deps: AppDeps, req: FastifyRequest, id: string): Promise<Source> {
  const snap = visible(req, await getSnapshot(deps.db, id));
  if (!snap) throw snapshotNotFound(id);
  if (snap.status !== 'available')
    throw invalid(
      `Invalid snapshot: Originating snapshot status must be one of 'available' values`,
    );
  const vol = await getVolume(deps.db, snap.volume_id);
  if (!vol?.host)
    throw invalid(`Invalid snapshot: the volume of snapshot ${snap.id} is on no host`);
  return {
    kind: 'snapshot',
    id: snap.id,
    host: vol.host,
    backend: vol.backend,
    typeId: vol.volume_type_id,
    size: snap.size,
    zone: vol.availability_zone,
  };
}

/** The source of the copy asked for (checked again under lock in the insert), if any. */
async function sourceOf(
  deps: AppDeps,
  req: FastifyRequest,
  c: VolumeCreate,
): Promise<Source | undefined> {
  if (c.snapshot_id) return snapshotSource(deps, req, c.snapshot_id);
  if (!c.source_volid) return undefined;
  const src = visible(req, await getVolume(deps.db, c.source_volid));
  if (!src) throw volumeNotFound(c.source_volid);
  if (!['available', 'in-use'].includes(src.status) || !src.host)
    throw invalid(
      `Invalid volume: Unable to create a volume from an originating source volume when its status is not 'available' or 'in-use'. Status of ${src.id} is ${src.status}.`,
    );
  return {
    kind: 'volume',
    id: src.id,
    host: src.host,
    backend: src.backend,
    typeId: src.volume_type_id,
    size: src.size,
    zone: src.availability_zone,
  };
}

/** The type asked for (a name or an id), the source's, else the configured default. */
async function typeOf(
  deps: AppDeps,
  c: VolumeCreate,
  source: Source | undefined,
): Promise<VolumeType> {
  const asked = c.volume_type ?? source?.typeId ?? deps.settings.defaultVolumeType ?? 'lvm';
  const type = await findVolumeType(deps.db, asked);
  if (!type)
    throw new ApiError(
      'BadRequest',
      `Invalid input for field/attribute volume.volume_type. Value: Volume type with name ${asked} could not be found.`,
    );
  if (source && type.backend !== source.backend)
    throw invalid(
      `Invalid volume_type: the ${source.kind} ${source.id} is on backend ${source.backend}; type ${type.name} is ${type.backend}.`,
    );
  return type;
}

/** The zones volume agents are in (an agent in none is in `nova`). */
async function volumeZones(db: Queryable): Promise<Map<string, string>> {
  const rows = await db.query<{ host: string; availability_zone: string | null }>(
    'SELECT host, availability_zone FROM agents WHERE agent_type = ?',
    [agentTypeByKind('volume').agentType],
  );
  return new Map(rows.map((r) => [r.host, r.availability_zone || DEFAULT_AZ]));
}

async function zoneOf(deps: AppDeps, c: VolumeCreate, source: Source | undefined) {
  const zones = await volumeZones(deps.db);
  if (c.availability_zone !== undefined && ![...zones.values()].includes(c.availability_zone))
    throw invalid(`Invalid input received: Availability zone '${c.availability_zone}' is invalid.`);
  if (source && c.availability_zone !== undefined && c.availability_zone !== source.zone)
    throw invalid(
      `Invalid input received: the ${source.kind} ${source.id} is in zone '${source.zone}'.`,
    );
  return { asked: c.availability_zone, zones };
}

function sizeOf(c: VolumeCreate, source: Source | undefined): number {
  const size = c.size ?? source?.size ?? 0;
  if (source && size < source.size)
    throw invalid(
      `Invalid input received: Volume size '${size}'GB cannot be smaller than the ${source.kind} size ${source.size}GB. They must be >= original ${source.kind} size.`,
    );
  return size;
}

/** What a create decided before its transaction: the checked request. */
interface Plan {
  id: string;
  project: string;
  user: string;
  c: VolumeCreate;
  source: Source | undefined;
  type: VolumeType;
  zone: Awaited<ReturnType<typeof zoneOf>>;
  size: number;
}

/**
 * Locks the source row and checks it is still usable (a racing delete of it either
 * commits first, and the create is refused, or waits and then sees this volume).
 */
async function holdSource(tx: Queryable, s: Source): Promise<void> {
  const [held] =
    s.kind === 'snapshot'
      ? await tx.query(
          `UPDATE volume_snapshots SET revision_number = revision_number
            WHERE id = ? AND status = 'available' RETURNING id`,
          [s.id],
        )
      : await tx.query(
          `UPDATE volumes SET revision_number = revision_number
            WHERE id = ? AND status IN ('available', 'in-use') RETURNING id`,
          [s.id],
        );
  if (!held)
    throw invalid(`Invalid ${s.kind}: the source ${s.kind} ${s.id} changed status; try again.`);
}

/** The source's host, else the scheduler's choice (in the insert's transaction). */
async function placement(deps: AppDeps, tx: Queryable, p: Plan): Promise<VolumePlacement> {
  if (p.source) {
    await holdSource(tx, p.source);
    return { host: p.source.host };
  }
  const want = {
    sizeGb: p.size,
    backend: p.type.backend,
    ...(p.zone.asked ? { availabilityZone: p.zone.asked } : {}),
  };
  return scheduleVolume(tx, want, {
    clock: deps.clock,
    agentDownTime: deps.settings.agentDownTime,
  });
}

/** Quota, placement and the row (plus a user message when no host takes it), in `tx`. */
async function insertPlanned(deps: AppDeps, tx: Queryable, p: Plan, now: Date) {
  const ask = { kind: 'volumes', count: 1, gigabytes: p.size, volumeSize: p.size } as const;
  await admitCinder(tx, deps.db.engine, p.project, cinderQuotaDefaults(deps), ask);
  if (p.source && !(await lockSource(tx, p.source.kind, p.source.id)))
    throw invalid(`Invalid ${p.source.kind}: ${p.source.id} changed status; try again.`);
  const where = await placement(deps, tx, p);
  const host = 'host' in where ? where.host : null;
  const reason = 'error' in where ? where.error : null;
  const row = {
    id: p.id,
    project_id: p.project,
    user_id: p.user,
    name: p.c.name,
    description: p.c.description,
    size: p.size,
    status: host ? ('creating' as const) : ('error' as const),
    volume_type_id: p.type.id,
    availability_zone: (host && p.zone.zones.get(host)) || p.zone.asked || DEFAULT_AZ,
    host,
    snapshot_id: p.source?.kind === 'snapshot' ? p.source.id : null,
    source_volid: p.source?.kind === 'volume' ? p.source.id : null,
    bootable: false,
    metadata: p.c.metadata,
    status_reason: reason,
  };
  await insertVolume(tx, row, now);
  if (reason)
    await recordMessage(tx, { projectId: p.project, id: p.id, action: 'schedule', reason }, now);
  return { host, reason };
}

/** Creates the volume (checked whole first); its id. A placed volume's host is hinted. */
export async function createVolume(deps: AppDeps, req: InProject, project: string) {
  const c = parseVolumeCreate(req.body);
  const source = await sourceOf(deps, req, c);
  const type = await typeOf(deps, c, source);
  const zone = await zoneOf(deps, c, source);
  const plan: Plan = {
    id: randomUUID(),
    project,
    user: callerUser(req),
    c,
    source,
    type,
    zone,
    size: sizeOf(c, source),
  };
  const now = deps.clock.now();
  const placed = await deps.db.transaction((tx) => insertPlanned(deps, tx, plan, now));
  const { id, size } = plan;
  deps.log.info(
    { volumeId: id, host: placed.host, size, type: type.name, reason: placed.reason },
    'volume created',
  );
  if (placed.host) await hintVolume(deps, placed.host, id, 1);
  return id;
}
