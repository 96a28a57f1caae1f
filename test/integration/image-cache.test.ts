/**
 * The compute agent's image cache against a real kumo-api (listening on loopback, real
 * database on both engines) and the real qemu-img: images uploaded through the Glance API
 * are downloaded with the service token, verified and kept under `<instances>/_base` in
 * modes libvirt's qemu user can read; a cached image costs no request, concurrent callers
 * share one download; a wrong checksum or size, a disk whose header names a backing or data
 * file, whose content is not its disk_format or that qemu-img cannot read, is an ImageError
 * that leaves no file; HTTP and network failures name the status and image; prune()
 * removes what is not kept. It also prints how long ensure() takes for a 64 MiB raw image beside `curl -o`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createImageCache, ImageError } from '../../agents/compute/image-cache.ts';
import { buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import type { Image } from '../../contracts/compute.ts';
import type { InstanceImage } from '../../contracts/instances.ts';
import { createCommandRunner } from '../../core/exec.ts';
import { silentLogger } from '../../core/log.ts';
import { tempDir, testDatabase } from '../helpers/env.ts';

const ADMIN = 'admin-token-cache';
const SERVICE = 'service-token-cache';
const MiB = 1024 * 1024;
const runner = createCommandRunner({ defaultTimeoutMs: 120_000 });

/** Deterministic pseudo-random bytes (no format's magic at their start). */
function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(Math.ceil(size / 4) * 4);
  let x = seed;
  for (let i = 0; i < out.length; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.writeUInt32LE(x, i);
  }
  return out.subarray(0, size);
}

