/**
 * Ownership of state directories an agent keeps under a root it may share with others
 * (instances_path on NFS, a state_path several agents use): a directory is an owner's
 * when its marker file names it, and an agent lists, writes into and removes only its own.
 *
 * Invariants:
 * - markers (and any other small file read here) are read bounded and validated against
 *   a pattern: a shared directory's content is never trusted as a name or a path;
 * - only entries whose name matches the caller's id pattern are ever listed, so a root's
 *   other content (caches, staging names, garbage) is never taken for a resource;
 * - a marked tree is removed marker-last: a removal cut short leaves a directory still
 *   marked as its owner's, which the next removal finishes; a file that cannot be removed
 *   fails with its own error (EPERM of an immutable file), not a misleading ENOTDIR;
 * - the marker is optional: without one, every entry matching the id pattern is listed
 *   (an agent alone with its root, as the DHCP agent's state directories).
 */
import { open, readdir, rmdir, unlink } from 'node:fs/promises';
import { HOSTNAME } from '../../contracts/schema.ts';

/** A marker file naming the owner, and the pattern an owner name must match. */
export interface Marker {
  /** The marker's file name inside each directory (e.g. `host`). */
  file: string;
  /** Default: a host name (contracts/schema HOSTNAME). */
  pattern?: RegExp;
}

const MARKER_MAX = 256;
const NOT_A_FILE = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/** At most `max` bytes of `path` as text; null when it is not a readable file. */
export async function readBounded(path: string, max: number): Promise<string | null> {
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

/** The owner `dir`'s marker names; null without a (valid) marker. */
export async function readOwner(dir: string, marker: Marker): Promise<string | null> {
  const text = await readBounded(`${dir}/${marker.file}`, MARKER_MAX);
  const owner = text?.trim() ?? '';
  return (marker.pattern ?? HOSTNAME).test(owner) ? owner : null;
}

/** Writes `text` as a new 0644 file (fails if it exists), synced. */
export async function writeNew(path: string, text: string): Promise<void> {
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.chmod(0o644);
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes the marker naming `owner` into `dir` (a new file). */
export async function writeMarker(dir: string, owner: string, marker: Marker): Promise<void> {
  if (!(marker.pattern ?? HOSTNAME).test(owner))
    throw new Error(`invalid owner ${JSON.stringify(owner)} for a ${marker.file} marker`);
  return writeNew(`${dir}/${marker.file}`, `${owner}\n`);
}

/** Entry names of `root` (none when it does not exist). */
export async function entriesOf(root: string): Promise<string[]> {
  return readdir(root).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return [] as string[];
    throw e;
  });
}

/**
 * Names under `root` matching `idPattern` and, with a marker, whose marker names `owner`.
 */
export async function listOwned(
  root: string,
  opts: { idPattern: RegExp; marker?: Marker; owner?: string },
): Promise<string[]> {
  const ids: string[] = [];
  for (const name of await entriesOf(root)) {
    if (!opts.idPattern.test(name)) continue;
    if (opts.marker && (await readOwner(`${root}/${name}`, opts.marker)) !== opts.owner) continue;
    ids.push(name);
  }
  return ids;
}

const ignoreMissing = (e: NodeJS.ErrnoException) => {
  if (e.code !== 'ENOENT') throw e;
};

/** Removes a directory tree (absent: nothing), its entry `last` after every other one. */
export async function removeTree(path: string, last?: string): Promise<void> {
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

/** Removes `dir` (marker last) when its marker names `owner`; true when it did. */
export async function removeOwned(dir: string, owner: string, marker: Marker): Promise<boolean> {
  if ((await readOwner(dir, marker)) !== owner) return false;
  await removeTree(dir, marker.file);
  return true;
}
