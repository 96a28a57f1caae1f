/**
 * Glance v2 image data: PUT /images/{id}/file (upload, once) and GET /images/{id}/file
 * (download; compute agents read it with the service token).
 *
 * Invariants: data is streamed to a temporary file in `<image_dir>` and renamed to
 * `<image_dir>/<id>` only once it is complete, under the size limit, and hashed (md5 +
 * sha512); a failed upload leaves no file and the image `queued`; data is uploaded once
 * (409 after that); an image deleted during its upload keeps no file; any Content-Type
 * but application/octet-stream is a 415 before the body is read; a deactivated image's
 * data is read by admins only (Glance's 403 for anyone else, compute agents included);
 * an image the caller cannot see is a 404 for both, only its owner or an admin uploads,
 * and a reader downloads nothing (Glance's download_image needs the member role;
 * image-access.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import { abortUpload, beginUpload, finishUpload, type ImageRecord } from '../db/images.ts';
import type { AppDeps, ImageSettings } from '../deps.ts';
import { requireDownloader, requireOwner } from './image-access.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;
type Load = (req: FastifyRequest, id: string) => Promise<ImageRecord>;

export const dataPath = (settings: ImageSettings, id: string) => join(settings.dir, id);

const tooLarge = (limit: number) =>
  new ApiError('RequestEntityTooLarge', `Image data exceeds the size limit of ${limit} bytes.`);

/** Counts and hashes what passes; fails past the size limit. */
function meter(limit: number) {
  const md5 = createHash('md5');
  const sha512 = createHash('sha512');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > limit) return cb(tooLarge(limit));
      md5.update(chunk);
      sha512.update(chunk);
      cb(null, chunk);
    },
  });
  const result = () => ({ size, md5: md5.digest('hex'), sha512: sha512.digest('hex') });
  return { stream, result };
}

/** Streams the body to `<dir>/<id>` through a temporary file; the data's size and hashes. */
async function receive(source: Readable, settings: ImageSettings, id: string) {
  await mkdir(settings.dir, { recursive: true, mode: 0o750 });
  const tmp = join(settings.dir, `.${id}.${randomBytes(6).toString('hex')}.part`);
  const m = meter(settings.sizeLimit);
  const onAbort = () =>
    m.stream.destroy(new ApiError('BadRequest', 'The image data upload was interrupted.'));
  source.once('aborted', onAbort);
  source.once('error', onAbort);
  source.pipe(m.stream);
  try {
    await pipeline(m.stream, createWriteStream(tmp, { flags: 'wx', mode: 0o640 }));
    await rename(tmp, dataPath(settings, id));
    return m.result();
  } catch (e) {
    source.unpipe(m.stream);
    source.resume(); // the rest of the body is read and dropped
    await rm(tmp, { force: true });
    throw e;
  } finally {
    source.off('aborted', onAbort);
    source.off('error', onAbort);
  }
}

async function upload(deps: AppDeps, settings: ImageSettings, req: ById, image: ImageRecord) {
  const length = Number(req.headers['content-length'] ?? Number.NaN);
  if (length > settings.sizeLimit) throw tooLarge(settings.sizeLimit);
  if (!(await beginUpload(deps.db, image.id, deps.clock.now())))
    throw new ApiError(
      'Conflict',
      `Image ${image.id} is ${image.status === 'queued' ? 'being uploaded' : image.status}: its data can be uploaded only once, while it is queued.`,
    );
  let data: Awaited<ReturnType<typeof receive>>;
  try {
    data = await receive(req.body as Readable, settings, image.id);
  } catch (e) {
    await abortUpload(deps.db, image.id, deps.clock.now());
    deps.log.warn({ imageId: image.id, err: (e as Error).message }, 'image upload failed');
    throw e;
  }
  if (!(await finishUpload(deps.db, image.id, data, deps.clock.now()))) {
    await rm(dataPath(settings, image.id), { force: true });
    throw new ApiError('Conflict', `Image ${image.id} was deleted during the upload.`);
  }
  deps.log.info({ imageId: image.id, size: data.size, checksum: data.md5 }, 'image uploaded');
}

async function download(
  settings: ImageSettings,
  req: FastifyRequest,
  image: ImageRecord,
  reply: FastifyReply,
) {
  if (image.status === 'deactivated' && req.role !== 'admin')
    throw new ApiError(
      'PolicyNotAuthorized',
      'The requested image has been deactivated. Image data download is forbidden.',
    );
  requireDownloader(req);
  // No data yet (or any more): Glance's 204; a deactivated image's data is still there.
  if (image.status !== 'active' && image.status !== 'deactivated') return reply.status(204).send();
  const path = dataPath(settings, image.id);
  const st = await stat(path).catch(() => undefined);
  if (!st)
    throw new ApiError('NotFound', `The data of image ${image.id} is missing from the store.`);
  if (image.checksum) void reply.header('content-md5', image.checksum);
  return reply
    .header('content-type', 'application/octet-stream')
    .header('content-length', st.size)
    .send(createReadStream(path));
}

/** Glance's 415 for any other upload type, checked before a body parser can run. */
async function octetStreamOnly(req: FastifyRequest) {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/octet-stream')
    throw new ApiError(
      'UnsupportedMediaType',
      `Invalid content type ${type || '(none)'}: image data must be sent as application/octet-stream.`,
    );
}

/** The data routes of one scope (/v2 or the root); `load` finds an image or 404s. */
export function imageDataRoutes(
  scope: FastifyInstance,
  deps: AppDeps,
  settings: ImageSettings,
  load: Load,
) {
  // Image data is streamed by the upload route itself.
  scope.addContentTypeParser('application/octet-stream', (_req, payload, done) =>
    done(null, payload),
  );
  scope.put('/images/:id/file', { onRequest: octetStreamOnly }, async (req: ById, reply) => {
    const image = await load(req, req.params.id);
    requireOwner(req, image, 'upload_image');
    await upload(deps, settings, req, image);
    return reply.status(204).send();
  });
  scope.get('/images/:id/file', { config: { allowService: true } }, async (req: ById, reply) =>
    download(settings, req, await load(req, req.params.id), reply),
  );
}
