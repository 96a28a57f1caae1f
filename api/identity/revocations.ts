/**
 * Token revocation, as Keystone's revocation events: a token is refused when an event
 * matches it — same user, project or audit id (each where the event names one) — and the
 * token was issued at or before the event. Revoking a token, disabling a user, changing
 * a password, removing a role assignment, disabling or deleting a project each record one.
 *
 * Invariants: the per-request check reads memory only (no database read per request); an
 * event is recorded inside the transaction of the change that causes it, so the change and
 * its revocation commit together; after the commit `commit(ids)` moves the events'
 * `issued_before` to that moment, so a token issued while the change was still
 * uncommitted (from rows that no longer hold) is covered too — a token's issuedAt is
 * taken before its issue reads anything; the replica that commits reloads its list before
 * it answers, and every other replica hears the commit on PostgreSQL's NOTIFY and reloads
 * then (and every `pollMs` besides, in case a notification was lost); a reload that
 * started earlier never overwrites the list a later one loaded. Paths that read the
 * database anyway (a token exchanged for a new one, a token validated) ask the database
 * (`isRevokedNow`), so a replica that has not yet heard a NOTIFY cannot mint a fresh token
 * from a revoked one. Events older than the token lifetime can match no living token and
 * are pruned; a token whose lifetime exceeds it (issued under a longer
 * token_expiration) is therefore refused.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../core/log.ts';
import { type Db, notifyOnCommit, type Queryable } from '../db/index.ts';
import type { RevocationCheck } from './authenticator.ts';
import type { TokenClaims } from './tokens.ts';

export const REVOCATION_CHANNEL = 'kumo_revocations';

export interface RevocationEvent {
  userId?: string;
  projectId?: string;
  auditId?: string;
}

interface Stored extends RevocationEvent {
  issuedBefore: number;
}

export interface Revocations extends RevocationCheck {
  /** Records `event` in `tx`, effective for tokens issued up to now; its id. */
  record(tx: Queryable, event: RevocationEvent): Promise<string>;
  /**
   * After the recording transaction committed: the events `ids` cover tokens issued up to
   * now (the commit), other replicas are told, and this replica's list is reloaded.
   */
  commit(ids: readonly string[]): Promise<void>;
  /** The database's answer for `claims` (for routes that read the database anyway). */
  isRevokedNow(q: Queryable, claims: TokenClaims): Promise<boolean>;
  /** Reloads the list. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

const matches = (e: Stored, c: TokenClaims) =>
  c.issuedAt <= e.issuedBefore &&
  (e.userId === undefined || e.userId === c.userId) &&
  (e.projectId === undefined || e.projectId === c.projectId) &&
  (e.auditId === undefined || c.auditIds.includes(e.auditId));

const storedOf = (r: Record<string, string | number | null>): Stored => ({
  ...(r.user_id === null ? {} : { userId: String(r.user_id) }),
  ...(r.project_id === null ? {} : { projectId: String(r.project_id) }),
  ...(r.audit_id === null ? {} : { auditId: String(r.audit_id) }),
  issuedBefore: Number(r.issued_before),
});

const SELECT = 'SELECT user_id, project_id, audit_id, issued_before FROM revocation_events';

export async function openRevocations(opts: {
  db: Db;
  now: () => number;
  /** The token lifetime: older events are pruned. */
  ttlMs: number;
  log: Logger;
  pollMs?: number;
}): Promise<Revocations> {
  const { db, now, ttlMs } = opts;
  let events: Stored[] = [];
  let started = 0;
  let applied = 0;
  const rowsFrom = (q: Queryable, where: string, params: (string | number)[]) =>
    q.query<Record<string, string | number | null>>(`${SELECT} WHERE ${where}`, params);
  const load = async () => {
    const generation = ++started;
    const rows = await rowsFrom(db, 'issued_before >= ?', [now() - ttlMs]);
    // Reloads may finish out of order (pooled connections): the latest started one wins.
    if (generation < applied) return;
    applied = generation;
    events = rows.map(storedOf);
  };
  const refresh = () =>
    load().catch((e: Error) =>
      opts.log.error({ err: e.message }, 'cannot reload token revocations'),
    );
  await load();
  const listener = await db.listen(REVOCATION_CHANNEL, () => void refresh());
  const timer = setInterval(() => void refresh(), opts.pollMs ?? 5000);
  timer.unref();
  const outlives = (c: TokenClaims) => c.expiresAt - c.issuedAt > ttlMs;
  return {
    isRevoked: (claims) => outlives(claims) || events.some((e) => matches(e, claims)),
    async isRevokedNow(q, claims) {
      if (outlives(claims)) return true;
      const rows = await rowsFrom(q, 'issued_before >= ?', [claims.issuedAt]);
      return rows.some((r) => matches(storedOf(r), claims));
    },
    async record(tx, event) {
      const id = randomUUID();
      await tx.query('DELETE FROM revocation_events WHERE issued_before < ?', [now() - ttlMs]);
      await tx.query(
        'INSERT INTO revocation_events (id, user_id, project_id, audit_id, issued_before, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        [
          id,
          event.userId ?? null,
          event.projectId ?? null,
          event.auditId ?? null,
          now(),
          new Date(now()).toISOString(),
        ],
      );
      await notifyOnCommit(tx, db.engine, REVOCATION_CHANNEL);
      return id;
    },
    async commit(ids) {
      if (ids.length === 0) return;
      const at = now();
      await db.transaction(async (tx) => {
        const marks = ids.map(() => '?').join(', ');
        await tx.query(
          `UPDATE revocation_events SET issued_before = ? WHERE issued_before < ? AND id IN (${marks})`,
          [at, at, ...ids],
        );
        await notifyOnCommit(tx, db.engine, REVOCATION_CHANNEL);
      });
      await load();
    },
    refresh: load,
    async close() {
      clearInterval(timer);
      await listener.close();
    },
  };
}
