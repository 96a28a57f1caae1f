/**
 * One kumo-api for a test suite: buildApp() on its own real database (either engine), its
 * own RabbitMQ vhost with a real broker client, and its own image directory, optionally
 * listening on a loopback port for raw-socket tests.
 *
 * Invariant: call it inside a describe; it registers that suite's before/after hooks, so
 * every suite starts from an empty database and vhost and leaves nothing behind. The
 * returned object's fields are set once before() has run.
 */
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type ApiSettings, buildApp } from '../../api/app.ts';
import type { Authenticator } from '../../api/caller.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { type Broker, createBroker } from '../../core/amqp.ts';
import { type Logger, silentLogger } from '../../core/log.ts';
import { rabbitVhost, tempDir, testDatabase, type Vhost } from './env.ts';

export interface TestApiOptions {
  /** adminToken is required; the rest default (no member tokens, 1 MiB bodies). */
  settings: Partial<Omit<ApiSettings, 'images'>> & Pick<ApiSettings, 'adminToken'>;
  /** Largest image upload; 1 MiB when absent (images live under `<dir>/images`). */
  imageSizeLimit?: number;
  now?: Date;
  log?: Logger;
  /** Also listen on 127.0.0.1 (an ephemeral port, in `port`). */
  listen?: boolean;
  /** Accept Keystone tokens (test/helpers/tokens.ts) beside the static ones. */
  tokens?: Authenticator;
}

export interface TestApi {
  db: Db;
  app: FastifyInstance;
  broker: Broker;
  /** The suite's temporary directory (images under `<dir>/images`). */
  dir: string;
  port: number;
}

export function testApi(engine: 'sqlite' | 'postgres', opts: TestApiOptions): TestApi {
  const api = { port: 0 } as TestApi;
  // Made in before(), not while the suite is registered: a suite a filter skips runs no
  // hooks and so must leave no database or directory behind.
  let dir: ReturnType<typeof tempDir> | undefined;
  let database: ReturnType<typeof testDatabase> | undefined;
  let vhost: Vhost | undefined;
  before(async () => {
    dir = tempDir();
    api.dir = dir.path;
    database = testDatabase(engine, dir.path);
    api.db = openDb(database.url);
    await migrate(api.db);
    vhost = rabbitVhost();
    api.broker = createBroker({ url: vhost.url, log: silentLogger() });
    await api.broker.start();
    const now = opts.now ?? new Date('2026-11-22T10:00:00.000Z');
    api.app = buildApp({
      db: api.db,
      broker: api.broker,
      clock: { now: () => now },
      log: opts.log ?? silentLogger(),
      ...(opts.tokens ? { tokens: opts.tokens } : {}),
      settings: {
        memberTokens: [],
        agentDownTime: 30,
        bodyLimit: 1 << 20,
        ...opts.settings,
        images: { dir: join(api.dir, 'images'), sizeLimit: opts.imageSizeLimit ?? 1 << 20 },
      },
    });
    if (opts.listen) {
      await api.app.listen({ host: '127.0.0.1', port: 0 });
      api.port = (api.app.server.address() as { port: number }).port;
    }
  });
  after(async () => {
    await api.app?.close();
    await api.broker?.close();
    vhost?.cleanup();
    await api.db?.close();
    database?.cleanup();
    dir?.cleanup();
  });
  return api;
}

/** `api.app.inject` with X-Auth-Token `token`: the status and the JSON body ({} when empty). */
export async function injectAs(
  api: TestApi,
  token: string,
  method: string,
  url: string,
  payload?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await api.app.inject({
    method: method as 'GET',
    url,
    headers: { 'x-auth-token': token },
    ...(payload === undefined ? {} : { payload: payload as string }),
  });
  return { status: res.statusCode, body: (res.body ? res.json() : {}) as Record<string, unknown> };
}
