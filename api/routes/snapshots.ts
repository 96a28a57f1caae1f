/**
 * Cinder v3 snapshots: POST/GET /v3/{project}/snapshots, GET …/snapshots/detail,
 * GET/PUT/DELETE …/snapshots/{id}, and the admin's os-reset_status action.
 *
 * Invariants: a snapshot is made of a volume the caller may see, `available` (or `in-use`
 * with force, as Cinder allows), on the volume's host; its quota (snapshots, and its
 * size in gigabytes) is checked under the volume project's lock, the one a volume delete
 * takes, in the transaction that inserts it, so a volume is never deleted from under a
 * new snapshot (its size is the volume's as read under that lock); a snapshot a volume
 * is being made of (`creating`) is not deleted; create and delete bump the snapshot's
 * revision and hint the volume's host; a snapshot the caller may not see is a 404
 * everywhere.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import {
  parseSnapshotCreate,
  parseSnapshotReset,
  parseTextUpdate,
} from '../../contracts/volume-api.ts';
import { updateText } from '../db/cinder-rows.ts';
import { lockQuota } from '../db/quotas.ts';
import {
  getSnapshot,
  insertSnapshot,
  listSnapshots,
  moveSnapshot,
  resetSnapshotStatus,
  type SnapshotRecord,
} from '../db/snapshots.ts';
import { admitCinder } from '../db/volume-quotas.ts';
import { creatingFrom } from '../db/volume-sources.ts';
import { getVolume } from '../db/volumes.ts';
import type { AppDeps } from '../deps.ts';
import { hintSnapshot } from '../hints.ts';
import {
  type ById,
  callerUser,
  type InProject,
  pathProject,
  requireAdminCinder,
  snapshotNotFound,
  visible,
} from './cinder-common.ts';
import { listQuery, nextLinks, pageOf } from './cinder-list.ts';
import { cinderQuotaDefaults } from './volume-create.ts';
import { busySource, loadVolume } from './volume-delete.ts';
import { snapshotView } from './volume-views.ts';

type Listing = InProject;
const FILTERS = ['name', 'status', 'volume_id'] as const;
const SORTABLE = ['id', 'name', 'status', 'size', 'volume_id', 'created_at', 'updated_at'];

async function loadSnapshot(deps: AppDeps, req: FastifyRequest, id: string) {
  const s = visible(req, await getSnapshot(deps.db, id));
  if (!s) throw snapshotNotFound(id);
  return s;
}

/** The host of a snapshot's volume (where the snapshot lives). */
const hostOf = async (deps: AppDeps, s: SnapshotRecord) =>
  (await getVolume(deps.db, s.volume_id))?.host ?? null;

async function create(deps: AppDeps, req: InProject, project: string) {
  const c = parseSnapshotCreate(req.body);
  const v = await loadVolume(deps, req, c.volume_id);
  const allowed = c.force ? ['available', 'in-use'] : ['available'];
  if (!allowed.includes(v.status) || !v.host)
    throw new ApiError(
      'BadRequest',
      `Invalid volume: Volume ${v.id} status must be ${allowed.join(' or ')}, but current status is: ${v.status}.`,
    );
  const id = randomUUID();
  await deps.db.transaction(async (tx) => {
    await lockQuota(tx, deps.db.engine, v.project_id, 'gigabytes');
    const still = await getVolume(tx, v.id);
    if (!still || !allowed.includes(still.status))
      throw new ApiError('BadRequest', `Invalid volume: Volume ${v.id} changed status; try again.`);
    const ask = { kind: 'snapshots', count: 1, gigabytes: still.size } as const;
    await admitCinder(tx, deps.db.engine, project, cinderQuotaDefaults(deps), ask);
    const row = {
      id,
      project_id: project,
      user_id: callerUser(req),
      volume_id: v.id,
      size: still.size,
    };
    await insertSnapshot(
      tx,
      { ...row, name: c.name, description: c.description, metadata: c.metadata },
      deps.clock.now(),
    );
  });
  deps.log.info({ snapshotId: id, volumeId: v.id, host: v.host }, 'snapshot created');
  await hintSnapshot(deps, v.host, id, 1);
  return id;
}

