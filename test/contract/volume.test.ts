/**
 * Cinder's contract: kumo-api's volume answers — version documents, volumes created,
 * served, listed (with and without detail), shown to an admin (extension attributes) and
 * to a member, updated, extended, reset, deleted; snapshots; types; quotas with and
 * without usage; limits; user messages at 3.3; and errors — checked by check.py against
 * tempest's published volume response schemas (Debian python3-tempest 33), with the
 * request-id headers and the `OpenStack-API-Version: volume 3.x` echo on every answer.
 * A real sqlite database and broker (api-volumes-harness).
 *
 * Invariant under test: a strict client that validates each answer as tempest does
 * accepts every one of them.
 */
import { describe, test } from 'node:test';
import { STATIC_ADMIN, volumesHarness } from '../integration/api-volumes-harness.ts';
import { assertContract, injectSend, Recorder } from './records.ts';

type Body = Record<string, unknown>;

describe('volume answers against tempest schemas', () => {
  const h = volumesHarness('sqlite');
  const admin = new Recorder(
    injectSend(() => h.api.app),
    STATIC_ADMIN,
  );
  const member = new Recorder(
    injectSend(() => h.api.app),
    h.who.A,
  );
  const P = '2a6a3b7c9d1e4f5081a2b3c4d5e6f708';
  const cinder = (check: string, method: string, path: string, o: Body = {}) =>
    admin.call('volume', check, method, `/volume/v3/${P}${path}`, o);

  test('every answer validates', async () => {
    await admin.call('volume', 'volume.versions', 'GET', '/volume', { token: null });
    await admin.call('volume', 'volume.version', 'GET', '/volume/v3/', { token: null });
    const made = await cinder('volume.create', 'POST', '/volumes', {
      body: { volume: { size: 1, name: 'c1', metadata: { k: 'v' } } },
    });
    const id = (made.body as { volume: { id: string } }).volume.id;
    await h.serve(id);
    await cinder('volume.show', 'GET', `/volumes/${id}`);
    await cinder('volume.show', 'GET', `/volumes/${id}`, { microversion: '3.3' });
    await cinder('volume.list', 'GET', '/volumes');
    await cinder('volume.list_detail', 'GET', '/volumes/detail?limit=1');
    await cinder('volume.update', 'PUT', `/volumes/${id}`, { body: { volume: { name: 'c2' } } });
    const snap = await cinder('snapshot.create', 'POST', '/snapshots', {
      body: { snapshot: { volume_id: id, name: 's1' } },
    });
    const sid = (snap.body as { snapshot: { id: string } }).snapshot.id;
    await cinder('snapshot.show', 'GET', `/snapshots/${sid}`);
    await cinder('snapshot.list', 'GET', '/snapshots');
    await cinder('snapshot.list_detail', 'GET', '/snapshots/detail');
    await cinder('snapshot.update', 'PUT', `/snapshots/${sid}`, {
      body: { snapshot: { description: 'd' } },
    });
    await cinder('volume.error', 'DELETE', `/volumes/${id}`);
    await h.api.db.query("UPDATE volume_snapshots SET status = 'available'");
    await cinder('snapshot.delete', 'DELETE', `/snapshots/${sid}`);
    await h.api.db.query('DELETE FROM volume_snapshots');
    await cinder('volume.extend', 'POST', `/volumes/${id}/action`, {
      body: { 'os-extend': { new_size: 2 } },
    });
    await cinder('volume.reset_status', 'POST', `/volumes/${id}/action`, {
      body: { 'os-reset_status': { status: 'available' } },
    });
    await cinder('volume.error', 'POST', `/volumes/${id}/action`, {
      body: { 'os-extend': { new_size: 1 } },
    });
    await cinder('type.list', 'GET', '/types');
    await cinder('type.show', 'GET', '/types/default');
    await cinder('type.show', 'GET', '/types/file');
    await cinder('quota.show', 'GET', `/os-quota-sets/${P}`);
    await cinder('quota.usage', 'GET', `/os-quota-sets/${P}?usage=True`);
    await cinder('quota.update', 'PUT', `/os-quota-sets/${P}`, {
      body: { quota_set: { volumes: 20 } },
    });
    await cinder('limits.show', 'GET', '/limits');
    await cinder('message.list', 'GET', '/messages', { microversion: '3.3' });
    await cinder('volume.create', 'POST', '/volumes', { body: { volume: { size: 1 } } });
    const msgs = await cinder('message.list', 'GET', '/messages', { microversion: '3.3' });
    const mid = (msgs.body as { messages: { id: string }[] }).messages[0]?.id;
    await cinder('message.show', 'GET', `/messages/${mid}`, { microversion: 'latest' });
    await cinder('message.delete', 'DELETE', `/messages/${mid}`, { microversion: '3.3' });
    await cinder('volume.error', 'GET', '/messages', { microversion: '3.0' });
    await cinder('volume.error', 'GET', '/volumes', { microversion: '3.99' });
    await cinder('volume.error', 'GET', '/volumes/00000000-0000-4000-8000-000000000000');
    await cinder('volume.force_delete', 'POST', `/volumes/${id}/action`, {
      body: { 'os-force_delete': {} },
    });
    await cinder('volume.error', 'POST', '/volumes', { body: { volume: { size: -1 } } });
    await member.call(
      'volume',
      'volume.show',
      'GET',
      `/volume/v3/${h.projects.A}/volumes/${(await h.create('A', { size: 1 })).id}`,
    );
    await member.call('volume', 'volume.error', 'GET', `/volume/v3/${h.projects.A}/volumes/${id}`);
    await assertContract([...admin.records, ...member.records]);
  });
});
