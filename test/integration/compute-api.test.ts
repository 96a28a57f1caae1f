/**
 * Flavors (Nova v2.1) and images (Glance v2) through buildApp() + inject on both database
 * engines: seeded flavors, admin-only flavor management, Nova's error shape, image
 * create → streamed upload → active with md5/sha512/size → byte-equal download → delete
 * removing the file; kernel_id/ramdisk_id form checks, single upload, the size limit, and
 * 400s naming the field; image errors in Glance's shape.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { Flavor, Image } from '../../contracts/compute.ts';
import { testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-xyz';
const MEMBER = 'member-token-xyz';
const SERVICE = 'service-token-xyz';
const SIZE_LIMIT = 4 * 1024 * 1024;
const PATCH_TYPE = 'application/openstack-images-v2.1-json-patch';

type Body = Record<string, unknown>;
interface Res {
  status: number;
  body: Body | null;
  headers: Record<string, unknown>;
  raw: Buffer;
}

/** Deterministic pseudo-random bytes, streamed in 64 KiB chunks. */
function data(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
const chunked = (buf: Buffer) =>
  Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += 65536) yield buf.subarray(i, i + 65536);
    })(),
  );

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`flavors and images on ${engine}`, () => {
    const api = testApi(engine, {
      settings: {
        adminToken: ADMIN,
        memberTokens: [MEMBER],
        serviceTokens: [SERVICE],
      },
      imageSizeLimit: SIZE_LIMIT,
    });
    const imageDir = () => join(api.dir, 'images');

    const call = async (
      method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
      url: string,
      payload?: unknown,
      opts: { token?: string; type?: string } = {},
    ): Promise<Res> => {
      const headers: Record<string, string> = { 'x-auth-token': opts.token ?? ADMIN };
      if (opts.type) headers['content-type'] = opts.type;
      const res = await api.app.inject({
        method,
        url,
        payload: payload as string,
        headers,
      });
      const json = (res.headers['content-type'] ?? '').toString().startsWith('application/json');
      return {
        status: res.statusCode,
        body: json && res.body ? (res.json() as Body) : null,
        headers: res.headers,
        raw: res.rawPayload,
      };
    };
    const novaErr = (r: Res, key: string) => {
      const inner = (r.body as Record<string, { code: number; message: string }>)[key];
      assert.ok(inner, `expected a ${key} error, got ${JSON.stringify(r.body)}`);
      assert.equal(inner.code, r.status);
      return inner.message;
    };
    /** Glance's (webob's) error body: message, "404 Not Found", title, request id. */
    const glanceErr = (r: Res) => {
      const body = r.body as { message: string; code: string; title: string; request_id: string };
      assert.ok(body, `expected a Glance error body, got ${r.raw.toString()}`);
      assert.deepEqual(Object.keys(body).sort(), ['code', 'message', 'request_id', 'title']);
      assert.equal(body.code, `${r.status} ${body.title}`);
      assert.equal(body.request_id, r.headers['x-openstack-request-id']);
      return body.message;
    };
    const createImage = async (body: Body = {}, token = ADMIN) => {
      const r = await call(
        'POST',
        '/v2/images',
        { name: 'img', disk_format: 'qcow2', container_format: 'bare', ...body },
        { token },
      );
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body as unknown as Image;
    };
    const upload = (id: string, payload: Buffer | Readable, token = ADMIN) =>
      call('PUT', `/v2/images/${id}/file`, payload, {
        token,
        type: 'application/octet-stream',
      });
    const getImage = async (id: string) => {
      const r = await call('GET', `/v2/images/${id}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body as unknown as Image;
    };
    const files = () => (existsSync(imageDir()) ? readdirSync(imageDir()).sort() : []);

    test('the four seeded flavors, in list, detail and show, at / and /v2.1', async () => {
      for (const prefix of ['', '/v2.1']) {
        const detail = await call('GET', `${prefix}/flavors/detail`);
        assert.equal(detail.status, 200);
        const flavors = (detail.body as { flavors: Flavor[] }).flavors;
        assert.deepEqual(
          flavors.map((f) => [f.id, f.name, f.vcpus, f.ram, f.disk]),
          [
            ['1', 'm1.tiny', 1, 512, 1],
            ['2', 'm1.small', 1, 2048, 20],
            ['3', 'm1.medium', 2, 4096, 40],
            ['4', 'm1.large', 4, 8192, 80],
          ],
        );
        const tiny = flavors[0] as Flavor;
        // Nova below 2.55: exactly tempest v2_1's flavor keys, no description or ephemeral.
        assert.deepEqual(Object.keys(tiny).sort(), [
          'OS-FLV-DISABLED:disabled',
          'OS-FLV-EXT-DATA:ephemeral',
          'disk',
          'id',
          'links',
          'name',
          'os-flavor-access:is_public',
          'ram',
          'rxtx_factor',
          'swap',
          'vcpus',
        ]);
        assert.equal(tiny.swap, '');
        assert.equal(tiny.rxtx_factor, 1.0);
        assert.equal(tiny['os-flavor-access:is_public'], true);
        assert.equal(tiny['OS-FLV-DISABLED:disabled'], false);
        assert.equal(tiny['OS-FLV-EXT-DATA:ephemeral'], 0);
        assert.match(tiny.links[0]?.href ?? '', new RegExp(`${prefix}/flavors/1$`));
        const brief = (await call('GET', `${prefix}/flavors`, undefined, { token: MEMBER }))
          .body as { flavors: Body[] };
        assert.deepEqual(Object.keys(brief.flavors[0] ?? {}).sort(), ['id', 'links', 'name']);
        const show = await call('GET', `${prefix}/flavors/3`, undefined, { token: MEMBER });
        assert.equal((show.body as { flavor: Flavor }).flavor.name, 'm1.medium');
      }
      const big = (await call('GET', '/flavors/detail?minRam=4096&minDisk=50')).body as {
        flavors: Flavor[];
      };
      assert.deepEqual(
        big.flavors.map((f) => f.id),
        ['4'],
      );
      const page = (await call('GET', '/flavors?marker=1&limit=2')).body as { flavors: Flavor[] };
      assert.deepEqual(
        page.flavors.map((f) => f.id),
        ['2', '3'],
      );
    });

    test('flavor create and delete are admin-only; errors use Nova shapes', async () => {
      const body = { flavor: { name: 'f.custom', vcpus: 2, ram: 1024, disk: 5, id: 'custom-1' } };
      const denied = await call('POST', '/flavors', body, { token: MEMBER });
      assert.equal(denied.status, 403);
      assert.match(novaErr(denied, 'forbidden'), /os-flavor-manage:create/);

      const created = await call('POST', '/flavors', body);
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const flavor = (created.body as { flavor: Flavor }).flavor;
      assert.equal(flavor.id, 'custom-1');
      assert.equal(flavor.vcpus, 2);

      const dupName = await call('POST', '/flavors', {
        flavor: { name: 'f.custom', vcpus: 1, ram: 1, disk: 0 },
      });
      assert.equal(dupName.status, 409);
      assert.match(novaErr(dupName, 'conflictingRequest'), /name f\.custom already exists/);
      const dupId = await call('POST', '/flavors', {
        flavor: { name: 'other', vcpus: 1, ram: 1, disk: 0, id: '1' },
      });
      assert.equal(dupId.status, 409);
      assert.match(novaErr(dupId, 'conflictingRequest'), /ID 1 already exists/);

      // novaclient's body: generated id, swap "", rxtx 1.0, numbers as given.
      const auto = await call('POST', '/v2.1/flavors', {
        flavor: {
          name: 'f.auto',
          vcpus: '1',
          ram: 256,
          disk: 1,
          id: null,
          swap: 0,
          'OS-FLV-EXT-DATA:ephemeral': 0,
          rxtx_factor: 1.0,
          'os-flavor-access:is_public': true,
        },
      });
      assert.equal(auto.status, 200, JSON.stringify(auto.body));
      const autoId = (auto.body as { flavor: Flavor }).flavor.id;
      assert.match(autoId, /^[0-9a-f-]{36}$/);

      const bad = await call('POST', '/flavors', {
        flavor: { name: 'bad\nname', vcpus: 1, ram: 1, disk: 0 },
      });
      assert.equal(bad.status, 400);
      assert.match(novaErr(bad, 'badRequest'), /flavor\.name.*control characters/);
      const badRam = await call('POST', '/flavors', {
        flavor: { name: 'x', vcpus: 1, ram: 0, disk: 0 },
      });
      assert.match(novaErr(badRam, 'badRequest'), /flavor\.ram/);
      const badSwap = await call('POST', '/flavors', {
        flavor: { name: 'x', vcpus: 1, ram: 1, disk: 0, swap: 512 },
      });
      assert.match(novaErr(badSwap, 'badRequest'), /flavor\.swap/);
      const extra = await call('POST', '/flavors', {
        flavor: { name: 'x', vcpus: 1, ram: 1, disk: 0, color: 'red' },
      });
      assert.match(novaErr(extra, 'badRequest'), /flavor\.color/);

      const memberDelete = await call('DELETE', '/flavors/custom-1', undefined, { token: MEMBER });
      assert.equal(memberDelete.status, 403);
      assert.equal((await call('DELETE', '/flavors/custom-1')).status, 202);
      assert.equal((await call('DELETE', `/flavors/${autoId}`)).status, 202);
      const gone = await call('GET', '/flavors/custom-1');
      assert.equal(gone.status, 404);
      assert.equal(novaErr(gone, 'itemNotFound'), 'Flavor custom-1 could not be found.');
      assert.equal((await call('DELETE', '/flavors/custom-1')).status, 404);
      const left = (await call('GET', '/flavors')).body as { flavors: Flavor[] };
      assert.deepEqual(
        left.flavors.map((f) => f.id),
        ['1', '2', '3', '4'],
      );
      const noToken = await api.app.inject({ method: 'GET', url: '/flavors' });
      assert.equal(noToken.statusCode, 401);
      assert.ok((noToken.json() as Body).unauthorized);
    });

    test('image create → streamed upload → active → byte-equal download → delete', async () => {
      const created = await createImage({ name: 'cirros', min_disk: 1, os_distro: 'cirros' });
      assert.equal(created.status, 'queued');
      assert.equal(created.visibility, 'shared');
      assert.equal(created.size, null);
      assert.equal(created.os_distro, 'cirros');
      assert.equal(created.file, `/v2/images/${created.id}/file`);
      // No data yet: 204, as Glance.
      assert.equal((await call('GET', `/v2/images/${created.id}/file`)).status, 204);

      const bytes = data(3 * 1024 * 1024 + 17);
      const up = await upload(created.id, chunked(bytes), MEMBER);
      assert.equal(up.status, 204, JSON.stringify(up.body));
      const active = await getImage(created.id);
      assert.equal(active.status, 'active');
      assert.equal(active.size, bytes.length);
      assert.equal(active.checksum, createHash('md5').update(bytes).digest('hex'));
      assert.equal(active.os_hash_algo, 'sha512');
      assert.equal(active.os_hash_value, createHash('sha512').update(bytes).digest('hex'));
      assert.deepEqual(files(), [created.id], 'exactly the image file, no temp files');

      const down = await call('GET', `/v2/images/${created.id}/file`, undefined, {
        token: SERVICE,
      });
      assert.equal(down.status, 200);
      assert.equal(down.headers['content-md5'], active.checksum);
      assert.equal(Number(down.headers['content-length']), bytes.length);
      assert.ok(down.raw.equals(bytes), 'downloaded bytes equal the uploaded ones');
      // The service token reads images and nothing else.
      assert.equal((await call('GET', '/v2/images', undefined, { token: SERVICE })).status, 200);
      const serviceWrite = await call('DELETE', `/v2/images/${created.id}`, undefined, {
        token: SERVICE,
      });
      assert.equal(serviceWrite.status, 403);
      assert.equal(
        (await call('GET', '/v2.0/networks', undefined, { token: SERVICE })).status,
        403,
      );

      const again = await upload(created.id, data(10));
      assert.equal(again.status, 409);
      assert.match(glanceErr(again), /uploaded only once/);
      assert.equal((await getImage(created.id)).checksum, active.checksum);

      // The root paths the openstack client uses with --os-endpoint are the same images.
      const root = await call('GET', `/images/${created.id}`);
      assert.equal((root.body as unknown as Image).id, created.id);

      assert.equal(
        (await call('DELETE', `/v2/images/${created.id}`, undefined, { token: MEMBER })).status,
        204,
      );
      assert.deepEqual(files(), [], 'deleting the image removes its file');
      const gone = await call('GET', `/v2/images/${created.id}`);
      assert.equal(gone.status, 404);
      assert.equal(glanceErr(gone), `No image found with ID ${created.id}`);
    });

    test('over the size limit: 413, the image stays queued, no file left behind', async () => {
      const img = await createImage({ name: 'big' });
      const tooBig = await upload(img.id, chunked(data(SIZE_LIMIT + 1)));
      assert.equal(tooBig.status, 413);
      assert.match(glanceErr(tooBig), /size limit of 4194304 bytes/);
      let after = await getImage(img.id);
      assert.equal(after.status, 'queued');
      assert.equal(after.size, null);
      assert.deepEqual(files(), []);
      // Refused up front when Content-Length already says so.
      const declared = await upload(img.id, data(SIZE_LIMIT + 1));
      assert.equal(declared.status, 413);
      assert.equal((await getImage(img.id)).status, 'queued');
      // Exactly at the limit is fine; the image can still be uploaded after a refusal.
      const ok = await upload(img.id, chunked(data(SIZE_LIMIT, 7)));
      assert.equal(ok.status, 204, JSON.stringify(ok.body));
      after = await getImage(img.id);
      assert.equal(after.status, 'active');
      assert.equal(after.size, SIZE_LIMIT);
      assert.equal((await call('DELETE', `/v2/images/${img.id}`)).status, 204);
      assert.deepEqual(files(), []);
    });

    test('kernel_id and ramdisk_id are checked for form, not existence (as Glance)', async () => {
      const missing = '0B3A4C5D-1111-4222-8333-944455556666';
      const notUuid = await call('POST', '/v2/images', { name: 'm', ramdisk_id: 'abc' });
      assert.equal(notUuid.status, 400);
      assert.match(glanceErr(notUuid), /ramdisk_id.*UUID/);
      const machine = await createImage({
        name: 'm',
        disk_format: 'ami',
        container_format: 'ami',
        kernel_id: missing,
        ramdisk_id: missing.toLowerCase(),
      });
      assert.equal(machine.kernel_id, missing);
      assert.equal(machine.ramdisk_id, missing.toLowerCase());
      const self = await call(
        'PATCH',
        `/v2/images/${machine.id}`,
        [{ op: 'replace', path: '/ramdisk_id', value: machine.id }],
        { type: PATCH_TYPE },
      );
      assert.equal(self.status, 200, JSON.stringify(self.body));
      const bad = await call(
        'PATCH',
        `/v2/images/${machine.id}`,
        [{ op: 'replace', path: '/kernel_id', value: 'kernel' }],
        { type: PATCH_TYPE },
      );
      assert.equal(bad.status, 400);
      assert.match(glanceErr(bad), /kernel_id/);
      assert.equal(
        (await getImage(machine.id)).kernel_id,
        missing,
        'refused patch changes nothing',
      );
      assert.equal((await call('DELETE', `/v2/images/${machine.id}`)).status, 204);
    });

    test('PATCH: replace/add/remove of name and extra properties; refusals', async () => {
      const img = await createImage({ name: 'p', hw_disk_bus: 'virtio' });
      const patch = (ops: unknown, type = PATCH_TYPE) =>
        call('PATCH', `/v2/images/${img.id}`, ops, { type });
      const r = await patch([
        { op: 'replace', path: '/name', value: 'p2' },
        { op: 'add', path: '/os_distro', value: 'debian' },
        { op: 'remove', path: '/hw_disk_bus' },
        { op: 'replace', path: '/min_ram', value: 256 },
      ]);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const patched = r.body as unknown as Image;
      assert.equal(patched.name, 'p2');
      assert.equal(patched.os_distro, 'debian');
      assert.equal(patched.hw_disk_bus, undefined);
      assert.equal(patched.min_ram, 256);

      const wrongType = await patch(
        [{ op: 'replace', path: '/name', value: 'x' }],
        'application/json',
      );
      assert.equal(wrongType.status, 415);
      const readOnly = await patch([{ op: 'replace', path: '/status', value: 'active' }]);
      assert.equal(readOnly.status, 403);
      assert.match(glanceErr(readOnly), /'status' is read-only/);
      const missingProp = await patch([{ op: 'remove', path: '/nope' }]);
      assert.equal(missingProp.status, 409);
      const badName = await patch([{ op: 'replace', path: '/name', value: 'a\u0007b' }]);
      assert.equal(badName.status, 400);
      assert.match(glanceErr(badName), /name.*control characters/);
      const badOp = await patch([{ op: 'move', path: '/name', value: 'x' }]);
      assert.match(glanceErr(badOp), /\[0\]\.op/);
      const publicize = await call(
        'PATCH',
        `/v2/images/${img.id}`,
        [{ op: 'replace', path: '/visibility', value: 'public' }],
        { type: PATCH_TYPE, token: MEMBER },
      );
      assert.equal(publicize.status, 403);
      assert.equal((await getImage(img.id)).name, 'p2', 'refused patches change nothing');
      assert.equal((await getImage(img.id)).visibility, 'shared');

      // Protected images cannot be deleted until unprotected.
      await patch([{ op: 'replace', path: '/protected', value: true }]);
      assert.equal((await call('DELETE', `/v2/images/${img.id}`)).status, 403);
      await patch([{ op: 'replace', path: '/protected', value: false }]);
      assert.equal((await call('DELETE', `/v2/images/${img.id}`)).status, 204);
    });

    test('create validation names the field; list filters', async () => {
      const cases: [Body, RegExp, number][] = [
        [{ disk_format: 'vmdk' }, /disk_format.*"raw"/, 400],
        [{ container_format: 'ova' }, /container_format/, 400],
        [{ visibility: 'everyone' }, /visibility/, 400],
        [{ min_disk: -1 }, /min_disk/, 400],
        [{ name: 'x'.repeat(256) }, /name.*at most 255/, 400],
        [{ name: 'a\nb' }, /name.*control characters/, 400],
        [{ 'bad key': 'v' }, /bad key.*property name/, 400],
        [{ os_distro: 'x'.repeat(256) }, /os_distro.*at most 255/, 400],
        [{ os_distro: 42 }, /os_distro.*string/, 400],
        [{ size: 5 }, /'size' is read-only/, 403],
        [{ status: 'active' }, /'status' is read-only/, 403],
      ];
      for (const [body, re, status] of cases) {
        const r = await call('POST', '/v2/images', { name: 'v', ...body });
        assert.equal(r.status, status, JSON.stringify(body));
        assert.match(glanceErr(r), re);
      }
      const publicByMember = await call(
        'POST',
        '/v2/images',
        { name: 'pub', visibility: 'public' },
        { token: MEMBER },
      );
      assert.equal(publicByMember.status, 403);
      const tooMany = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`p${i}`, 'v']));
      assert.match(
        glanceErr(await call('POST', '/v2/images', { name: 'many', ...tooMany })),
        /at most 128/,
      );
      assert.equal(
        ((await call('GET', '/v2/images')).body as { images: Image[] }).images.length,
        0,
        'no refused create left an image',
      );

      const a = await createImage({ name: 'alpha' });
      const b = await createImage({ name: 'beta' });
      await upload(b.id, data(100));
      const byName = (await call('GET', '/v2/images?name=alpha')).body as { images: Image[] };
      assert.deepEqual(
        byName.images.map((i) => i.id),
        [a.id],
      );
      const byStatus = (await call('GET', '/v2/images?status=active')).body as { images: Image[] };
      assert.deepEqual(
        byStatus.images.map((i) => i.id),
        [b.id],
      );
      const first = (await call('GET', '/v2/images?limit=1&sort_key=name&sort_dir=asc')).body as {
        images: Image[];
        next?: string;
      };
      assert.deepEqual(
        first.images.map((i) => i.name),
        ['alpha'],
      );
      assert.ok(first.next);
      const second = (await call('GET', first.next)).body as { images: Image[]; next?: string };
      assert.deepEqual(
        second.images.map((i) => i.name),
        ['beta'],
      );
      // Glance's rule: a full page has `next`, the empty one after it has none.
      assert.ok(second.next);
      const third = (await call('GET', second.next)).body as { images: Image[]; next?: string };
      assert.deepEqual(third.images, []);
      assert.equal(third.next, undefined);
      for (const img of [a, b]) await call('DELETE', `/v2/images/${img.id}`);
      assert.deepEqual(files(), []);
    });
  });
}