const asInstanceImage = (i: Image): InstanceImage => ({
  id: i.id,
  checksum: i.checksum as string,
  os_hash_algo: 'sha512',
  os_hash_value: i.os_hash_value as string,
  size: i.size as number,
  disk_format: i.disk_format as InstanceImage['disk_format'],
});

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`image cache against kumo-api (${engine})`, { timeout: 300_000 }, () => {
    const tmp = tempDir('kumo-image-cache-');
    const database = testDatabase(engine, tmp.path);
    const work = join(tmp.path, 'work');
    const cacheDir = join(tmp.path, 'instances', '_base');
    const images: Record<string, InstanceImage> = {};
    const content: Record<string, Buffer> = {};
    const requests: string[] = [];
    const counted: typeof fetch = (input, init) => {
      requests.push(String(input));
      return fetch(input, init);
    };
    let db: Db;
    let app: FastifyInstance;
    let apiUrl = '';
    let umask = 0;
    /** The API's answer without its content-length, as a chunked response would come. */
    const withoutLength: typeof fetch = async (input, init) => {
      const res = await counted(input, init);
      const headers = new Headers(res.headers);
      headers.delete('content-length');
      return new Response(res.body, { status: res.status, headers });
    };
    const cacheWith = (
      o: { dir?: string; url?: string; token?: string; fetch?: typeof fetch } = {},
    ) =>
      createImageCache({
        dir: o.dir ?? cacheDir,
        apiUrl: o.url ?? apiUrl,
        token: o.token ?? SERVICE,
        runner,
        log: silentLogger(),
        fetch: o.fetch ?? counted,
      });
    const cached = () => readdirSync(cacheDir).sort();

    const api = async (method: string, path: string, body?: unknown, type?: string) => {
      const headers: Record<string, string> = { 'x-auth-token': ADMIN };
      if (type) headers['content-type'] = type;
      const payload =
        type === 'application/json' ? JSON.stringify(body) : (body as Uint8Array<ArrayBuffer>);
      const res = await fetch(`${apiUrl}${path}`, { method, headers, body: payload });
      const text = await res.text();
      assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
      return text ? (JSON.parse(text) as Image) : undefined;
    };
    /** Creates an image, uploads `data` and returns what a compute agent is told of it. */
    const upload = async (name: string, diskFormat: string, data: Buffer) => {
      const body = { name, disk_format: diskFormat, container_format: 'bare' };
      const created = (await api('POST', '/v2/images', body, 'application/json')) as Image;
      await api('PUT', `/v2/images/${created.id}/file`, data, 'application/octet-stream');
      const image = asInstanceImage((await api('GET', `/v2/images/${created.id}`)) as Image);
      images[name] = image;
      content[name] = data;
      return image;
    };
    const qcow2File = async (name: string, ...options: string[]) => {
      const path = join(work, name);
      const argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', ...options, path, '1M'];
      await runner.run({ argv });
      return readFileSync(path);
    };
    const must = (name: string) => images[name] as InstanceImage;

    before(async () => {
      umask = process.umask(0o077);
      chmodSync(tmp.path, 0o755);
      mkdirSync(join(tmp.path, 'instances'), { mode: 0o755 }); // as the agent makes it
      chmodSync(join(tmp.path, 'instances'), 0o755);
      db = openDb(database.url);
      await migrate(db);
      app = buildApp({
        db,
        broker: { cast: async () => {}, fanout: async () => {} },
        clock: { now: () => new Date() },
        log: silentLogger(),
        settings: {
          adminToken: ADMIN,
          memberTokens: [],
          serviceTokens: [SERVICE],
          agentDownTime: 30,
          bodyLimit: 1 << 20,
          images: { dir: join(tmp.path, 'api-images'), sizeLimit: 128 * MiB },
        },
      });
      apiUrl = await app.listen({ host: '127.0.0.1', port: 0 });
      mkdirSync(work);
      writeFileSync(join(work, 'disk.raw'), bytes(2 * MiB, 11));
      const qcowArgv = ['convert', '-q', '-f', 'raw', '-O', 'qcow2'];
      await runner.run({
        argv: ['qemu-img', ...qcowArgv, join(work, 'disk.raw'), join(work, 'c')],
      });
      await upload('raw', 'raw', bytes(3 * MiB, 1));
      await upload('qcow2', 'qcow2', readFileSync(join(work, 'c')));
      await upload(
        'backed',
        'qcow2',
        await qcow2File('b', '-u', '-F', 'raw', '-b', '/etc/hostname'),
      );
      await upload(
        'split',
        'qcow2',
        await qcow2File('s', '-o', `data_file=${join(work, 's.data')}`),
      );
      await upload('disguised', 'raw', await qcow2File('d'));
      await upload('truncated', 'qcow2', readFileSync(join(work, 'c')).subarray(0, 100));
      await upload('kernel', 'aki', bytes(MiB + 3, 5));
      await upload('big', 'raw', bytes(64 * MiB, 64));
    });
    after(async () => {
      process.umask(umask);
      await app?.close();
      await db?.close();
      database.cleanup();
      tmp.cleanup();
    });

    test('ensure() downloads and verifies; files are readable by libvirt-qemu', async () => {
      const cache = cacheWith();
      const raw = must('raw');
      const before = requests.length;
      const path = await cache.ensure(raw);
      assert.equal(path, join(cacheDir, raw.id));
      assert.deepEqual(readFileSync(path), content.raw);
      assert.equal(requests.length - before, 1);
      assert.equal(requests.at(-1), `${apiUrl}/v2/images/${raw.id}/file`);
      assert.equal(statSync(cacheDir).mode & 0o777, 0o755);
      assert.equal(statSync(path).mode & 0o777, 0o644);
      const asQemu = ['runuser', '-u', 'libvirt-qemu', '--', 'qemu-img', 'info', '-U', path];
      const { stdout } = await runner.run({ argv: asQemu });
      assert.match(stdout, /file format: raw/);
    });

    test('a second ensure(), by a new cache too, makes no request', async () => {
      const before = requests.length;
      assert.equal(await cacheWith().ensure(must('raw')), join(cacheDir, must('raw').id));
      const cache = cacheWith();
      await cache.ensure(must('raw'));
      await cache.ensure(must('raw'));
      assert.equal(requests.length, before);
    });

    test('concurrent ensure() of one image share one download', async () => {
      const cache = cacheWith();
      const qcow2 = must('qcow2');
      const before = requests.length;
      const paths = await Promise.all(Array.from({ length: 6 }, () => cache.ensure(qcow2)));
      assert.deepEqual(new Set(paths), new Set([join(cacheDir, qcow2.id)]));
      assert.equal(requests.length - before, 1);
      assert.deepEqual(readFileSync(join(cacheDir, qcow2.id)), content.qcow2);
    });

    test('a kernel (aki) is kept as a plain file', async () => {
      const path = await cacheWith().ensure(must('kernel'));
      assert.deepEqual(readFileSync(path), content.kernel);
    });

    const refused = async (image: InstanceImage, message: RegExp, cache = cacheWith()) => {
      await assert.rejects(cache.ensure(image), (e: unknown) => {
        assert.ok(e instanceof ImageError, `expected an ImageError, got ${e}`);
        assert.equal(e.imageId, image.id);
        assert.match(e.message, message);
        return true;
      });
      assert.ok(!cached().some((n) => n.includes(image.id)), `a file is left: ${cached()}`);
    };

    test('a wrong checksum, sha512 or size is an ImageError and leaves no file', async () => {
      const big = must('big');
      await refused({ ...big, checksum: '0'.repeat(32) }, /md5 is [0-9a-f]{32}, expected 0{32}/);
      await refused({ ...big, os_hash_value: 'f'.repeat(128) }, /sha512 is .*, expected f{128}/);
      await refused({ ...big, size: big.size - 1 }, /the API sends 67108864 bytes/);
      const small = must('backed');
      const noLength = cacheWith({ fetch: withoutLength });
      const less = new RegExp(`more data than its ${small.size - 1} bytes`);
      await refused({ ...small, size: small.size - 1 }, less, noLength);
      const more = new RegExp(`size is ${small.size} bytes, expected ${small.size + 1}`);
      await refused({ ...small, size: small.size + 1 }, more, noLength);
    });

    test('base images naming a backing or data file, not their format or corrupt are refused', async () => {
      await refused(must('backed'), /base image names a backing file \(\/etc\/hostname\)/);
      await refused(must('split'), /base image names a data file \(.*s\.data\)/);
      await refused(must('disguised'), /disk_format raw but its content is qcow2/);
      await refused(must('truncated'), /qemu-img cannot read it: .*qcow2 header too short/);
    });

    test('HTTP and network failures name the status and image', async () => {
      const raw = { ...must('raw'), id: randomUUID() };
      const plain = (status: RegExp) => (e: unknown) => {
        assert.ok(!(e instanceof ImageError), `not an ImageError: ${e}`);
        assert.match((e as Error).message, new RegExp(raw.id));
        assert.match((e as Error).message, status);
        return true;
      };
      const fresh = { dir: join(tmp.path, 'other', '_base') };
      await assert.rejects(cacheWith({ ...fresh, token: 'wrong' }).ensure(raw), plain(/HTTP 401/));
      await refused(raw, /HTTP 404/);
      const queued = (await api('POST', '/v2/images', { name: 'q' }, 'application/json')) as Image;
      const noData = { ...raw, id: queued.id };
      await assert.rejects(cacheWith().ensure(noData), /HTTP 204: the image has no data yet/);
      const down = cacheWith({ url: 'http://127.0.0.1:9' });
      await assert.rejects(down.ensure(raw), plain(/GET http:\/\/127\.0\.0\.1:9\/.* failed/));
      await assert.rejects(cacheWith().ensure({ ...raw, id: '../etc' }), /invalid image id/);
    });

    test('prune() removes images not kept and stale partial downloads', async () => {
      const keep = must('raw').id;
      const stale = `.${must('big').id}.part-0123456789abcdef`;
      writeFileSync(join(cacheDir, stale), 'half');
      writeFileSync(join(cacheDir, 'not-ours'), 'x');
      const removed = await cacheWith().prune(new Set([keep]));
      assert.deepEqual(removed.sort(), [must('qcow2').id, must('kernel').id].sort());
      assert.deepEqual(cached(), [keep, 'not-ours'].sort());
      assert.deepEqual(await cacheWith().prune(new Set([keep])), []);
    });

    test('64 MiB raw: ensure() (download + verify) beside curl -o', async (t) => {
      const big = must('big');
      const url = `${apiUrl}/v2/images/${big.id}/file`;
      const out = join(tmp.path, 'curl.out');
      const curl = ['curl', '-sSf', '-H', `X-Auth-Token: ${SERVICE}`, '-o', out, url];
      const timed = async (fn: () => Promise<unknown>) => {
        const start = performance.now();
        await fn();
        return performance.now() - start;
      };
      const runs: { ensure: number; curl: number; curlSums: number }[] = [];
      for (let i = 0; i < 3; i++) {
        const dir = join(tmp.path, `timed-${i}`, '_base');
        const ensure = await timed(() => cacheWith({ dir }).ensure(big));
        const curlMs = await timed(() => runner.run({ argv: curl }));
        const sums = await timed(async () => {
          await runner.run({ argv: ['md5sum', out] });
          await runner.run({ argv: ['sha512sum', out] });
        });
        assert.equal(statSync(out).size, 64 * MiB);
        runs.push({ ensure, curl: curlMs, curlSums: curlMs + sums });
      }
      const median = (k: 'ensure' | 'curl' | 'curlSums') =>
        (runs.map((r) => r[k]).sort((a, b) => a - b)[1] as number).toFixed(0);
      t.diagnostic(
        `64 MiB raw (${engine}), median of 3: ensure ${median('ensure')} ms; curl -o ${median('curl')} ms; curl -o + md5sum + sha512sum ${median('curlSums')} ms`,
      );
      t.diagnostic(
        `runs (ensure/curl/curl+sums ms): ${runs.map((r) => `${r.ensure.toFixed(0)}/${r.curl.toFixed(0)}/${r.curlSums.toFixed(0)}`).join(', ')}`,
      );
    });
  });
}
