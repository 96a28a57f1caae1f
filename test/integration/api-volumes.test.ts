/**
 * Cinder v3 volumes on kumo-api, on both database engines: version documents and the
 * `OpenStack-API-Version: volume 3.x` negotiation; create (no volume agent: `error` with
 * its reason and a user message, host NULL, nothing hinted), refusals of bad input with
 * the field named and nothing written; another project's volume is a 404 and a path
 * naming another project a 400; lists with filters, sorting and pages; update; delete
 * (refused while busy, a served volume goes `deleting` with its revision bumped and its
 * host hinted, an unplaced one is removed at once); os-extend, os-reset_status and
 * os-force_delete with their policies.
 *
 * The storage host is played by `serve` (api-volumes-harness.ts); the hints the API casts
 * are read from the host queues on the real broker.
 *
 * Invariant under test: every refused request leaves the volumes table as it was.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Obj, volumesHarness } from './api-volumes-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Cinder volumes on ${engine}`, () => {
    const h = volumesHarness(engine);
    const volumeRows = () =>
      h.rows('SELECT id, name, size, status, host, revision_number FROM volumes ORDER BY id');
    const message = (r: { body: Obj }) =>
      String((Object.values(r.body)[0] as { message?: string } | undefined)?.message);

    test('version documents and microversion negotiation', async () => {
      const root = await h.api.app.inject({ method: 'GET', url: '/volume' });
      assert.equal(root.statusCode, 300);
      const [v3] = root.json().versions as Obj[];
      assert.deepEqual([v3?.id, v3?.min_version, v3?.version], ['v3.0', '3.0', '3.3']);
      const doc = await h.api.app.inject({ method: 'GET', url: '/volume/v3/' });
      assert.equal(doc.statusCode, 200);
      assert.equal(doc.headers['openstack-api-version'], 'volume 3.0');
      const at = async (v: string) => h.call('A', 'GET', '/volumes', undefined, v);
      assert.equal((await at('3.3')).headers['openstack-api-version'], 'volume 3.3');
      assert.equal((await at('latest')).headers['openstack-api-version'], 'volume 3.3');
      assert.equal((await at('3.3')).headers.vary, 'OpenStack-API-Version');
      const high = await at('3.4');
      assert.equal(high.status, 406);
      assert.match(message(high), /Minimum is 3\.0 and maximum is 3\.3/);
      assert.equal((await at('2.0')).status, 406);
      assert.equal((await at('3.x')).status, 400);
      const net = await h.api.app.inject({
        method: 'GET',
        url: '/v2.0/networks',
        headers: { 'x-auth-token': h.who.A },
      });
      assert.equal(net.headers['openstack-api-version'], undefined);
    });

    test('create with no volume agent: error, its reason and a user message; nothing hinted', async () => {
      const v = await h.create('A', {
        size: 1,
        name: 'lonely',
        description: 'd',
        metadata: { k: 'v' },
      });
      assert.equal(v.status, 'error');
      assert.deepEqual(
        [v.volume_type, v.bootable, v.size, v.metadata],
        ['lvm', 'false', 1, { k: 'v' }],
      );
      const [row] = await h.rows(
        'SELECT host, status_reason, auth_username, auth_secret FROM volumes WHERE id = ?',
        [String(v.id)],
      );
      assert.equal(row?.host, null);
      assert.match(String(row?.status_reason), /No valid backend/);
      assert.match(String(row?.auth_username), /^[A-Za-z0-9]{20}$/);
      assert.match(String(row?.auth_secret), /^[A-Za-z0-9]{16}$/);
      const msgs = await h.call('A', 'GET', '/messages', undefined, '3.3');
      const mine = (msgs.body.messages as Obj[]).filter((m) => m.resource_uuid === v.id);
      assert.equal(mine.length, 1);
      assert.match(String(mine[0]?.user_message), /No valid backend/);
      const theirs = await h.call('B', 'GET', '/messages', undefined, '3.3');
      assert.equal(
        (theirs.body.messages as Obj[]).some((m) => m.resource_uuid === v.id),
        false,
      );
      const mid = String(mine[0]?.id);
      assert.equal((await h.call('B', 'GET', `/messages/${mid}`, undefined, '3.3')).status, 404);
      assert.equal(
        h.hints.some((x) => x.args.id === v.id),
        false,
      );
      assert.equal((await h.call('A', 'GET', '/messages', undefined, '3.0')).status, 404);
    });

    test('bad input is a 400 naming the field, and nothing is written', async () => {
      const before = await volumeRows();
      const cases: [Obj, RegExp][] = [
        [{ size: 1, name: 'a\nb' }, /volume\.name/],
        [{ size: -1 }, /volume\.size/],
        [{ size: 0 }, /volume\.size/],
        [{ size: 99_999_999 }, /volume\.size/],
        [{ size: 'big' }, /volume\.size/],
        [{ name: 'no size' }, /volume\.size/],
        [{ size: 1, volume_type: 'nosuch' }, /volume_type.*nosuch/],
        [{ size: 1, snapshot_id: 'not-a-uuid' }, /volume\.snapshot_id/],
        [{ size: 1, source_volid: 'x' }, /volume\.source_volid/],
        [{ size: 1, imageRef: '00000000-0000-4000-8000-000000000000' }, /volume\.imageRef/],
        [{ size: 1, multiattach: true }, /volume\.multiattach/],
        [{ size: 1, metadata: { k: 1 } }, /volume\.metadata\.k/],
        [{ size: 1, availability_zone: 'mars' }, /Availability zone 'mars' is invalid/],
        [{ size: 1, colour: 'red' }, /volume\.colour/],
      ];
      for (const [volume, why] of cases) {
        const r = await h.call('A', 'POST', '/volumes', { volume });
        assert.equal(r.status, 400, JSON.stringify(volume));
        assert.match(message(r), why);
        assert.ok(r.body.badRequest, 'Cinder error shape');
      }
      assert.equal((await h.call('A', 'POST', '/volumes', { size: 1 })).status, 400);
      assert.deepEqual(await volumeRows(), before);
    });

    test("another project's volume is a 404; a path naming another project a 400", async () => {
      const v = await h.create('A', { size: 1, name: 'private' });
      await h.serve(String(v.id));
      const before = await volumeRows();
      for (const [method, path, body] of [
        ['GET', `/volumes/${v.id}`],
        ['PUT', `/volumes/${v.id}`, { volume: { name: 'stolen' } }],
        ['DELETE', `/volumes/${v.id}`],
        ['POST', `/volumes/${v.id}/action`, { 'os-extend': { new_size: 5 } }],
      ] as [string, string, Obj?][]) {
        const r = await h.call('B', method, path, body);
        assert.equal(r.status, 404, `${method} ${path}`);
        assert.ok(r.body.itemNotFound);
      }
      const listB = await h.call('B', 'GET', '/volumes');
      assert.equal(
        (listB.body.volumes as Obj[]).some((x) => x.id === v.id),
        false,
      );
      const cross = await h.api.app.inject({
        method: 'GET',
        url: `/volume/v3/${h.projects.A}/volumes`,
        headers: { 'x-auth-token': h.who.B },
      });
      assert.equal(cross.statusCode, 400);
      assert.match(cross.body, /Malformed request url/);
      assert.equal(
        (await h.call('readerA', 'PUT', `/volumes/${v.id}`, { volume: { name: 'r' } })).status,
        403,
      );
      assert.deepEqual(await volumeRows(), before);
      const admin = await h.call('admin', 'GET', `/volumes/${v.id}`);
      assert.equal((admin.body.volume as Obj)['os-vol-host-attr:host'], 'storage1@lvm#lvm');
      assert.equal((admin.body.volume as Obj)['os-vol-tenant-attr:tenant_id'], h.projects.A);
      const mine = await h.call('A', 'GET', `/volumes/${v.id}`);
      assert.equal('os-vol-host-attr:host' in (mine.body.volume as Obj), false);
      assert.equal('os-vol-mig-status-attr:migstat' in (mine.body.volume as Obj), false);
      assert.equal(
        (mine.body.volume as Obj)['os-vol-tenant-attr:tenant_id'],
        h.projects.A,
        "the owner sees the tenant attribute (Cinder's admin_or_owner rule)",
      );
      const all = await h.call('admin', 'GET', '/volumes?all_tenants=1');
      assert.ok((all.body.volumes as Obj[]).some((x) => x.id === v.id));
      const own = await h.call('admin', 'GET', '/volumes');
      assert.equal(
        (own.body.volumes as Obj[]).some((x) => x.id === v.id),
        false,
      );
    });

    test('lists: filters, sorting, pages with a next link; bad queries are 400s', async () => {
      for (const [name, size] of [
        ['l-a', 3],
        ['l-b', 1],
        ['l-c', 2],
      ] as const) {
        const v = await h.create('B', {
          size,
          name,
          metadata: { group: name === 'l-b' ? 'x' : 'y' },
        });
        await h.serve(String(v.id));
      }
      const names = async (q: string) =>
        ((await h.call('B', 'GET', `/volumes/detail${q}`)).body.volumes as Obj[]).map(
          (v) => v.name,
        );
      assert.deepEqual(await names('?sort=name:asc'), ['l-a', 'l-b', 'l-c']);
      assert.deepEqual(await names('?sort_key=size&sort_dir=asc'), ['l-b', 'l-c', 'l-a']);
      assert.deepEqual(await names('?name=l-c'), ['l-c']);
      assert.deepEqual(await names('?status=error'), []);
      assert.deepEqual(await names(`?metadata=${encodeURIComponent("{'group': 'x'}")}`), ['l-b']);
      const page = await h.call('B', 'GET', '/volumes?sort=name:asc&limit=2');
      assert.deepEqual(
        (page.body.volumes as Obj[]).map((v) => v.name),
        ['l-a', 'l-b'],
      );
      const next = new URL(String((page.body.volumes_links as Obj[])[0]?.href));
      const rest = await h.call('B', 'GET', `/volumes?${next.searchParams.toString()}`);
      assert.deepEqual(
        (rest.body.volumes as Obj[]).map((v) => v.name),
        ['l-c'],
      );
      assert.equal(rest.body.volumes_links, undefined);
      for (const q of ['?sort=name:up', '?sort=colour', '?limit=-1', '?limit=x', '?colour=red'])
        assert.equal((await h.call('B', 'GET', `/volumes${q}`)).status, 400, q);
      assert.equal(
        (await h.call('B', 'GET', '/volumes?marker=00000000-0000-4000-8000-000000000000')).status,
        404,
      );
    });

    test('update: name, description, metadata; a newline is refused', async () => {
      const v = await h.create('A', { size: 1, name: 'before' });
      const r = await h.call('A', 'PUT', `/volumes/${v.id}`, {
        volume: { name: 'after', description: 'x', metadata: { a: 'b' } },
      });
      assert.equal(r.status, 200);
      const got = r.body.volume as Obj;
      assert.deepEqual([got.name, got.description, got.metadata], ['after', 'x', { a: 'b' }]);
      assert.equal(
        (await h.call('A', 'PUT', `/volumes/${v.id}`, { volume: { name: 'x\ny' } })).status,
        400,
      );
      assert.equal(
        (await h.call('A', 'PUT', `/volumes/${v.id}`, { volume: { size: 9 } })).status,
        400,
      );
      assert.equal(
        ((await h.call('A', 'GET', `/volumes/${v.id}`)).body.volume as Obj).name,
        'after',
      );
    });

    test('delete: busy statuses refused; a served volume goes deleting and its host is hinted', async () => {
      const unplaced = await h.create('A', { size: 1 });
      assert.equal((await h.call('A', 'DELETE', `/volumes/${unplaced.id}`)).status, 202);
      assert.deepEqual(
        await h.rows('SELECT id FROM volumes WHERE id = ?', [String(unplaced.id)]),
        [],
      );
      const v = await h.create('A', { size: 1, name: 'doomed' });
      const id = String(v.id);
      await h.serve(id, 'storage2');
      for (const status of ['in-use', 'attaching', 'creating', 'extending']) {
        await h.api.db.query('UPDATE volumes SET status = ? WHERE id = ?', [status, id]);
        const r = await h.call('A', 'DELETE', `/volumes/${id}`);
        assert.equal(r.status, 400, status);
        assert.match(message(r), new RegExp(`status is ${status}`));
      }
      await h.api.db.query("UPDATE volumes SET status = 'available' WHERE id = ?", [id]);
      assert.equal((await h.call('A', 'DELETE', `/volumes/${id}`)).status, 202);
      const [row] = await h.rows(
        'SELECT status, revision_number, status_revision FROM volumes WHERE id = ?',
        [id],
      );
      assert.deepEqual(row, { status: 'deleting', revision_number: 2, status_revision: 2 });
      await h.hinted('storage2', { resource: 'volume', id, revision: 2 });
      assert.equal((await h.call('A', 'DELETE', `/volumes/${id}`)).status, 400);
    });

    test('os-extend grows an available volume; shrinking, busy, over quota are refused', async () => {
      const v = await h.create('A', { size: 2, name: 'grow' });
      const id = String(v.id);
      await h.serve(id);
      const act = (body: Obj, who: 'A' | 'admin' | 'B' = 'A') =>
        h.call(who, 'POST', `/volumes/${id}/action`, body);
      for (const n of [1, 2]) {
        const r = await act({ 'os-extend': { new_size: n } });
        assert.equal(r.status, 400);
        assert.match(message(r), /greater than current size/);
      }
      assert.equal((await act({ 'os-extend': { new_size: 100_000 } })).status, 400);
      assert.equal((await act({ 'os-extend': { new_size: 5000 } })).status, 413);
      assert.equal((await act({ 'os-shrink': {} })).status, 400);
      assert.equal((await act({ 'os-extend': { new_size: 4 } })).status, 202);
      const [row] = await h.rows(
        'SELECT size, extend_size, status, revision_number FROM volumes WHERE id = ?',
        [id],
      );
      assert.deepEqual(row, { size: 2, extend_size: 4, status: 'extending', revision_number: 2 });
      await h.hinted('storage1', { resource: 'volume', id, revision: 2 });
      assert.equal((await act({ 'os-extend': { new_size: 6 } })).status, 400);
    });

    test('os-reset_status and os-force_delete: admin only', async () => {
      const v = await h.create('A', { size: 1, name: 'stuck' });
      const id = String(v.id);
      await h.serve(id);
      await h.api.db.query("UPDATE volumes SET status = 'extending' WHERE id = ?", [id]);
      const act = (body: Obj, who: 'A' | 'admin') =>
        h.api.app.inject({
          method: 'POST',
          url: `/volume/v3/${h.projects[who]}/volumes/${id}/action`,
          headers: { 'x-auth-token': h.who[who] },
          payload: body,
        });
      assert.equal(
        (await act({ 'os-reset_status': { status: 'available' } }, 'A')).statusCode,
        403,
      );
      assert.equal((await act({ 'os-force_delete': {} }, 'A')).statusCode, 403);
      assert.equal(
        (await act({ 'os-reset_status': { status: 'nonsense' } }, 'admin')).statusCode,
        400,
      );
      assert.equal(
        (await act({ 'os-reset_status': { status: 'error' } }, 'admin')).statusCode,
        202,
      );
      const [reset] = await h.rows('SELECT status, revision_number FROM volumes WHERE id = ?', [
        id,
      ]);
      assert.deepEqual(reset, { status: 'error', revision_number: 1 });
      await h.api.db.query("UPDATE volumes SET status = 'in-use' WHERE id = ?", [id]);
      assert.equal((await act({ 'os-force_delete': {} }, 'admin')).statusCode, 400);
      await h.api.db.query("UPDATE volumes SET status = 'creating' WHERE id = ?", [id]);
      assert.equal((await act({ 'os-force_delete': {} }, 'admin')).statusCode, 202);
      const [row] = await h.rows('SELECT status FROM volumes WHERE id = ?', [id]);
      assert.equal(row?.status, 'deleting');
      await h.hinted('storage1', { resource: 'volume', id, revision: 2 });
    });
  });
}
