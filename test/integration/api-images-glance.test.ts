/**
 * Issue 11, Glance v2 images for strict clients, on both database engines with a real
 * broker vhost: the schema documents (and every image view checked against them), an
 * admin's `owner`, v2.0 JSON patches beside v2.1's, and deactivate/reactivate with
 * Glance's download rule. List filters and members: api-images-members.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Image } from '../../contracts/compute.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { ADMIN, glanceError, imageApp, MEMBER, SERVICE, V20, V21 } from './api-images-harness.ts';

const BASE = [
  'checksum',
  'container_format',
  'created_at',
  'direct_url',
  'disk_format',
  'file',
  'id',
  'locations',
  'min_disk',
  'min_ram',
  'name',
  'os_hash_algo',
  'os_hash_value',
  'os_hidden',
  'owner',
  'protected',
  'schema',
  'self',
  'size',
  'status',
  'stores',
  'tags',
  'updated_at',
  'virtual_size',
  'visibility',
];
const CUSTOM = [
  'architecture',
  'cinder_encryption_key_deletion_policy',
  'cinder_encryption_key_id',
  'description',
  'instance_uuid',
  'kernel_id',
  'os_distro',
  'os_version',
  'ramdisk_id',
];
const OTHER_PROJECT = '9f8e7d6c5b4a49382716a5b4c3d2e1f0';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Glance images on ${engine}`, () => {
    const { call, create, upload, show } = imageApp(engine);
    const schemaOf = async (name: string) => {
      const r = await call('GET', `/v2/schemas/${name}`, undefined, { token: MEMBER });
      assert.equal(r.status, 200, r.raw.toString());
      return r.body as Record<string, unknown>;
    };

    test('the four schema documents, as Glance serves them, under /v2, / and /image', async () => {
      const image = await schemaOf('image');
      assert.deepEqual(Object.keys(image).sort(), [
        'additionalProperties',
        'links',
        'name',
        'properties',
      ]);
      assert.equal(image.name, 'image');
      assert.deepEqual(image.additionalProperties, { type: 'string' });
      assert.deepEqual(image.links, [
        { rel: 'self', href: '{self}' },
        { rel: 'enclosure', href: '{file}' },
        { rel: 'describedby', href: '{schema}' },
      ]);
      const props = image.properties as Record<string, Record<string, unknown>>;
      assert.deepEqual(Object.keys(props).sort(), [...BASE, ...CUSTOM].sort());
      for (const key of CUSTOM) assert.equal(props[key]?.is_base, false, key);
      for (const key of BASE) assert.equal(props[key]?.is_base, undefined, key);
      assert.deepEqual(props.disk_format?.enum, [null, 'raw', 'qcow2', 'aki', 'ari', 'ami']);
      assert.deepEqual(props.owner, {
        type: ['null', 'string'],
        description: 'Owner of the image',
        maxLength: 255,
      });
      assert.match(String(props.kernel_id?.pattern), /\[0-9a-fA-F\]/);

      const images = (await schemaOf('images')) as Record<string, Record<string, unknown>>;
      assert.equal(images.name, 'images');
      assert.deepEqual(Object.keys(images.properties ?? {}).sort(), [
        'first',
        'images',
        'next',
        'schema',
      ]);
      assert.deepEqual(
        (images.properties?.images as Record<string, unknown> | undefined)?.items,
        image,
      );
      const member = (await schemaOf('member')) as Record<string, Record<string, unknown>>;
      assert.deepEqual(Object.keys(member).sort(), ['name', 'properties']);
      assert.deepEqual(Object.keys(member.properties ?? {}).sort(), [
        'created_at',
        'image_id',
        'member_id',
        'schema',
        'status',
        'updated_at',
      ]);
      const members = await schemaOf('members');
      assert.deepEqual(members.links, [{ rel: 'describedby', href: '{schema}' }]);
      for (const url of ['/schemas/image', '/image/v2/schemas/image']) {
        const r = await call('GET', url);
        assert.deepEqual(r.body, image, url);
      }
      const missing = await call('GET', '/v2/schemas/imagez');
      glanceError(missing, 404);
    });

    test("the schema's one enum among extra properties holds, as Glance validates it", async () => {
      // (Image bodies against the served schema: test/contract/image.test.ts.)
      const policy = await call('POST', '/v2/images', {
        cinder_encryption_key_deletion_policy: 'sometimes',
      });
      assert.match(glanceError(policy, 400), /cinder_encryption_key_deletion_policy/);
      const fine = await create({ cinder_encryption_key_deletion_policy: 'on_image_deletion' });
      assert.equal(fine.cinder_encryption_key_deletion_policy, 'on_image_deletion');
    });

    test('owner: an admin sets it on create and PATCH; a non-admin gets 403', async () => {
      const mine = await create({ name: 'o', owner: OTHER_PROJECT });
      assert.equal(mine.owner, OTHER_PROJECT);
      const denied = await call(
        'POST',
        '/v2/images',
        { name: 'o2', owner: OTHER_PROJECT },
        { token: MEMBER },
      );
      assert.equal(
        glanceError(denied, 403),
        `You are not permitted to create images owned by '${OTHER_PROJECT}'`,
      );
      const own = await create({ name: 'o3', owner: DEFAULT_PROJECT_ID }, MEMBER);
      assert.equal(own.owner, DEFAULT_PROJECT_ID);
      const setOwner = (id: string, token: string) =>
        call(
          'PATCH',
          `/v2/images/${id}`,
          [{ op: 'replace', path: '/owner', value: OTHER_PROJECT }],
          {
            type: V21,
            token,
          },
        );
      const byMember = await setOwner(own.id, MEMBER);
      assert.equal(glanceError(byMember, 403), "Owner can't be updated by non admin.");
      assert.equal((await show(own.id)).owner, DEFAULT_PROJECT_ID);
      const byAdmin = await setOwner(own.id, ADMIN);
      assert.equal(byAdmin.status, 200, byAdmin.raw.toString());
      assert.equal((await show(own.id)).owner, OTHER_PROJECT);
      const tooLong = await call('POST', '/v2/images', { owner: 'x'.repeat(256) });
      assert.match(glanceError(tooLong, 400), /owner.*at most 255/);
      for (const id of [mine.id, own.id]) await call('DELETE', `/v2/images/${id}`);
    });

    test('PATCH with the v2.0 media type: {"<op>": path, "value"}', async () => {
      const img = await create({ name: 'v', hw_disk_bus: 'virtio' });
      const patch = (ops: unknown, type = V20) =>
        call('PATCH', `/v2/images/${img.id}`, ops, { type });
      const r = await patch([
        { replace: '/name', value: 'v2' },
        { add: '/os_distro', value: 'cirros' },
        { remove: '/hw_disk_bus' },
      ]);
      assert.equal(r.status, 200, r.raw.toString());
      const body = r.body as unknown as Image;
      assert.equal(body.name, 'v2');
      assert.equal(body.os_distro, 'cirros');
      assert.equal(body.hw_disk_bus, undefined);
      // v2.0's add never overwrites (Glance's draft-4 patches); v2.1's does.
      const again = await patch([{ add: '/os_distro', value: 'debian' }]);
      assert.equal(glanceError(again, 409), 'Property os_distro already present.');
      assert.equal(
        glanceError(await patch([{ add: '/name', value: 'x' }]), 409),
        'Property name already present.',
      );
      const v21 = await patch([{ op: 'add', path: '/os_distro', value: 'debian' }], V21);
      assert.equal((v21.body as unknown as Image).os_distro, 'debian');
      const cases: [unknown, string][] = [
        [
          [{ replace: '/name', add: '/x', value: 'y' }],
          'Operation objects must contain only one member named "add", "remove", or "replace".',
        ],
        [
          [{ op: 'replace', path: '/name', value: 'y' }],
          'Operation objects must contain exactly one member named "add", "remove", or "replace".',
        ],
        [[{ replace: '/name' }], 'Operation "replace" requires a member named "value".'],
        [['replace'], 'Operations must be JSON objects.'],
        [{ replace: '/name' }, 'Request body must be a JSON array of operation objects.'],
      ];
      for (const [ops, message] of cases) assert.equal(glanceError(await patch(ops), 400), message);
      const other = await patch([{ replace: '/name', value: 'z' }], 'application/json');
      assert.equal(
        glanceError(other, 415),
        `Image PATCH expects Content-Type one of: ${V20}, ${V21}`,
      );
      assert.equal(other.headers['accept-patch'], `${V20}, ${V21}`);
      assert.equal((await show(img.id)).name, 'v2', 'refused patches change nothing');
      await call('DELETE', `/v2/images/${img.id}`);
    });

    test('deactivate/reactivate: admin only, active↔deactivated, downloads refused', async () => {
      const img = await create({ name: 'd' });
      const action = (what: string, token = ADMIN) =>
        call('POST', `/v2/images/${img.id}/actions/${what}`, '', {
          token,
          type: 'application/json',
        });
      assert.equal(
        glanceError(await action('deactivate'), 403),
        "Not allowed to deactivate image in status 'queued'",
      );
      assert.equal(
        glanceError(await action('reactivate'), 403),
        "Not allowed to reactivate image in status 'queued'",
      );
      await upload(img.id, 64);
      assert.equal(
        glanceError(await action('deactivate', MEMBER), 403),
        'You are not authorized to complete deactivate action.',
      );
      assert.equal((await action('deactivate')).status, 204);
      assert.equal((await show(img.id)).status, 'deactivated');
      assert.equal((await action('deactivate')).status, 204, 'deactivating twice is a no-op');
      const file = `/v2/images/${img.id}/file`;
      for (const token of [MEMBER, SERVICE])
        assert.equal(
          glanceError(await call('GET', file, undefined, { token }), 403),
          'The requested image has been deactivated. Image data download is forbidden.',
        );
      const byAdmin = await call('GET', file);
      assert.equal(byAdmin.status, 200);
      assert.equal(byAdmin.raw.length, 64);
      assert.equal(
        glanceError(await action('reactivate', MEMBER), 403),
        'You are not authorized to complete reactivate action.',
      );
      assert.equal((await action('reactivate')).status, 204);
      assert.equal((await action('reactivate')).status, 204, 'reactivating twice is a no-op');
      assert.equal((await show(img.id)).status, 'active');
      assert.equal((await call('GET', file, undefined, { token: MEMBER })).status, 200);
      const gone = await call(
        'POST',
        '/v2/images/6b2c1a8e-0d5f-4e3a-9b7c-1f2e3d4c5b6a/actions/deactivate',
      );
      glanceError(gone, 404);
      await call('DELETE', `/v2/images/${img.id}`);
    });
  });
}
