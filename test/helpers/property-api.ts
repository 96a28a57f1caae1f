/**
 * The API the property tests send their random requests to: buildApp on a fresh sqlite
 * database with a real broker (a vhost of its own), and what the API's RPC handlers need.
 *
 * Invariant: everything made here is removed by `close()`.
 */
import type { FastifyInstance } from 'fastify';
import { type ApiSettings, buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { type Broker, createBroker } from '../../core/amqp.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase } from './env.ts';

export interface PropertyApi {
  dir: string;
  db: Db;
  broker: Broker;
  app: FastifyInstance;
  /** What the RPC handlers and consumers take. */
  deps: { db: Db; broker: Broker; clock: { now(): Date }; log: Logger };
  close(): Promise<void>;
}

/** `settings(dir)`: the API's settings, given the test's own directory. */
export async function startPropertyApi(
  settings: (dir: string) => ApiSettings,
): Promise<PropertyApi> {
  const dir = tempDir();
  const database = testDatabase('sqlite', dir.path);
  const vhost = rabbitVhost();
  const db = openDb(database.url);
  await migrate(db);
  const broker = createBroker({ url: vhost.url, log: silentLogger() });
  await broker.start();
  const deps = { db, broker, clock: { now: () => new Date() }, log: silentLogger() };
  const app = buildApp({ ...deps, settings: settings(dir.path) });
  return {
    dir: dir.path,
    db,
    broker,
    app,
    deps,
    async close() {
      await app.close();
      await broker.close();
      await db.close();
      vhost.cleanup();
      database.cleanup();
      dir.cleanup();
    },
  };
}