async function list(deps: AppDeps, req: Listing, detail: boolean) {
  const project = pathProject(req);
  const lq = listQuery(req, project, FILTERS, SORTABLE);
  const rows = await listSnapshots(deps.db, lq.project, lq.filters);
  const { items, next } = pageOf(rows, lq, snapshotNotFound);
  const links = nextLinks(req, `/v3/${project}/snapshots${detail ? '/detail' : ''}`, next);
  return {
    snapshots: items.map((s) => snapshotView(s, detail)),
    ...(links ? { snapshots_links: links } : {}),
  };
}

/**
 * Moves the snapshot to `deleting` (refused while a volume is being made of it: the
 * move locks the row a copy's create locks, so one of the two sees the other); its
 * new revision.
 */
async function startSnapshotDelete(deps: AppDeps, s: SnapshotRecord): Promise<number> {
  const from = ['available', 'error', 'error_deleting'] as const;
  return deps.db.transaction(async (tx) => {
    const copy = await creatingFrom(tx, 'snapshot', s.id);
    if (copy) throw busySource('Snapshot', s.id, copy);
    const rev = await moveSnapshot(tx, s.id, from, 'deleting', true, deps.clock.now());
    if (rev === undefined)
      throw new ApiError(
        'BadRequest',
        `Invalid snapshot: Snapshot ${s.id} status must be available or error, but current status is: ${s.status}.`,
      );
    return rev;
  });
}

async function remove(deps: AppDeps, req: ById) {
  const s = await loadSnapshot(deps, req, req.params.id);
  const rev = await startSnapshotDelete(deps, s);
  const host = await hostOf(deps, s);
  deps.log.info({ snapshotId: s.id, revision: rev, host }, 'snapshot delete started');
  if (host) await hintSnapshot(deps, host, s.id, rev);
}

async function reset(deps: AppDeps, req: ById) {
  requireAdminCinder(req, 'volume_extension:snapshot_admin_actions:reset_status');
  const status = parseSnapshotReset(req.body);
  const s = await loadSnapshot(deps, req, req.params.id);
  if (!(await resetSnapshotStatus(deps.db, s.id, status, deps.clock.now())))
    throw snapshotNotFound(s.id);
  deps.log.info({ snapshotId: s.id, from: s.status, to: status }, 'snapshot status reset');
}

export function snapshotRoutes(scope: FastifyInstance, deps: AppDeps) {
  const base = '/v3/:project_id/snapshots';
  scope.post(base, async (req: InProject, reply) => {
    const id = await create(deps, req, pathProject(req));
    return reply
      .status(202)
      .send({ snapshot: snapshotView(await loadSnapshot(deps, req, id), false) });
  });
  scope.get(base, (req: Listing) => list(deps, req, false));
  scope.get(`${base}/detail`, (req: Listing) => list(deps, req, true));
  scope.get(`${base}/:id`, async (req: ById) => {
    pathProject(req);
    return { snapshot: snapshotView(await loadSnapshot(deps, req, req.params.id), true) };
  });
  scope.put(`${base}/:id`, async (req: ById) => {
    pathProject(req);
    const s = await loadSnapshot(deps, req, req.params.id);
    const update = parseTextUpdate(req.body, 'snapshot');
    if (!(await updateText(deps.db, 'volume_snapshots', s.id, update, deps.clock.now())))
      throw snapshotNotFound(s.id);
    return { snapshot: snapshotView(await loadSnapshot(deps, req, s.id), false) };
  });
  scope.delete(`${base}/:id`, async (req: ById, reply) => {
    pathProject(req);
    await remove(deps, req);
    return reply.status(202).send();
  });
  scope.post(`${base}/:id/action`, async (req: ById, reply) => {
    pathProject(req);
    await reset(deps, req);
    return reply.status(202).send();
  });
}
