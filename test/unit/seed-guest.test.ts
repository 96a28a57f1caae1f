/**
 * The seed guest's console parser (test/helpers/seed-guest.ts) and the outage measure
 * (test/helpers/outage.ts) the walkthrough test reports with: pure logic, fed by hand.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { measureOutage } from '../helpers/outage.ts';
import { parseSeedConsole } from '../helpers/seed-guest.ts';

describe('parseSeedConsole', () => {
  test('reads the name and each complete listing; CRs, blank lines and noise are dropped', () => {
    const log = [
      'KUMO-GUEST-UP 10.0.0.3',
      'KUMO-SEED-HTTP vm1\r',
      'KUMO-SEED-GET http://169.254.169.254/\r',
      '1.0\r',
      'latest\r',
      '\r',
      'KUMO-SEED-END http://169.254.169.254/ ok\r',
      'KUMO-SEED-GET http://169.254.169.254/latest/',
      'KUMO-SEED-END http://169.254.169.254/latest/ fail',
      'KUMO-SEED-GET http://169.254.169.254/openstack/',
      'half a listing, cut off',
    ].join('\n');
    const seen = parseSeedConsole(log);
    assert.equal(seen.name, 'vm1');
    assert.deepEqual(seen.listings.get('/'), { ok: true, lines: ['1.0', 'latest'] });
    assert.deepEqual(seen.listings.get('/latest/'), { ok: false, lines: [] });
    assert.equal(seen.listings.has('/openstack/'), false);
    assert.equal(seen.done, false);
    assert.equal(parseSeedConsole(`${log}\nKUMO-SEED-DONE vm1`).done, true);
  });
});

describe('measureOutage', () => {
  test('counts failed probes and the longest silence until an answer counts as restored', async () => {
    const answers = ['old', undefined, undefined, 'old', undefined, 'new'];
    let i = 0;
    let caused = false;
    const o = await measureOutage({
      what: 'x',
      cause: async () => {
        caused = true;
      },
      probe: async () => {
        assert.ok(caused, 'probes start after the failure is caused');
        const a = answers[i++];
        if (a === undefined) throw new Error('no answer');
        return a;
      },
      restored: (a) => a === 'new',
      timeoutMs: 10_000,
      pauseMs: 10,
    });
    assert.equal(o.probes, 6);
    assert.equal(o.failedProbes, 3);
    assert.ok(o.longestGapMs >= 20 && o.longestGapMs <= o.restoredAfterMs);
  });

  test('fails, saying how many probes failed, when nothing restores the service', async () => {
    await assert.rejects(
      measureOutage({
        what: 'dead',
        cause: async () => {},
        probe: async () => undefined,
        restored: () => true,
        timeoutMs: 100,
        pauseMs: 10,
      }),
      /dead: not restored within 100 ms \(\d+\/\d+ probes failed\)/,
    );
  });
});
