/**
 * Files an agent owns on disk, replaced atomically.
 *
 * Invariant: a file is replaced by writing a temporary file in the same directory,
 * fsync, rename over it, fsync the directory: a reader (dnsmasq on SIGHUP, haproxy on
 * reload, an agent after a crash) sees the old or the new content, never a torn one.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Replaces `path` with `content` atomically; a no-op returning false when it is equal. */
export async function writeFileAtomic(
  path: string,
  content: string,
  mode = 0o644,
): Promise<boolean> {
  const current = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (current === content) return false;
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(content, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirname(path));
  return true;
}

/** Makes a rename, link, create or unlink in `dir` durable (fsync of the directory). */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
