/**
 * The file backend's volumes: sparse raw images `volume-<uuid>` / `snapshot-<uuid>` in one
 * directory, created, grown, copied, wiped and removed.
 *
 * Invariants:
 * - only absolute paths whose file name is `volume-<uuid>` or `snapshot-<uuid>` are
 *   touched (checked before any I/O): nothing user-supplied names a file here;
 * - an image is never replaced and never partial: create is exclusive (`wx`) and unlinks
 *   what it made if sizing fails; a copy is made under a temporary name and linked into
 *   place (link(2) refuses an existing name), so a crash leaves at most a `.…tmp` file,
 *   which `removeStaleTemps` clears;
 * - sizes only grow, and never past the filesystem's free space: a sparse file could be
 *   created bigger than the disk and fail the guest's writes later, so create and extend
 *   refuse up front (kind 'insufficient-space') and leave nothing;
 * - wiping (volume_clear = zero) is volume-zero.ts's, on the same checked names.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readdir, stat, statfs, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { UUID } from '../../contracts/schema.ts';
import { MAX_VOLUME_GB } from '../../contracts/volume.ts';
import { CommandError, type CommandRunner } from '../../core/exec.ts';
import { syncDir } from './atomic.ts';

export type VolumeFileErrorKind =
  | 'invalid'
  | 'exists'
  | 'not-found'
  | 'shrink'
  | 'insufficient-space'
  | 'failed';

export class VolumeFileError extends Error {
  override name = 'VolumeFileError';
  readonly kind: VolumeFileErrorKind;
  constructor(kind: VolumeFileErrorKind, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.kind = kind;
  }
}

const GiB = 1024 ** 3;
const UUID_BODY = UUID.source.slice(1, -1);
const FILE_NAME = new RegExp(`^(volume|snapshot)-${UUID_BODY}$`);
const TEMP_NAME = new RegExp(`^\\.(volume|snapshot)-${UUID_BODY}\\.[0-9a-f]{12}\\.tmp$`);

/** `path`, when it is absolute and names volume-<uuid> / snapshot-<uuid>; else throws. */
export function checkPath(path: string): string {
  if (!isAbsolute(path) || path.includes('\0') || !FILE_NAME.test(basename(path)))
    throw new VolumeFileError(
      'invalid',
      `a volume file must be an absolute path to volume-<uuid> or snapshot-<uuid>, got ${JSON.stringify(path)}`,
    );
  return path;
}

function checkSizeGb(sizeGb: number): number {
  if (!Number.isInteger(sizeGb) || sizeGb < 1 || sizeGb > MAX_VOLUME_GB)
    throw new VolumeFileError(
      'invalid',
      `size must be a whole number of GiB in 1..${MAX_VOLUME_GB}, got ${JSON.stringify(sizeGb)}`,
    );
  return sizeGb;
}

export const errno = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** The path of Kumo's `name` (volume-<uuid> / snapshot-<uuid>) in `dir`, checked. */
export const volumeFilePath = (dir: string, name: string) => checkPath(join(dir, name));

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

async function requireRoom(path: string, bytes: number, what: string): Promise<void> {
  const free = await freeBytes(dirname(path));
  if (bytes > free)
    throw new VolumeFileError(
      'insufficient-space',
      `${what}: ${dirname(path)} has insufficient free space (${(free / GiB).toFixed(2)} GiB free, ${(bytes / GiB).toFixed(2)} GiB needed)`,
    );
}

/** A sparse image of `sizeGb` GiB; refuses an existing file and a size past the free space. */
export async function createVolumeFile(path: string, sizeGb: number): Promise<void> {
  checkPath(path);
  const bytes = checkSizeGb(sizeGb) * GiB;
  await requireRoom(path, bytes, `create ${basename(path)} (${sizeGb} GiB)`);
  const fh = await open(path, 'wx', 0o600).catch((e: unknown) => {
    if (errno(e) === 'EEXIST') throw new VolumeFileError('exists', `${path} already exists`, e);
    throw e;
  });
  try {
    await fh.truncate(bytes);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(path).catch(() => {});
    throw e;
  }
  await fh.close();
  await syncDir(dirname(path));
}

