/**
 * The compute agent's image cache: verified copies of Glance images under
 * `<instances_path>/_base/<image id>`, the bases of instance overlays.
 *
 * Invariants: `<dir>/<id>` only ever comes into being by rename of a download that matched
 * the image's size, md5 and sha512 and, for a disk image, whose header qemu-img read as the
 * declared format with no backing file and no external data file (a header naming one would
 * make qemu open a host file on the guest's behalf); so an existing `<dir>/<id>` of the
 * image's size is trusted without reading it (one of another size is downloaded again).
 * A download goes to a `.<id>.part-<random>` file that is removed on any failure. One
 * download per image at a time, however many callers wait for it. Files are 0644 in a 0755
 * directory: libvirt's qemu user reads them. prune() never touches an image being
 * downloaded; keeping the bases of instances is the caller's part, and ensure() marks a
 * cached image used (its mtime) so that an age threshold keeps the bases of spawns under
 * way, here or, on a shared cache, on another host.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { InstanceImage } from '../../contracts/instances.ts';
import { UUID } from '../../contracts/schema.ts';
import { CommandError, type CommandRunner } from '../../core/exec.ts';
import type { Logger } from '../../core/log.ts';
import { syncDir } from '../../host/fs/atomic.ts';
import { type ImageInfo, imgInfo } from '../../host/qemu/img.ts';
import { download, ImageError } from './image-download.ts';

export { ImageError } from './image-download.ts';

export interface ImageCache {
  /** Path of the verified cached copy `<dir>/<image id>`, downloading it first if needed. */
  ensure(image: InstanceImage): Promise<string>;
  /**
   * Removes cached images not in `keep` (and stale partial downloads) whose file was last
   * used or written more than `olderThanMs` ago (default 0: any); returns removed ids.
   */
  prune(keep: ReadonlySet<string>, opts?: { olderThanMs?: number }): Promise<string[]>;
}

export interface ImageCacheDeps {
  /** `<instances_path>/_base`. */
  dir: string;
  /** kumo-api's base URL ([compute] api_url). */
  apiUrl: string;
  /** [api] service_token: accepted for image reads. */
  token: string;
  runner: CommandRunner;
  log: Logger;
  fetch?: typeof fetch;
}

const PART = /^\.([0-9a-f-]{36})\.part-[0-9a-f]+$/;
/** What qemu-img must detect for each disk_format; absent: kept as a plain file. */
const QEMU_FORMAT: Partial<Record<InstanceImage['disk_format'], string>> = {
  qcow2: 'qcow2',
  raw: 'raw',
  ami: 'raw',
};

interface Ctx {
  dir: string;
  apiUrl: string;
  token: string;
  runner: CommandRunner;
  log: Logger;
  fetch: typeof fetch;
  /** Ongoing ensure() per image id. */
  inflight: Map<string, Promise<string>>;
  /** Part files being written now (prune leaves them). */
  parts: Set<string>;
  ready?: Promise<void> | undefined;
}

export function createImageCache(deps: ImageCacheDeps): ImageCache {
  const ctx: Ctx = {
    dir: resolve(deps.dir),
    apiUrl: deps.apiUrl.replace(/\/+$/, ''),
    token: deps.token,
    runner: deps.runner,
    log: deps.log,
    fetch: deps.fetch ?? fetch,
    inflight: new Map(),
    parts: new Set(),
  };
  return {
    ensure(image) {
      if (!UUID.test(image.id))
        return Promise.reject(new Error(`invalid image id ${JSON.stringify(image.id)}`));
      const running = ctx.inflight.get(image.id);
      if (running) return running;
      const p = fetchVerified(ctx, image, join(ctx.dir, image.id)).finally(() => {
        ctx.inflight.delete(image.id);
      });
      ctx.inflight.set(image.id, p);
      return p;
    },
    prune: (keep, opts) => prune(ctx, keep, opts?.olderThanMs ?? 0),
  };
}

