/**
 * Leases: which kumo-api replica runs a periodic job (api/periodic.ts), and until when.
 *
 * Invariant: at any instant of the database's clock at most one holder has an unexpired
 * lease on a name. A claim is one upsert that succeeds only for the holder itself or when
 * the lease has expired, and every time is read from the database's clock, never a
 * replica's, so replicas with skewed clocks still agree on who holds what. `acquired_at`
 * is when the current unbroken tenure began: a renewal keeps it, and retaking a lease
 * that expired or was released (even by the same holder) starts it again.
 */
import type { Db } from './index.ts';

/** The database's clock in milliseconds since the epoch. */
const NOW_MS: Record<Db['engine'], string> = {
  postgres: '(extract(epoch from clock_timestamp()) * 1000)::bigint',
  sqlite: "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
};

export interface LeaseState {
  /** Whether `holder` holds the lease now. */
  held: boolean;
  /** Who holds it (possibly expired). */
  holder: string;
  /** Milliseconds until it expires; 0 or less when it has. */
  remainingMs: number;
  /** When the holder's current tenure began (database clock, ms). */
  acquiredAt: number;
}

export interface LeaseRow {
  name: string;
  holder: string;
  acquired_at: number;
  expires_at: number;
  remaining_ms: number;
}

/** Takes or renews `name` for `holder` for `durationMs`, unless another holds it unexpired. */
export async function claimLease(
  db: Db,
  name: string,
  holder: string,
  durationMs: number,
): Promise<LeaseState> {
  const now = NOW_MS[db.engine];
  await db.query(
    // The clock is read once (the subquery), so expires_at - acquired_at is the duration.
    `INSERT INTO leases (name, holder, acquired_at, expires_at)
     SELECT ?, ?, t.n, t.n + ? FROM (SELECT ${now} AS n) AS t WHERE true
     ON CONFLICT (name) DO UPDATE SET
       holder = excluded.holder,
       acquired_at = CASE
         WHEN leases.holder = excluded.holder AND leases.expires_at > excluded.acquired_at
         THEN leases.acquired_at ELSE excluded.acquired_at END,
       expires_at = excluded.expires_at
     WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at`,
    [name, holder, Math.round(durationMs)],
  );
  const [row] = await db.query<{
    holder: string;
    remaining_ms: number | string;
    acquired_at: number | string;
  }>(`SELECT holder, acquired_at, expires_at - ${now} AS remaining_ms FROM leases WHERE name = ?`, [
    name,
  ]);
  const remainingMs = Number(row?.remaining_ms ?? 0);
  const current = row?.holder ?? '';
  return {
    held: current === holder && remainingMs > 0,
    holder: current,
    remainingMs,
    acquiredAt: Number(row?.acquired_at ?? 0),
  };
}

/** Gives `name` up at once if `holder` holds it, so another replica need not wait it out. */
export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.query('UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?', [name, holder]);
}

/** Every lease, with the time left on the database's clock. */
export async function listLeases(db: Db): Promise<LeaseRow[]> {
  const rows = await db.query<Record<keyof LeaseRow, string | number>>(
    `SELECT name, holder, acquired_at, expires_at, expires_at - ${NOW_MS[db.engine]} AS remaining_ms
     FROM leases ORDER BY name`,
  );
  return rows.map((r) => ({
    name: String(r.name),
    holder: String(r.holder),
    acquired_at: Number(r.acquired_at),
    expires_at: Number(r.expires_at),
    remaining_ms: Number(r.remaining_ms),
  }));
}
