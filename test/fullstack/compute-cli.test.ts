/**
 * Debian's openstack CLI against a real kumo-api process (token auth, `--os-endpoint`) on
 * both engines: flavor list/show/create/delete and image create --file/list/show/save/
 * delete.
 *
 * Invariant under test: what the CLI prints agrees with what the HTTP API then returns,
 * uploaded bytes come back unchanged, and deleting an image removes its data file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Flavor, Image } from '../../contracts/compute.ts';
import { Cluster, type RunResult } from '../helpers/cluster.ts';

const json = <T>(r: RunResult): T => {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
};

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`openstack flavor/image CLI against kumo-api (${engine})`, {
    timeout: 300_000,
  }, () => {
    let c: Cluster;
    before(async () => {
      c = await Cluster.create(engine);
      await c.startApi();
    });
    after(async () => {
      await c?.cleanup();
    });
    const os = (...args: string[]) => c.openstack(args);

    test('flavor list, show, create and delete', async () => {
      const list = json<{ ID: string; Name: string; RAM: number; VCPUs: number }[]>(
        await os('flavor', 'list', '-f', 'json'),
      );
      assert.deepEqual(
        list.map((f) => [f.ID, f.Name, f.RAM, f.VCPUs]),
        [
          ['1', 'm1.tiny', 512, 1],
          ['2', 'm1.small', 2048, 1],
          ['3', 'm1.medium', 4096, 2],
          ['4', 'm1.large', 8192, 4],
        ],
      );
      const small = json<Flavor>(await os('flavor', 'show', 'm1.small', '-f', 'json'));
      assert.equal(small.id, '2');
      assert.equal(small.disk, 20);

      const created = json<Flavor>(
        await os(
          'flavor',
          'create',
          '--vcpus',
          '3',
          '--ram',
          '3072',
          '--disk',
          '30',
          'c1.test',
          '-f',
          'json',
        ),
      );
      assert.equal(created.name, 'c1.test');
      const viaApi = await c.http('GET', `/flavors/${encodeURIComponent(created.id)}`);
      assert.equal(viaApi.status, 200);
      const flavor = (viaApi.body as { flavor: Flavor }).flavor;
      assert.deepEqual([flavor.vcpus, flavor.ram, flavor.disk], [3, 3072, 30]);

      const dup = await os(
        'flavor',
        'create',
        '--vcpus',
        '1',
        '--ram',
        '1',
        '--disk',
        '1',
        'c1.test',
      );
      assert.notEqual(dup.code, 0);
      assert.match(dup.stderr, /already exists/);

      assert.equal((await os('flavor', 'delete', 'c1.test')).code, 0);
      assert.equal((await c.http('GET', `/flavors/${encodeURIComponent(created.id)}`)).status, 404);
      const missing = await os('flavor', 'show', 'c1.test');
      assert.notEqual(missing.code, 0);
    });

    test('image create --file, list, show, save and delete', async () => {
      const src = join(c.dir.path, 'disk.qcow2');
      const bytes = randomBytes(2 * 1024 * 1024 + 5);
      writeFileSync(src, bytes);
      const created = json<Image>(
        await os(
          'image',
          'create',
          '--file',
          src,
          '--disk-format',
          'qcow2',
          '--container-format',
          'bare',
          '--property',
          'os_distro=cirros',
          'cirros-test',
          '-f',
          'json',
        ),
      );
      const id = created.id;
      const res = await c.http('GET', `/v2/images/${id}`);
      assert.equal(res.status, 200);
      const image = res.body as unknown as Image;
      assert.equal(image.status, 'active');
      assert.equal(image.size, bytes.length);
      assert.equal(image.checksum, createHash('md5').update(bytes).digest('hex'));
      assert.equal(image.os_hash_value, createHash('sha512').update(bytes).digest('hex'));
      assert.equal(image.os_distro, 'cirros');
      assert.equal(image.disk_format, 'qcow2');
      const file = join(c.dir.path, 'images', id);
      assert.ok(existsSync(file), 'the data is stored under <state_path>/images/<id>');

      const list = json<{ ID: string; Name: string; Status: string }[]>(
        await os('image', 'list', '-f', 'json'),
      );
      assert.deepEqual(list, [{ ID: id, Name: 'cirros-test', Status: 'active' }]);
      const shown = json<Image>(await os('image', 'show', 'cirros-test', '-f', 'json'));
      assert.equal(shown.id, id);
      assert.equal(shown.checksum, image.checksum);

      const out = join(c.dir.path, 'saved.img');
      const save = await os('image', 'save', '--file', out, 'cirros-test');
      assert.equal(save.code, 0, save.stderr);
      assert.ok(readFileSync(out).equals(bytes), 'saved bytes equal the uploaded ones');

      assert.equal((await os('image', 'set', '--name', 'cirros-renamed', id)).code, 0);
      assert.equal(
        ((await c.http('GET', `/v2/images/${id}`)).body as unknown as Image).name,
        'cirros-renamed',
      );

      assert.equal((await os('image', 'delete', 'cirros-renamed')).code, 0);
      assert.equal((await c.http('GET', `/v2/images/${id}`)).status, 404);
      assert.ok(!existsSync(file), 'deleting the image removes its file');
      assert.deepEqual(json<unknown[]>(await os('image', 'list', '-f', 'json')), []);
    });
  });
}
