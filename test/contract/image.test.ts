/**
 * Glance's contract: kumo-api's image answers — version documents, schemas, images
 * created, listed with filters, updated with both JSON-patch media types, deactivated and
 * reactivated, shared with members — checked by check.py against glanceclient's image
 * schema (Debian python3-glanceclient 4.1, glanceclient/v2/image_schema.py) and the
 * member, list and version shapes of Glance's api-ref, with the request-id headers on
 * every answer and in every error body. A real sqlite database and broker
 * (api-servers-harness).
 *
 * Invariant under test: glanceclient and strict clients accept every answer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ADMIN, type Body, MEMBER, serversHarness } from '../integration/api-servers-harness.ts';
import { assertContract, injectSend, Recorder } from './records.ts';

const PATCH_21 = 'application/openstack-images-v2.1-json-patch';
const PATCH_20 = 'application/openstack-images-v2.0-json-patch';

describe('image answers against glanceclient and api-ref schemas', () => {
  const h = serversHarness('sqlite');
  const rec = new Recorder(
    injectSend(() => h.app),
    ADMIN,
  );
  const glance = (check: string, method: string, url: string, o = {}) =>
    rec.call('image', check, method, url, o);
  const create = async (body: Body) => {
    const made = await glance('image.create', 'POST', '/image/v2/images', { body });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    return (made.body as { id: string }).id;
  };

  test('version documents and schemas', async () => {
    await glance('image.versions.root', 'GET', '/image', { token: null });
    await glance('image.versions.root', 'GET', '/image/', { token: null });
    await glance('image.versions', 'GET', '/image/versions', { token: null });
    await glance('image.schema.image', 'GET', '/image/v2/schemas/image');
    for (const name of ['images', 'member', 'members'])
      await glance('image.schema', 'GET', `/image/v2/schemas/${name}`);
  });

  test('create, show, list with filters, update with both patch types, delete', async () => {
    const id = await create({
      name: 'contract',
      disk_format: 'qcow2',
      container_format: 'bare',
      owner: 'another-project',
      tags: ['gold'],
      kernel_id: '00000000-0000-4000-8000-00000000000a',
    });
    await glance('image.upload', 'PUT', `/image/v2/images/${id}/file`, {
      body: Buffer.from('contract image bytes'),
    });
    await glance('image.show', 'GET', `/image/v2/images/${id}`);
    for (const q of ['', '?sort=size:desc,name:asc', '?tag=gold', '?size_min=1', '?limit=1'])
      await glance('image.list', 'GET', `/image/v2/images${q}`);
    const filtered = await glance('image.list', 'GET', '/image/v2/images?tag=gold&size_min=5');
    const ids = ((filtered.body as { images?: Body[] }).images ?? []).map((i) => i.id);
    assert.deepEqual(ids, [id]);
    await glance('image.update', 'PATCH', `/image/v2/images/${id}`, {
      body: [{ op: 'replace', path: '/name', value: 'renamed' }],
      headers: { 'content-type': PATCH_21 },
    });
    await glance('image.update', 'PATCH', `/image/v2/images/${id}`, {
      body: [{ replace: '/name', value: 'renamed-again' }],
      headers: { 'content-type': PATCH_20 },
    });
    await glance('image.update', 'PATCH', `/image/v2/images/${id}`, {
      body: [{ op: 'replace', path: '/owner', value: 'third-project' }],
      headers: { 'content-type': PATCH_21 },
    });
    await glance('image.error', 'GET', '/image/v2/images/00000000-0000-4000-8000-000000000000');
    await glance('image.error', 'POST', '/image/v2/images', { body: { disk_format: 'nope' } });
    await glance('image.delete', 'DELETE', `/image/v2/images/${id}`, {
      headers: { 'content-type': 'application/json' },
    });
  });

  test('deactivate and reactivate, with the download rules between', async () => {
    const id = await create({
      name: 'deact',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'public',
    });
    await glance('image.upload', 'PUT', `/image/v2/images/${id}/file`, {
      body: Buffer.from('bytes'),
    });
    const json = { headers: { 'content-type': 'application/json' } };
    const url = `/image/v2/images/${id}`;
    await glance('image.deactivate', 'POST', `${url}/actions/deactivate`, json);
    const shown = await glance('image.show', 'GET', url);
    assert.equal((shown.body as Body).status, 'deactivated');
    // Glance lets only admins download a deactivated image's data.
    const refused = await glance('image.error', 'GET', `${url}/file`, { token: MEMBER });
    assert.equal(refused.status, 403);
    await glance('image.reactivate', 'POST', `${url}/actions/reactivate`, json);
    assert.equal(((await glance('image.show', 'GET', url)).body as Body).status, 'active');
  });

  test('members: create, list, show, update, delete', async () => {
    const id = await create({
      name: 'shared',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'shared',
    });
    const url = `/image/v2/images/${id}/members`;
    const made = await glance('image.member.create', 'POST', url, {
      body: { member: 'project-b' },
    });
    assert.equal((made.body as Body).status, 'pending');
    await glance('image.error', 'POST', url, { body: { member: 'project-b' } });
    await glance('image.member.list', 'GET', url);
    await glance('image.member.show', 'GET', `${url}/project-b`);
    await glance('image.member.update', 'PUT', `${url}/project-b`, {
      body: { status: 'accepted' },
    });
    await glance('image.list', 'GET', '/image/v2/images?member_status=accepted&visibility=shared');
    await glance('image.member.delete', 'DELETE', `${url}/project-b`);
    await glance('image.error', 'GET', `${url}/project-b`);
  });

  test('every answer above matches the published image shapes and carries its ids', async () => {
    await assertContract(rec.records);
  });
});
