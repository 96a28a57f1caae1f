/**
 * A volume being created copies its source (a volume or a snapshot) on the storage host
 * while it is `creating`; the source must not be deleted meanwhile, or the agent would
 * wipe the data it is copying.
 *
 * Invariant: a create from a source and a delete of that source serialise on the
 * source's row: the create locks it while it still has a status a copy may start from
 * (`lockSource`) and inserts the new volume in that transaction; a delete locks it before
 * it looks for a `creating` volume naming it (`creatingFrom`). So either the delete sees
 * the new volume and refuses, or the create sees the source leave its status and refuses.
 */
import type { Queryable } from './index.ts';

export type SourceKind = 'volume' | 'snapshot';

const TABLE = { volume: 'volumes', snapshot: 'volume_snapshots' } as const;
const COLUMN = { volume: 'source_volid', snapshot: 'snapshot_id' } as const;
const COPYABLE = {
  volume: "('available', 'in-use')",
  snapshot: "('available')",
} as const;

/** Locks the source row; false when it is gone or no longer in a status a copy starts from. */
export async function lockSource(tx: Queryable, kind: SourceKind, id: string): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE ${TABLE[kind]} SET revision_number = revision_number
      WHERE id = ? AND status IN ${COPYABLE[kind]} RETURNING id`,
    [id],
  );
  return rows.length === 1;
}

/** Locks the row `id` and answers a `creating` volume copying from it, if any. */
export async function creatingFrom(
  tx: Queryable,
  kind: SourceKind,
  id: string,
): Promise<string | undefined> {
  await tx.query(`UPDATE ${TABLE[kind]} SET revision_number = revision_number WHERE id = ?`, [id]);
  const [row] = await tx.query<{ id: string }>(
    `SELECT id FROM volumes WHERE ${COLUMN[kind]} = ? AND status = 'creating' ORDER BY id`,
    [id],
  );
  return row?.id;
}
