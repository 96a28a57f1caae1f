/**
 * Glance v2 images: POST/GET /v2/images, GET/PATCH/DELETE /v2/images/{id}, the image
 * data (image-data.ts) at PUT/GET /v2/images/{id}/file, the (de|re)activate actions
 * (image-actions.ts), members (image-members.ts) and the schema documents
 * (image-schemas.ts), served under /v2 and at the endpoint root (where the openstack
 * client sends them with `--os-endpoint`).
 *
 * Invariants: a request is checked whole (image-query.ts) before anything is written; an
 * id is created once (409 after that); a protected image is never deleted; deleting an
 * image removes its data file. Errors leave in Glance's shape (http.ts).
 */
import { rm } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { PATCH_DRAFTS, type PatchDraft } from '../../contracts/images.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { UUID } from '../../contracts/schema.ts';
import { membershipsOf } from '../db/image-members.ts';
import {
  deleteImage,
  getImage,
  imageNotFound,
  imageView,
  insertImage,
  listImages,
  updateImageFields,
} from '../db/images.ts';
import type { AppDeps, ImageSettings } from '../deps.ts';
import { errorHandler, parseJsonBody } from '../http.ts';
import { type Query, values } from '../query.ts';
import { imageActionRoutes } from './image-actions.ts';
import { dataPath, imageDataRoutes } from './image-data.ts';
import { listQuery, queryString } from './image-list.ts';
import { imageMemberRoutes } from './image-members.ts';
import { applyPatch, createFields } from './image-query.ts';
import { imageSchemaRoutes } from './image-schemas.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;

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
  const memberships = await membershipsOf(deps.db, DEFAULT_PROJECT_ID);
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
  const draft = PATCH_DRAFTS[type as keyof typeof PATCH_DRAFTS];
  if (draft !== undefined) return draft;
  void reply.header('accept-patch', PATCH_TYPES.join(', '));
  throw new ApiError(
    'UnsupportedMediaType',
    `Image PATCH expects Content-Type one of: ${PATCH_TYPES.join(', ')}`,
  );
}

function imageScope(scope: FastifyInstance, deps: AppDeps, settings: ImageSettings) {
  const load = async (id: string) => {
    const image = UUID.test(id) ? await getImage(deps.db, id) : undefined;
    if (!image) throw imageNotFound(id);
    return image;
  };
  scope.setErrorHandler(errorHandler(deps.log, 'glance'));
  jsonPatchParser(scope);
  const reads = { config: { allowService: true } };
  scope.get('/images', reads, (req: FastifyRequest<{ Querystring: Query }>) => list(deps, req));
  scope.get('/images/:id', reads, async (req: ById) => imageView(await load(req.params.id)));
  scope.post('/images', async (req, reply) => {
    const id = await create(deps, req);
    const image = await load(id);
    return reply.status(201).header('location', `/v2/images/${id}`).send(imageView(image));
  });
  scope.patch('/images/:id', async (req: ById, reply) => {
    const draft = patchDraft(req, reply);
    const image = await load(req.params.id);
    const fields = applyPatch(req, image, req.body, draft);
    await updateImageFields(deps.db, image.id, fields, deps.clock.now());
    return imageView(await load(image.id));
  });
  scope.delete('/images/:id', async (req: ById, reply) => {
    const image = await load(req.params.id);
    if (image.protected)
      throw new ApiError(
        'PolicyNotAuthorized',
        `Image ${image.id} is protected and cannot be deleted.`,
      );
    if (!(await deleteImage(deps.db, image.id))) throw imageNotFound(image.id);
    await rm(dataPath(settings, image.id), { force: true });
    deps.log.info({ imageId: image.id }, 'image deleted');
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
