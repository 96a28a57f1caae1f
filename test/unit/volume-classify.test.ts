/**
 * How the volume agent classifies a failure (agents/volume/kinds.ts classifyVolume), pure:
 * a backend refusal no retry can mend (LVM's or the file backend's insufficient space,
 * a shrink, no device-mapper, an invalid name) is permanent with its message kept; an LVM
 * or file failure of another kind, and a failed command, keep their class (reported and
 * retried); a value that failed validation is permanent, as for every agent; no tgtd
 * answering (tgtadm's exit 107, as a restart shows it) is transient: no ERROR for it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyVolume } from '../../agents/volume/kinds.ts';
import { PermanentError, TransientError } from '../../contracts/errors.ts';
import { ValidationError } from '../../contracts/schema.ts';
import { CommandError } from '../../core/exec.ts';
import { VolumeFileError } from '../../host/fs/volume-file.ts';
import { LvmError } from '../../host/lvm/context.ts';

test('backend refusals are permanent, with their words', () => {
  for (const e of [
    new LvmError(
      'insufficient-space',
      'lvcreate volume-x: Volume group "vg" has insufficient free space',
    ),
    new LvmError(
      'activation-required',
      "lvcreate: Can't create snapshot without using device-mapper",
    ),
    new VolumeFileError('shrink', 'won’t shrink'),
    new LvmError('in-use', 'volume-x has snapshots (_snapshot-y): remove them first'),
  ]) {
    const c = classifyVolume(e);
    assert.ok(c instanceof PermanentError, e.message);
    assert.equal(c.message, e.message);
  }
  assert.ok(
    classifyVolume(new ValidationError('tid', 'must be an integer')) instanceof PermanentError,
  );
});

test('other failures keep their class (reported and retried)', () => {
  const failed = new LvmError('failed', 'lvs: something odd');
  assert.equal(classifyVolume(failed), failed);
  const missing = new VolumeFileError('not-found', 'no such source');
  assert.equal(classifyVolume(missing), missing);
  const cmd = new CommandError(
    { argv: ['tgtadm'] },
    { exitCode: 22, signal: null, stderr: 'x', timedOut: false },
  );
  assert.equal(classifyVolume(cmd), cmd);
});

test('no tgtd answering is transient: retried, no ERROR reported', () => {
  const down = new CommandError(
    { argv: ['tgtadm', '-C', '23456', '--lld', 'iscsi', '--mode', 'target', '--op', 'show'] },
    {
      exitCode: 107,
      signal: null,
      stderr:
        'tgtadm: failed to send request hdr to tgt daemon, Transport endpoint is not connected\n',
      timedOut: false,
    },
  );
  const c = classifyVolume(down);
  assert.ok(c instanceof TransientError, c.message);
  assert.match(c.message, /tgtd is not answering/);
});
