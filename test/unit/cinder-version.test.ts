/**
 * Cinder's microversion header as kumo-api reads it (api/cinder-version.ts): the last
 * `volume <version>` entry of OpenStack-API-Version, `latest`, 3.0 when absent, Cinder's
 * 400 for a malformed version and 406 outside 3.0–3.3.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  requestedVolumeMinor,
  VOLUME_MAX_MINOR,
  volumeVersionHeader,
} from '../../api/cinder-version.ts';
import type { ApiError } from '../../contracts/errors.ts';

test('the header: the last volume entry, other services ignored', () => {
  assert.equal(volumeVersionHeader({}), undefined);
  assert.equal(volumeVersionHeader({ 'openstack-api-version': 'compute 2.16' }), undefined);
  assert.equal(
    volumeVersionHeader({ 'openstack-api-version': 'volume 3.1, compute 2.1, Volume 3.3' }),
    '3.3',
  );
  assert.equal(
    volumeVersionHeader({ 'openstack-api-version': ['volume 3.2', 'volume3.1'] }),
    '3.2',
  );
});

test('versions: absent is 3.0, latest the maximum, the range enforced', () => {
  assert.equal(requestedVolumeMinor(undefined), 0);
  assert.equal(requestedVolumeMinor('latest'), VOLUME_MAX_MINOR);
  assert.equal(requestedVolumeMinor('3.3'), 3);
  const status = (v: string) => {
    try {
      requestedVolumeMinor(v);
      return 200;
    } catch (e) {
      return (e as ApiError).status;
    }
  };
  assert.deepEqual(['3.4', '2.0', '4.0', '3.99'].map(status), [406, 406, 406, 406]);
  assert.deepEqual(['3', '3.x', '03.1', '3.01', ''].map(status), [400, 400, 400, 400, 400]);
});
