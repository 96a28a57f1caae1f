/**
 * Glance v2 images: POST/GET /v2/images, GET/PATCH/DELETE /v2/images/{id}, and the image
 * data at PUT/GET /v2/images/{id}/file, served under /v2 and at the endpoint root (where
 * the openstack client sends them with `--os-endpoint`).
 *
 * Invariants: image data is streamed to a temporary file in `<image_dir>` and renamed to
 * `<image_dir>/<id>` only once it is complete, under the size limit, and hashed (md5 +
 * sha512); a failed upload leaves no file and the image `queued`; data is uploaded once
 * (409 after that); deleting an image removes its file. Errors leave in Nova's shape.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  IMAGE_CORE,
  IMAGE_READ_ONLY,
  IMAGE_REF_PROPERTIES,
  type ImageCoreKey,
  ImageCreate,
  ImagePatch,
  JSON_PATCH_TYPES,
  MAX_IMAGE_PROPERTIES,
  parseProperty,
  patchKey,
  ReadOnlyAttribute,
} from '../../contracts/compute.ts';
import { ApiError } from '../../contracts/errors.ts';
import { type Schema, UUID, ValidationError } from '../../contracts/schema.ts';
import {
  abortUpload,
  beginUpload,
  deleteImage,
  finishUpload,
  getImage,
  type ImageFields,
  type ImageRecord,
  imageNotFound,
  imageView,
  insertImage,
  listImages,
  missingImages,
  updateImageFields,
} from '../db/images.ts';
import type { AppDeps } from '../deps.ts';
import { type Query, values } from '../query.ts';
import { installNovaErrors } from './nova.ts';

/** Glance's default image_size_cap: 1 TiB. */
export const DEFAULT_IMAGE_SIZE_LIMIT = 1024 ** 4;

export interface ImageSettings {
  /** Where image data lives: `<dir>/<image id>`. */
  dir: string;
  /** Largest image in bytes; bigger uploads get 413. */
  sizeLimit: number;
}

const fieldsOf = (r: ImageRecord): ImageFields => ({
  id: r.id,
  name: r.name,
  visibility: r.visibility,
  protected: r.protected,
  os_hidden: r.os_hidden,
  disk_format: r.disk_format,
  container_format: r.container_format,
  min_disk: r.min_disk,
  min_ram: r.min_ram,
  tags: r.tags,
  properties: { ...r.properties },
});

function requirePublicizer(req: FastifyRequest, visibility: string) {
  if (visibility === 'public' && req.role !== 'admin')
    throw new ApiError('PolicyNotAuthorized', 'You are not authorized to publicize images.');
}

/** kernel_id / ramdisk_id must name existing images (other than this one). */
async function checkRefs(deps: AppDeps, self: string | undefined, props: Record<string, string>) {
  for (const key of IMAGE_REF_PROPERTIES) {
    const ref = props[key];
    if (ref === undefined) continue;
    if (ref === self) throw new ValidationError(key, 'must not name the image itself');
    if ((await missingImages(deps.db, [ref])).length)
      throw new ValidationError(key, `image ${ref} does not exist`);
  }
}

/** Applies a Glance JSON patch to a copy of the image's fields. */
function applyPatch(req: FastifyRequest, image: ImageRecord, body: unknown): ImageFields {
  const ops = ImagePatch.parse(body);
  const f = fieldsOf(image);
  for (const [i, op] of ops.entries()) {
    const key = patchKey(op.path);
    if ((IMAGE_READ_ONLY as readonly string[]).includes(key) || key === 'id')
      throw new ReadOnlyAttribute(key);
    if (op.op !== 'remove' && op.value === undefined)
      throw new ValidationError(`[${i}].value`, `is required for ${op.op}`);
    if (key in IMAGE_CORE) {
      const core = key as ImageCoreKey;
      if (op.op === 'remove')
        throw new ApiError('PolicyNotAuthorized', `Cannot remove core attribute '${key}'.`);
      if ((core === 'disk_format' || core === 'container_format') && image.status !== 'queued')
        throw new ApiError(
          'PolicyNotAuthorized',
          `Attribute ${key} can be only replaced for a queued image.`,
        );
      const v = (IMAGE_CORE[core] as Schema<unknown>).parse(op.value, key);
      (f as unknown as Record<string, unknown>)[core] = v;
      if (core === 'visibility') requirePublicizer(req, v as string);
      continue;
    }
    const exists = key in f.properties;
    if (op.op === 'remove') {
      if (!exists) throw new ApiError('Conflict', `Property ${key} does not exist.`);
      delete f.properties[key];
    } else if (op.op === 'replace' && !exists) {
      throw new ApiError('Conflict', `Property ${key} does not exist.`);
    } else {
      f.properties[key] = parseProperty(key, op.value);
    }
  }
  if (Object.keys(f.properties).length > MAX_IMAGE_PROPERTIES)
    throw new ValidationError(
      'properties',
      `must be at most ${MAX_IMAGE_PROPERTIES} extra properties`,
    );
  return f;
}

