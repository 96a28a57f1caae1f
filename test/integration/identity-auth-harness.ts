/**
 * kumo-api as main.ts wires it, in-process: the service app and the identity listener on
 * loopback ports, sharing one key ring (a real repository in a temp dir) and one
 * revocation list over a real database (either engine) and a real RabbitMQ vhost. A suite
 * may start more replicas on the same database and keys.
 *
 * Invariant: every replica's clock is the suite's `clock`, which a test may move forward
 * (`skewMs`) to expire tokens; the suite leaves no database, vhost or directory behind.
 */
import { after, before } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { buildIdentityApp } from '../../api/identity/app.ts';
import { localAuthenticator } from '../../api/identity/authenticator.ts';
import { openKeyRing, setupKeys } from '../../api/identity/keys.ts';
import { openRevocations, type Revocations } from '../../api/identity/revocations.ts';
import type { Clock } from '../../api/liveness.ts';
import { type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { freePort } from '../helpers/cluster.ts';
import { rabbitVhost, tempDir, testDatabase } from '../helpers/env.ts';

export const ADMIN = 'identity-admin-token';
export const EXPIRATION_S = 3600;

export interface Replica {
  api: FastifyInstance;
  identity: FastifyInstance;
  /** The service listener, e.g. http://127.0.0.1:PORT. */
  apiUrl: string;
  /** OS_AUTH_URL: http://127.0.0.1:PORT/v3. */
  authUrl: string;
  revocations: Revocations;
  close(): Promise<void>;
}

export interface IdentityStack {
  db: Db;
  broker: Broker;
  clock: Clock & { skewMs: number };
  keysDir: string;
  /** The first replica (started in before()). */
  main: Replica;
  startReplica(): Promise<Replica>;
}

const listen = async (app: FastifyInstance) => {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
};

async function replica(s: IdentityStack): Promise<Replica> {
  const log = silentLogger();
  const now = () => s.clock.now().getTime();
  const ring = openKeyRing({ dir: s.keysDir, now });
  const revocations = await openRevocations({ db: s.db, now, ttlMs: EXPIRATION_S * 1000, log });
  const tokens = localAuthenticator({ ring, revocations, now });
  const api = buildApp({
    db: s.db,
    broker: s.broker,
    clock: s.clock,
    log,
    tokens,
    settings: { adminToken: ADMIN, memberTokens: [], agentDownTime: 30, bodyLimit: 1 << 20 },
  });
  const apiUrl = await listen(api);
  // The catalog names the identity listener's own URL, so its port is chosen first.
  const port = await freePort();
  const identity = buildIdentityApp({
    db: s.db,
    clock: s.clock,
    log,
    ring,
    revocations,
    settings: {
      adminToken: ADMIN,
      tokenExpiration: EXPIRATION_S,
      region: 'RegionOne',
      endpoints: { identity: `http://127.0.0.1:${port}`, api: apiUrl },
      bodyLimit: 1 << 20,
    },
  });
  await identity.listen({ host: '127.0.0.1', port });
  return {
    api,
    identity,
    apiUrl,
    authUrl: `http://127.0.0.1:${port}/v3`,
    revocations,
    async close() {
      await api.close();
      await identity.close();
      await revocations.close();
    },
  };
}

export function identityStack(engine: 'sqlite' | 'postgres'): IdentityStack {
  const s = { clock: { skewMs: 0 } } as IdentityStack;
  s.clock.now = () => new Date(Date.now() + s.clock.skewMs);
  const replicas: Replica[] = [];
  let dir: ReturnType<typeof tempDir> | undefined;
  let database: ReturnType<typeof testDatabase> | undefined;
  let vhost: ReturnType<typeof rabbitVhost> | undefined;
  s.startReplica = async () => {
    const r = await replica(s);
    replicas.push(r);
    return r;
  };
  before(async () => {
    dir = tempDir();
    s.keysDir = `${dir.path}/token-keys`;
    setupKeys(s.keysDir);
    database = testDatabase(engine, dir.path);
    s.db = openDb(database.url);
    await migrate(s.db);
    vhost = rabbitVhost();
    s.broker = createBroker({ url: vhost.url, log: silentLogger() });
    await s.broker.start();
    s.main = await s.startReplica();
  });
  after(async () => {
    for (const r of replicas) await r.close();
    await s.broker?.close();
    vhost?.cleanup();
    await s.db?.close();
    database?.cleanup();
    dir?.cleanup();
  });
  return s;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { token?: Record<string, unknown>; error?: unknown };
}

/** One HTTP request; `token` → X-Auth-Token, `subject` → X-Subject-Token. */
export async function call(
  url: string,
  method: string,
  opts: { token?: string; subject?: string; body?: unknown } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token) headers['x-auth-token'] = opts.token;
  if (opts.subject) headers['x-subject-token'] = opts.subject;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} };
}

/** A password auth body: user and project by name in the Default domain. */
export const passwordAuth = (user: string, password: string, project?: string) => ({
  auth: {
    identity: {
      methods: ['password'],
      password: { user: { name: user, domain: { name: 'Default' }, password } },
    },
    ...(project ? { scope: { project: { name: project, domain: { id: 'default' } } } } : {}),
  },
});

/** Every identity row, to show a refused request changed nothing. */
export async function identityRows(db: Db) {
  const out: Record<string, unknown[]> = {};
  for (const t of ['domains', 'projects', 'users', 'role_assignments', 'revocation_events'])
    out[t] = await db.query(`SELECT * FROM ${t} ORDER BY 1, 2`);
  return out;
}
