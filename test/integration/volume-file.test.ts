/**
 * host/fs/volume-file on the real filesystem with the real `cp` and `du`: images are
 * sparse when made, copies keep the data and stay sparse, zeroing wipes data in place,
 * sizes only grow and never past the free space, and refusals leave nothing behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MAX_VOLUME_GB } from '../../contracts/volume.ts';
import { createCommandRunner } from '../../core/exec.ts';
import {
  copyVolumeFile,
  createVolumeFile,
  extendVolumeFile,
  listVolumeFiles,
  removeStaleTemps,
  removeVolumeFile,
  VolumeFileError,
  volumeFilePath,
  volumesCapacity,
} from '../../host/fs/volume-file.ts';
import { zeroVolumeFile } from '../../host/fs/volume-zero.ts';
import { tempDir } from '../helpers/env.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const runner = createCommandRunner();
const PATTERN = Buffer.from('kumo volume pattern '.repeat(200));

const du = (path: string) =>
  Number(execFileSync('du', ['-B1', path], { encoding: 'utf8' }).split('\t')[0]);

function writeAt(path: string, offset: number, data: Buffer) {
  const fd = openSync(path, 'r+');
  writeSync(fd, data, 0, data.length, offset);
  closeSync(fd);
}
function readAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(length);
  readSync(fd, buf, 0, length, offset);
  closeSync(fd);
  return buf;
}

function isFileError(kind: VolumeFileError['kind'], message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof VolumeFileError, `a VolumeFileError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

describe('file volumes', () => {
  const dir = tempDir('kumo-volume-file-');
  after(() => dir.cleanup());
  const volume = volumeFilePath(dir.path, `volume-${randomUUID()}`);
  const snapshot = volumeFilePath(dir.path, `snapshot-${randomUUID()}`);
  const names = () => readdirSync(dir.path).sort();

  test('create makes a sparse image of the size, exclusively', async () => {
    await createVolumeFile(volume, 1);
    assert.equal(statSync(volume).size, GiB);
    assert.ok(du(volume) < MiB, `du shows ~0, got ${du(volume)}`);
    assert.equal(statSync(volume).mode & 0o777, 0o600);
    writeAt(volume, 0, PATTERN);
    await assert.rejects(createVolumeFile(volume, 1), isFileError('exists'));
    assert.deepEqual(readAt(volume, 0, PATTERN.length), PATTERN, 'the existing image is untouched');
  });

  test('more than the free space is refused up front, and nothing is left', async () => {
    const big = volumeFilePath(dir.path, `volume-${randomUUID()}`);
    await assert.rejects(
      createVolumeFile(big, MAX_VOLUME_GB),
      isFileError('insufficient-space', /insufficient free space/),
    );
    assert.deepEqual(names(), [volume.slice(dir.path.length + 1)]);
    await assert.rejects(
      extendVolumeFile(volume, MAX_VOLUME_GB),
      isFileError('insufficient-space'),
    );
    assert.equal(statSync(volume).size, GiB);
  });

  test('bad paths and sizes are refused before any I/O', async () => {
    const id = randomUUID();
    const bad: [() => Promise<unknown>, string][] = [
      [() => createVolumeFile(`volume-${id}`, 1), 'relative'],
      [() => createVolumeFile(join(dir.path, `volume-${id}\n`), 1), 'newline'],
      [() => createVolumeFile(join(dir.path, 'volume-x'), 1), 'not a uuid'],
      [() => createVolumeFile(join(dir.path, `.volume-${id}`), 1), 'hidden'],
      [() => createVolumeFile(join(dir.path, `volume-${id}`), 0), 'zero'],
      [() => createVolumeFile(join(dir.path, `volume-${id}`), -1), 'negative'],
      [() => createVolumeFile(join(dir.path, `volume-${id}`), 1.5), 'fractional'],
      [() => createVolumeFile(join(dir.path, `volume-${id}`), MAX_VOLUME_GB + 1), 'huge'],
      [() => copyVolumeFile(runner, volume, join(dir.path, 'copy')), 'copy to a bad name'],
      [() => removeVolumeFile(join(dir.path, '..', 'etc')), 'remove outside'],
      [() => zeroVolumeFile(runner, '/etc/passwd'), 'zero a non-volume'],
    ];
    for (const [call, why] of bad) await assert.rejects(call(), isFileError('invalid'), why);
    assert.throws(() => volumeFilePath(dir.path, '../volume-x'), isFileError('invalid'));
    assert.deepEqual(names(), [volume.slice(dir.path.length + 1)]);
  });

  test('copy keeps the data, stays sparse, and never replaces an image', async () => {
    writeAt(volume, 512 * MiB, PATTERN);
    await copyVolumeFile(runner, volume, snapshot);
    assert.equal(statSync(snapshot).size, GiB);
    assert.deepEqual(readAt(snapshot, 0, PATTERN.length), PATTERN);
    assert.deepEqual(readAt(snapshot, 512 * MiB, PATTERN.length), PATTERN);
    assert.ok(du(snapshot) < 4 * MiB, `the copy is sparse: du ${du(snapshot)}`);
    await assert.rejects(copyVolumeFile(runner, volume, snapshot), isFileError('exists'));
    const missing = volumeFilePath(dir.path, `volume-${randomUUID()}`);
    const dst = volumeFilePath(dir.path, `volume-${randomUUID()}`);
    await assert.rejects(copyVolumeFile(runner, missing, dst), isFileError('not-found'));
    assert.equal(names().length, 2, `no copy and no temporary file left: ${names()}`);
  });

  test('zero overwrites the data in place and keeps the size', async () => {
    const before = statSync(snapshot).blocks;
    const { scannedBytes, zeroedBytes } = await zeroVolumeFile(runner, snapshot);
    assert.ok(
      scannedBytes >= 2 * 4096 && scannedBytes < MiB,
      `read allocated extents only: ${scannedBytes}`,
    );
    assert.equal(zeroedBytes, 2 * 4096, 'two 4 KiB blocks held data');
    assert.equal(statSync(snapshot).size, GiB);
    assert.ok(readAt(snapshot, 0, PATTERN.length).equals(Buffer.alloc(PATTERN.length)));
    assert.ok(readAt(snapshot, 512 * MiB, PATTERN.length).equals(Buffer.alloc(PATTERN.length)));
    assert.equal(statSync(snapshot).blocks, before, 'holes stayed holes');
    assert.deepEqual(
      readAt(volume, 512 * MiB, PATTERN.length),
      PATTERN,
      'the source kept its data',
    );
    assert.equal((await zeroVolumeFile(runner, snapshot)).zeroedBytes, 0);
  });

  test('zero reads the whole image where the filesystem has no FIEMAP (tmpfs)', async () => {
    const shm = mkdtempSync('/dev/shm/kumo-volume-');
    try {
      const image = volumeFilePath(shm, `volume-${randomUUID()}`);
      await createVolumeFile(image, 1);
      writeAt(image, GiB - PATTERN.length, PATTERN);
      assert.deepEqual(await zeroVolumeFile(runner, image), {
        scannedBytes: GiB,
        zeroedBytes: 4096,
      });
      assert.ok(
        readAt(image, GiB - PATTERN.length, PATTERN.length).equals(Buffer.alloc(PATTERN.length)),
      );
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });

  test('extend grows, keeps the data, and never shrinks', async () => {
    assert.equal(await extendVolumeFile(volume, 2), true);
    assert.equal(statSync(volume).size, 2 * GiB);
    assert.deepEqual(readAt(volume, 512 * MiB, PATTERN.length), PATTERN);
    assert.equal(await extendVolumeFile(volume, 2), false);
    await assert.rejects(extendVolumeFile(volume, 1), isFileError('shrink'));
    assert.equal(statSync(volume).size, 2 * GiB);
    const gone = volumeFilePath(dir.path, `volume-${randomUUID()}`);
    await assert.rejects(extendVolumeFile(gone, 2), isFileError('not-found'));
  });

  test('list names the images only; stale temporary copies are cleared', async () => {
    const id = randomUUID();
    writeFileSync(join(dir.path, 'notes.txt'), 'not a volume');
    writeFileSync(join(dir.path, `.volume-${id}.0123456789ab.tmp`), 'half a copy');
    const listed = await listVolumeFiles(dir.path);
    const rows = listed.map((f) => [f.kind, f.name, f.id, f.path, f.sizeBytes]).sort();
    const idOf = (p: string) => p.slice(p.lastIndexOf('/') + 1).replace(/^(volume|snapshot)-/, '');
    assert.deepEqual(rows, [
      ['snapshot', snapshot.slice(dir.path.length + 1), idOf(snapshot), snapshot, GiB],
      ['volume', volume.slice(dir.path.length + 1), idOf(volume), volume, 2 * GiB],
    ]);
    for (const f of listed) assert.equal(f.allocatedBytes, statSync(f.path).blocks * 512);
    assert.deepEqual(await removeStaleTemps(dir.path), [`.volume-${id}.0123456789ab.tmp`]);
    assert.ok(names().includes('notes.txt'), 'only our temporary names go');
    assert.deepEqual(await listVolumeFiles(join(dir.path, 'absent')), []);
  });

  test('capacity is the filesystem statfs reports, as df sees it', async () => {
    const cap = await volumesCapacity(dir.path);
    const df = execFileSync('df', ['-B1', '--output=size,avail', dir.path], { encoding: 'utf8' });
    const [size = Number.NaN, avail = Number.NaN] = (df.trim().split('\n')[1] ?? '')
      .trim()
      .split(/\s+/)
      .map(Number);
    assert.ok(Math.abs(cap.totalGb - size / GiB) < 0.02, `total ${cap.totalGb} vs df ${size}`);
    assert.ok(Math.abs(cap.freeGb - avail / GiB) < 0.5, `free ${cap.freeGb} vs df ${avail}`);
    assert.ok(cap.freeGb <= cap.totalGb);
  });

  test('remove deletes an image once', async () => {
    assert.equal(await removeVolumeFile(snapshot), true);
    assert.equal(await removeVolumeFile(snapshot), false);
    assert.deepEqual(
      (await listVolumeFiles(dir.path)).map((f) => f.path),
      [volume],
    );
  });
});
