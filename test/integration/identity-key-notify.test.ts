/**
 * Key rings of several kumo-api replicas on one PostgreSQL follow a rotation at once
 * (api/identity/keys.ts followRotations, KEYS_CHANNEL): the rotation job
 * (api/jobs.ts keyRotationJob) and `kumo-manage token-keys rotate` announce it, and a
 * ring that would otherwise reread the repository only once a minute reloads on the
 * announcement.
 *
 * Invariant under test: after two rotations in a row — the second drops the key that was
 * primary before the first (max_active_keys = 3) — a replica that heard them signs with
 * the current primary, never with the dropped key, and every ring accepts its tokens.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Db, openDb } from '../../api/db/index.ts';
import {
  followRotations,
  openKeyRing,
  primaryKeyIndex,
  type ReloadableKeyRing,
  setupKeys,
} from '../../api/identity/keys.ts';
import { signToken, verifyToken } from '../../api/identity/tokens.ts';
import { keyRotationJob } from '../../api/jobs.ts';
import { silentLogger } from '../../core/log.ts';
import { runCommand } from '../helpers/cluster.ts';
import { REPO, type TestDatabase, tempDir, testDatabase, waitFor } from '../helpers/env.ts';

describe('key rings follow announced rotations (PostgreSQL)', { timeout: 60_000 }, () => {
  const dir = tempDir('kumo-keynotify-');
  const keys = join(dir.path, 'token-keys');
  let database: TestDatabase;
  let db: Db;
  let ring: ReloadableKeyRing;
  let follow: { close(): Promise<void> };

  before(async () => {
    database = testDatabase('postgres', dir.path);
    db = openDb(database.url);
    setupKeys(keys);
    // As a replica's: a ring that rereads the repository once a minute on its own.
    ring = openKeyRing({ dir: keys, reloadMs: 60_000 });
    follow = await followRotations(db, ring);
  });
  after(async () => {
    await follow?.close();
    await db?.close();
    database?.cleanup();
    dir.cleanup();
  });

  const current = () => openKeyRing({ dir: keys }).primary().id;
  const signsWithCurrent = () =>
    waitFor('the ring to sign with the new primary', () => ring.primary().id === current(), 5000);

  test('the rotation job announces each rotation; the ring never signs with a dropped key', async () => {
    // An interval of zero hours' age: every pass rotates (the job's check is age >= interval).
    const job = keyRotationJob(
      { dir: keys, intervalHours: 1e-9, maxActive: 3 },
      { db, log: silentLogger() },
    );
    const first = ring.primary();
    await job.pass({ first: false });
    await signsWithCurrent();
    await job.pass({ first: false });
    await signsWithCurrent();
    assert.notEqual(ring.primary().id, first.id);
    assert.equal(
      openKeyRing({ dir: keys }).find(first.id),
      undefined,
      'the first primary was dropped from the repository',
    );
    const now = Date.now();
    const token = signToken(
      {
        userId: 'u',
        projectId: 'p',
        roles: ['member'],
        methods: ['password'],
        issuedAt: now,
        expiresAt: now + 60_000,
        auditIds: ['a'],
      },
      ring.primary(),
    );
    assert.ok(verifyToken(token, openKeyRing({ dir: keys }), now).ok, 'a fresh ring accepts it');
  });

  test('kumo-manage token-keys rotate announces the rotation too', async () => {
    const conf = join(dir.path, 'kumo.conf');
    writeFileSync(
      conf,
      `[DEFAULT]\nstate_path = ${dir.path}\n\n[database]\nconnection = ${database.connection}\n\n[identity]\nkey_repository = ${keys}\nmax_active_keys = 3\n`,
    );
    const before = primaryKeyIndex(keys);
    const out = await runCommand([
      process.execPath,
      join(REPO, 'bin', 'kumo-manage.ts'),
      '--config-file',
      conf,
      'token-keys',
      'rotate',
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stderr, '', 'announced without a warning');
    assert.equal(primaryKeyIndex(keys), before + 1);
    await signsWithCurrent();
  });
});
