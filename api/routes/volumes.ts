/**
 * Cinder v3 volumes: POST/GET /v3/{project}/volumes, GET …/volumes/detail, GET/PUT/DELETE
 * …/volumes/{id}; the create is volume-create.ts's, the delete's rules volume-delete.ts's.
 *
 * Invariants: a volume the caller may not see is a 404 on every route and absent from
 * lists; the collection's project is the token's (cinder-common.ts); create and update
 * answer the base view, show and detail the extended one (volume-views.ts).
 */
import type { FastifyInstance } from 'fastify';
import { boolish, parseTextUpdate } from '../../contracts/volume-api.ts';
import { updateText } from '../db/cinder-rows.ts';
import { attachedOf, listVolumes } from '../db/volumes.ts';
import type { AppDeps } from '../deps.ts';
import { hintVolume } from '../hints.ts';
import { type ById, type InProject, pathProject, volumeNotFound } from './cinder-common.ts';
import { listQuery, nextLinks, pageOf } from './cinder-list.ts';
import { createVolume } from './volume-create.ts';
import { DELETABLE, loadVolume, startDelete } from './volume-delete.ts';
import { volumeBrief, volumeView } from './volume-views.ts';

type Listing = InProject;

const FILTERS = ['name', 'status', 'availability_zone', 'bootable', 'user_id'] as const;
const SORTABLE = ['id', 'name', 'status', 'size', 'availability_zone', 'created_at', 'updated_at'];

async function show(deps: AppDeps, req: ById, project: string, extended: boolean) {
  const v = await loadVolume(deps, req, req.params.id);
  const attachments = (await attachedOf(deps.db, [v.id])).get(v.id) ?? [];
  return { volume: volumeView(req, v, { project, extended, attachments }) };
}

async function list(deps: AppDeps, req: Listing, detail: boolean) {
  const project = pathProject(req);
  const lq = listQuery(req, project, FILTERS, SORTABLE);
  const rows = await listVolumes(deps.db, lq.project, lq.filters);
  const { items, next } = pageOf(rows, lq, volumeNotFound);
  const attached = detail
    ? await attachedOf(
        deps.db,
        items.map((v) => v.id),
      )
    : new Map();
  const volumes = items.map((v) =>
    detail
      ? volumeView(req, v, { project, extended: true, attachments: attached.get(v.id) ?? [] })
      : volumeBrief(req, project, v),
  );
  const path = `/v3/${project}/volumes${detail ? '/detail' : ''}`;
  const links = nextLinks(req, path, next);
  return { volumes, ...(links ? { volumes_links: links } : {}) };
}

async function remove(deps: AppDeps, req: ById) {
  const v = await loadVolume(deps, req, req.params.id);
  // cascade: snapshots are not deleted with their volume here; refused like without it.
  boolish(req.query.cascade, 'cascade');
  const rev = await startDelete(deps, v, DELETABLE);
  deps.log.info({ volumeId: v.id, revision: rev ?? null }, 'volume delete started');
  if (rev !== undefined && v.host) await hintVolume(deps, v.host, v.id, rev);
}

export function volumeRoutes(scope: FastifyInstance, deps: AppDeps) {
  const base = '/v3/:project_id/volumes';
  scope.post(base, async (req: InProject, reply) => {
    const project = pathProject(req);
    const id = await createVolume(deps, req, project);
    const v = await loadVolume(deps, req, id);
    return reply.status(202).send({ volume: volumeView(req, v, { project, extended: false }) });
  });
  scope.get(base, (req: Listing) => list(deps, req, false));
  scope.get(`${base}/detail`, (req: Listing) => list(deps, req, true));
  scope.get(`${base}/:id`, (req: ById) => show(deps, req, pathProject(req), true));
  scope.put(`${base}/:id`, async (req: ById) => {
    const project = pathProject(req);
    const v = await loadVolume(deps, req, req.params.id);
    const update = parseTextUpdate(req.body, 'volume');
    if (!(await updateText(deps.db, 'volumes', v.id, update, deps.clock.now())))
      throw volumeNotFound(v.id);
    return {
      volume: volumeView(req, await loadVolume(deps, req, v.id), { project, extended: false }),
    };
  });
  scope.delete(`${base}/:id`, async (req: ById, reply) => {
    pathProject(req);
    await remove(deps, req);
    return reply.status(202).send();
  });
}
