/**
 * kumo-api joining an existing Keystone ([keystone_authtoken]): a second real kumo-api
 * process (B) validates the tokens of the first one's identity listener (A), acting as
 * that external Keystone, with its service user and a one-second cache.
 *
 * Invariants under test: the caller's project and roles come from Keystone's answer (a
 * network a member makes on B belongs to its project in A; a reader cannot write; a
 * tampered token is a 401); B serves no identity listener of its own; a token revoked in
 * A is refused by B once the cache period has passed; and with A gone, a token B has not
 * seen answers 503 (it cannot be judged), never 401.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { loginAt } from '../helpers/identity.ts';
import type { Credentials } from '../helpers/os-clients.ts';

const SERVICE = { user: 'kumo', project: 'service', password: 'service-secret-1' };
const ALICE = { user: 'alice', project: 'alpha', password: 'alice-secret-1' };
const CAROL = { user: 'carol', project: 'alpha', password: 'carol-secret-1' };

describe('kumo-api validating tokens against an external Keystone', { timeout: 180_000 }, () => {
  let keystone: Cluster;
  let api: Cluster;

  const login = (who: Credentials) => loginAt(keystone.authUrl, who);

  before(async () => {
    keystone = await Cluster.create('sqlite');
    await keystone.startApi();
    await keystone.bootstrap(SERVICE.user, SERVICE.project, 'admin', SERVICE.password);
    await keystone.bootstrap(ALICE.user, ALICE.project, 'member', ALICE.password);
    await keystone.bootstrap(CAROL.user, CAROL.project, 'reader', CAROL.password);
    api = await Cluster.create('postgres', undefined, [
      '[keystone_authtoken]',
      `auth_url = ${keystone.authUrl}`,
      `username = ${SERVICE.user}`,
      `password = ${SERVICE.password}`,
      `project_name = ${SERVICE.project}`,
      'token_cache_time = 1',
    ]);
    await api.startApi();
  });
  after(async () => {
    await api?.cleanup();
    await keystone?.cleanup();
  });

  test("the project and roles come from Keystone's answer", async () => {
    const alice = await login(ALICE);
    const made = await api.http(
      'POST',
      '/v2.0/networks',
      { network: { name: 'ext-net' } },
      alice.token,
    );
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.equal(
      (made.body as { network: { project_id: string } }).network.project_id,
      alice.projectId,
    );
    const carol = await login(CAROL);
    const listed = await api.http('GET', '/v2.0/networks', undefined, carol.token);
    assert.deepEqual(
      (listed.body as { networks: { name: string }[] }).networks.map((n) => n.name),
      ['ext-net'],
    );
    const before = await api.http('GET', '/v2.0/networks', undefined, alice.token);
    const refused = await api.http(
      'POST',
      '/v2.0/networks',
      { network: { name: 'c' } },
      carol.token,
    );
    assert.equal(refused.status, 403);
    assert.deepEqual(await api.http('GET', '/v2.0/networks', undefined, alice.token), before);
    const [payload, mac] = alice.token.split('.') as [string, string];
    const tampered = `${payload.slice(0, -2)}${payload.endsWith('A') ? 'B' : 'A'}${payload.slice(-1)}.${mac}`;
    assert.equal((await api.http('GET', '/v2.0/networks', undefined, tampered)).status, 401);
  });

  test('B serves no identity listener of its own', async () => {
    await assert.rejects(fetch(`${api.authUrl}`), /fetch failed/);
  });

  test('a token revoked in Keystone is refused once the cache period has passed', async () => {
    const alice = await login(ALICE);
    assert.equal((await api.http('GET', '/v2.0/networks', undefined, alice.token)).status, 200);
    const revoke = await fetch(`${keystone.authUrl}/auth/tokens`, {
      method: 'DELETE',
      headers: { 'x-auth-token': alice.token, 'x-subject-token': alice.token },
    });
    assert.equal(revoke.status, 204);
    await waitFor(
      'B to refuse the revoked token',
      async () => (await api.http('GET', '/v2.0/networks', undefined, alice.token)).status === 401,
      5_000,
      100,
    );
  });

  test('with Keystone gone, a token B has not seen answers 503, not 401', async () => {
    const alice = await login(ALICE);
    await keystone.stop(keystone.api);
    const res = await api.http('GET', '/v2.0/networks', undefined, alice.token);
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.match(JSON.stringify(res.body), /identity service cannot validate tokens/);
  });
});
