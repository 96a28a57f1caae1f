/**
 * The API's database handle: SQLite (node:sqlite, one file) by default, PostgreSQL (pg)
 * for several replicas. Both speak the same SQL with `?` placeholders.
 *
 * Invariant: a transaction sees only its own statements. SQLite has one connection, so
 * statements and transactions are serialised through one lock; PostgreSQL gives every
 * transaction its own pooled client.
 */
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import pg from 'pg';
import type { DatabaseUrl, KumoConfig } from '../../core/config.ts';

export type Param = string | number | boolean | null;
export type Row = Record<string, unknown>;

export interface Queryable {
  query<T extends Row = Row>(sql: string, params?: readonly Param[]): Promise<T[]>;
}

export interface Db extends Queryable {
  readonly engine: 'sqlite' | 'postgres';
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` for every NOTIFY on `channel` by any replica (PostgreSQL's LISTEN, on
   * a connection of its own that is reopened after a failure, and `onNotify` is called
   * then too, since notifications may have been missed). SQLite serves one process, so
   * there is nobody to hear from: the returned handle only has to be closed.
   */
  listen(channel: string, onNotify: () => void): Promise<{ close(): Promise<void> }>;
  close(): Promise<void>;
}

/** NOTIFY `channel` when `tx` commits (PostgreSQL); nothing on SQLite (one process). */
export async function notifyOnCommit(
  tx: Queryable,
  engine: Db['engine'],
  channel: string,
): Promise<void> {
  if (engine === 'postgres') await tx.query('SELECT pg_notify(?, ?)', [channel, '']);
}

/** The database kumo-api uses: [database] connection, else <state_path>/kumo.sqlite. */
export const databaseOf = (config: KumoConfig): DatabaseUrl =>
  config.database.connection ?? {
    engine: 'sqlite',
    path: `${config.DEFAULT.state_path}/kumo.sqlite`,
  };

export function openDb(url: DatabaseUrl): Db {
  return url.engine === 'sqlite' ? openSqlite(url.path) : openPostgres(url.url);
}

/** A FIFO async mutex: SQLite's single connection must not interleave transactions. */
function createLock() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

const sqliteParam = (p: Param): SQLInputValue => (typeof p === 'boolean' ? (p ? 1 : 0) : p);

function openSqlite(path: string): Db {
  const db = new DatabaseSync(path);
  // A checkpoint every 16,000 WAL pages (64 MB), not SQLite's 1,000: a heartbeat batch
  // writes hundreds of pages, and checkpointing every few batches cost kumo-api 13% of its
  // report ingest (bench/heartbeats: 67 → 58 µs of CPU per report).
  db.exec(
    'PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 16000; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;',
  );
  const statements = new Map<string, ReturnType<DatabaseSync['prepare']>>();
  const run = <T>(sql: string, params: readonly Param[]): T[] => {
    let stmt = statements.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      statements.set(sql, stmt);
    }
    return stmt.all(...params.map(sqliteParam)) as T[];
  };
  const direct: Queryable = { query: async (sql, params = []) => run(sql, params) };
  const lock = createLock();
  return {
    engine: 'sqlite',
    query: (sql, params = []) => lock(async () => run(sql, params)),
    transaction: (fn) =>
      lock(async () => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const result = await fn(direct);
          db.exec('COMMIT');
          return result;
        } catch (e) {
          db.exec('ROLLBACK');
          throw e;
        }
      }),
    listen: async () => ({ close: async () => {} }),
    close: () => lock(async () => db.close()),
  };
}

/** `?` → `$1, $2 …` (our SQL never contains a literal question mark). */
function toPg(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

function openPostgres(url: string): Db {
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => {});
  const query =
    (c: pg.Pool | pg.PoolClient) =>
    async <T extends Row>(sql: string, params: readonly Param[] = []) =>
      (await c.query(toPg(sql), params as Param[])).rows as T[];
  return {
    engine: 'postgres',
    query: query(pool),
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({ query: query(client) });
        await client.query('COMMIT');
        return result;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    },
    listen: (channel, onNotify) => listenPg(url, channel, onNotify),
    close: () => pool.end(),
  };
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

/** A LISTEN connection that reconnects (after 1 s) until closed. */
async function listenPg(url: string, channel: string, onNotify: () => void) {
  if (!CHANNEL.test(channel)) throw new Error(`bad channel name ${channel}`);
  let closed = false;
  let client: pg.Client | undefined;
  const retry = (): void => {
    if (closed) return;
    setTimeout(() => {
      if (!closed) connect().then(onNotify, retry);
    }, 1000).unref();
  };
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', () => onNotify());
    c.on('error', () => {
      void c.end().catch(() => {});
      retry();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
    } catch (e) {
      void c.end().catch(() => {});
      throw e;
    }
    client = c;
  };
  await connect();
  return {
    async close() {
      closed = true;
      await client?.end().catch(() => {});
    },
  };
}
