/**
 * planVolumePlacement, the volume scheduler's pure choice: alive, admin-up agents of the
 * volume's backend (and zone, when asked) whose free room (reported free capacity less
 * what was placed on them since) holds the volume; the most room wins, ties by host name;
 * none → an error naming why each agent could not take it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planVolumePlacement, type VolumeCandidate } from '../../api/scheduler/volume.ts';

const agent = (host: string, o: Partial<VolumeCandidate> = {}): VolumeCandidate => ({
  host,
  alive: true,
  adminUp: true,
  zone: 'nova',
  backend: 'file',
  freeGb: 10,
  pendingGb: 0,
  ...o,
});
const want = { sizeGb: 5, backend: 'file' as const };

test('the most free room wins, pending volumes counted, ties by host name', () => {
  assert.deepEqual(
    planVolumePlacement([agent('b', { freeGb: 20 }), agent('a', { freeGb: 30 })], want),
    {
      host: 'a',
    },
  );
  assert.deepEqual(
    planVolumePlacement(
      [agent('b', { freeGb: 20 }), agent('a', { freeGb: 30, pendingGb: 15 })],
      want,
    ),
    { host: 'b' },
  );
  assert.deepEqual(planVolumePlacement([agent('b'), agent('a')], want), { host: 'a' });
  assert.deepEqual(
    planVolumePlacement([agent('a', { freeGb: 5 })], want),
    { host: 'a' },
    'exact fit',
  );
});

test('dead, admin-down, other backend, other zone, no capacity, too small: none', () => {
  const all = [
    agent('a', { alive: false }),
    agent('b', { adminUp: false }),
    agent('c', { backend: 'lvm' }),
    agent('d', { zone: 'az2' }),
    agent('e', { freeGb: undefined }),
    agent('f', { freeGb: 8, pendingGb: 4 }),
  ];
  const r = planVolumePlacement(all, { ...want, availabilityZone: 'nova' });
  assert.ok('error' in r);
  assert.match(r.error, /^No valid backend was found\. /);
  for (const why of [
    'a: volume agent is not alive',
    'b: volume agent is administratively down',
    'c: backend lvm',
    'd: availability zone az2',
    'e: no free capacity reported',
    'f: 4 GiB free < 5',
  ])
    assert.ok(r.error.includes(why), `${why} in ${r.error}`);
  assert.deepEqual(
    planVolumePlacement([agent('d', { zone: 'az2' })], want),
    { host: 'd' },
    'no zone asked',
  );
  assert.deepEqual(planVolumePlacement([], want), {
    error: 'No valid backend was found. no volume agent is registered',
  });
});
