/**
 * The fence monitor's pure checks (test/helpers/fence-monitor.ts): which samples break the
 * fencing invariant given the exception window, that an unreadable host counts as live,
 * and the timeline's compression to changes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type FenceSample,
  fenceViolations,
  liveHosts,
  timeline,
} from '../helpers/fence-monitor.ts';

const sample = (t0: number, a: FenceSample['state'][string], b: FenceSample['state'][string]) =>
  ({ t0, t1: t0 + 20, state: { h1: a, h2: b }, why: {}, binding: 'h1' }) satisfies FenceSample;

describe('fence monitor checks', () => {
  const samples = [
    sample(0, 'live', 'dead'),
    sample(100, 'live', 'live'),
    sample(200, 'live', 'live'),
    sample(300, 'dead', 'live'),
    sample(400, 'error', 'live'),
  ];

  test('two live hosts outside the window are violations; inside (overlap counts) they are not', () => {
    assert.deepEqual(
      fenceViolations(samples, null).map((s) => s.t0),
      [100, 200, 400],
    );
    assert.deepEqual(
      fenceViolations(samples, { from: 110, to: 210 }).map((s) => s.t0),
      [400],
    );
    assert.deepEqual(
      fenceViolations(samples, { from: 121, to: 199 }).map((s) => s.t0),
      [100, 200, 400],
    );
  });

  test('an unreadable host counts as live', () => {
    assert.deepEqual(liveHosts(sample(0, 'error', 'dead')), ['h1']);
    assert.deepEqual(liveHosts(sample(0, 'dead', 'dead')), []);
  });

  test('the timeline lists changes only, relative to its origin', () => {
    assert.deepEqual(timeline(samples, 0), [
      '+0.00s {"h1":"live","h2":"dead"} binding=h1',
      '+0.10s {"h1":"live","h2":"live"} binding=h1',
      '+0.30s {"h1":"dead","h2":"live"} binding=h1',
      '+0.40s {"h1":"error","h2":"live"} binding=h1',
    ]);
  });
});