const SORT_KEYS = ['created_at', 'updated_at', 'name', 'id', 'status', 'size'] as const;
const LIST_PARAMS = [
  'limit',
  'marker',
  'sort_key',
  'sort_dir',
  'member_status',
  'name',
  'status',
  'visibility',
  'os_hidden',
];

function listQuery(req: FastifyRequest<{ Querystring: Query }>, images: ImageRecord[]) {
  const q = req.query;
  let list = images;
  const hidden = values(q.os_hidden)[0];
  if (hidden !== undefined && !['true', 'false'].includes(hidden.toLowerCase()))
    throw new ValidationError('os_hidden', `'${hidden}' is not true or false`);
  const wantHidden = hidden?.toLowerCase() === 'true';
  list = list.filter((i) => i.os_hidden === wantHidden);
  for (const [key, raw] of Object.entries(q)) {
    if (LIST_PARAMS.includes(key)) continue;
    const want = values(raw);
    const column = ['disk_format', 'container_format', 'owner'].includes(key);
    list = list.filter((i) =>
      want.includes(String(column ? i[key as 'owner'] : (i.properties[key] ?? '\u0000'))),
    );
  }
  const sortKey = values(q.sort_key)[0];
  if (sortKey !== undefined) {
    if (!(SORT_KEYS as readonly string[]).includes(sortKey))
      throw new ValidationError('sort_key', `must be one of ${SORT_KEYS.join(', ')}`);
    const dir = values(q.sort_dir)[0] ?? 'desc';
    if (dir !== 'asc' && dir !== 'desc')
      throw new ValidationError('sort_dir', 'must be asc or desc');
    const k = sortKey as (typeof SORT_KEYS)[number];
    list = [...list].sort((a, b) => {
      const c = String(a[k] ?? '').localeCompare(String(b[k] ?? ''), 'en', { numeric: true });
      return dir === 'asc' ? c : -c;
    });
  }
  const marker = values(q.marker)[0];
  if (marker !== undefined) {
    const at = list.findIndex((i) => i.id === marker);
    if (at < 0)
      throw new ApiError('BadRequest', `Invalid marker. Image ${marker} could not be found.`);
    list = list.slice(at + 1);
  }
  const limitRaw = values(q.limit)[0];
  let next: string | undefined;
  if (limitRaw !== undefined) {
    if (!/^\d{1,9}$/.test(limitRaw))
      throw new ValidationError('limit', 'must be a non-negative integer');
    const limit = Number(limitRaw);
    if (list.length > limit) {
      list = list.slice(0, limit);
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q))
        if (k !== 'marker') for (const one of values(v)) params.append(k, one);
      params.append('marker', list[list.length - 1]?.id ?? '');
      next = `/v2/images?${params.toString()}`;
    }
  }
  return { list, next };
}

