/**
 * Token revocation, as Keystone's revocation events: a token is refused when an event
 * matches it — same user, project or audit id (each where the event names one) — and the
 * token was issued at or before the event. Revoking a token, disabling a user, changing
 * a password, removing a role assignment, disabling or deleting a project each record one.
 *
 * Invariants: the check reads memory only (no database read per request); an event is
 * recorded inside the transaction of the change that causes it, so the change and its
 * revocation commit together; the replica that commits refreshes its list before it
 * answers, and every other replica hears the commit on PostgreSQL's NOTIFY and refreshes
 * then (and every `pollMs` besides, in case a notification was lost). Events older than
 * the token lifetime can match no living token and are pruned.
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
  /** Records `event` in `tx`, effective for tokens issued up to now. */
  record(tx: Queryable, event: RevocationEvent): Promise<void>;
  /** Reloads the list (after the recording transaction committed). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

const matches = (e: Stored, c: TokenClaims) =>
  c.issuedAt <= e.issuedBefore &&
  (e.userId === undefined || e.userId === c.userId) &&
  (e.projectId === undefined || e.projectId === c.projectId) &&
  (e.auditId === undefined || c.auditIds.includes(e.auditId));

export async function openRevocations(opts: {
  db: Db;
  now: () => number;
  /** The token lifetime: older events are pruned. */
  ttlMs: number;
  log: Logger;
  pollMs?: number;
}): Promise<Revocations> {
  const { db, now } = opts;
  let events: Stored[] = [];
  const load = async () => {
    const cutoff = now() - opts.ttlMs;
    const rows = await db.query<Record<string, string | number | null>>(
      'SELECT user_id, project_id, audit_id, issued_before FROM revocation_events WHERE issued_before >= ?',
      [cutoff],
    );
    events = rows.map((r) => ({
      ...(r.user_id === null ? {} : { userId: String(r.user_id) }),
      ...(r.project_id === null ? {} : { projectId: String(r.project_id) }),
      ...(r.audit_id === null ? {} : { auditId: String(r.audit_id) }),
      issuedBefore: Number(r.issued_before),
    }));
  };
  const refresh = () =>
    load().catch((e: Error) =>
      opts.log.error({ err: e.message }, 'cannot reload token revocations'),
    );
  await load();
  const listener = await db.listen(REVOCATION_CHANNEL, () => void refresh());
  const timer = setInterval(() => void refresh(), opts.pollMs ?? 5000);
  timer.unref();
  return {
    isRevoked: (claims) => events.some((e) => matches(e, claims)),
    async record(tx, event) {
      await tx.query('DELETE FROM revocation_events WHERE issued_before < ?', [now() - opts.ttlMs]);
      await tx.query(
        'INSERT INTO revocation_events (id, user_id, project_id, audit_id, issued_before, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        [
          randomUUID(),
          event.userId ?? null,
          event.projectId ?? null,
          event.auditId ?? null,
          now(),
          new Date(now()).toISOString(),
        ],
      );
      await notifyOnCommit(tx, db.engine, REVOCATION_CHANNEL);
    },
    refresh: load,
    async close() {
      clearInterval(timer);
      await listener.close();
    },
  };
}
