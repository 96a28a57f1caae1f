/**
 * agents/lib/ownership.ts on a temporary directory: markers read bounded and validated,
 * listing by id pattern with and without a marker, removal marker-last and only of the
 * owner's directory.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  listOwned,
  readOwner,
  removeOwned,
  removeTree,
  writeMarker,
} from '../../agents/lib/ownership.ts';

const MARKER = { file: 'host' };
const ID = /^[0-9a-f]{8}$/;

test('markers, listing with and without a marker, marker-last removal', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kumo-ownership-'));
  try {
    for (const d of ['aaaaaaaa', 'bbbbbbbb', 'cccccccc', 'dddddddd', 'not-an-id'])
      mkdirSync(join(root, d));
    await writeMarker(join(root, 'aaaaaaaa'), 'h1', MARKER);
    await writeMarker(join(root, 'bbbbbbbb'), 'h2', MARKER);
    writeFileSync(join(root, 'cccccccc', 'host'), 'bad name\nwith lines');
    writeFileSync(join(root, 'dddddddd', 'host'), `${'x'.repeat(300)}\n`);
    await assert.rejects(writeMarker(join(root, 'not-an-id'), '../evil', MARKER));
    assert.equal(await readOwner(join(root, 'aaaaaaaa'), MARKER), 'h1');
    assert.equal(await readOwner(join(root, 'cccccccc'), MARKER), null, 'invalid name');
    assert.equal(await readOwner(join(root, 'dddddddd'), MARKER), null, 'bounded read');
    assert.equal(await readOwner(join(root, 'missing'), MARKER), null);
    const owned = (owner: string) => listOwned(root, { idPattern: ID, marker: MARKER, owner });
    assert.deepEqual(await owned('h1'), ['aaaaaaaa']);
    assert.deepEqual((await listOwned(root, { idPattern: ID })).sort(), [
      'aaaaaaaa',
      'bbbbbbbb',
      'cccccccc',
      'dddddddd',
    ]);
    assert.deepEqual(await listOwned(join(root, 'missing'), { idPattern: ID }), []);
    assert.equal(await removeOwned(join(root, 'bbbbbbbb'), 'h1', MARKER), false);
    assert.ok(existsSync(join(root, 'bbbbbbbb', 'host')), "another owner's: left");
    mkdirSync(join(root, 'aaaaaaaa', 'sub'));
    writeFileSync(join(root, 'aaaaaaaa', 'sub', 'f'), 'x');
    assert.equal(await removeOwned(join(root, 'aaaaaaaa'), 'h1', MARKER), true);
    assert.ok(!existsSync(join(root, 'aaaaaaaa')));
    await removeTree(join(root, 'missing'));
    assert.deepEqual(readdirSync(root).sort(), ['bbbbbbbb', 'cccccccc', 'dddddddd', 'not-an-id']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a removal cut short (an immutable file) fails with EPERM and leaves the marker', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kumo-ownership-'));
  const stuck = join(root, 'aaaaaaaa', 'stuck');
  try {
    const dir = join(root, 'aaaaaaaa');
    mkdirSync(dir);
    await writeMarker(dir, 'h1', MARKER);
    writeFileSync(stuck, 'x');
    execFileSync('chattr', ['+i', stuck]);
    await assert.rejects(removeOwned(dir, 'h1', MARKER), /EPERM|not permitted/);
    assert.equal(await readOwner(dir, MARKER), 'h1', 'still marked: the next removal finishes');
    execFileSync('chattr', ['-i', stuck]);
    assert.equal(await removeOwned(dir, 'h1', MARKER), true);
    assert.ok(!existsSync(dir));
  } finally {
    if (existsSync(stuck)) execFileSync('chattr', ['-i', stuck]);
    rmSync(root, { recursive: true, force: true });
  }
});
