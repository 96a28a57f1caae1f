/**
 * kumo-api's metadata listener as the daemon starts it (api/metadata/start.ts): without
 * [metadata] metadata_proxy_shared_secret no port is opened and one line says metadata is
 * off; with it, the listener answers on [metadata] bind_host:bind_port (an unsigned request
 * 403, a signed one for no instance 404) and stops answering once closed; neither the
 * secret nor a valid signature ever reaches the log.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { METADATA_OFF, startMetadata } from '../../api/metadata/start.ts';
import { signInstanceId } from '../../contracts/metadata.ts';
import { compileConfig } from '../../core/config.ts';
import { tempDir, testDatabase } from '../helpers/env.ts';

/** A loopback port nobody listens on (the kernel's pick, released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const capture = () => {
  const lines: { msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
};

describe('metadata listener start', () => {
  const dir = tempDir();
  const database = testDatabase('sqlite', dir.path);
  let db: Db;
  before(async () => {
    db = openDb(database.url);
    await migrate(db);
  });
  after(async () => {
    await db.close();
    database.cleanup();
    dir.cleanup();
  });

  test('no secret: metadata off, said once, no port opened', async () => {
    const port = await freePort();
    const { log, lines } = capture();
    const config = compileConfig(`[metadata]\nbind_port = ${port}\n`);
    const running = await startMetadata(config, db, log);
    assert.deepEqual(
      lines.map((l) => l.msg),
      [METADATA_OFF],
    );
    assert.equal(
      METADATA_OFF,
      'instance metadata off: [metadata] metadata_proxy_shared_secret is not set',
    );
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
    await running.close();
  });

  test('with a secret: listens on bind_host:bind_port until closed', async () => {
    const port = await freePort();
    const { log, lines } = capture();
    const config = compileConfig(
      `[metadata]\nbind_host = 127.0.0.1\nbind_port = ${port}\nmetadata_proxy_shared_secret = s3cret-metadata\n`,
    );
    const running = await startMetadata(config, db, log);
    const url = `http://127.0.0.1:${port}/latest/meta-data/`;
    assert.equal((await fetch(url)).status, 403);
    const id = '00000000-0000-4000-8000-000000000000';
    const signed = await fetch(url, {
      headers: {
        'x-instance-id': id,
        'x-tenant-id': 'p1',
        'x-instance-id-signature': signInstanceId('s3cret-metadata', id),
      },
    });
    assert.equal(signed.status, 404);
    const forged = await fetch(url, {
      headers: {
        'x-instance-id': id,
        'x-tenant-id': 'p1',
        'x-instance-id-signature': signInstanceId('guess', id),
      },
    });
    assert.deepEqual(
      [forged.status, await forged.text()],
      [403, 'Invalid proxy request signature.'],
    );
    const logged = JSON.stringify(lines);
    assert.ok(
      lines.some((l) => l.msg === 'metadata request not signed right'),
      logged,
    );
    for (const secret of ['s3cret-metadata', signInstanceId('s3cret-metadata', id)])
      assert.ok(!logged.includes(secret), 'the secret and a valid signature are never logged');
    await running.close();
    await assert.rejects(fetch(url));
  });
});