/** Grows an image to `sizeGb`; false when it already is that size; never shrinks. */
export async function extendVolumeFile(path: string, sizeGb: number): Promise<boolean> {
  checkPath(path);
  const bytes = checkSizeGb(sizeGb) * GiB;
  const size = await stat(path).then(
    (s) => s.size,
    (e: unknown) => {
      if (errno(e) === 'ENOENT')
        throw new VolumeFileError('not-found', `${path} does not exist`, e);
      throw e;
    },
  );
  if (size === bytes) return false;
  if (size > bytes)
    throw new VolumeFileError(
      'shrink',
      `${path} is ${size} bytes: won't shrink it to ${sizeGb} GiB`,
    );
  await requireRoom(path, bytes - size, `extend ${basename(path)} to ${sizeGb} GiB`);
  const fh = await open(path, 'r+');
  try {
    await fh.truncate(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}

/**
 * `dst` as a copy of `src`'s data: a reflink where the filesystem shares extents, else a
 * sparse copy (`cp --reflink=auto --sparse=always`); same size as `src` (extend after).
 */
export async function copyVolumeFile(
  runner: CommandRunner,
  src: string,
  dst: string,
): Promise<void> {
  checkPath(src);
  checkPath(dst);
  const exists = await stat(dst).then(
    () => true,
    (e: unknown) => {
      if (errno(e) === 'ENOENT') return false;
      throw e;
    },
  );
  if (exists) throw new VolumeFileError('exists', `${dst} already exists`);
  const tmp = join(dirname(dst), `.${basename(dst)}.${randomBytes(6).toString('hex')}.tmp`);
  const argv = ['cp', '--reflink=auto', '--sparse=always', '--', src, tmp];
  try {
    await runner.run({ argv, timeoutMs: 3_600_000 });
    await link(tmp, dst);
  } catch (e) {
    throw copyError(e, src, dst);
  } finally {
    await unlink(tmp).catch(() => {});
  }
  await syncDir(dirname(dst));
}

function copyError(e: unknown, src: string, dst: string): unknown {
  if (errno(e) === 'EEXIST') return new VolumeFileError('exists', `${dst} already exists`, e);
  if (!(e instanceof CommandError)) return e;
  const kind = /No space left/i.test(e.stderr)
    ? 'insufficient-space'
    : /No such file/i.test(e.stderr)
      ? 'not-found'
      : 'failed';
  return new VolumeFileError(kind, `copy ${src} to ${dst}: ${e.stderr.trim()}`, e);
}

/** Removes an image; false when there was none. */
export async function removeVolumeFile(path: string): Promise<boolean> {
  checkPath(path);
  try {
    await unlink(path);
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw e;
  }
  await syncDir(dirname(path));
  return true;
}

export interface VolumeFile {
  kind: 'volume' | 'snapshot';
  id: string;
  /** `volume-<uuid>` / `snapshot-<uuid>`. */
  name: string;
  path: string;
  sizeBytes: number;
  /** Bytes the filesystem really holds for it (st_blocks × 512). */
  allocatedBytes: number;
}

/** The images in `dir` (nothing else there counts); [] when `dir` does not exist. */
export async function listVolumeFiles(dir: string): Promise<VolumeFile[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((e: unknown) => {
    if (errno(e) === 'ENOENT') return [];
    throw e;
  });
  const files = entries.filter((d) => d.isFile() && FILE_NAME.test(d.name));
  const listed = await Promise.all(
    files.map(async (d): Promise<VolumeFile | null> => {
      const path = join(dir, d.name);
      const s = await stat(path).catch((e: unknown) => {
        if (errno(e) === 'ENOENT') return null;
        throw e;
      });
      if (!s) return null;
      const kind = d.name.startsWith('volume-') ? 'volume' : 'snapshot';
      const id = d.name.slice(kind.length + 1);
      return { kind, id, name: d.name, path, sizeBytes: s.size, allocatedBytes: s.blocks * 512 };
    }),
  );
  return listed.filter((f): f is VolumeFile => f !== null);
}

/** Removes copies a crash interrupted (`.volume-<uuid>.<hex>.tmp`); run while no copy runs. */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((e: unknown) => {
    if (errno(e) === 'ENOENT') return [];
    throw e;
  });
  const stale = names.filter((n) => TEMP_NAME.test(n));
  await Promise.all(stale.map((n) => unlink(join(dir, n)).catch(() => {})));
  return stale;
}

/** Size and free space (for unprivileged writers, f_bavail) of the filesystem of `dir`. */
export async function volumesCapacity(dir: string): Promise<{ totalGb: number; freeGb: number }> {
  const s = await statfs(dir);
  const floor2 = (bytes: number) => Math.floor((bytes / GiB) * 100) / 100;
  return { totalGb: floor2(s.blocks * s.bsize), freeGb: floor2(s.bavail * s.bsize) };
}
