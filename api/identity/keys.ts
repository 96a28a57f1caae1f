/**
 * The token key repository, laid out as Keystone's Fernet repository: one file per key,
 * named by its index; `0` is the staged key (accepted, not yet signing), the highest index
 * is the primary (signs), the others are secondaries (still accepted).
 *
 * Rotation (`rotateKeys`) promotes the staged key to primary, stages a new key and drops
 * the oldest secondaries beyond `maxActive`. Because every replica accepts the staged key
 * before any replica signs with it, replicas that share the repository (copied or
 * mounted) can rotate one at a time without refusing each other's tokens.
 *
 * Invariants: keys are written 0600 with write-then-rename, so a reader never sees half a
 * key, and belong to the repository's owner; the ring reloads the directory when it meets
 * a key id it does not know (at most once a second), on its own every `reloadMs`, and when
 * told (`reload()`: kumo-api calls it when any replica or kumo-manage announces a rotation
 * on KEYS_CHANNEL), so a rotation reaches every running replica at once, without a
 * restart — a replica never signs with a key another replica's rotation has dropped; a
 * reload that fails keeps the keys the ring had.
 */
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../db/index.ts';
import { type KeyRing, keyId, type SigningKey } from './tokens.ts';

/** The PostgreSQL NOTIFY channel on which a rotation is announced to every replica. */
export const KEYS_CHANNEL = 'kumo_token_keys';

const KEY_FILE = /^(0|[1-9][0-9]{0,8})$/;

function readKeys(dir: string): Map<number, SigningKey> {
  const keys = new Map<number, SigningKey>();
  for (const name of readdirSync(dir)) {
    if (!KEY_FILE.test(name)) continue;
    const secret = Buffer.from(readFileSync(join(dir, name), 'utf8').trim(), 'base64url');
    if (secret.length < 32)
      throw new Error(`token key ${join(dir, name)} is shorter than 32 bytes`);
    keys.set(Number(name), { id: keyId(secret), secret });
  }
  return keys;
}

/**
 * Writes a fresh key. Run as root (kumo-manage) in a repository kumo-api owns, the file is
 * given to the repository's owner, as keystone-manage's --keystone-user does: a root-owned
 * 0600 key would be unreadable to kumo-api.
 */
function writeKey(dir: string, index: number) {
  const tmp = join(dir, `.${index}.tmp`);
  writeFileSync(tmp, randomBytes(32).toString('base64url'), { mode: 0o600 });
  const owner = statSync(dir);
  if (process.getuid?.() === 0 && owner.uid !== 0) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, join(dir, String(index)));
}

/** Creates the repository with a staged key and a primary, unless it has keys already. */
export function setupKeys(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = readKeys(dir);
  if (!keys.has(0)) writeKey(dir, 0);
  if (keys.size === 0 || [...keys.keys()].every((i) => i === 0)) writeKey(dir, 1);
}

/** The primary key's index (the highest) in a repository that was set up. */
export function primaryKeyIndex(dir: string): number {
  const top = Math.max(...[...readKeys(dir).keys()].filter((i) => i !== 0));
  if (!Number.isFinite(top)) throw new Error(`no primary token key in ${dir}`);
  return top;
}

/** One rotation; returns the new primary's index. */
export function rotateKeys(dir: string, maxActive: number): number {
  setupKeys(dir);
  const indexes = [...readKeys(dir).keys()].sort((a, b) => a - b);
  const next = (indexes[indexes.length - 1] ?? 0) + 1;
  renameSync(join(dir, '0'), join(dir, String(next)));
  // The primary's mtime says when it became primary (api/jobs.ts rotates by its age).
  const promoted = new Date();
  utimesSync(join(dir, String(next)), promoted, promoted);
  writeKey(dir, 0);
  // Keep the staged key, the new primary and maxActive - 2 secondaries.
  const secondaries = indexes.filter((i) => i !== 0);
  const drop = secondaries.slice(0, Math.max(0, secondaries.length - (maxActive - 2)));
  for (const i of drop) rmSync(join(dir, String(i)));
  return next;
}

export interface KeyRingOptions {
  dir: string;
  /** Reload the directory this often even when every token's key is known. */
  reloadMs?: number;
  now?: () => number;
  /** A reload that failed (the ring keeps the keys it had); thrown only by the first load. */
  onReloadError?: (err: Error) => void;
}

export interface ReloadableKeyRing extends KeyRing {
  /** Reads the repository again now (a rotation was announced). */
  reload(): void;
}

/** A ring over the repository in `dir`, which must have been set up. */
export function openKeyRing({
  dir,
  reloadMs = 60_000,
  now = Date.now,
  onReloadError = () => {},
}: KeyRingOptions): ReloadableKeyRing {
  let byIndex = new Map<number, SigningKey>();
  let byId = new Map<string, SigningKey>();
  let loadedAt = 0;
  const load = () => {
    const keys = readKeys(dir);
    const primaryIndex = Math.max(...[...keys.keys()].filter((i) => i !== 0));
    if (!Number.isFinite(primaryIndex)) throw new Error(`no primary token key in ${dir}`);
    byIndex = keys;
    byId = new Map([...keys.values()].map((k) => [k.id, k]));
    loadedAt = now();
  };
  load();
  // Later reloads keep the last good keys when the directory cannot be read: a token a
  // moment ago valid stays valid, and the operator sees why in the log.
  const reload = () => {
    try {
      load();
    } catch (e) {
      loadedAt = now();
      onReloadError(e as Error);
    }
  };
  const fresh = () => {
    if (now() - loadedAt >= reloadMs) reload();
  };
  return {
    reload,
    primary() {
      fresh();
      const top = Math.max(...[...byIndex.keys()].filter((i) => i !== 0));
      return byIndex.get(top) as SigningKey;
    },
    find(id) {
      fresh();
      const key = byId.get(id);
      if (key || now() - loadedAt < 1000) return key;
      reload();
      return byId.get(id);
    },
  };
}

/** Reloads `ring` whenever a rotation is announced on KEYS_CHANNEL; close() stops it. */
export const followRotations = (db: Db, ring: ReloadableKeyRing) =>
  db.listen(KEYS_CHANNEL, () => ring.reload());
