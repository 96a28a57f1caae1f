/**
 * Issue 11 review fixes on Glance images, on both database engines with a real broker
 * vhost: who sees and who changes an image (show, data, PATCH, DELETE, members, and
 * Nova's boot references), names from Object.prototype as plain property names, list
 * pages (limit=0, the default page), null kernel/ramdisk ids, and PATCH writes that
 * never lose a racing change.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { staticCaller } from '../../api/caller.ts';
import { getImage, updateImageFields } from '../../api/db/images.ts';
import { resolveImage } from '../../api/routes/server-refs.ts';
import type { Image } from '../../contracts/compute.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import {
  ADMIN,
  type Body,
  glanceError,
  imageApp,
  MEMBER,
  SERVICE,
  V20,
  V21,
} from './api-images-harness.ts';

const OTHER = '9f8e7d6c5b4a49382716a5b4c3d2e1f0';
const FLAVOR = { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 0 };

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Glance image access and review fixes on ${engine}`, () => {
    const { ctx, call, create, upload, show } = imageApp(engine);
    const patch = (id: string, ops: unknown, token = ADMIN, type = V21) =>
      call('PATCH', `/v2/images/${id}`, ops, { token, type });
    const asMember = (method: 'GET' | 'DELETE', url: string) =>
      call(method, url, undefined, { token: MEMBER });

    test("a non-admin gets 404 on another project's private image, on every route", async () => {
      const img = await create({ name: 'theirs', visibility: 'private', owner: OTHER });
      await upload(img.id, 10);
      const notFound = `No image found with ID ${img.id}`;
      assert.equal(glanceError(await asMember('GET', `/v2/images/${img.id}`), 404), notFound);
      assert.equal(glanceError(await asMember('GET', `/v2/images/${img.id}/file`), 404), notFound);
      const ops = [{ op: 'replace', path: '/name', value: 'mine' }];
      assert.equal(glanceError(await patch(img.id, ops, MEMBER), 404), notFound);
      assert.equal(glanceError(await asMember('DELETE', `/v2/images/${img.id}`), 404), notFound);
      const members = await asMember('GET', `/v2/images/${img.id}/members`);
      assert.equal(glanceError(members, 404), `Image ${img.id} not found.`);
      const listed = await call('GET', '/v2/images?visibility=all', undefined, { token: MEMBER });
      assert.deepEqual((listed.body as { images: Image[] }).images, []);
      // Admins and the compute agents' service token see it.
      assert.equal((await call('GET', `/v2/images/${img.id}`)).status, 200);
      const agent = await call('GET', `/v2/images/${img.id}/file`, undefined, { token: SERVICE });
      assert.equal(agent.status, 200);
      assert.equal((await show(img.id)).name, 'theirs', 'nothing changed');
      assert.equal((await call('DELETE', `/v2/images/${img.id}`)).status, 204);
    });

    test("a non-admin reads another project's public image but gets 403 changing it", async () => {
      const img = await create({ name: 'pub', visibility: 'public', owner: OTHER });
      assert.equal((await asMember('GET', `/v2/images/${img.id}`)).status, 200);
      assert.equal((await asMember('GET', `/v2/images/${img.id}/file`)).status, 204);
      const ops = [{ op: 'add', path: '/color', value: 'red' }];
      assert.equal(
        glanceError(await patch(img.id, ops, MEMBER), 403),
        'You are not authorized to complete modify_image action.',
      );
      const up = await call('PUT', `/v2/images/${img.id}/file`, Buffer.alloc(4), {
        token: MEMBER,
        type: 'application/octet-stream',
      });
      assert.equal(glanceError(up, 403), 'You are not authorized to complete upload_image action.');
      const del = await asMember('DELETE', `/v2/images/${img.id}`);
      assert.equal(
        glanceError(del, 403),
        'You are not authorized to complete delete_image action.',
      );
      const after = await show(img.id);
      assert.equal(after.status, 'queued');
      assert.equal(after.color, undefined);
      // A shared image the caller is a member of, whatever the membership's status.
      const shared = await create({ name: 'sh', visibility: 'shared', owner: OTHER });
      assert.equal((await asMember('GET', `/v2/images/${shared.id}`)).status, 404);
      const add = await call('POST', `/v2/images/${shared.id}/members`, {
        member: DEFAULT_PROJECT_ID,
      });
      assert.equal(add.status, 200);
      assert.equal((await asMember('GET', `/v2/images/${shared.id}`)).status, 200);
      for (const i of [img, shared]) await call('DELETE', `/v2/images/${i.id}`);
    });

    test("boot and rebuild references: an image the caller can't see is not found", async () => {
      const kernel = await create({ name: 'k', disk_format: 'aki', container_format: 'aki' });
      await upload(kernel.id, 8);
      const machine = await create({
        name: 'm',
        disk_format: 'ami',
        container_format: 'ami',
        visibility: 'public',
        kernel_id: kernel.id.toUpperCase(),
      });
      await upload(machine.id, 8);
      const member = { role: 'member', caller: staticCaller('member') } as const;
      const meta = await resolveImage(ctx.db, machine.id, FLAVOR, member);
      assert.equal(meta.kernel?.id, kernel.id, 'an uppercase kernel_id finds its kernel');
      const hidden = await create({ name: 'h', visibility: 'private', owner: OTHER });
      await upload(hidden.id, 8);
      await assert.rejects(resolveImage(ctx.db, hidden.id, FLAVOR, member), {
        message: `Image ${hidden.id} could not be found.`,
      });
      await resolveImage(ctx.db, hidden.id, FLAVOR, { role: 'admin' });
      // The kernel becomes another project's private image: not found for a member.
      await patch(kernel.id, [
        { op: 'replace', path: '/owner', value: OTHER },
        { op: 'replace', path: '/visibility', value: 'private' },
      ]);
      const upper = kernel.id.toUpperCase();
      await assert.rejects(resolveImage(ctx.db, machine.id, FLAVOR, member), {
        message: `Kernel image ${upper} (kernel_id of image ${machine.id}) could not be found.`,
      });
      for (const i of [machine, kernel, hidden]) await call('DELETE', `/v2/images/${i.id}`);
    });

    test('names from Object.prototype are plain property names; __proto__ is refused', async () => {
      const made = await call('POST', '/v2/images', { name: 'p', constructor: 'y', toString: 'z' });
      assert.equal(made.status, 201, made.raw.toString());
      const img = made.body as Image;
      assert.equal(img.constructor, 'y');
      assert.equal(img.toString, 'z');
      const other = await create({ name: 'q' });
      const proto = await patch(img.id, [{ op: 'add', path: '/__proto__', value: 'x' }]);
      assert.match(glanceError(proto, 400), /__proto__/);
      const missing = await patch(other.id, [{ op: 'remove', path: '/constructor' }]);
      assert.equal(glanceError(missing, 409), 'Property constructor does not exist.');
      const v20 = await patch(other.id, [{ add: '/hasOwnProperty', value: 'v' }], ADMIN, V20);
      assert.equal(v20.status, 200, v20.raw.toString());
      assert.equal((v20.body as Body).hasOwnProperty, 'v');
      const replaced = await patch(img.id, [{ op: 'replace', path: '/constructor', value: 'w' }]);
      assert.equal((replaced.body as Body).constructor, 'w');
      // A property filter matches only images that have the property.
      const r = await call('GET', '/v2/images?toString=z');
      assert.deepEqual(
        (r.body as { images: Image[] }).images.map((i) => i.id),
        [img.id],
      );
      for (const i of [img, other]) await call('DELETE', `/v2/images/${i.id}`);
    });

    test('list pages: limit=0 has no next; 25 a page by default, next while full', async () => {
      const made: Image[] = [];
      for (let i = 0; i < 26; i++)
        made.push(await create({ name: `n${String(i).padStart(2, '0')}` }));
      const zero = await call('GET', '/v2/images?limit=0');
      assert.equal(zero.status, 200);
      assert.deepEqual(zero.body, {
        images: [],
        first: '/v2/images?limit=0',
        schema: '/v2/schemas/images',
      });
      const page = (await call('GET', '/v2/images?sort=name:asc')).body as Body;
      const images = page.images as Image[];
      assert.equal(images.length, 25);
      assert.equal(page.next, `/v2/images?sort=name%3Aasc&marker=${images[24]?.id}`);
      const rest = (await call('GET', page.next as string)).body as Body;
      assert.deepEqual(
        (rest.images as Image[]).map((i) => i.name),
        ['n25'],
      );
      assert.equal(rest.next, undefined);
      for (const i of made) await call('DELETE', `/v2/images/${i.id}`);
    });

    test('kernel_id and ramdisk_id set to null are removed', async () => {
      const ref = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
      const img = await create({ name: 'k', kernel_id: ref, ramdisk_id: ref });
      const r = await patch(img.id, [
        { op: 'replace', path: '/kernel_id', value: null },
        { op: 'add', path: '/ramdisk_id', value: null },
      ]);
      assert.equal(r.status, 200, r.raw.toString());
      assert.equal((r.body as Body).kernel_id, undefined);
      assert.equal((r.body as Body).ramdisk_id, undefined);
      const other = await patch(img.id, [{ op: 'add', path: '/os_distro', value: null }]);
      assert.match(glanceError(other, 400), /os_distro/);
      await call('DELETE', `/v2/images/${img.id}`);
    });

    test('PATCH writes only over what it read: racing patches keep every change', async () => {
      const img = await create({ name: 'race' });
      const ops = (i: number) => [{ op: 'add', path: `/p${i}`, value: String(i) }];
      const answers = await Promise.all([0, 1, 2, 3].map((i) => patch(img.id, ops(i))));
      for (const a of answers) assert.equal(a.status, 200, a.raw.toString());
      const after = await show(img.id);
      assert.deepEqual([after.p0, after.p1, after.p2, after.p3], ['0', '1', '2', '3']);
      // The concurrent PATCHes above interleave on PostgreSQL; SQLite serialises them, so
      // the stale-read refusal is driven deterministically below on both engines.
      // A write from a stale read is refused, as is a format change once not queued.
      const stale = await getImage(ctx.db, img.id);
      assert.ok(stale);
      const fields = { ...stale, name: 'stale' };
      await patch(img.id, [{ op: 'replace', path: '/name', value: 'fresh' }]);
      const now = new Date();
      assert.equal(await updateImageFields(ctx.db, stale, fields, false, now), false);
      const fresh = await getImage(ctx.db, img.id);
      assert.ok(fresh);
      await upload(img.id, 4);
      const qcow = { ...fresh, disk_format: 'qcow2' as const };
      assert.equal(await updateImageFields(ctx.db, fresh, qcow, true, now), false);
      assert.equal((await show(img.id)).disk_format, 'raw');
      assert.equal(
        await updateImageFields(ctx.db, fresh, { ...fresh, name: 'ok' }, false, now),
        true,
      );
      await call('DELETE', `/v2/images/${img.id}`);
    });
  });
}
