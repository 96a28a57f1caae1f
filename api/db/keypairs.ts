/**
 * Key pair rows (Nova's key_pairs): a user's key pairs by name, and the insert that keeps
 * Nova's per-user quota and integer ids.
 *
 * Invariants: a name is unique per user (the primary key); `seq` (Nova's integer id) is
 * one more than the highest present. The insert counts the user's key pairs, checks the
 * name and takes the next seq inside one transaction, after locking the (project,
 * key_pairs) quota row and then a global seq row (PostgreSQL; SQLite's one writer already
 * serialises), so a limit of N admits exactly N, two creates never pick one seq, and a
 * taken name is a refusal, never a failed insert, even from two projects at once. Key pairs are
 * deleted outright: nothing else refers to them (an instance keeps its own copy).
 */
import type { KeypairType } from '../../contracts/keypairs.ts';
import type { Queryable } from './index.ts';
import { lockQuota } from './quotas.ts';

export interface KeypairRow {
  seq: number;
  user_id: string;
  name: string;
  type: KeypairType;
  public_key: string;
  fingerprint: string;
  created_at: string;
}

const toRow = (r: Record<string, unknown>): KeypairRow => ({
  seq: Number(r.seq),
  user_id: String(r.user_id),
  name: String(r.name),
  type: r.type as KeypairType,
  public_key: String(r.public_key),
  fingerprint: String(r.fingerprint),
  created_at: String(r.created_at),
});

/** A user's key pairs, by name. */
export async function listKeypairs(db: Queryable, userId: string): Promise<KeypairRow[]> {
  const rows = await db.query('SELECT * FROM keypairs WHERE user_id = ? ORDER BY name', [userId]);
  return rows.map(toRow);
}

export async function getKeypair(
  db: Queryable,
  userId: string,
  name: string,
): Promise<KeypairRow | undefined> {
  const [row] = await db.query('SELECT * FROM keypairs WHERE user_id = ? AND name = ?', [
    userId,
    name,
  ]);
  return row && toRow(row);
}

export async function countKeypairs(db: Queryable, userId: string): Promise<number> {
  const [row] = await db.query<{ n: unknown }>(
    'SELECT COUNT(*) AS n FROM keypairs WHERE user_id = ?',
    [userId],
  );
  return Number(row?.n ?? 0);
}

/** Deletes a user's key pair; false when it has none of that name. */
export async function deleteKeypair(db: Queryable, userId: string, name: string) {
  const rows = await db.query(
    'DELETE FROM keypairs WHERE user_id = ? AND name = ? RETURNING name',
    [userId, name],
  );
  return rows.length > 0;
}

export type NewKeypair = Omit<KeypairRow, 'seq'>;
export type InsertOutcome = { row: KeypairRow } | { refused: 'exists' | 'quota' };

/**
 * Inserts a key pair unless the user has one of that name or `limit` (-1: none) key pairs
 * already; the quota is `projectId`'s, counted over the user's key pairs.
 */
export async function insertKeypair(
  tx: Queryable,
  engine: 'sqlite' | 'postgres',
  k: NewKeypair & { projectId: string; limit: number },
): Promise<InsertOutcome> {
  await lockQuota(tx, engine, k.projectId, 'key_pairs');
  // The global lock before any read: one user's creates from two projects (two quota rows)
  // must not both see the name free, or the second insert would fail on the primary key.
  await lockQuota(tx, engine, '', 'keypair_seq');
  if (limitReached(k.limit, await countKeypairs(tx, k.user_id))) return { refused: 'quota' };
  if (await getKeypair(tx, k.user_id, k.name)) return { refused: 'exists' };
  const [top] = await tx.query<{ seq: unknown }>('SELECT MAX(seq) AS seq FROM keypairs');
  const seq = Number(top?.seq ?? 0) + 1;
  await tx.query(
    `INSERT INTO keypairs (seq, user_id, name, type, public_key, fingerprint, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [seq, k.user_id, k.name, k.type, k.public_key, k.fingerprint, k.created_at],
  );
  const { projectId: _p, limit: _l, ...row } = k;
  return { row: { ...row, seq } };
}

const limitReached = (limit: number, used: number) => limit !== -1 && used + 1 > limit;
