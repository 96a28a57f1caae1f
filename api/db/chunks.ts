/**
 * Queries over a list of keys: `… WHERE x IN (?, ?, …)` run in chunks, so a list of any
 * length stays under both engines' bound-parameter limits (SQLite: 32766, PostgreSQL:
 * 65535) and SQLite's statement cache sees few shapes.
 *
 * Invariant: keys reach SQL only as bound parameters; the caller's SQL places the one
 * `IN (…)` list with the `inList` it is given, after any parameters of its own.
 */
import type { Param, Queryable, Row } from './index.ts';

export const IN_CHUNK = 500;

/**
 * Runs `sql(inList)` once per chunk of `keys` (none when `keys` is empty) and returns
 * every row, chunk after chunk; `params` come before each chunk's keys. With `pad`, every
 * chunk is filled up to `chunk` keys by repeating its first, so a hot path prepares one
 * statement whatever the list's length (an IN list ignores the repeats).
 */
export async function queryIn<T extends Row>(
  db: Queryable,
  keys: readonly Param[],
  sql: (inList: string) => string,
  params: readonly Param[] = [],
  opts: { chunk?: number; pad?: boolean } = {},
): Promise<T[]> {
  const size = opts.chunk ?? IN_CHUNK;
  const out: T[] = [];
  for (let i = 0; i < keys.length; i += size) {
    const chunk = keys.slice(i, i + size);
    if (opts.pad) chunk.push(...Array<Param>(size - chunk.length).fill(chunk[0] as Param));
    const inList = `(${chunk.map(() => '?').join(', ')})`;
    out.push(...(await db.query<T>(sql(inList), [...params, ...chunk])));
  }
  return out;
}
