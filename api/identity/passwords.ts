/**
 * Password hashes: scrypt (memory-hard, node:crypto), stored as
 * `scrypt$<N>$<r>$<p>$<salt>$<hash>` (base64url) so the cost can rise without breaking
 * stored hashes.
 *
 * Invariants: hashing runs on libuv's thread pool (async scrypt), never on the event loop;
 * comparison is constant-time; a hash in any other format verifies nothing.
 */
import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';

/** N = 2^15, r = 8: 32 MiB and about 50-100 ms per hash on one core. */
const COST = { N: 32768, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;

const derive = (password: string, salt: Buffer, o: { N: number; r: number; p: number }) =>
  new Promise<Buffer>((resolve, reject) => {
    const options: ScryptOptions = { ...o, maxmem: 256 * o.N * o.r };
    scrypt(password, salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key)));
  });

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, COST);
  return [
    'scrypt',
    COST.N,
    COST.r,
    COST.p,
    salt.toString('base64url'),
    key.toString('base64url'),
  ].join('$');
}

const FORMAT =
  /^scrypt\$(\d{1,7})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{43})$/;

export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const m = stored ? FORMAT.exec(stored) : null;
  if (!m) return false;
  const [, n, r, p, salt, hash] = m as unknown as [string, string, string, string, string, string];
  const cost = { N: Number(n), r: Number(r), p: Number(p) };
  if (cost.N < 2 || cost.N > 1 << 20 || (cost.N & (cost.N - 1)) !== 0) return false;
  const key = await derive(password, Buffer.from(salt, 'base64url'), cost);
  return timingSafeEqual(key, Buffer.from(hash, 'base64url'));
}
