/**
 * Issue 11, Glance v2 image members and list filters, on both database engines with a
 * real broker vhost: members only on shared images, Glance's member objects and list
 * (checked against the served schemas), duplicates, statuses, members going with their
 * image; size_min/size_max, `sort=key:dir,…`, every `tag`, visibility and member_status.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Image } from '../../contracts/compute.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { ADMIN, type Body, glanceError, imageApp, MEMBER } from './api-images-harness.ts';

const OTHER = '9f8e7d6c5b4a49382716a5b4c3d2e1f0';
const THIRD = 'c0ffee00c0ffee00c0ffee00c0ffee00';
const MEMBER_KEYS = ['created_at', 'image_id', 'member_id', 'schema', 'status', 'updated_at'];
const JSON_TYPE = 'application/json';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Glance image members and list filters on ${engine}`, () => {
    const { ctx, call, create, upload } = imageApp(engine);
    const members = (id: string) => `/v2/images/${id}/members`;
    const add = (id: string, member: unknown, token = ADMIN) =>
      call('POST', members(id), { member }, { token });

    test('members: only shared images; Glance objects, list, duplicates, statuses', async () => {
      const priv = await create({ name: 'p', visibility: 'private' });
      assert.equal(
        glanceError(await add(priv.id, OTHER), 403),
        `Not allowed to create members for image ${priv.id}.`,
      );
      assert.equal(
        glanceError(await call('GET', members(priv.id)), 403),
        `Not allowed to list members for image ${priv.id}: Only shared images have members.`,
      );
      assert.equal(
        glanceError(await call('GET', `${members(priv.id)}/${OTHER}`), 404),
        'Only shared images have members.',
      );

      const img = await create({ name: 's', visibility: 'shared' });
      const r = await add(img.id, OTHER);
      assert.equal(r.status, 200, r.raw.toString());
      assert.deepEqual(r.body, {
        created_at: '2026-11-22T10:00:00Z',
        updated_at: '2026-11-22T10:00:00Z',
        image_id: img.id,
        member_id: OTHER,
        status: 'pending',
        schema: '/v2/schemas/member',
      });
      assert.equal(
        glanceError(await add(img.id, OTHER), 409),
        `Member ${OTHER} is duplicated for image ${img.id}`,
      );
      assert.equal((await add(img.id, DEFAULT_PROJECT_ID, MEMBER)).status, 200);

      const list = await call('GET', members(img.id));
      assert.deepEqual(Object.keys(list.body ?? {}).sort(), ['members', 'schema']);
      assert.equal(list.body?.schema, '/v2/schemas/members');
      const listed = list.body?.members as Body[];
      assert.deepEqual(listed.map((m) => m.member_id).sort(), [DEFAULT_PROJECT_ID, OTHER].sort());
      for (const m of listed) assert.deepEqual(Object.keys(m).sort(), MEMBER_KEYS);

      const put = (member: string, body: unknown, token = ADMIN) =>
        call('PUT', `${members(img.id)}/${member}`, body, { token, type: JSON_TYPE });
      const accepted = await put(OTHER, { status: 'accepted' });
      assert.equal(accepted.status, 200, accepted.raw.toString());
      assert.equal(accepted.body?.status, 'accepted');
      assert.equal((await call('GET', `${members(img.id)}/${OTHER}`)).body?.status, 'accepted');
      // A non-admin (the default project) answers only for its own membership.
      assert.equal(
        glanceError(await put(OTHER, { status: 'rejected' }, MEMBER), 403),
        `Not allowed to update members for image ${img.id}.`,
      );
      assert.equal((await put(DEFAULT_PROJECT_ID, { status: 'rejected' }, MEMBER)).status, 200);
      const cases: [unknown, string][] = [
        [
          { status: 'maybe' },
          'Incorrect request: Status must be "pending", "accepted" or "rejected".',
        ],
        [{}, 'Status not specified'],
        [['accepted'], 'Expected a status in the form: {"status": "status"}'],
        ['', 'Body expected in request.'],
      ];
      for (const [body, message] of cases)
        assert.equal(glanceError(await put(OTHER, body), 400), message);
      assert.equal(
        glanceError(await put(THIRD, { status: 'accepted' }), 404),
        `${THIRD} not found in the member list of the image ${img.id}.`,
      );
      const addCases: [unknown, string][] = [
        [{ member: '' }, "Member can't be empty"],
        [{ other: OTHER }, 'Member to be added not specified'],
        [[OTHER], 'Expected a member in the form: {"member": "image_id"}'],
      ];
      for (const [body, message] of addCases)
        assert.equal(glanceError(await call('POST', members(img.id), body), 400), message);
      assert.match(glanceError(await add(img.id, 'a/b'), 400), /member.*project id/);
      assert.equal(
        glanceError(await add('6b2c1a8e-0d5f-4e3a-9b7c-1f2e3d4c5b6a', OTHER), 404),
        'Image 6b2c1a8e-0d5f-4e3a-9b7c-1f2e3d4c5b6a not found.',
      );

      assert.equal((await call('DELETE', `${members(img.id)}/${OTHER}`)).status, 204);
      glanceError(await call('DELETE', `${members(img.id)}/${OTHER}`), 404);
      assert.equal((await add(img.id, THIRD)).status, 200);
      assert.equal((await call('DELETE', `/v2/images/${img.id}`)).status, 204);
      const rows = await ctx.db.query('SELECT * FROM image_members WHERE image_id = ?', [img.id]);
      assert.deepEqual(rows, [], 'members go with their image');
      await call('DELETE', `/v2/images/${priv.id}`);
    });

    test('list filters: size range, sort syntaxes, every tag, visibility', async () => {
      const a = await create({ name: 'a', tags: ['x86', 'gpu'] });
      const b = await create({ name: 'b', tags: ['x86'], visibility: 'public' });
      const c = await create({ name: 'c', visibility: 'community' });
      await upload(a.id, 300);
      await upload(b.id, 100);
      await upload(c.id, 200);
      const names = async (query: string, token = ADMIN) => {
        const r = await call('GET', `/v2/images?${query}`, undefined, { token });
        assert.equal(r.status, 200, `${query}: ${r.raw.toString()}`);
        return ((r.body as { images: Image[] }).images ?? []).map((i) => i.name);
      };
      assert.deepEqual(await names('size_min=150&visibility=all&sort=name:asc'), ['a', 'c']);
      assert.deepEqual(await names('size_max=200&size_min=100&visibility=all&sort=name'), [
        'c',
        'b',
      ]);
      assert.deepEqual(await names('sort=size:desc&visibility=all'), ['a', 'c', 'b']);
      assert.deepEqual(await names('sort=size:asc,name:desc&visibility=all'), ['b', 'c', 'a']);
      assert.deepEqual(await names('sort_key=size&sort_dir=asc&visibility=all'), ['b', 'c', 'a']);
      assert.deepEqual(await names('tag=x86&sort=name:asc'), ['a', 'b']);
      assert.deepEqual(await names('tag=x86&tag=gpu'), ['a']);
      assert.deepEqual(await names('tag=arm'), []);
      // Others' community images only when asked for (the caller's own are listed, as
      // Glance keys on the caller's project, not on ?owner=); 'all' is everything.
      const d = await create({ name: 'd', visibility: 'community', owner: OTHER });
      assert.deepEqual(await names('sort=name:asc'), ['a', 'b', 'c']);
      assert.deepEqual(await names(`sort=name:asc&owner=${OTHER}`), []);
      assert.deepEqual(await names('visibility=community&sort=name:asc'), ['c', 'd']);
      assert.deepEqual(await names('sort=name:asc', MEMBER), ['a', 'b', 'c']);
      await call('DELETE', `/v2/images/${d.id}`);
      assert.deepEqual(await names('visibility=public'), ['b']);
      const first = (await call('GET', '/v2/images?visibility=all&limit=1')).body as Body;
      assert.equal(first.first, '/v2/images?visibility=all&limit=1');
      const bad: [string, string][] = [
        ['sort=size:desc&sort_key=name', 'Old and new sorting syntax cannot be combined'],
        [
          'sort=color:asc',
          'Invalid sort key: color. It must be one of the following: name, status, container_format, disk_format, size, id, created_at, updated_at.',
        ],
        ['sort=name:up', 'Invalid sort direction: up'],
        ['sort=name:asc:x', 'Invalid sort direction: asc:x'],
        [
          'sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc',
          'Number of sort dirs does not match the number of sort keys',
        ],
        ['size_min=big', 'Unable to filter on a range with a non-numeric value.'],
        ['visibility=everyone', 'Invalid visibility value: everyone'],
        ['member_status=maybe', 'Invalid status: maybe'],
        ['limit=-1', 'limit param must be positive'],
      ];
      for (const [query, message] of bad)
        assert.equal(glanceError(await call('GET', `/v2/images?${query}`), 400), message, query);
      for (const img of [a, b, c]) await call('DELETE', `/v2/images/${img.id}`);
    });

    test("member_status: a non-admin sees others' shared images by its membership", async () => {
      const theirs = await create({ name: 'theirs', visibility: 'shared', owner: OTHER });
      const hidden = await create({ name: 'hidden', visibility: 'private', owner: OTHER });
      const mine = await create({ name: 'mine', visibility: 'private' }, MEMBER);
      const seen = async (query: string) => {
        const r = await call('GET', `/v2/images?sort=name:asc${query}`, undefined, {
          token: MEMBER,
        });
        return ((r.body as { images: Image[] }).images ?? []).map((i) => i.name);
      };
      assert.deepEqual(await seen(''), ['mine']);
      assert.equal((await add(theirs.id, DEFAULT_PROJECT_ID)).status, 200);
      assert.deepEqual(await seen(''), ['mine'], 'pending is not accepted');
      assert.deepEqual(await seen('&member_status=pending'), ['mine', 'theirs']);
      assert.deepEqual(await seen('&member_status=all'), ['mine', 'theirs']);
      const accept = await call(
        'PUT',
        `${members(theirs.id)}/${DEFAULT_PROJECT_ID}`,
        { status: 'accepted' },
        { token: MEMBER },
      );
      assert.equal(accept.status, 200, accept.raw.toString());
      assert.deepEqual(await seen(''), ['mine', 'theirs']);
      assert.deepEqual(await seen('&member_status=rejected'), ['mine']);
      // The admin sees every image whatever its membership.
      const all = await call('GET', '/v2/images?sort=name:asc');
      assert.deepEqual(
        ((all.body as { images: Image[] }).images ?? []).map((i) => i.name),
        ['hidden', 'mine', 'theirs'],
      );
      for (const img of [theirs, hidden, mine]) await call('DELETE', `/v2/images/${img.id}`);
    });
  });
}
