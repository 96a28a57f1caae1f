/**
 * The instance directory `<instances_path>/<uuid>/` and which host owns it.
 * `instances_path` may be shared between hosts (NFS, as Nova deployments do), so a
 * directory is this host's only when its owner marker `<dir>/host` names `[DEFAULT] host`
 * (agents/lib/ownership.ts: bounded, validated reads; marker-last removal).
 *
 * Invariants:
 * - a `<uuid>` directory comes into being whole: it is built under this host's staging
 *   name (`.<uuid>.part-<host tag>`) with its marker and its image list (`<dir>/images`)
 *   inside, then renamed into place; so a directory without a marker was not made by a
 *   Kumo agent, and no agent enumerates, writes into or removes it;
 * - an agent enumerates and removes only directories whose marker names its host, and
 *   its own staging directories (what a crash mid-build left);
 * - image lists are read bounded and validated: only uuids are taken from them.
 */
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { PermanentError } from '../../contracts/errors.ts';
import { UUID } from '../../contracts/schema.ts';
import {
  entriesOf,
  listOwned,
  type Marker,
  readBounded,
  readOwner as readMarker,
  removeOwned,
  removeTree,
  writeMarker,
  writeNew,
} from '../lib/ownership.ts';
import { hostTag, type InstancePaths, ownerText } from './desired.ts';

/** The directory exists and is not this host's: nothing may be written into it. */
export class ForeignDirectoryError extends PermanentError {
  constructor(message: string) {
    super(message);
    this.name = 'ForeignDirectoryError';
  }
}

export const OWNER_MARKER: Marker = { file: 'host' };

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** The host named by the directory's marker; null without a (valid) marker. */
export const readOwner = (dir: string) => readMarker(dir, OWNER_MARKER);

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
  await writeMarker(staging, host, OWNER_MARKER);
  await writeNew(`${staging}/images`, imageIds.map((id) => `${id}\n`).join(''));
  await rename(staging, paths.dir);
}

/**
 * A rebuild's reset: the disk, kernel, ramdisk and config drive are removed and the
 * image list names the new images (written aside and renamed: whole or not at all), so
 * the files are made again from the new image and the cache keeps what they use. Only in
 * this host's directory; nothing to do when there is none yet.
 */
export async function resetInstanceFiles(
  paths: InstancePaths,
  host: string,
  imageIds: readonly string[],
): Promise<void> {
  if (!(await exists(paths.dir))) return;
  const owner = await readOwner(paths.dir);
  if (owner !== host)
    throw new ForeignDirectoryError(
      `instance directory ${paths.dir} belongs to ${ownerText(owner)}`,
    );
  for (const file of [paths.disk, paths.kernel, paths.ramdisk, paths.configDrive])
    await rm(file, { force: true });
  const part = `${paths.images}.part`;
  await rm(part, { force: true });
  await writeNew(part, imageIds.map((id) => `${id}\n`).join(''));
  await rename(part, paths.images);
}

/** Removes this host's staging directory, and the instance directory if it is this host's. */
export async function removeInstanceDir(paths: InstancePaths, host: string): Promise<void> {
  await removeTree(paths.staging);
  await removeOwned(paths.dir, host, OWNER_MARKER);
}

const STAGING = /^\.([0-9a-f-]{36})\.part-([0-9a-f]{16})$/;

/** Ids of the instance directories (and staging directories) of `host` under `instancesPath`. */
export async function ownInstanceIds(instancesPath: string, host: string): Promise<string[]> {
  const tag = hostTag(host);
  const staged = (await entriesOf(instancesPath)).flatMap((name) => {
    const m = STAGING.exec(name);
    return m && m[2] === tag && UUID.test(m[1] as string) ? [m[1] as string] : [];
  });
  const owned = await listOwned(instancesPath, {
    idPattern: UUID,
    marker: OWNER_MARKER,
    owner: host,
  });
  return [...new Set([...staged, ...owned])];
}

/**
 * Image ids named by the image list of every instance directory under `instancesPath`,
 * whichever host owns it: on shared storage the image cache is shared too.
 */
export async function referencedImages(instancesPath: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const name of await listOwned(instancesPath, { idPattern: UUID })) {
    const text = await readBounded(`${instancesPath}/${name}/images`, 4096);
    for (const line of text?.split('\n') ?? []) if (UUID.test(line.trim())) ids.add(line.trim());
  }
  return ids;
}
