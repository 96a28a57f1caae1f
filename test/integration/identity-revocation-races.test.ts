/**
 * Revocation under concurrency and across replicas (api/identity/revocations.ts), on a
 * real database of either engine through the real identity listener.
 *
 * Invariants under test: a reload that started before a revocation and finished after it
 * never puts the old list back; a replica whose in-memory list has not heard a revocation
 * yet still refuses to exchange or validate the revoked token (it asks the database on
 * those paths); a token that outlives the events kept for it is refused; and (PostgreSQL,
 * where a token can be issued while another replica's change is still uncommitted) a
 * token issued from a role assignment whose removal had not yet committed is revoked once
 * it has.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Db } from '../../api/db/index.ts';
import { openRevocations } from '../../api/identity/revocations.ts';
import type { TokenClaims } from '../../api/identity/tokens.ts';
import { silentLogger } from '../../core/log.ts';
import { seedUser } from '../helpers/identity.ts';
import {
  call,
  EXPIRATION_S,
  identityStack,
  passwordAuth,
  type Replica,
} from './identity-auth-harness.ts';

const TTL = EXPIRATION_S * 1000;

const claimsOf = (userId: string, issuedAt: number, lifetime = TTL): TokenClaims => ({
  userId,
  projectId: 'p1',
  roles: ['member', 'reader'],
  methods: ['password'],
  issuedAt,
  expiresAt: issuedAt + lifetime,
  auditIds: ['audit-1'],
});

/** `db` whose next read of the revocation list returns only when `release` is called. */
function gated(db: Db) {
  let hold: Promise<void> | undefined;
  let release = () => {};
  const query = (async (sql: string, params?: readonly unknown[]) => {
    const rows = await db.query(sql, params as never);
    if (hold && sql.startsWith('SELECT user_id')) {
      const h = hold;
      hold = undefined;
      await h;
    }
    return rows;
  }) as Db['query'];
  return {
    db: { ...db, query } as Db,
    arm: () => {
      hold = new Promise((r) => {
        release = r;
      });
    },
    release: () => release(),
  };
}

const tokenAuth = (token: string, project?: string) => ({
  auth: {
    identity: { methods: ['token'], token: { id: token } },
    ...(project ? { scope: { project: { name: project, domain: { id: 'default' } } } } : {}),
  },
});

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`identity: revocation races on ${engine}`, () => {
    const s = identityStack(engine);
    let b: Replica;
    let erin: { userId: string; projectId: string };

    before(async () => {
      b = await s.startReplica();
      erin = await seedUser(s.db, { name: 'erin', password: 'erin-pw-1', project: 'demo' });
    });

    test('a reload that started before a revocation cannot put the old list back', async () => {
      const g = gated(s.db);
      const now = () => s.clock.now().getTime();
      const r = await openRevocations({ db: g.db, now, ttlMs: TTL, log: silentLogger() });
      try {
        const claims = claimsOf('race-user', now() - 1000);
        g.arm();
        const stale = r.refresh(); // reads the list before the event, answers after it
        const id = await g.db.transaction((tx) => r.record(tx, { userId: 'race-user' }));
        await r.commit([id]);
        assert.equal(r.isRevoked(claims), true, 'revoked once committed');
        g.release();
        await stale;
        assert.equal(r.isRevoked(claims), true, 'the earlier reload did not undo it');
      } finally {
        g.release();
        await r.close();
      }
    });

    test('a token whose lifetime exceeds the kept events is refused', async () => {
      const now = s.clock.now().getTime();
      const r = b.revocations;
      assert.equal(r.isRevoked(claimsOf('long-user', now, TTL)), false);
      assert.equal(r.isRevoked(claimsOf('long-user', now, TTL + 1)), true);
      assert.equal(await r.isRevokedNow(s.db, claimsOf('long-user', now, TTL + 1)), true);
    });

    test('a replica that has not heard a revocation neither rescopes nor validates the token', async () => {
      const login = await call(`${s.main.authUrl}/auth/tokens`, 'POST', {
        body: passwordAuth('erin', 'erin-pw-1', 'demo'),
      });
      assert.equal(login.status, 201);
      const token = login.headers.get('x-subject-token') as string;
      const revoke = await call(`${s.main.authUrl}/auth/tokens`, 'DELETE', {
        token,
        subject: token,
      });
      assert.equal(revoke.status, 204);
      const rescoped = await call(`${b.authUrl}/auth/tokens`, 'POST', {
        body: tokenAuth(token, 'demo'),
      });
      assert.equal(rescoped.status, 401, JSON.stringify(rescoped.body));
      assert.equal(rescoped.headers.get('x-subject-token'), null);
      const validated = await call(`${b.authUrl}/auth/tokens`, 'GET', {
        token: await adminToken(),
        subject: token,
      });
      assert.equal(validated.status, 404, JSON.stringify(validated.body));
    });

    test('after a password change another replica exchanges no older token', async () => {
      await seedUser(s.db, { name: 'fred', password: 'fred-pw-1', project: 'demo' });
      const login = await call(`${s.main.authUrl}/auth/tokens`, 'POST', {
        body: passwordAuth('fred', 'fred-pw-1'),
      });
      const token = login.headers.get('x-subject-token') as string;
      const fred = login.body.token as { user: { id: string } };
      const changed = await call(`${s.main.authUrl}/users/${fred.user.id}/password`, 'POST', {
        body: { user: { original_password: 'fred-pw-1', password: 'fred-pw-2' } },
      });
      assert.equal(changed.status, 204, JSON.stringify(changed.body));
      const rescoped = await call(`${b.authUrl}/auth/tokens`, 'POST', {
        body: tokenAuth(token, 'demo'),
      });
      assert.equal(rescoped.status, 401, JSON.stringify(rescoped.body));
    });

    if (engine === 'postgres')
      test('a token issued while a role removal is uncommitted is revoked by its commit', async () => {
        const role = (
          await s.db.query<{ id: string }>("SELECT id FROM roles WHERE name = 'member'")
        )[0];
        let token = '';
        const id = await s.db.transaction(async (tx) => {
          await tx.query(
            "DELETE FROM role_assignments WHERE user_id = ? AND target_type = 'project' AND target_id = ? AND role_id = ?",
            [erin.userId, erin.projectId, role?.id as string],
          );
          const event = await s.main.revocations.record(tx, {
            userId: erin.userId,
            projectId: erin.projectId,
          });
          // Another request reads the assignment before the removal commits.
          const login = await call(`${b.authUrl}/auth/tokens`, 'POST', {
            body: passwordAuth('erin', 'erin-pw-1', 'demo'),
          });
          assert.equal(login.status, 201, 'the uncommitted removal is not yet seen');
          token = login.headers.get('x-subject-token') as string;
          return event;
        });
        await s.main.revocations.commit([id]);
        assert.equal((await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token })).status, 401);
        const onB = await call(`${b.authUrl}/auth/tokens`, 'POST', { body: tokenAuth(token) });
        assert.equal(onB.status, 401);
      });

    /** A token of an admin user on project `admin`, seeded once. */
    async function adminToken() {
      await seedUser(s.db, {
        name: 'root',
        password: 'root-pw-1',
        project: 'admin',
        roles: ['admin'],
      });
      const login = await call(`${s.main.authUrl}/auth/tokens`, 'POST', {
        body: passwordAuth('root', 'root-pw-1', 'admin'),
      });
      return login.headers.get('x-subject-token') as string;
    }
  });
}
