/**
 * host/fs/volume-file's pure parts: which blocks zeroing overwrites, and how `filefrag`'s
 * extent list is read. The I/O is proven on real files in test/integration/volume-file.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { nonZeroRuns, parseFilefrag } from '../../host/fs/volume-zero.ts';

describe('nonZeroRuns', () => {
  test('adjacent non-zero blocks make one run; zero blocks are skipped', () => {
    const buf = Buffer.alloc(6 * 4096);
    buf[10] = 1;
    buf[4096 + 4095] = 1;
    buf[4 * 4096] = 1;
    assert.deepEqual(nonZeroRuns(buf, buf.length), [
      [0, 2 * 4096],
      [4 * 4096, 5 * 4096],
    ]);
  });

  test('a short tail is its own block, and bytes past n are ignored', () => {
    const buf = Buffer.alloc(3 * 4096, 1);
    assert.deepEqual(nonZeroRuns(buf, 5000), [[0, 5000]]);
    assert.deepEqual(nonZeroRuns(Buffer.alloc(4096), 4096), []);
  });
});

describe('parseFilefrag', () => {
  test('logical extents in bytes, unwritten ones included', () => {
    const out = [
      'Filesystem type is: ef53',
      'File size of /x is 1073741824 (262144 blocks of 4096 bytes)',
      ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
      '   0:        0..       0:    6025216..   6025216:      1:            ',
      '   1:   131072..  131072:    6027264..   6027264:      1:    6156288:',
      '   2:   179200..  179201:    5997638..   5997639:      2:    6075392: last,unwritten',
      '/x: 3 extents found',
    ].join('\n');
    assert.deepEqual(parseFilefrag(out), [
      [0, 4096],
      [131072 * 4096, 131073 * 4096],
      [179200 * 4096, 179202 * 4096],
    ]);
  });

  test('a fully sparse file has no extents; output without the summary is unknown', () => {
    assert.deepEqual(parseFilefrag('/x: 0 extents found\n'), []);
    assert.equal(parseFilefrag('/x: FIBMAP/FIEMAP unsupported\n'), null);
  });
});
