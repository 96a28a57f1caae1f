/**
 * Password hashes: scrypt (memory-hard, node:crypto), stored as
 * `scrypt$<N>$<r>$<p>$<salt>$<hash>` (base64url) so the cost can rise without breaking
 * stored hashes.
 *
 * Invariants: hashing runs on libuv's thread pool (async scrypt), never on the event loop;
 * at most KDF_RUNNING hashes run at once in the process, so a flood of logins leaves the
 * pool's other threads to file I/O (image data), and at most KDF_WAITING wait — beyond
 * that a login answers 503 at once instead of queueing without bound; comparison is
 * constant-time; a hash in any other format verifies nothing.
 */
import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../../contracts/errors.ts';

/** N = 2^15, r = 8: 32 MiB and about 50-100 ms per hash on one core. */
const COST = { N: 32768, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;

/** libuv's pool has 4 threads by default: half of them for the KDF. */
export const KDF_RUNNING = 2;
export const KDF_WAITING = 64;

/** The process's one KDF gate (the thread pool it protects is the process's too). */
const gate = { running: 0, waiting: [] as (() => void)[] };

async function gated<T>(fn: () => Promise<T>): Promise<T> {
  if (gate.running < KDF_RUNNING) gate.running++;
  else if (gate.waiting.length < KDF_WAITING) await new Promise<void>((r) => gate.waiting.push(r));
  else
    throw new ApiError(
      'ServiceUnavailable',
      'Too many password checks are in progress; try again shortly.',
    );
  try {
    return await fn();
  } finally {
    // A waiter takes over this slot; with none, the slot is freed.
    const next = gate.waiting.shift();
    if (next) next();
    else gate.running--;
  }
}

const derive = (password: string, salt: Buffer, o: { N: number; r: number; p: number }) =>
  gated(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        const options: ScryptOptions = { ...o, maxmem: 256 * o.N * o.r };
        scrypt(password, salt, KEY_LENGTH, options, (err, key) =>
          err ? reject(err) : resolve(key),
        );
      }),
  );

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
