/**
 * One identity listener for a test suite: buildIdentityApp() on its own real database
 * (either engine), a real key ring in a temporary directory and the real revocation list,
 * plus signed tokens for any user, project and roles (as the auth routes would issue).
 *
 * Invariant: call it inside a describe; it registers that suite's before/after hooks, so
 * every suite starts from a freshly migrated database and leaves nothing behind. Tokens
 * are signed with the app's own ring and checked against its own revocations, so a
 * revocation recorded by a route refuses them exactly as in production.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { buildIdentityApp } from '../../api/identity/app.ts';
import { openKeyRing, setupKeys } from '../../api/identity/keys.ts';
import { openRevocations, type Revocations } from '../../api/identity/revocations.ts';
import type { KeyRing } from '../../api/identity/tokens.ts';
import { silentLogger } from '../../core/log.ts';
import { tempDir, testDatabase } from './env.ts';
import { signTestToken } from './tokens.ts';

/** Every identity row, to prove a refused request changed nothing. */
export async function identitySnapshot(db: Db) {
  const out: Record<string, unknown[]> = {};
  for (const t of ['domains', 'projects', 'users', 'roles', 'role_assignments', 'quotas'])
    out[t] = await db.query(`SELECT * FROM ${t} ORDER BY 1, 2`);
  out.revocations = await db.query(
    'SELECT user_id, project_id FROM revocation_events ORDER BY 1, 2',
  );
  return out;
}

export const IDENTITY_URL = 'http://identity.test:5000';

export interface IdentityApi {
  db: Db;
  app: FastifyInstance;
  ring: KeyRing;
  revocations: Revocations;
  /** The listening port (when `listen`), for real clients. */
  port: number;
  /** A token for `user` scoped to `project` (null: unscoped) with `roles`, issued now. */
  token(opts: { user: string; project: string | null; roles: string[] }): string;
  /** app.inject with X-Auth-Token `token`; the parsed JSON body (undefined when none). */
  call(
    method: InjectOptions['method'],
    url: string,
    token: string | undefined,
    body?: unknown,
  ): Promise<{
    status: number;
    body: Record<string, unknown> & { error?: { code: number; message: string } };
  }>;
  /** POST /v3/<kind>s {<kind>: entity} as the admin token; asserts the 201, gives the id. */
  create(kind: string, entity: Record<string, unknown>): Promise<string>;
  /** The ids of the seeded roles admin, member and reader. */
  builtInRoles(): Promise<{ admin: string; member: string; reader: string }>;
  /** Asserts the call answers `status` with Keystone's error body and changes nothing. */
  refused(
    method: InjectOptions['method'],
    url: string,
    token: string | undefined,
    body: unknown,
    status: number,
    message: string | RegExp,
  ): Promise<void>;
}

export function identityApi(
  engine: 'sqlite' | 'postgres',
  opts: { adminToken: string; listen?: boolean },
): IdentityApi {
  const api = { port: 0 } as IdentityApi;
  let dir: ReturnType<typeof tempDir> | undefined;
  let database: ReturnType<typeof testDatabase> | undefined;
  before(async () => {
    dir = tempDir();
    database = testDatabase(engine, dir.path);
    api.db = openDb(database.url);
    await migrate(api.db);
    setupKeys(`${dir.path}/keys`);
    api.ring = openKeyRing({ dir: `${dir.path}/keys` });
    const log = silentLogger();
    api.revocations = await openRevocations({
      db: api.db,
      now: Date.now,
      ttlMs: 3_600_000,
      log,
    });
    api.app = buildIdentityApp({
      db: api.db,
      clock: { now: () => new Date() },
      log,
      ring: api.ring,
      revocations: api.revocations,
      settings: {
        adminToken: opts.adminToken,
        tokenExpiration: 3600,
        region: 'RegionOne',
        endpoints: { identity: IDENTITY_URL, api: 'http://api.test:9696' },
        bodyLimit: 1 << 20,
      },
    });
    if (opts.listen) {
      await api.app.listen({ host: '127.0.0.1', port: 0 });
      api.port = (api.app.server.address() as { port: number }).port;
    }
  });
  after(async () => {
    await api.app?.close();
    await api.revocations?.close();
    await api.db?.close();
    database?.cleanup();
    dir?.cleanup();
  });
  api.token = (who) => signTestToken(api.ring, who);
  api.call = async (method, url, token, body) => {
    const res = await api.app.inject({
      method,
      url,
      headers: token === undefined ? {} : { 'x-auth-token': token },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
  };
  api.create = async (kind, entity) => {
    const r = await api.call('POST', `/v3/${kind}s`, opts.adminToken, { [kind]: entity });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return (r.body[kind] as { id: string }).id;
  };
  api.builtInRoles = async () => {
    const roles = (await api.call('GET', '/v3/roles', opts.adminToken)).body.roles as {
      id: string;
      name: string;
    }[];
    const idOf = (name: string) => roles.find((r) => r.name === name)?.id as string;
    return { admin: idOf('admin'), member: idOf('member'), reader: idOf('reader') };
  };
  api.refused = async (method, url, token, body, status, message) => {
    const before = await identitySnapshot(api.db);
    const r = await api.call(method, url, token, body);
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, status);
    if (typeof message === 'string') assert.equal(r.body.error?.message, message);
    else assert.match(r.body.error?.message ?? '', message);
    assert.deepEqual(await identitySnapshot(api.db), before);
  };
  return api;
}
