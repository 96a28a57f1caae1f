/**
 * Glance v2 images: POST/GET /v2/images, GET/PATCH/DELETE /v2/images/{id}, and the image
 * data (image-data.ts) at PUT/GET /v2/images/{id}/file, served under /v2 and at the
 * endpoint root (where the openstack client sends them with `--os-endpoint`).
 *
 * Invariants: a request is checked whole (image-query.ts) before anything is written; an
 * id is created once (409 after that); a protected image is never deleted; deleting an
 * image removes its data file. Errors leave in Glance's shape (http.ts).
 */
import { rm } from 'node:fs/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { JSON_PATCH_TYPES } from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import { UUID } from '../../contracts/schema.ts';
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
import { dataPath, imageDataRoutes } from './image-data.ts';
import { applyPatch, checkRefs, createFields, listQuery } from './image-query.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;

/** The JSON-patch media types parse as the API's JSON bodies do (http.ts). */
function jsonPatchParser(scope: FastifyInstance) {
  scope.addContentTypeParser([...JSON_PATCH_TYPES], { parseAs: 'string' }, (_req, body, done) => {
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
    visibility: values(req.query.visibility).filter((v) => v !== 'all'),
  });
  const { list, next } = listQuery(req.query, images);
  return {
    images: list.map(imageView),
    first: '/v2/images',
    schema: '/v2/schemas/images',
    ...(next ? { next } : {}),
  };
}

async function create(deps: AppDeps, req: FastifyRequest) {
  const fields = createFields(req);
  await checkRefs(deps.db, fields.id, fields.properties);
  if (fields.id && (await getImage(deps.db, fields.id)))
    throw new ApiError('Conflict', `Image with identifier ${fields.id} already exists!`);
  const id = await insertImage(deps.db, fields, deps.clock.now());
  deps.log.info({ imageId: id, name: fields.name }, 'image created');
  return id;
}

function patchType(req: FastifyRequest) {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
  if (!(JSON_PATCH_TYPES as readonly string[]).includes(type ?? ''))
    throw new ApiError(
      'UnsupportedMediaType',
      `Content-Type must be ${JSON_PATCH_TYPES[0]}, got ${type || '(none)'}.`,
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
  scope.patch('/images/:id', async (req: ById) => {
    patchType(req);
    const image = await load(req.params.id);
    const fields = applyPatch(req, image, req.body);
    await checkRefs(deps.db, image.id, fields.properties);
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
}

export function imageRoutes(app: FastifyInstance, deps: AppDeps, settings: ImageSettings) {
  for (const prefix of ['/v2', ''])
    void app.register(async (scope) => imageScope(scope, deps, settings), { prefix });
}
