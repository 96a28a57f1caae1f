/**
 * Wiping a file volume before it is removed ([volume] volume_clear = zero).
 *
 * Invariant: data is overwritten in place: zeros are written over every 4 KiB block that
 * holds a non-zero byte, then the file is fsynced. Punching holes (`fallocate
 * --punch-hole`) would only free the blocks, leaving the old bytes on the disk for the next
 * file that gets them. To be fast on sparse images only the extents `filefrag` (FIEMAP)
 * reports as allocated are read (Node has no lseek(SEEK_DATA)); reading holes instead
 * costs ~3 s per GiB here, as the kernel fills the page cache with zero pages. Where the
 * filesystem has no FIEMAP (tmpfs) the whole image is read.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { CommandError, type CommandRunner } from '../../core/exec.ts';
import { checkPath, errno, VolumeFileError } from './volume-file.ts';

const CHUNK = 4 * 1024 * 1024;
/** The filesystem block: what zeroing overwrites as a unit, so holes stay holes. */
const BLOCK = 4096;

/** [start, end) runs of BLOCK-sized blocks of `buf[0, n)` that are not all zeros. Pure. */
export function nonZeroRuns(buf: Buffer, n: number): [number, number][] {
  const zero = Buffer.alloc(BLOCK);
  const runs: [number, number][] = [];
  for (let at = 0; at < n; at += BLOCK) {
    const end = Math.min(at + BLOCK, n);
    if (zero.subarray(0, end - at).equals(buf.subarray(at, end))) continue;
    const last = runs.at(-1);
    if (last && last[1] === at) last[1] = end;
    else runs.push([at, end]);
  }
  return runs;
}

/** The logical byte ranges `filefrag` (FIEMAP) reports as allocated. Pure. */
export function parseFilefrag(stdout: string): [number, number][] | null {
  const ranges: [number, number][] = [];
  for (const m of stdout.matchAll(/^\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm))
    ranges.push([Number(m[1]) * BLOCK, (Number(m[2]) + 1) * BLOCK]);
  return /\d+ extents? found/.test(stdout) ? ranges : null;
}

/** Where the image holds data; null when the filesystem can't say (tmpfs: no FIEMAP). */
async function dataRanges(runner: CommandRunner, path: string): Promise<[number, number][] | null> {
  const argv = ['filefrag', '-s', '-e', `-b${BLOCK}`, '--', path];
  try {
    return parseFilefrag((await runner.run({ argv, timeoutMs: 600_000 })).stdout);
  } catch (e) {
    if (e instanceof CommandError) return null;
    throw e;
  }
}

async function zeroRange(fh: FileHandle, from: number, to: number): Promise<number> {
  const buf = Buffer.alloc(CHUNK);
  const zeros = Buffer.alloc(CHUNK);
  let zeroed = 0;
  for (let offset = from; offset < to; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, to - offset), offset);
    if (bytesRead === 0) break;
    if (!zeros.subarray(0, bytesRead).equals(buf.subarray(0, bytesRead)))
      for (const [start, end] of nonZeroRuns(buf, bytesRead)) {
        await fh.write(zeros, 0, end - start, offset + start);
        zeroed += end - start;
      }
    offset += bytesRead;
  }
  return zeroed;
}

/** Overwrites every block holding a non-zero byte with zeros, in place (see the header). */
export async function zeroVolumeFile(
  runner: CommandRunner,
  path: string,
): Promise<{ scannedBytes: number; zeroedBytes: number }> {
  checkPath(path);
  const fh = await open(path, 'r+').catch((e: unknown) => {
    if (errno(e) === 'ENOENT') throw new VolumeFileError('not-found', `${path} does not exist`, e);
    throw e;
  });
  try {
    const size = (await fh.stat()).size;
    const ranges = (await dataRanges(runner, path)) ?? [[0, size]];
    let scannedBytes = 0;
    let zeroedBytes = 0;
    for (const [from, to] of ranges) {
      const end = Math.min(to, size);
      if (end <= from) continue;
      zeroedBytes += await zeroRange(fh, from, end);
      scannedBytes += end - from;
    }
    await fh.sync();
    return { scannedBytes, zeroedBytes };
  } finally {
    await fh.close();
  }
}
