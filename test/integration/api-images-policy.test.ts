/**
 * Issue 12: Glance's visibility rules with real projects, on both database engines with a
 * real broker vhost and signed project tokens — an admin, members of three projects and a
 * reader each see exactly the images Glance's is_image_visible and image list show them
 * (public, private, shared by member status, community), and a create is owned by the
 * caller's project; every refused create changes nothing.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { resolveImage } from '../../api/routes/server-refs.ts';
import type { Image } from '../../contracts/compute.ts';
import {
  type Body,
  glanceError,
  imageApp,
  imageSnapshot,
  policyActors,
} from './api-images-harness.ts';

const FLAVOR = { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 0 };

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Glance visibility with real projects on ${engine}`, () => {
    const { project, token, authenticator } = policyActors();
    const { ctx, call, create, upload } = imageApp(engine, authenticator);
    const img: Record<string, Image> = {};
    const as = (who: string, url: string) => call('GET', url, undefined, { token: who });
    const names = async (who: string, query = '') => {
      const r = await as(who, `/v2/images${query}`);
      assert.equal(r.status, 200, r.raw.toString());
      return ((r.body as { images: Image[] }).images.map((i) => i.name) as string[]).sort();
    };
    const member = async (id: string, status: string) => {
      const add = await call(
        'POST',
        `/v2/images/${id}/members`,
        { member: project.b },
        {
          token: token.a,
        },
      );
      assert.equal(add.status, 200, add.raw.toString());
      if (status === 'pending') return;
      const put = await call(
        'PUT',
        `/v2/images/${id}/members/${project.b}`,
        { status },
        {
          token: token.b,
        },
      );
      assert.equal(put.status, 200, put.raw.toString());
    };

    before(async () => {
      const made: [string, string, Body][] = [
        ['adminPrivate', token.admin, { visibility: 'private' }],
        ['adminPublic', token.admin, { visibility: 'public' }],
        ['aPrivate', token.a, { visibility: 'private' }],
        ['aAccepted', token.a, {}],
        ['aPending', token.a, { visibility: 'shared' }],
        ['aRejected', token.a, {}],
        ['aCommunity', token.a, { visibility: 'community' }],
      ];
      for (const [name, who, body] of made) img[name] = await create({ name, ...body }, who);
      await member((img.aAccepted as Image).id, 'accepted');
      await member((img.aPending as Image).id, 'pending');
      await member((img.aRejected as Image).id, 'rejected');
    });

    test("a create is owned by the caller's project; shared is the default", async () => {
      assert.equal(img.adminPrivate?.owner, project.admin);
      assert.equal(img.aPrivate?.owner, project.a);
      assert.equal(img.aAccepted?.visibility, 'shared');
    });

    test('the default list: public, own, own community, shared ones accepted', async () => {
      const own = ['aAccepted', 'aCommunity', 'aPending', 'aPrivate', 'aRejected', 'adminPublic'];
      assert.deepEqual(await names(token.a), own);
      assert.deepEqual(await names(token.reader), own, 'a reader of A sees what A sees');
      assert.deepEqual(await names(token.b), ['aAccepted', 'adminPublic']);
      assert.deepEqual(await names(token.c), ['adminPublic']);
      // An admin sees every image but other projects' community ones (Glance keys on the
      // caller's project there too), and all of them with visibility=all.
      const admin = ['aAccepted', 'aPending', 'aPrivate', 'aRejected', 'adminPrivate'];
      assert.deepEqual(await names(token.admin), [...admin, 'adminPublic']);
      assert.equal((await names(token.admin, '?visibility=all')).length, 7);
    });

    test('member_status and visibility filters pick the shared images a member sees', async () => {
      const b = (q: string) => names(token.b, q);
      assert.deepEqual(await b('?member_status=pending'), ['aPending', 'adminPublic']);
      assert.deepEqual(await b('?member_status=rejected'), ['aRejected', 'adminPublic']);
      assert.deepEqual(await b('?member_status=all'), [
        'aAccepted',
        'aPending',
        'aRejected',
        'adminPublic',
      ]);
      assert.deepEqual(await b('?visibility=shared'), ['aAccepted']);
      assert.deepEqual(await b('?visibility=shared&member_status=all'), [
        'aAccepted',
        'aPending',
        'aRejected',
      ]);
      assert.deepEqual(await b('?visibility=community'), ['aCommunity']);
      assert.deepEqual(await b('?visibility=private'), []);
      assert.deepEqual(await names(token.c, '?visibility=all&member_status=all'), [
        'aCommunity',
        'adminPublic',
      ]);
      assert.deepEqual(await names(token.a, '?visibility=private'), ['aPrivate']);
    });

    test('show: any membership status; private and unshared images are not found', async () => {
      for (const name of ['aAccepted', 'aPending', 'aRejected', 'aCommunity', 'adminPublic'])
        assert.equal((await as(token.b, `/v2/images/${img[name]?.id}`)).status, 200, name);
      for (const name of ['aPrivate', 'adminPrivate']) {
        const id = img[name]?.id as string;
        assert.equal(
          glanceError(await as(token.b, `/v2/images/${id}`), 404),
          `No image found with ID ${id}`,
        );
      }
      for (const name of ['aAccepted', 'aPrivate']) {
        const id = img[name]?.id as string;
        assert.equal(
          glanceError(await as(token.c, `/v2/images/${id}`), 404),
          `No image found with ID ${id}`,
        );
        glanceError(await as(token.c, `/v2/images/${id}/file`), 404);
      }
      assert.equal((await as(token.admin, `/v2/images/${img.aPrivate?.id}`)).status, 200);
    });

    test('Nova boot references see what the project sees', async () => {
      for (const i of [img.aAccepted, img.aPrivate] as Image[]) await upload(i.id, 8);
      const viewer = (projectId: string) => ({ role: 'member', caller: { projectId } }) as const;
      const shared = await resolveImage(
        ctx.db,
        img.aAccepted?.id as string,
        FLAVOR,
        viewer(project.b),
      );
      assert.equal(shared.image.id, img.aAccepted?.id);
      const hidden = img.aPrivate?.id as string;
      await assert.rejects(resolveImage(ctx.db, hidden, FLAVOR, viewer(project.b)), {
        message: `Image ${hidden} could not be found.`,
      });
      assert.equal(
        (await resolveImage(ctx.db, hidden, FLAVOR, viewer(project.a))).image.id,
        hidden,
      );
    });

    test('create: another owner, public, or a reader are refused and nothing is made', async () => {
      const before = await imageSnapshot(call, token.admin);
      const post = (body: Body, who: string) =>
        call('POST', '/v2/images', { name: 'x', ...body }, { token: who });
      assert.equal(
        glanceError(await post({ owner: project.b }, token.a), 403),
        `You are not permitted to create images owned by '${project.b}'`,
      );
      assert.equal(
        glanceError(await post({ visibility: 'public' }, token.a), 403),
        'You are not authorized to complete publicize_image action.',
      );
      assert.match(glanceError(await post({}, token.reader), 403), /reader role may only read/);
      assert.deepEqual(await imageSnapshot(call, token.admin), before);
      const own = await create({ name: 'own', owner: project.a, visibility: 'community' }, token.a);
      assert.equal(own.owner, project.a);
      const given = await create({ name: 'given', owner: project.c }, token.admin);
      assert.equal(given.owner, project.c);
      assert.deepEqual(await names(token.c, '?visibility=shared'), ['given']);
      for (const i of [own, given])
        await call('DELETE', `/v2/images/${i.id}`, undefined, { token: token.admin });
    });
  });
}
