/**
 * api/scheduler/periodic.ts, the DHCP and L3 sweeps' runner, with a real timer and a
 * logger writing to memory: a slow pass is never overlapped by the next tick, a failed
 * pass is logged and the next tick runs again, and stop() waits for the pass under way.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { startSweeper } from '../../api/scheduler/periodic.ts';

test('one pass at a time, failures logged and retried, stop() waits for the pass under way', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const log = pino({ level: 'info' }, sink);
  let active = 0;
  let most = 0;
  let passes = 0;
  let ended = 0;
  const pass = async () => {
    passes++;
    active++;
    most = Math.max(most, active);
    await sleep(60);
    active--;
    ended++;
    if (passes === 1) throw new Error('database away');
  };
  const sweeper = startSweeper(pass, 10, log, 'test sweep');
  await sleep(200);
  await sweeper.stop();
  const stoppedAt = ended;
  assert.equal(most, 1, 'never two passes at once');
  assert.ok(passes >= 2, `the tick after a failure runs again (${passes} passes)`);
  assert.equal(ended, passes, 'stop() returned after the pass under way ended');
  await sleep(50);
  assert.equal(ended, stoppedAt, 'nothing runs after stop()');
  const failed = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'test sweep failed');
  assert.deepEqual(
    failed.map((l) => l.err),
    ['database away'],
  );
});
