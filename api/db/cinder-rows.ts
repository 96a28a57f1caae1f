/**
 * What the volume and snapshot row modules (volumes.ts, snapshots.ts) write alike:
 * Cinder's timestamps, the WHERE of a list's exact filters, and the text fields a PUT
 * changes.
 *
 * Invariant: column names come from the callers' fixed lists (the routes' filter
 * names, the TextFields keys), never from a request; every value is a parameter.
 */
import type { Param, Queryable } from './index.ts';

/** Cinder's timestamps: `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC, no zone). */
export const cinderTime = (d: Date) => `${d.toISOString().slice(0, 23)}000`;

/**
 * ` WHERE …` (or nothing) matching the project (when given) and each exact filter on
 * `prefix`-qualified columns; `value` turns a filter's text into its parameter.
 */
export function exactWhere(
  prefix: string,
  projectId: string | undefined,
  where: Readonly<Record<string, string>>,
  value: (col: string, text: string) => Param = (_, text) => text,
): { sql: string; params: Param[] } {
  const clauses: string[] = [];
  const params: Param[] = [];
  if (projectId !== undefined) {
    clauses.push(`${prefix}project_id = ?`);
    params.push(projectId);
  }
  for (const [col, text] of Object.entries(where)) {
    clauses.push(`${prefix}${col} = ?`);
    params.push(value(col, text));
  }
  return { sql: clauses.length ? ` WHERE ${clauses.join(' AND ')}` : '', params };
}

/** The name, description and metadata a PUT may change (undefined: left as it is). */
export interface TextFields {
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, string>;
}

/** Writes a volume's or snapshot's text fields (those given); false when the row is gone. */
export async function updateText(
  q: Queryable,
  table: 'volumes' | 'volume_snapshots',
  id: string,
  f: TextFields,
  now: Date,
): Promise<boolean> {
  const sets: string[] = [];
  const params: Param[] = [];
  const set = (col: string, value: Param) => {
    sets.push(`${col} = ?`);
    params.push(value);
  };
  if (f.name !== undefined) set('name', f.name);
  if (f.description !== undefined) set('description', f.description);
  if (f.metadata !== undefined) set('metadata', JSON.stringify(f.metadata));
  const rows = await q.query(
    `UPDATE ${table} SET ${[...sets, 'updated_at = ?'].join(', ')} WHERE id = ? RETURNING id`,
    [...params, cinderTime(now), id],
  );
  return rows.length === 1;
}
