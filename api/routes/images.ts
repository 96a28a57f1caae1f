/**
 * Glance v2 images: POST/GET /v2/images, GET/PATCH/DELETE /v2/images/{id}, the image
 * data (image-data.ts) at PUT/GET /v2/images/{id}/file, the (de|re)activate actions
 * (image-actions.ts), members (image-members.ts) and the schema documents
 * (image-schemas.ts), served under /v2 and at the endpoint root (where the openstack
 * client sends them with `--os-endpoint`).
 *
 * Invariants: a request is checked whole (image-query.ts) before anything is written; an
 * image the caller cannot see is a 404 on every route and only its owner or an admin
 * changes it (image-access.ts); an id is created once (409 after that); a PATCH writes
 * only over the state it was computed from (db/images.ts), recomputed on a race, so two
 * patches never lose one's change; a protected image is never deleted; deleting an image
 * removes its data file. Errors leave in Glance's shape (http.ts).
 */
import { rm } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { PATCH_DRAFTS, type PatchDraft } from '../../contracts/images.ts';
import { membershipsOf } from '../db/image-members.ts';
import {
  deleteImage,
  getImage,
  type ImageRecord,
  imageNotFound,
  imageView,
  insertImage,
  listImages,
  updateImageFields,
} from '../db/images.ts';
import type { AppDeps, ImageSettings } from '../deps.ts';
import { errorHandler, parseJsonBody } from '../http.ts';
import { type Query, values } from '../query.ts';
import { requireOwner, viewerProject, visibleImage } from './image-access.ts';
import { imageActionRoutes } from './image-actions.ts';
import { dataPath, imageDataRoutes } from './image-data.ts';
import { listQuery, queryString } from './image-list.ts';
import { imageMemberRoutes } from './image-members.ts';
import { applyPatch, createFields } from './image-query.ts';
import { imageSchemaRoutes } from './image-schemas.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;
type Load = (req: FastifyRequest, id: string) => Promise<ImageRecord>;

/** Attempts at a PATCH whose image changed between its read and its write. */
const PATCH_ATTEMPTS = 5;

const PATCH_TYPES = Object.keys(PATCH_DRAFTS).sort();

/** The JSON-patch media types parse as the API's JSON bodies do (http.ts). */
function jsonPatchParser(scope: FastifyInstance) {
  scope.addContentTypeParser(PATCH_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
}

async function list(deps: AppDeps, req: FastifyRequest<{ Querystring: Query }>) {
  const images = await listImages(deps.db, {
    name: values(req.query.name),
    status: values(req.query.status),
  });
  const project = viewerProject(req);
  const memberships = project === null ? new Map() : await membershipsOf(deps.db, project);
  const { list, next } = listQuery(req, images, memberships);
  const query = queryString(req.query);
  return {
    images: list.map(imageView),
    first: query ? `/v2/images?${query}` : '/v2/images',
    schema: '/v2/schemas/images',
    ...(next ? { next } : {}),
  };
}

async function create(deps: AppDeps, req: FastifyRequest) {
  const fields = createFields(req);
  if (fields.id && (await getImage(deps.db, fields.id)))
    throw new ApiError('Conflict', `Image with identifier ${fields.id} already exists!`);
  const id = await insertImage(deps.db, fields, deps.clock.now());
  deps.log.info({ imageId: id, name: fields.name }, 'image created');
  return id;
}

/** The patch dialect the Content-Type names; Glance's 415 (with Accept-Patch) otherwise. */
function patchDraft(req: FastifyRequest, reply: FastifyReply): PatchDraft {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  if (Object.hasOwn(PATCH_DRAFTS, type)) return PATCH_DRAFTS[type as keyof typeof PATCH_DRAFTS];
  void reply.header('accept-patch', PATCH_TYPES.join(', '));
  throw new ApiError(
    'UnsupportedMediaType',
    `Image PATCH expects Content-Type one of: ${PATCH_TYPES.join(', ')}`,
  );
}

/**
 * The patch applied over the image as read; read and applied again when it moved. Each
 * operation is policed as Glance does (image-query.ts), so an empty patch writes nothing.
 */
async function patch(deps: AppDeps, req: ById, draft: PatchDraft, load: Load) {
  for (let attempt = 0; attempt < PATCH_ATTEMPTS; attempt++) {
    const image = await load(req, req.params.id);
    const { fields, queuedOnly, changed } = applyPatch(req, image, req.body, draft);
    if (!changed) return imageView(image);
    if (await updateImageFields(deps.db, image, fields, queuedOnly, deps.clock.now()))
      return imageView(await load(req, image.id));
  }
  throw new ApiError('Conflict', `Image ${req.params.id} is being changed by another request.`);
}

async function remove(deps: AppDeps, settings: ImageSettings, req: ById, load: Load) {
  const image = await load(req, req.params.id);
  requireOwner(req, image, 'delete_image');
  const refused = () =>
    new ApiError('PolicyNotAuthorized', `Image ${image.id} is protected and cannot be deleted.`);
  if (image.protected) throw refused();
  if (!(await deleteImage(deps.db, image.id))) {
    if ((await getImage(deps.db, image.id))?.protected) throw refused();
    throw imageNotFound(image.id);
  }
  await rm(dataPath(settings, image.id), { force: true });
  deps.log.info({ imageId: image.id }, 'image deleted');
}

function imageScope(scope: FastifyInstance, deps: AppDeps, settings: ImageSettings) {
  const load: Load = async (req, id) => {
    const image = await visibleImage(deps.db, req, id);
    if (!image) throw imageNotFound(id);
    return image;
  };
  scope.setErrorHandler(errorHandler(deps.log, 'glance'));
  jsonPatchParser(scope);
  const reads = { config: { allowService: true } };
  scope.get('/images', reads, (req: FastifyRequest<{ Querystring: Query }>) => list(deps, req));
  scope.get('/images/:id', reads, async (req: ById) => imageView(await load(req, req.params.id)));
  scope.post('/images', async (req, reply) => {
    const id = await create(deps, req);
    const image = await load(req, id);
    return reply.status(201).header('location', `/v2/images/${id}`).send(imageView(image));
  });
  scope.patch('/images/:id', async (req: ById, reply) =>
    patch(deps, req, patchDraft(req, reply), load),
  );
  scope.delete('/images/:id', async (req: ById, reply) => {
    await remove(deps, settings, req, load);
    return reply.status(204).send();
  });
  imageDataRoutes(scope, deps, settings, load);
  imageActionRoutes(scope, deps, load);
  imageMemberRoutes(scope, deps, load);
  imageSchemaRoutes(scope);
}

export function imageRoutes(app: FastifyInstance, deps: AppDeps, settings: ImageSettings) {
  for (const prefix of ['/v2', ''])
    void app.register(async (scope) => imageScope(scope, deps, settings), { prefix });
}
