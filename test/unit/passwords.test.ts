/**
 * Password hashes (api/identity/passwords.ts) with the real scrypt: a hash verifies its
 * own password only, a malformed hash verifies nothing, and the process's KDF gate lets
 * KDF_RUNNING run and KDF_WAITING wait — one more is refused at once with a 503, so a
 * flood of logins cannot queue without bound.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  hashPassword,
  KDF_RUNNING,
  KDF_WAITING,
  verifyPassword,
} from '../../api/identity/passwords.ts';
import { ApiError } from '../../contracts/errors.ts';

test('a hash verifies its own password only; a malformed one verifies nothing', async () => {
  const hash = await hashPassword('correct horse');
  assert.match(hash, /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]{43}$/);
  assert.equal(await verifyPassword('correct horse', hash), true);
  assert.equal(await verifyPassword('correct horse!', hash), false);
  assert.notEqual(await hashPassword('correct horse'), hash, 'a fresh salt each time');
  for (const bad of [null, '', 'plain', hash.replace('32768', '1000'), `${hash}x`])
    assert.equal(await verifyPassword('correct horse', bad), false, String(bad));
});

test('the KDF gate: running and waiting checks proceed, one more is a 503 at once', async () => {
  const hash = await hashPassword('pw');
  const extra = 3;
  const results = await Promise.allSettled(
    Array.from({ length: KDF_RUNNING + KDF_WAITING + extra }, () => verifyPassword('pw', hash)),
  );
  const refused = results.filter((r) => r.status === 'rejected');
  assert.equal(refused.length, extra);
  for (const r of refused) {
    const err = (r as PromiseRejectedResult).reason;
    assert.ok(err instanceof ApiError && err.status === 503, String(err));
  }
  assert.ok(results.every((r) => r.status === 'rejected' || r.value === true));
  assert.equal(await verifyPassword('pw', hash), true, 'the gate is free again');
});
