/**
 * Schema migrations: one ordered list, valid SQL for both SQLite and PostgreSQL.
 *
 * Invariant: migrations are append-only; `migrate` applies each exactly once, in order,
 * inside a transaction that also records it, so a crash never leaves half a migration.
 * Several API replicas starting at once are serialised by the migrations table lock.
 */
import type { Db } from './index.ts';

export const MIGRATIONS: readonly { version: number; name: string; sql: string[] }[] = [
  {
    version: 1,
    name: 'agents',
    sql: [
      `CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        agent_type TEXT NOT NULL,
        "binary" TEXT NOT NULL,
        topic TEXT NOT NULL,
        host TEXT NOT NULL,
        availability_zone TEXT,
        admin_state_up BOOLEAN NOT NULL,
        description TEXT,
        configurations TEXT NOT NULL,
        resource_versions TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_timestamp TEXT NOT NULL,
        UNIQUE (agent_type, host)
      )`,
      'CREATE INDEX agents_heartbeat ON agents (heartbeat_timestamp)',
    ],
  },
];

export async function migrate(db: Db): Promise<number[]> {
  await db.query(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query('LOCK TABLE schema_migrations IN EXCLUSIVE MODE');
    const done = new Set(
      (await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) =>
        Number(r.version),
      ),
    );
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      for (const statement of m.sql) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
        m.version,
        m.name,
        new Date().toISOString(),
      ]);
      applied.push(m.version);
    }
    return applied;
  });
}