export function imageRoutes(app: FastifyInstance, deps: AppDeps, settings: ImageSettings) {
  const load = async (id: string) => {
    const image = UUID.test(id) ? await getImage(deps.db, id) : undefined;
    if (!image) throw imageNotFound(id);
    return image;
  };
  const dataPath = (id: string) => join(settings.dir, id);

  for (const prefix of ['/v2', '']) {
    void app.register(
      async (scope) => {
        installNovaErrors(scope, deps.log);
        scope.addContentTypeParser(
          [...JSON_PATCH_TYPES],
          { parseAs: 'string' },
          (_req, body, done) => {
            try {
              done(null, JSON.parse(body as string));
            } catch (e) {
              const err = e as Error & { statusCode?: number };
              err.statusCode = 400;
              done(err, undefined);
            }
          },
        );
        // Image data is streamed by the upload route itself.
        scope.addContentTypeParser('application/octet-stream', (_req, payload, done) =>
          done(null, payload),
        );

        scope.get(
          '/images',
          { config: { allowService: true } },
          async (req: FastifyRequest<{ Querystring: Query }>) => {
            const images = await listImages(deps.db, {
              name: values(req.query.name),
              status: values(req.query.status),
              visibility: values(req.query.visibility).filter((v) => v !== 'all'),
            });
            const { list, next } = listQuery(req, images);
            return {
              images: list.map(imageView),
              first: '/v2/images',
              schema: '/v2/schemas/images',
              ...(next ? { next } : {}),
            };
          },
        );

        scope.get(
          '/images/:id',
          { config: { allowService: true } },
          async (req: FastifyRequest<{ Params: { id: string } }>) =>
            imageView(await load(req.params.id)),
        );

        scope.post('/images', async (req, reply) => {
          const body = ImageCreate.parse(req.body);
          const core = body.core;
          const fields: ImageFields = {
            ...(body.id ? { id: body.id } : {}),
            name: core.name ?? null,
            visibility: core.visibility ?? 'shared',
            protected: core.protected ?? false,
            os_hidden: core.os_hidden ?? false,
            disk_format: core.disk_format ?? null,
            container_format: core.container_format ?? null,
            min_disk: core.min_disk ?? 0,
            min_ram: core.min_ram ?? 0,
            tags: [...new Set(core.tags ?? [])],
            properties: body.properties,
          };
          requirePublicizer(req, fields.visibility);
          await checkRefs(deps, fields.id, fields.properties);
          if (fields.id && (await getImage(deps.db, fields.id)))
            throw new ApiError('Conflict', `Image with identifier ${fields.id} already exists!`);
          const id = await insertImage(deps.db, fields, deps.clock.now());
          deps.log.info({ imageId: id, name: fields.name }, 'image created');
          const image = await load(id);
          return reply.status(201).header('location', `/v2/images/${id}`).send(imageView(image));
        });

        scope.patch('/images/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
          const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
          if (!(JSON_PATCH_TYPES as readonly string[]).includes(type ?? ''))
            throw new ApiError(
              'UnsupportedMediaType',
              `Content-Type must be ${JSON_PATCH_TYPES[0]}, got ${type || '(none)'}.`,
            );
          const image = await load(req.params.id);
          const fields = applyPatch(req, image, req.body);
          await checkRefs(deps, image.id, fields.properties);
          await updateImageFields(deps.db, image.id, fields, deps.clock.now());
          return imageView(await load(image.id));
        });

        scope.delete(
          '/images/:id',
          async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
            const image = await load(req.params.id);
            if (image.protected)
              throw new ApiError(
                'PolicyNotAuthorized',
                `Image ${image.id} is protected and cannot be deleted.`,
              );
            if (!(await deleteImage(deps.db, image.id))) throw imageNotFound(image.id);
            await rm(dataPath(image.id), { force: true });
            deps.log.info({ imageId: image.id }, 'image deleted');
            return reply.status(204).send();
          },
        );

        scope.put(
          '/images/:id/file',
          async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
            const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
            if (type !== 'application/octet-stream')
              throw new ApiError(
                'UnsupportedMediaType',
                `Image data must be sent as application/octet-stream, got ${type || '(none)'}.`,
              );
            const image = await load(req.params.id);
            const tooLarge = () =>
              new ApiError(
                'RequestEntityTooLarge',
                `Image data exceeds the size limit of ${settings.sizeLimit} bytes.`,
              );
            const length = Number(req.headers['content-length'] ?? Number.NaN);
            if (length > settings.sizeLimit) throw tooLarge();
            if (!(await beginUpload(deps.db, image.id, deps.clock.now())))
              throw new ApiError(
                'Conflict',
                `Image ${image.id} is ${image.status === 'queued' ? 'being uploaded' : image.status}: its data can be uploaded only once, while it is queued.`,
              );
            const source = req.body as Readable;
            await mkdir(settings.dir, { recursive: true, mode: 0o750 });
            const tmp = join(settings.dir, `.${image.id}.${randomBytes(6).toString('hex')}.part`);
            const md5 = createHash('md5');
            const sha512 = createHash('sha512');
            let size = 0;
            const counter = new Transform({
              transform(chunk: Buffer, _enc, cb) {
                size += chunk.length;
                if (size > settings.sizeLimit) return cb(tooLarge());
                md5.update(chunk);
                sha512.update(chunk);
                cb(null, chunk);
              },
            });
            const onAbort = () =>
              counter.destroy(new ApiError('BadRequest', 'The image data upload was interrupted.'));
            source.once('aborted', onAbort);
            source.once('error', onAbort);
            source.pipe(counter);
            try {
              await pipeline(counter, createWriteStream(tmp, { flags: 'wx', mode: 0o640 }));
              await rename(tmp, dataPath(image.id));
            } catch (e) {
              source.unpipe(counter);
              source.resume(); // the rest of the body is read and dropped
              await rm(tmp, { force: true });
              await abortUpload(deps.db, image.id, deps.clock.now());
              deps.log.warn(
                { imageId: image.id, err: (e as Error).message },
                'image upload failed',
              );
              throw e;
            } finally {
              source.off('aborted', onAbort);
              source.off('error', onAbort);
            }
            const data = { size, md5: md5.digest('hex'), sha512: sha512.digest('hex') };
            if (!(await finishUpload(deps.db, image.id, data, deps.clock.now()))) {
              await rm(dataPath(image.id), { force: true });
              throw new ApiError('Conflict', `Image ${image.id} was deleted during the upload.`);
            }
            deps.log.info({ imageId: image.id, size, checksum: data.md5 }, 'image uploaded');
            return reply.status(204).send();
          },
        );

        scope.get(
          '/images/:id/file',
          { config: { allowService: true } },
          async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
            const image = await load(req.params.id);
            if (image.status !== 'active') return reply.status(204).send();
            const path = dataPath(image.id);
            const st = await stat(path).catch(() => undefined);
            if (!st)
              throw new ApiError(
                'NotFound',
                `The data of image ${image.id} is missing from the store.`,
              );
            if (image.checksum) void reply.header('content-md5', image.checksum);
            return reply
              .header('content-type', 'application/octet-stream')
              .header('content-length', st.size)
              .send(createReadStream(path));
          },
        );
      },
      { prefix },
    );
  }
}
