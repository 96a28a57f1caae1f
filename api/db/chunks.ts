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
 * every row, chunk after chunk; `params` come before each chunk's keys.
 */
export async function queryIn<T extends Row>(
  db: Queryable,
  keys: readonly Param[],
  sql: (inList: string) => string,
  params: readonly Param[] = [],
): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < keys.length; i += IN_CHUNK) {
    const chunk = keys.slice(i, i + IN_CHUNK);
    const inList = `(${chunk.map(() => '?').join(', ')})`;
    out.push(...(await db.query<T>(sql(inList), [...params, ...chunk])));
  }
  return out;
}
