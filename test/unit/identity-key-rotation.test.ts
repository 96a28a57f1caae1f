/**
 * Token-key rotation by the replicas' periodic job (api/jobs.ts keyRotationJob, under a
 * lease, api/periodic.ts) on one SQLite database and one shared key repository, with
 * [identity] key_rotation_interval given in fractional hours (0.0005 h = 1.8 s) so the
 * file runs in seconds.
 *
 * Invariants under test: with two replicas running the job, the repository rotates on one
 * of them at a time, never twice within one interval (each promotion at least an interval
 * after the one before); a token signed before a rotation still validates after it on
 * both replicas, and a token signed with the new primary validates on a replica whose key
 * ring was loaded before the rotation (it knew the staged key); the interval is measured
 * from the primary's promotion (its file's mtime), so a replica started after a rotation
 * by `kumo-manage token-keys rotate` waits the interval out from that rotation.
 */
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { openKeyRing, primaryKeyIndex, setupKeys } from '../../api/identity/keys.ts';
import { type KeyRing, signToken, verifyToken } from '../../api/identity/tokens.ts';
import { keyRotationJob } from '../../api/jobs.ts';
import { keyRotation } from '../../api/main.ts';
import { type PeriodicJob, type PeriodicJobs, startPeriodicJobs } from '../../api/periodic.ts';
import { ConfigError, compileConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/log.ts';
import { runCommand } from '../helpers/cluster.ts';
import { REPO, type TestDatabase, tempDir, testDatabase, waitFor } from '../helpers/env.ts';

const INTERVAL_HOURS = 0.0005;
const INTERVAL_MS = INTERVAL_HOURS * 3_600_000;
const LEASE_MS = 300;

interface Check {
  holder: string;
  /** The primary's index after the pass. */
  primary: number;
  rotated: boolean;
  /** The new primary's mtime (its promotion), when the pass rotated. */
  promotedAt?: number;
}

const promotedAt = (dir: string, index: number) => statSync(join(dir, String(index))).mtimeMs;

function tokenFrom(ring: KeyRing) {
  const now = Date.now();
  return signToken(
    {
      userId: 'u1',
      projectId: 'p1',
      roles: ['member'],
      methods: ['password'],
      issuedAt: now,
      expiresAt: now + 3_600_000,
      auditIds: ['a1'],
    },
    ring.primary(),
  );
}

const valid = (token: string, ring: KeyRing) => verifyToken(token, ring, Date.now()).ok;

describe('token-key rotation by two replicas', { timeout: 60_000 }, () => {
  const dir = tempDir('kumo-keyrot-');
  const keys = join(dir.path, 'token-keys');
  let database: TestDatabase;
  const dbs: Db[] = [];
  const runners: PeriodicJobs[] = [];
  const checks: Check[] = [];

  /** One replica: its own database handle and the rotation job, each pass recorded. */
  const replica = (holder: string) => {
    const db = openDb(database.url);
    dbs.push(db);
    const job = keyRotationJob(
      { dir: keys, intervalHours: INTERVAL_HOURS, maxActive: 3 },
      { db, log: silentLogger() },
    );
    const recorded: PeriodicJob = {
      ...job,
      pass: async (tenure) => {
        const before = primaryKeyIndex(keys);
        await job.pass(tenure);
        const primary = primaryKeyIndex(keys);
        const rotated = primary !== before;
        checks.push({
          holder,
          primary,
          rotated,
          ...(rotated ? { promotedAt: promotedAt(keys, primary) } : {}),
        });
      },
    };
    const r = startPeriodicJobs({ db, log: silentLogger(), leaseMs: LEASE_MS, holder }, [recorded]);
    runners.push(r);
    return r;
  };
  const rotations = () => checks.filter((c) => c.rotated);

  before(async () => {
    database = testDatabase('sqlite', dir.path);
    const db = openDb(database.url);
    await migrate(db);
    await db.close();
    setupKeys(keys);
  });
  after(async () => {
    await Promise.all(runners.map((r) => r.stop()));
    for (const db of dbs) await db.close();
    dir.cleanup();
  });

  test('one rotation per interval on one replica; tokens valid across it on both', async () => {
    const ringA = openKeyRing({ dir: keys });
    const ringB = openKeyRing({ dir: keys });
    const before = tokenFrom(ringA);
    const firstPrimary = primaryKeyIndex(keys);
    const a = replica('a');
    const b = replica('b');
    await waitFor('the first rotation', () => rotations().length >= 1, 20_000);
    assert.ok(valid(before, ringA), 'a token from before the rotation validates on a');
    assert.ok(valid(before, ringB), '… and on b');
    const fresh = openKeyRing({ dir: keys });
    assert.notEqual(
      fresh.primary().id,
      ringA.primary().id,
      'a restarted replica signs with the new primary',
    );
    const after = tokenFrom(fresh);
    assert.ok(
      valid(after, ringB),
      "b, loaded before the rotation, accepts the new primary's tokens",
    );
    await waitFor('the second rotation', () => rotations().length >= 2, 20_000);
    await Promise.all([a.stop(), b.stop()]);
    const done = rotations();
    assert.deepEqual(
      done.map((c) => c.primary),
      done.map((_, i) => firstPrimary + 1 + i),
      'each rotation promoted the next key, none twice',
    );
    for (let i = 1; i < done.length; i++) {
      const gap = (done[i]?.promotedAt ?? 0) - (done[i - 1]?.promotedAt ?? 0);
      assert.ok(gap >= INTERVAL_MS, `rotation ${i} came ${gap} ms after the one before`);
    }
  });

  test('kumo-manage token-keys rotate stamps the promotion; a restarted replica waits the interval from it', async () => {
    const conf = join(dir.path, 'kumo.conf');
    writeFileSync(
      conf,
      `[DEFAULT]\nstate_path = ${dir.path}\n\n[identity]\nkey_repository = ${keys}\nmax_active_keys = 3\n`,
    );
    const old = primaryKeyIndex(keys);
    const started = Date.now();
    const out = await runCommand([
      process.execPath,
      join(REPO, 'bin', 'kumo-manage.ts'),
      '--config-file',
      conf,
      'token-keys',
      'rotate',
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `rotated token keys in ${keys}: key ${old + 1} is now primary\n`);
    const manual = promotedAt(keys, old + 1);
    assert.ok(manual >= started - 5, 'the promoted key carries the time of its promotion');
    checks.length = 0;
    replica('c');
    await waitFor('the restarted replica to rotate', () => rotations().length >= 1, 20_000);
    const [rotation] = rotations();
    assert.equal(rotation?.primary, old + 2);
    assert.ok(
      (rotation?.promotedAt ?? 0) - manual >= INTERVAL_MS,
      `rotated ${(rotation?.promotedAt ?? 0) - manual} ms after kumo-manage's rotation`,
    );
  });
});

describe('[identity] key_rotation_interval against token_expiration', () => {
  const config = (text: string) => compileConfig(`[DEFAULT]\nhost = h1\n${text}`);
  test('off (0) and an external Keystone rotate nothing', () => {
    assert.equal(keyRotation(config('')), undefined);
    assert.equal(
      keyRotation(
        config(
          '[identity]\nkey_rotation_interval = 24\n[keystone_authtoken]\nauth_url = http://127.0.0.1:5000/v3\n',
        ),
      ),
      undefined,
    );
  });
  test('an interval that would drop keys of unexpired tokens stops kumo-api, naming the key', () => {
    // 3 keys: a key is still accepted one rotation after it stopped signing.
    assert.throws(
      () =>
        keyRotation(config('[identity]\nkey_rotation_interval = 0.5\ntoken_expiration = 3600\n')),
      (e: Error) =>
        e instanceof ConfigError &&
        /\[identity\] key_rotation_interval: .*at least .* = 1 h/.test(e.message),
    );
    const ok = keyRotation(
      config('[identity]\nkey_rotation_interval = 1\ntoken_expiration = 3600\n'),
    );
    assert.equal(ok?.intervalHours, 1);
    assert.equal(ok?.maxActive, 3);
    const more = config('[identity]\nkey_rotation_interval = 0.5\nmax_active_keys = 4\n');
    assert.equal(keyRotation(more)?.maxActive, 4, 'a fourth key covers two rotations');
  });
});
