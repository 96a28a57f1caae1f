/**
 * Issue 12: who changes a Glance image and its members with real projects, on both
 * database engines with a real broker vhost and signed project tokens — the hostile member
 * of the issue (DELETE of an admin's private image, seeing it listed), PATCH, upload,
 * download, the (de|re)activate actions, visibility changes and image members; every
 * refusal answers in Glance's shape and changes nothing (an admin's snapshot of every
 * image, its members and its data, before and after).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Image } from '../../contracts/compute.ts';
import {
  type Call,
  glanceError,
  imageApp,
  imageSnapshot,
  policyActors,
  V21,
} from './api-images-harness.ts';

const byRule = (rule: string) => `You are not authorized to complete ${rule} action.`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Glance changes with real projects on ${engine}`, () => {
    const { project, token, authenticator } = policyActors();
    const { call, create, upload } = imageApp(engine, authenticator);
    const snapshot = () => imageSnapshot(call, token.admin);
    const patch = (id: string, ops: unknown, who: string) =>
      call('PATCH', `/v2/images/${id}`, ops, { token: who, type: V21 });
    const put = (id: string, who: string) =>
      call('PUT', `/v2/images/${id}/file`, Buffer.alloc(4, 1), {
        token: who,
        type: 'application/octet-stream',
      });
    const as: (who: string) => Call = (who) => (method, url, payload, opts) =>
      call(method, url, payload, { ...opts, token: who });
    /** Runs `refusals` and checks that the admin's view of everything stayed the same. */
    const unchanged = async (refusals: () => Promise<void>) => {
      const before = await snapshot();
      await refusals();
      assert.deepEqual(await snapshot(), before);
    };

    test("the issue's hostile member: an admin's private image is neither listed nor deleted", async () => {
      const secret = await create({ name: 'secret', visibility: 'private' }, token.admin);
      await upload(secret.id, 16);
      const notFound = `No image found with ID ${secret.id}`;
      const b = as(token.b);
      await unchanged(async () => {
        assert.equal(glanceError(await b('DELETE', `/v2/images/${secret.id}`), 404), notFound);
        const ops = [{ op: 'replace', path: '/name', value: 'mine' }];
        assert.equal(glanceError(await patch(secret.id, ops, token.b), 404), notFound);
        assert.equal(glanceError(await put(secret.id, token.b), 404), notFound);
        assert.equal(glanceError(await b('GET', `/v2/images/${secret.id}/file`), 404), notFound);
        const deact = await b('POST', `/v2/images/${secret.id}/actions/deactivate`);
        assert.equal(glanceError(deact, 404), notFound);
        const members = await b('POST', `/v2/images/${secret.id}/members`, { member: project.b });
        assert.equal(glanceError(members, 404), `Image ${secret.id} not found.`);
      });
      for (const q of ['', '?visibility=all', '?visibility=private', '?member_status=all']) {
        const listed = (await b('GET', `/v2/images${q}`)).body as { images: Image[] };
        assert.deepEqual(listed.images, [], q);
      }
      assert.equal(
        (await call('DELETE', `/v2/images/${secret.id}`, undefined, { token: token.admin })).status,
        204,
      );
    });

    test("another project's visible image: 403 by Glance's rule names, nothing changed", async () => {
      const pub = await create({ name: 'pub', visibility: 'public' }, token.admin);
      const shared = await create({ name: 'sh' }, token.a);
      await as(token.a)('POST', `/v2/images/${shared.id}/members`, { member: project.b });
      const b = as(token.b);
      await unchanged(async () => {
        for (const img of [pub, shared]) {
          const add = [{ op: 'add', path: '/color', value: 'red' }];
          assert.equal(glanceError(await patch(img.id, add, token.b), 403), byRule('modify_image'));
          assert.equal(glanceError(await put(img.id, token.b), 403), byRule('upload_image'));
          assert.equal(
            glanceError(await b('DELETE', `/v2/images/${img.id}`), 403),
            byRule('delete_image'),
          );
        }
        const community = [{ op: 'replace', path: '/visibility', value: 'community' }];
        const r = await patch(shared.id, community, token.b);
        assert.equal(glanceError(r, 403), byRule('communitize_image'));
        const owner = [{ op: 'replace', path: '/owner', value: project.b }];
        assert.equal(
          glanceError(await patch(shared.id, owner, token.b), 403),
          "Owner can't be updated by non admin.",
        );
        // Form errors come first, as Glance's deserializer runs before its policy.
        const readOnly = [{ op: 'replace', path: '/status', value: 'active' }];
        assert.equal(
          glanceError(await patch(shared.id, readOnly, token.b), 403),
          "Attribute 'status' is read-only.",
        );
        // An empty patch writes nothing and answers the image, as Glance's.
        const empty = await patch(shared.id, [], token.b);
        assert.equal(empty.status, 200);
        assert.equal((empty.body as unknown as Image).updated_at, shared.updated_at);
      });
      for (const img of [pub, shared])
        await call('DELETE', `/v2/images/${img.id}`, undefined, { token: token.admin });
    });

    test('visibility: only an admin publicizes; the owner communitizes; readers only read', async () => {
      const mine = await create({ name: 'mine' }, token.a);
      await upload(mine.id, 8);
      const toPublic = [{ op: 'replace', path: '/visibility', value: 'public' }];
      const r = as(token.reader);
      await unchanged(async () => {
        assert.equal(
          glanceError(await patch(mine.id, toPublic, token.a), 403),
          byRule('publicize_image'),
        );
        const ops = [{ op: 'replace', path: '/name', value: 'x' }];
        assert.match(glanceError(await patch(mine.id, ops, token.reader), 403), /reader role/);
        assert.match(glanceError(await r('DELETE', `/v2/images/${mine.id}`), 403), /reader role/);
        // Glance's download_image needs the member role.
        assert.equal(
          glanceError(await r('GET', `/v2/images/${mine.id}/file`), 403),
          byRule('download_image'),
        );
        const deact = await as(token.a)('POST', `/v2/images/${mine.id}/actions/deactivate`);
        assert.equal(glanceError(deact, 403), byRule('deactivate'));
        const removed = [{ op: 'remove', path: '/name' }];
        assert.equal(
          glanceError(await patch(mine.id, removed, token.a), 403),
          'Property name may not be removed.',
        );
      });
      assert.equal((await r('GET', `/v2/images/${mine.id}`)).status, 200);
      const toCommunity = [{ op: 'replace', path: '/visibility', value: 'community' }];
      const communal = await patch(mine.id, toCommunity, token.a);
      assert.equal((communal.body as unknown as Image).visibility, 'community');
      assert.equal((await patch(mine.id, toPublic, token.admin)).status, 200);
      const file = await as(token.c)('GET', `/v2/images/${mine.id}/file`);
      assert.equal(file.raw.length, 8, 'a public image is downloaded by any member');
      assert.equal((await as(token.a)('DELETE', `/v2/images/${mine.id}`)).status, 204);
    });

    test('members: the owner adds and removes, only the member answers', async () => {
      const img = await create({ name: 'offer' }, token.a);
      const a = as(token.a);
      const b = as(token.b);
      const members = `/v2/images/${img.id}/members`;
      assert.equal((await a('POST', members, { member: project.b })).status, 200);
      const refused = (verb: string) => `Not allowed to ${verb} members for image ${img.id}.`;
      await unchanged(async () => {
        assert.equal(
          glanceError(await b('POST', members, { member: project.c }), 403),
          refused('create'),
        );
        const accept = { status: 'accepted' };
        assert.equal(
          glanceError(await a('PUT', `${members}/${project.b}`, accept), 403),
          refused('update'),
        );
        assert.equal(
          glanceError(await b('DELETE', `${members}/${project.b}`), 403),
          refused('delete'),
        );
        glanceError(await as(token.c)('GET', members), 404);
        glanceError(await as(token.reader)('POST', members, { member: project.c }), 403);
      });
      assert.equal((await b('PUT', `${members}/${project.b}`, { status: 'accepted' })).status, 200);
      assert.equal((await a('POST', members, { member: project.c })).status, 200);
      const seen = async (who: Call) =>
        ((await who('GET', members)).body as { members: { member_id: string }[] }).members
          .map((m) => m.member_id)
          .sort();
      assert.deepEqual(await seen(a), [project.b, project.c].sort());
      assert.deepEqual(await seen(b), [project.b], 'a member sees only its own membership');
      glanceError(await b('GET', `${members}/${project.c}`), 404);
      const listed = (await b('GET', '/v2/images')).body as { images: Image[] };
      assert.deepEqual(
        listed.images.map((i) => i.id),
        [img.id],
      );
      assert.equal((await a('DELETE', `${members}/${project.b}`)).status, 204);
      glanceError(await b('GET', `/v2/images/${img.id}`), 404);
      const admin = as(token.admin);
      assert.equal(
        (await admin('PUT', `${members}/${project.c}`, { status: 'rejected' })).status,
        200,
      );
      assert.equal((await a('DELETE', `/v2/images/${img.id}`)).status, 204);
    });
  });
}
