/**
 * Revocation across kumo-api replicas: two replicas (each a service app and an identity
 * listener with its own in-memory revocation list) on one PostgreSQL database and one key
 * repository. PostgreSQL only: replicas share a database only there (SQLite is one
 * process's file).
 *
 * Invariant under test: a token revoked on replica A is refused by replica B's service
 * API as soon as B hears A's NOTIFY — the test waits for that with a bounded poll (2 s,
 * well under the 5 s fallback reload, so the NOTIFY is what delivered it), never a sleep.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { waitFor } from '../helpers/env.ts';
import { seedUser } from '../helpers/identity.ts';
import { call, identityStack, passwordAuth, type Replica } from './identity-auth-harness.ts';

describe('identity: a revocation on one replica reaches another at once (postgres)', () => {
  const s = identityStack('postgres');
  let b: Replica;

  before(async () => {
    b = await s.startReplica();
    await seedUser(s.db, { name: 'erin', password: 'erin-pw', project: 'demo' });
  });

  test('a token issued by A works on B; revoked on A, B refuses it within the NOTIFY', async () => {
    const login = await call(`${s.main.authUrl}/auth/tokens`, 'POST', {
      body: passwordAuth('erin', 'erin-pw', 'demo'),
    });
    const token = login.headers.get('x-subject-token') as string;
    const onB = () => call(`${b.apiUrl}/v2.0/networks`, 'GET', { token });
    assert.equal((await onB()).status, 200);
    assert.equal(
      (await call(`${b.authUrl}/auth/tokens`, 'GET', { token, subject: token })).status,
      200,
    );
    const revoke = await call(`${s.main.authUrl}/auth/tokens`, 'DELETE', {
      token,
      subject: token,
    });
    assert.equal(revoke.status, 204);
    // A refused it before answering 204.
    assert.equal((await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token })).status, 401);
    await waitFor(
      'replica B to refuse the revoked token',
      async () => (await onB()).status === 401,
      2000,
      20,
    );
    assert.equal(
      (await call(`${b.authUrl}/auth/tokens`, 'GET', { token: token, subject: token })).status,
      401,
      'B refuses the revoked token as X-Auth-Token too',
    );
  });
});
