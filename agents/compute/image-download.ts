/**
 * One image's data fetched from kumo-api into a part file of the image cache
 * (image-cache.ts), verified on the way: the size announced and received, md5 and sha512
 * must be the image's.
 *
 * Invariants: nothing is written past the image's size; the part file is created new
 * (never follows or reuses an existing file), 0644, and fsynced before it is closed; a
 * problem of the image itself (wrong data, the API's 403/404) is an ImageError, permanent,
 * anything else (the network, a 5xx) an Error worth a retry. Removing the part file on
 * failure is the caller's.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { PermanentError } from '../../contracts/errors.ts';
import type { InstanceImage } from '../../contracts/instances.ts';

/** Where and how to download: kumo-api's base URL, the token, the fetch to use. */
export interface DownloadCtx {
  apiUrl: string;
  token: string;
  fetch: typeof fetch;
}

/** A permanent problem of the image itself: retrying the download cannot help. */
export class ImageError extends PermanentError {
  readonly imageId: string;
  /** The image service's HTTP status, when it refused the download (404: no such image). */
  readonly httpStatus: number | undefined;
  constructor(imageId: string, message: string, options?: ErrorOptions & { httpStatus?: number }) {
    super(`image ${imageId}: ${message}`, options);
    this.name = 'ImageError';
    this.imageId = imageId;
    this.httpStatus = options?.httpStatus;
  }
}

interface Digest {
  size: number;
  md5: string;
  sha512: string;
}

/** Streams the image's data into `part`, hashing and counting; checks the digests. */
export async function download(
  ctx: DownloadCtx,
  image: InstanceImage,
  part: string,
): Promise<void> {
  const url = `${ctx.apiUrl}/v2/images/${image.id}/file`;
  const failed = (e: unknown) =>
    e instanceof ImageError
      ? e
      : new Error(`image ${image.id}: GET ${url} failed: ${(e as Error).message}`, { cause: e });
  let res: Response;
  try {
    res = await ctx.fetch(url, { headers: { 'X-Auth-Token': ctx.token } });
  } catch (e) {
    throw failed(e);
  }
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel().catch(() => {});
    throw httpError(image.id, url, res.status);
  }
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) !== image.size) {
    await res.body.cancel().catch(() => {});
    throw new ImageError(image.id, `the API sends ${declared} bytes, the image has ${image.size}`);
  }
  // Lock the body now: undici cancels an unlocked body once its Response is collected,
  // which can happen during the awaits before the first read.
  const source = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  const got = await writeHashed(image, source, part).catch((e: unknown) => {
    source.destroy();
    throw failed(e);
  });
  const wrong = mismatch(image, got);
  if (wrong) throw new ImageError(image.id, wrong);
}

function httpError(imageId: string, url: string, status: number): Error {
  const what = `GET ${url} answered HTTP ${status}`;
  if (status === 404 || status === 403)
    return new ImageError(imageId, what, { httpStatus: status });
  if (status === 204) return new Error(`image ${imageId}: ${what}: the image has no data yet`);
  return new Error(`image ${imageId}: ${what}`);
}

function mismatch(image: InstanceImage, got: Digest): string | undefined {
  if (got.size !== image.size) return `size is ${got.size} bytes, expected ${image.size}`;
  if (got.md5 !== image.checksum) return `md5 is ${got.md5}, expected ${image.checksum}`;
  if (got.sha512 !== image.os_hash_value)
    return `sha512 is ${got.sha512}, expected ${image.os_hash_value}`;
  return undefined;
}

/** Writes `source` to a new 0644 file `part` (fsynced), hashing md5 and sha512 on the way. */
async function writeHashed(image: InstanceImage, source: Readable, part: string): Promise<Digest> {
  const md5 = createHash('md5');
  const sha512 = createHash('sha512');
  let size = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > image.size)
        return cb(new ImageError(image.id, `more data than its ${image.size} bytes`));
      md5.update(chunk);
      sha512.update(chunk);
      cb(null, chunk);
    },
  });
  const fh = await open(part, 'wx', 0o644);
  let sink: ReturnType<typeof fh.createWriteStream>;
  try {
    await fh.chmod(0o644);
    sink = fh.createWriteStream({ flush: true }); // fsync before it closes the file
  } catch (e) {
    await fh.close();
    throw e;
  }
  await pipeline(source, hasher, sink);
  return { size, md5: md5.digest('hex'), sha512: sha512.digest('hex') };
}
