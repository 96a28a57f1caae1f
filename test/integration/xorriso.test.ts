/**
 * host/xorriso against the real xorriso/osirrox: an image built from a directory with
 * Nova's genisoimage options holds exactly the directory's files (Rock Ridge keeps their
 * lower-case, multi-dot names), each file reads back byte for byte, and its volume id is
 * `config-2`; bad paths, volume ids and publishers are refused before anything runs.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CommandError, createCommandRunner } from '../../core/exec.ts';
import {
  buildIso,
  isoVolumeId,
  listIsoFiles,
  mkisofsArgv,
  readIsoFile,
  unquoteName,
} from '../../host/xorriso/xorriso.ts';
import { tempDir } from '../helpers/env.ts';

const runner = createCommandRunner();

const FILES: Record<string, Buffer> = {
  'openstack/latest/meta_data.json': Buffer.from('{"uuid": "3f2a1b4c"}\n'),
  'openstack/2012-08-10/user_data': Buffer.from([0, 1, 2, 255, 10, 13, 0x27]),
  'openstack/latest/vendor_data.json': Buffer.from('{}'),
  'ec2/2009-04-04/meta-data.json': Buffer.from('{"instance-id": "i-0000002a"}'),
  'ec2/latest/user-data': Buffer.alloc(70_000, 0x61),
};

describe('xorriso', () => {
  const dir = tempDir('kumo-xorriso-');
  const src = join(dir.path, 'src');
  const iso = join(dir.path, 'disk.config');
  after(() => dir.cleanup());

  test('builds an image of the directory with volume id config-2', async () => {
    for (const [path, bytes] of Object.entries(FILES)) {
      mkdirSync(join(src, path, '..'), { recursive: true });
      writeFileSync(join(src, path), bytes);
    }
    await buildIso(runner, { sourceDir: src, output: iso, publisher: 'Kumo Compute 1.0' });
    assert.equal(await isoVolumeId(runner, iso), 'config-2');
    const want = Object.keys(FILES)
      .map((p) => `/${p}`)
      .sort();
    assert.deepEqual(await listIsoFiles(runner, iso), want);
  });

  test("reads a file's bytes back", async () => {
    for (const [path, bytes] of Object.entries(FILES))
      assert.deepEqual(await readIsoFile(runner, iso, `/${path}`), bytes, path);
  });

  test('a file the image lacks is a CommandError', async () => {
    await assert.rejects(readIsoFile(runner, iso, '/openstack/nothing'), CommandError);
  });

  test("argv is Nova's genisoimage call through xorriso's mkisofs emulation", () => {
    assert.deepEqual(mkisofsArgv({ sourceDir: '/s', output: '/o.iso', publisher: 'Kumo 1' }), [
      ...['xorriso', '-as', 'mkisofs', '-o', '/o.iso', '-ldots', '-allow-lowercase'],
      ...['-allow-multidot', '-l', '-publisher', 'Kumo 1', '-quiet', '-J', '-r'],
      ...['-V', 'config-2', '/s'],
    ]);
  });

  test('refuses relative paths, bad labels and publishers before running anything', () => {
    const ok = { sourceDir: '/s', output: '/o.iso', publisher: 'Kumo' };
    for (const bad of [
      { ...ok, output: '-o.iso' },
      { ...ok, sourceDir: 'src' },
      { ...ok, output: '/o\n-rm' },
      { ...ok, volumeId: 'config 2' },
      { ...ok, volumeId: 'x'.repeat(33) },
      { ...ok, publisher: `Kumo'"` },
    ])
      assert.throws(() => mkisofsArgv(bad), /xorriso: /);
  });

  test("unquotes xorriso's names and refuses anything else", () => {
    assert.equal(unquoteName(`'/a/b.json'`), '/a/b.json');
    assert.equal(unquoteName(`'/it'"'"'s'`), "/it's");
    assert.throws(() => unquoteName('/a/b'), /unexpected name/);
  });
});
