/**
 * Token signing and the key repository (api/identity/tokens.ts, keys.ts) on a real
 * directory: a token verifies until it expires, any change to it is refused, and key
 * rotation keeps every token valid whose key is still kept.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
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