/** Creates the cache directory, 0755 whatever the umask, once. */
function prepare(ctx: Ctx): Promise<void> {
  ctx.ready ??= mkdir(ctx.dir, { recursive: true, mode: 0o755 })
    .then(() => chmod(ctx.dir, 0o755))
    .catch((e: unknown) => {
      ctx.ready = undefined;
      throw e;
    });
  return ctx.ready;
}

async function fetchVerified(ctx: Ctx, image: InstanceImage, path: string): Promise<string> {
  const current = await stat(path).catch(() => undefined);
  if (current?.isFile() && current.size === image.size) {
    await markUsed(ctx, image.id, path);
    return path;
  }
  if (current)
    ctx.log.warn(
      { imageId: image.id, size: current.size, expected: image.size },
      'cached image is not this image; downloading it again',
    );
  await prepare(ctx);
  const part = join(ctx.dir, `.${image.id}.part-${randomBytes(8).toString('hex')}`);
  ctx.parts.add(part);
  const started = Date.now();
  try {
    await download(ctx, image, part);
    await inspect(ctx, image, part);
    await rename(part, path);
    await syncDir(ctx.dir);
  } catch (e) {
    await rm(part, { force: true });
    ctx.log.warn({ imageId: image.id, err: (e as Error).message }, 'image download failed');
    throw e;
  } finally {
    ctx.parts.delete(part);
  }
  ctx.log.info({ imageId: image.id, size: image.size, ms: Date.now() - started }, 'image cached');
  return path;
}

/** For a disk image, the header must be the declared format and name no other file. */
async function inspect(ctx: Ctx, image: InstanceImage, part: string): Promise<void> {
  const want = QEMU_FORMAT[image.disk_format];
  if (want === undefined) return;
  let info: ImageInfo;
  try {
    info = await imgInfo(ctx.runner, part);
  } catch (e) {
    // It ran and failed, or hit its CPU or memory limit: the content is at fault.
    const ran = e instanceof CommandError && (e.exitCode !== null || e.signal !== null);
    if (ran && !e.timedOut)
      throw new ImageError(image.id, `qemu-img cannot read it: ${e.message}`, { cause: e });
    throw e;
  }
  if (info.format !== want)
    throw new ImageError(
      image.id,
      `disk_format ${image.disk_format} but its content is ${info.format}`,
    );
  if (info.backingFile !== null)
    throw new ImageError(image.id, `base image names a backing file (${info.backingFile})`);
  if (info.dataFile !== null)
    throw new ImageError(image.id, `base image names a data file (${info.dataFile})`);
}

/** Sets the file's mtime to now: prune's age counts from the last use. */
async function markUsed(ctx: Ctx, imageId: string, path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch((e: Error) =>
    ctx.log.warn({ imageId, err: e.message }, 'cached image not marked as used'),
  );
}

async function prune(ctx: Ctx, keep: ReadonlySet<string>, olderThanMs: number): Promise<string[]> {
  const names = await readdir(ctx.dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  const oldEnough = async (path: string) =>
    olderThanMs <= 0 ||
    (await stat(path).then(
      (st) => Date.now() - st.mtimeMs >= olderThanMs,
      () => false,
    ));
  const removed: string[] = [];
  for (const name of names) {
    const path = join(ctx.dir, name);
    const part = PART.exec(name);
    if (part && !ctx.parts.has(path)) {
      if (!(await oldEnough(path))) continue;
      await rm(path, { force: true });
      ctx.log.info({ imageId: part[1], file: name }, 'stale partial download removed');
    } else if (UUID.test(name) && !keep.has(name) && !ctx.inflight.has(name)) {
      if (!(await oldEnough(path)) || ctx.inflight.has(name)) continue;
      await rm(path, { force: true });
      ctx.log.info({ imageId: name }, 'cached image removed');
      removed.push(name);
    }
  }
  return removed;
}
