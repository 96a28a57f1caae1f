/**
 * Neutron's contract, as far as issue 11 reaches it: the version documents at `/` and
 * `/networking` without a token, and request ids on every answer (collections, a create,
 * a bodiless DELETE sent with a JSON content type, NeutronError bodies carrying the id),
 * checked by check.py. A real sqlite database and broker (api-servers-harness).
 *
 * Invariant under test: every networking answer carries `req-<uuid>` and its errors name it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ADMIN, serversHarness } from '../integration/api-servers-harness.ts';
import { assertContract, injectSend, Recorder } from './records.ts';

describe('networking answers: versions and request ids', () => {
  const h = serversHarness('sqlite');
  const rec = new Recorder(
    injectSend(() => h.app),
    ADMIN,
  );
  const neutron = (check: string, method: string, url: string, o = {}) =>
    rec.call('networking', check, method, url, o);

  test('versions, collections, a create, deletes and errors', async () => {
    for (const url of ['/', '/networking', '/networking/'])
      await neutron('network.versions', 'GET', url, { token: null });
    for (const url of ['/networking/v2.0/networks', '/v2.0/ports', '/networking/v2.0/agents'])
      await neutron('network.any', 'GET', url);
    const made = await neutron('network.any', 'POST', '/networking/v2.0/networks', {
      body: { network: { name: 'contract-net' } },
    });
    assert.equal(made.status, 201);
    const id = (made.body as { network: { id: string } }).network.id;
    const del = await neutron('network.any', 'DELETE', `/networking/v2.0/networks/${id}`, {
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(del.status, 204);
    await neutron('networking.error', 'GET', `/networking/v2.0/networks/${id}`);
    await neutron('networking.error', 'GET', '/networking/v2.0/networks', { token: 'bad' });
    await neutron('networking.error', 'POST', '/networking/v2.0/networks', {
      body: { network: { name: 7 } },
    });
  });

  test('every answer above has its request id', async () => {
    await assertContract(rec.records);
  });
});
