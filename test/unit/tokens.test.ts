/**
 * Token signing and the key repository (api/identity/tokens.ts, keys.ts) on a real
 * directory: a token verifies until it expires, any change to it is refused, and key
 * rotation keeps every token valid whose key is still kept.
 */
import assert from 'node:assert/strict';
import { chownSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openKeyRing, rotateKeys, setupKeys } from '../../api/identity/keys.ts';
import { signToken, type TokenClaims, verifyToken } from '../../api/identity/tokens.ts';
import { tempDir } from '../helpers/env.ts';

const T0 = Date.parse('2026-12-05T00:00:00Z');
const claims: TokenClaims = {
  userId: 'u1',
  projectId: 'p1',
  roles: ['member', 'reader'],
  methods: ['password'],
  issuedAt: T0,
  expiresAt: T0 + 3_600_000,
  auditIds: ['a1'],
};

test('a signed token verifies to its claims until it expires', () => {
  const dir = tempDir();
  setupKeys(dir.path);
  assert.deepEqual(readdirSync(dir.path).sort(), ['0', '1']);
  assert.equal(statSync(join(dir.path, '1')).mode & 0o777, 0o600);
  const ring = openKeyRing({ dir: dir.path });
  const token = signToken(claims, ring.primary());
  assert.deepEqual(verifyToken(token, ring, T0 + 1), { ok: true, claims });
  assert.deepEqual(verifyToken(token, ring, T0 + 3_600_000), { ok: false, reason: 'expired' });
  dir.cleanup();
});

test('a changed payload, a changed mac or garbage is refused', () => {
  const dir = tempDir();
  setupKeys(dir.path);
  const ring = openKeyRing({ dir: dir.path });
  const token = signToken(claims, ring.primary());
  const [payload, mac] = token.split('.') as [string, string];
  const forged = Buffer.from(
    Buffer.from(payload, 'base64url').toString().replace('"member"', '"admin"'),
  ).toString('base64url');
  assert.equal(verifyToken(`${forged}.${mac}`, ring, T0).ok, false);
  const flipped = `${mac.slice(0, 10)}${mac[10] === 'A' ? 'B' : 'A'}${mac.slice(11)}`;
  assert.deepEqual(verifyToken(`${payload}.${flipped}`, ring, T0), {
    ok: false,
    reason: 'bad signature',
  });
  for (const bad of ['', 'x', `${payload}`, `${payload}.${mac}.x`, 'a'.repeat(20000)])
    assert.deepEqual(verifyToken(bad, ring, T0), { ok: false, reason: 'malformed' });
  dir.cleanup();
});

test('rotation: the staged key signs next, old tokens verify until their key is dropped', () => {
  const dir = tempDir();
  setupKeys(dir.path);
  const ring = openKeyRing({ dir: dir.path, reloadMs: 0 });
  const first = signToken(claims, ring.primary());
  assert.equal(rotateKeys(dir.path, 3), 2);
  const second = signToken(claims, ring.primary());
  assert.notEqual(first.split('.')[1], second.split('.')[1]);
  assert.equal(verifyToken(first, ring, T0).ok, true, 'a secondary key still verifies');
  assert.equal(rotateKeys(dir.path, 3), 3);
  assert.deepEqual(readdirSync(dir.path).sort(), ['0', '2', '3']);
  assert.deepEqual(verifyToken(first, ring, T0), { ok: false, reason: 'unknown key' });
  assert.equal(verifyToken(second, ring, T0).ok, true);
  dir.cleanup();
});

test('keys written as root into a repository another user owns are that user’s', (t) => {
  if (process.getuid?.() !== 0) {
    assert.fail('this test needs root (chown); run_tests.sh runs as root');
  }
  const dir = tempDir();
  chownSync(dir.path, 65534, 65534);
  setupKeys(dir.path);
  rotateKeys(dir.path, 3);
  for (const name of readdirSync(dir.path)) {
    const st = statSync(join(dir.path, name));
    assert.deepEqual([name, st.uid, st.gid], [name, 65534, 65534]);
  }
  t.after(() => dir.cleanup());
});

test('a reload that fails keeps the keys the ring had, and says so', () => {
  const dir = tempDir();
  setupKeys(dir.path);
  let clock = T0;
  const errors: string[] = [];
  const ring = openKeyRing({
    dir: dir.path,
    reloadMs: 1000,
    now: () => clock,
    onReloadError: (e) => errors.push(e.message),
  });
  const token = signToken(claims, ring.primary());
  writeFileSync(join(dir.path, '5'), 'short');
  clock += 2000;
  assert.equal(verifyToken(token, ring, T0).ok, true);
  assert.match(errors[0] ?? '', /shorter than 32 bytes/);
  dir.cleanup();
});
