/**
 * The external-Keystone authenticator (api/identity/external.ts) against a real identity
 * listener acting as that Keystone, in-process on SQLite.
 *
 * Invariants under test: only Keystone's 404 makes a token invalid (401 to the caller);
 * when Keystone refuses kumo's own service credentials — a 401 to the validation that a
 * fresh service login does not cure — the token cannot be judged: 503, and that answer is
 * not cached, so the same token is accepted once Keystone accepts the service user again.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { externalAuthenticator } from '../../api/identity/external.ts';
import { ApiError } from '../../contracts/errors.ts';
import { seedUser } from '../helpers/identity.ts';
import { call, identityStack, passwordAuth } from './identity-auth-harness.ts';

const SERVICE = { name: 'kumo', password: 'service-pw-1', project: 'service' };

describe('identity: the external-Keystone authenticator, 503 versus 401', () => {
  const s = identityStack('sqlite');
  let serviceUser = '';
  let alice = '';

  before(async () => {
    serviceUser = (await seedUser(s.db, { ...SERVICE, roles: ['admin'] })).userId;
    await seedUser(s.db, { name: 'alice', password: 'alice-pw-1', project: 'alpha' });
    const login = await call(`${s.main.authUrl}/auth/tokens`, 'POST', {
      body: passwordAuth('alice', 'alice-pw-1', 'alpha'),
    });
    alice = login.headers.get('x-subject-token') as string;
  });

  const authenticator = () =>
    externalAuthenticator({
      authUrl: s.main.authUrl,
      username: SERVICE.name,
      password: SERVICE.password,
      projectName: SERVICE.project,
      userDomainName: 'Default',
      projectDomainName: 'Default',
      cacheSeconds: 60,
    });

  test("a token Keystone knows is a caller with its project and roles; one it doesn't is none", async () => {
    const ext = authenticator();
    const caller = await ext.authenticate(alice);
    assert.deepEqual(caller?.roles, ['member', 'reader']);
    assert.equal(caller?.isAdmin, false);
    assert.equal(await ext.authenticate(`${alice.slice(0, -2)}AA`), undefined);
  });

  test('Keystone refusing the service user even after a fresh login is 503, not cached', async () => {
    const ext = authenticator();
    // Every token of the service user issued within the next hour is revoked: its login
    // succeeds, but Keystone answers 401 to each validation it asks for.
    const id = randomUUID();
    const until = s.clock.now().getTime() + 3_600_000;
    await s.db.query(
      'INSERT INTO revocation_events (id, user_id, project_id, audit_id, issued_before, created_at) VALUES (?, ?, NULL, NULL, ?, ?)',
      [id, serviceUser, until, new Date().toISOString()],
    );
    await s.main.revocations.refresh();
    await assert.rejects(
      Promise.resolve(ext.authenticate(alice)),
      (e: unknown) => e instanceof ApiError && e.status === 503,
    );
    await s.db.query('DELETE FROM revocation_events WHERE id = ?', [id]);
    await s.main.revocations.refresh();
    const caller = await ext.authenticate(alice);
    assert.equal(caller?.roles.includes('member'), true, 'the 503 was not cached as a 401');
  });
});
