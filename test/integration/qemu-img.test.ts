/**
 * host/qemu/img against the real qemu-img: info of raw and qcow2 images, overlays on both
 * (their header names the base, their size is the base's or bigger, never smaller, and an
 * existing file is never overwritten), and the headers an image cache must refuse: a
 * backing file and an external data file.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import { createOverlay, imgInfo, parseImageInfo } from '../../host/qemu/img.ts';
import { tempDir } from '../helpers/env.ts';

const MiB = 1024 * 1024;
const runner = createCommandRunner();
const qemuImg = (...args: string[]) => runner.run({ argv: ['qemu-img', ...args] });

describe('qemu-img', () => {
  const dir = tempDir('kumo-qemu-img-');
  const at = (name: string) => join(dir.path, name);
  after(() => dir.cleanup());

  test('info of a raw image', async () => {
    writeFileSync(at('disk.raw'), Buffer.alloc(3 * MiB, 7));
    assert.deepEqual(await imgInfo(runner, at('disk.raw')), {
      format: 'raw',
      virtualSize: 3 * MiB,
      backingFile: null,
      dataFile: null,
    });
  });

  test('info of a qcow2 image', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', at('disk.qcow2'), String(8 * MiB));
    assert.deepEqual(await imgInfo(runner, at('disk.qcow2')), {
      format: 'qcow2',
      virtualSize: 8 * MiB,
      backingFile: null,
      dataFile: null,
    });
  });

  test('an overlay on a qcow2 base names it and has its size', async () => {
    await createOverlay(runner, {
      base: at('disk.qcow2'),
      baseFormat: 'qcow2',
      path: at('overlay.qcow2'),
    });
    assert.deepEqual(await imgInfo(runner, at('overlay.qcow2')), {
      format: 'qcow2',
      virtualSize: 8 * MiB,
      backingFile: at('disk.qcow2'),
      dataFile: null,
    });
  });

  test('an overlay on a raw base can be bigger', async () => {
    await createOverlay(runner, {
      base: at('disk.raw'),
      baseFormat: 'raw',
      path: at('big.qcow2'),
      sizeBytes: 16 * MiB,
    });
    const info = await imgInfo(runner, at('big.qcow2'));
    assert.equal(info.virtualSize, 16 * MiB);
    assert.equal(info.backingFile, at('disk.raw'));
    const chain = await qemuImg('info', '--output=json', '--backing-chain', at('big.qcow2'));
    const formats = (JSON.parse(chain.stdout) as { format: string }[]).map((i) => i.format);
    assert.deepEqual(formats, ['qcow2', 'raw']);
  });

  test('an overlay smaller than its base is refused and not created', async () => {
    await assert.rejects(
      createOverlay(runner, {
        base: at('disk.qcow2'),
        baseFormat: 'qcow2',
        path: at('small.qcow2'),
        sizeBytes: 4 * MiB,
      }),
      /of 4194304 bytes would be smaller than its base .*\(8388608 bytes\)/,
    );
    await assert.rejects(imgInfo(runner, at('small.qcow2')), CommandError);
  });

  test('an existing file is never overwritten by an overlay', async () => {
    writeFileSync(at('data.img'), 'guest data');
    await assert.rejects(
      createOverlay(runner, { base: at('disk.raw'), baseFormat: 'raw', path: at('data.img') }),
      /already exists; it is never overwritten/,
    );
    assert.equal(readFileSync(at('data.img'), 'utf8'), 'guest data');
  });

  test('a qcow2 whose header names a backing file is detected', async () => {
    const argv = ['create', '-q', '-f', 'qcow2', '-u', '-F', 'raw', '-b', '/etc/hostname'];
    await qemuImg(...argv, at('backed.qcow2'), String(MiB));
    const info = await imgInfo(runner, at('backed.qcow2'));
    assert.equal(info.backingFile, '/etc/hostname');
    assert.equal(info.dataFile, null);
  });

  test('a qcow2 with an external data file is detected', async () => {
    const opt = `data_file=${at('external.data')}`;
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', opt, at('split.qcow2'), String(MiB));
    const info = await imgInfo(runner, at('split.qcow2'));
    assert.deepEqual(info, {
      format: 'qcow2',
      virtualSize: MiB,
      backingFile: null,
      dataFile: at('external.data'),
    });
  });

  test('paths must be absolute; a missing file is a CommandError', async () => {
    await assert.rejects(imgInfo(runner, 'disk.raw'), /must be an absolute path/);
    await assert.rejects(imgInfo(runner, 'json:{}'), /must be an absolute path/);
    await assert.rejects(
      createOverlay(runner, { base: 'disk.raw', baseFormat: 'raw', path: at('x.qcow2') }),
      /the base image must be an absolute path/,
    );
    await assert.rejects(imgInfo(runner, at('absent')), (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.match(e.stderr, /No such file/);
      return true;
    });
  });

  test('output that is not a valid info is refused', () => {
    assert.throws(() => parseImageInfo('/x', 'nope'), /output is not JSON/);
    assert.throws(() => parseImageInfo('/x', '[]'), /not a JSON object/);
    assert.throws(() => parseImageInfo('/x', '{"virtual-size":1}'), /"format" is missing/);
    assert.throws(
      () => parseImageInfo('/x', '{"format":"raw","virtual-size":-1}'),
      /"virtual-size" is missing or invalid/,
    );
    assert.throws(
      () => parseImageInfo('/x', '{"format":"raw","virtual-size":1,"backing-filename":3}'),
      /"backing-filename" is not a string/,
    );
  });
});
