/**
 * The instance directory `<instances_path>/<uuid>/` and which host owns it.
 * `instances_path` may be shared between hosts (NFS, as Nova deployments do), so a
 * directory is this host's only when its owner marker `<dir>/host` names `[DEFAULT] host`.
 *
 * Invariants:
 * - a `<uuid>` directory comes into being whole: it is built under this host's staging
 *   name (`.<uuid>.part-<host tag>`) with its marker and its image list (`<dir>/images`)
 *   inside, then renamed into place; so a directory without a marker was not made by a
 *   Kumo agent, and no agent enumerates, writes into or removes it;
 * - an agent enumerates and removes only directories whose marker names its host, and
 *   its own staging directories (what a crash mid-build left);
 * - markers and image lists are read bounded and validated: a shared directory's content
 *   is never trusted as a name or a path.
 */
import { chmod, mkdir, open, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { HOSTNAME, UUID } from '../../contracts/schema.ts';
import { hostTag, type InstancePaths, ownerText } from './desired.ts';

/** The directory exists and is not this host's: nothing may be written into it. */
export class ForeignDirectoryError extends Error {
  override name = 'ForeignDirectoryError';
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

const NOT_A_FILE = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/** At most `max` bytes of `path` as text; null when it is not a readable file. */
async function readBounded(path: string, max: number): Promise<string | null> {
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(max);
      const { bytesRead } = await fh.read(buf, 0, max, 0);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (NOT_A_FILE.has((e as NodeJS.ErrnoException).code ?? '')) return null;
    throw e;
  }
}

/** The host named by the directory's marker; null without a (valid) marker. */
export async function readOwner(dir: string): Promise<string | null> {
  const text = await readBounded(`${dir}/host`, 256);
  const host = text?.trim() ?? '';
  return HOSTNAME.test(host) ? host : null;
}

/** Writes `text` as a new 0644 file. */
async function writeNew(path: string, text: string): Promise<void> {
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.chmod(0o644);
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Makes the instance directory this host's (marker and image list inside) unless it is
 * there already; an existing one must be this host's.
 */
export async function createInstanceDir(
  paths: InstancePaths,
  host: string,
  imageIds: readonly string[],
): Promise<void> {
  if (await exists(paths.dir)) {
    const owner = await readOwner(paths.dir);
    if (owner !== host)
      throw new ForeignDirectoryError(
        `instance directory ${paths.dir} belongs to ${ownerText(owner)}`,
      );
    return;
  }
  const staging = paths.staging;
  await removeTree(staging);
  await mkdir(staging, { mode: 0o755 });
  await chmod(staging, 0o755); // libvirt's qemu user reads the files below, whatever the umask
  await writeNew(`${staging}/host`, `${host}\n`);
  await writeNew(`${staging}/images`, imageIds.map((id) => `${id}\n`).join(''));
  await rename(staging, paths.dir);
}

const ignoreMissing = (e: NodeJS.ErrnoException) => {
  if (e.code !== 'ENOENT') throw e;
};

/**
 * Removes a directory tree, its entry `last` (the owner marker) after every other one, so
 * a removal cut short leaves a directory still marked as its host's. Unlike fs.rm, a file
 * that cannot be removed fails with its own error (EPERM of an immutable file, not a
 * misleading ENOTDIR), which the fault shows.
 */
async function removeTree(path: string, last?: string): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  const ordered = [
    ...entries.filter((e) => e.name !== last),
    ...entries.filter((e) => e.name === last),
  ];
  for (const entry of ordered) {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory()) await removeTree(child);
    else await unlink(child).catch(ignoreMissing);
  }
  await rmdir(path).catch(ignoreMissing);
}

/** Removes this host's staging directory, and the instance directory if it is this host's. */
export async function removeInstanceDir(paths: InstancePaths, host: string): Promise<void> {
  await removeTree(paths.staging);
  if ((await readOwner(paths.dir)) === host) await removeTree(paths.dir, 'host');
}

const STAGING = /^\.([0-9a-f-]{36})\.part-([0-9a-f]{16})$/;

/** Ids of the instance directories (and staging directories) of `host` under `instancesPath`. */
export async function ownInstanceIds(instancesPath: string, host: string): Promise<string[]> {
  const names = await readdir(instancesPath).catch(() => [] as string[]);
  const tag = hostTag(host);
  const ids: string[] = [];
  for (const name of names) {
    const staged = STAGING.exec(name);
    if (staged && staged[2] === tag && UUID.test(staged[1] as string))
      ids.push(staged[1] as string);
    else if (UUID.test(name) && (await readOwner(`${instancesPath}/${name}`)) === host)
      ids.push(name);
  }
  return [...new Set(ids)];
}

/**
 * Image ids named by the image list of every instance directory under `instancesPath`,
 * whichever host owns it: on shared storage the image cache is shared too.
 */
export async function referencedImages(instancesPath: string): Promise<Set<string>> {
  const names = await readdir(instancesPath).catch(() => [] as string[]);
  const ids = new Set<string>();
  for (const name of names) {
    if (!UUID.test(name)) continue;
    const text = await readBounded(`${instancesPath}/${name}/images`, 4096);
    for (const line of text?.split('\n') ?? []) if (UUID.test(line.trim())) ids.add(line.trim());
  }
  return ids;
}
