/**
 * Keystone v3 authentication on kumo-api's identity listener, on both database engines,
 * with the service API beside it (identity-auth-harness.ts): version discovery, password
 * and token (rescope) issue in Keystone's exact token shape, the 401s and 400s, and what
 * a token then reaches on the service API.
 *
 * Invariant under test: a token is issued only to an enabled user with the right
 * password and a role on an enabled project, carries exactly those roles (implied ones
 * included), and every refusal is Keystone's answer with nothing changed.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { seedProject, seedUser } from '../helpers/identity.ts';
import {
  ADMIN,
  call,
  EXPIRATION_S,
  identityRows,
  identityStack,
  passwordAuth,
} from './identity-auth-harness.ts';

const UNAUTHORIZED = {
  error: {
    code: 401,
    message: 'The request you have made requires authentication.',
    title: 'Unauthorized',
  },
};
const MICROS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`identity: Keystone v3 token issue on ${engine}`, () => {
    const s = identityStack(engine);
    const ids: Record<string, string> = {};
    const url = (path: string) => `${s.main.authUrl.replace(/\/v3$/, '')}${path}`;
    const issue = (body: unknown, query = '') =>
      call(url(`/v3/auth/tokens${query}`), 'POST', { body });

    before(async () => {
      const alice = await seedUser(s.db, {
        name: 'alice',
        password: 'alice-pw',
        project: 'alpha',
        roles: ['admin'],
      });
      ids.alice = alice.userId;
      ids.alpha = alice.projectId;
      const bob = await seedUser(s.db, {
        name: 'bob',
        password: 'bob-pw',
        project: 'beta',
        defaultProject: true,
      });
      ids.bob = bob.userId;
      ids.beta = bob.projectId;
      await seedUser(s.db, {
        name: 'bob',
        password: 'bob-pw',
        project: 'gamma',
        roles: ['reader'],
      });
      ids.gamma = await seedProject(s.db, 'gamma');
      await seedUser(s.db, {
        name: 'carol',
        password: 'carol-pw',
        project: 'alpha',
        enabled: false,
      });
      await seedUser(s.db, { name: 'dave', password: 'dave-pw', project: 'delta', roles: [] });
      ids.off = await seedProject(s.db, 'off');
      await seedUser(s.db, { name: 'bob', password: 'bob-pw', project: 'off' });
      await s.db.query('UPDATE projects SET enabled = ? WHERE id = ?', [false, ids.off as string]);
    });

    test('GET / answers 300 and GET /v3 200 with Keystone v3.14, no token needed', async () => {
      const root = await call(url('/'), 'GET');
      assert.equal(root.status, 300);
      const version = {
        id: 'v3.14',
        status: 'stable',
        updated: '2020-04-07T00:00:00Z',
        links: [{ rel: 'self', href: `${url('/v3/')}` }],
        'media-types': [
          { base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' },
        ],
      };
      assert.deepEqual(root.body, { versions: { values: [version] } });
      assert.deepEqual((await call(url('/v3'), 'GET')).body, { version });
      assert.ok(root.headers.get('x-openstack-request-id')?.startsWith('req-'));
    });

    test('password by name, project by name: 201, X-Subject-Token and Keystone’s token body', async () => {
      const res = await issue(passwordAuth('alice', 'alice-pw', 'alpha'));
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.ok(res.headers.get('x-subject-token'));
      const t = res.body.token as Record<string, unknown>;
      assert.deepEqual(Object.keys(t).sort(), [
        'audit_ids',
        'catalog',
        'expires_at',
        'is_domain',
        'issued_at',
        'methods',
        'project',
        'roles',
        'user',
      ]);
      assert.deepEqual(t.methods, ['password']);
      assert.deepEqual(t.user, {
        domain: { id: 'default', name: 'Default' },
        id: ids.alice,
        name: 'alice',
        password_expires_at: null,
      });
      assert.deepEqual(t.project, {
        domain: { id: 'default', name: 'Default' },
        id: ids.alpha,
        name: 'alpha',
      });
      assert.equal(t.is_domain, false);
      assert.deepEqual(
        (t.roles as { name: string }[]).map((r) => r.name),
        ['admin', 'member', 'reader'],
      );
      for (const r of t.roles as { id: string }[]) assert.match(r.id, /^[0-9a-f]{32}$/);
      assert.match(t.issued_at as string, MICROS);
      assert.match(t.expires_at as string, MICROS);
      const lifetime = Date.parse(t.expires_at as string) - Date.parse(t.issued_at as string);
      assert.equal(lifetime, EXPIRATION_S * 1000);
      assert.equal((t.audit_ids as string[]).length, 1);
      const catalog = t.catalog as {
        type: string;
        name: string;
        endpoints: { interface: string; url: string }[];
      }[];
      assert.deepEqual(
        catalog.map((c) => `${c.type}:${c.name}`),
        [
          'identity:keystone',
          'network:neutron',
          'compute:nova',
          'image:glance',
          'volumev3:cinderv3',
        ],
      );
      const publicUrl = (type: string) =>
        catalog.find((c) => c.type === type)?.endpoints.find((e) => e.interface === 'public')?.url;
      assert.equal(publicUrl('identity'), s.main.authUrl);
      assert.equal(publicUrl('network'), `${s.main.apiUrl}/networking`);
      assert.equal(publicUrl('compute'), `${s.main.apiUrl}/compute/v2.1`);
      assert.equal(publicUrl('image'), `${s.main.apiUrl}/image`);
      assert.equal(publicUrl('volumev3'), `${s.main.apiUrl}/volume/v3/${ids.alpha}`);
      for (const c of catalog)
        assert.deepEqual(
          c.endpoints.map((e) => e.interface),
          ['public', 'internal', 'admin'],
        );
    });

    test('user and project by id; ?nocatalog leaves the catalog out', async () => {
      const body = {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { id: ids.bob, password: 'bob-pw' } },
          },
          scope: { project: { id: ids.gamma } },
        },
      };
      const res = await issue(body, '?nocatalog');
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const t = res.body.token as Record<string, unknown>;
      assert.equal(t.catalog, undefined);
      assert.deepEqual(
        (t.roles as { name: string }[]).map((r) => r.name),
        ['reader'],
      );
    });

    test('no scope: the default project when the user has one, else an unscoped token', async () => {
      const bob = (await issue(passwordAuth('bob', 'bob-pw'))).body.token as Record<
        string,
        unknown
      >;
      assert.equal((bob.project as { id: string }).id, ids.beta);
      const res = await issue(passwordAuth('alice', 'alice-pw'));
      assert.equal(res.status, 201);
      assert.deepEqual(Object.keys(res.body.token as object).sort(), [
        'audit_ids',
        'expires_at',
        'issued_at',
        'methods',
        'user',
      ]);
    });

    test('wrong password, unknown or disabled user, disabled or foreign project, other scopes: 401, nothing changed', async () => {
      const before = await identityRows(s.db);
      const refused = [
        passwordAuth('alice', 'wrong', 'alpha'),
        passwordAuth('nobody', 'alice-pw', 'alpha'),
        passwordAuth('carol', 'carol-pw', 'alpha'),
        passwordAuth('bob', 'bob-pw', 'off'),
        passwordAuth('bob', 'bob-pw', 'alpha'),
        passwordAuth('dave', 'dave-pw', 'delta'),
        passwordAuth('alice', 'alice-pw', 'no-such-project'),
        {
          auth: { ...passwordAuth('alice', 'alice-pw').auth, scope: { domain: { id: 'default' } } },
        },
        { auth: { ...passwordAuth('alice', 'alice-pw').auth, scope: { system: { all: true } } } },
        { auth: { identity: { methods: ['token'], token: { id: 'not-a-token' } } } },
      ];
      for (const body of refused) {
        const res = await issue(body);
        assert.equal(res.status, 401, JSON.stringify(body));
        assert.deepEqual(res.body, UNAUTHORIZED);
        assert.equal(res.headers.get('x-subject-token'), null);
      }
      assert.deepEqual(await identityRows(s.db), before);
    });

    test('bad bodies: 400 naming the field, nothing changed', async () => {
      const before = await identityRows(s.db);
      const user = { name: 'alice', password: 'alice-pw' };
      const cases: [unknown, string][] = [
        [{}, "'auth'"],
        [{ auth: {} }, "'auth.identity'"],
        [{ auth: { identity: { password: {} } } }, "'auth.identity.methods'"],
        [
          { auth: { identity: { methods: ['password'], password: { user } } } },
          "'auth.identity.password.user.domain'",
        ],
        [
          {
            auth: {
              identity: { methods: ['password'], password: { user: { id: 'x', password: 7 } } },
            },
          },
          "'auth.identity.password.user.password'",
        ],
        [{ auth: { identity: { methods: ['token'] } } }, "'auth.identity.token'"],
        [
          {
            auth: {
              ...passwordAuth('alice', 'alice-pw').auth,
              scope: { project: { name: 'alpha' } },
            },
          },
          "'auth.scope.project.domain'",
        ],
        [
          {
            auth: {
              ...passwordAuth('alice', 'alice-pw').auth,
              scope: { project: { id: 'a' }, domain: { id: 'b' } },
            },
          },
          "'auth.scope'",
        ],
      ];
      for (const [body, field] of cases) {
        const res = await issue(body);
        assert.equal(res.status, 400, JSON.stringify(body));
        const err = res.body.error as { code: number; message: string; title: string };
        assert.equal(err.code, 400);
        assert.equal(err.title, 'Bad Request');
        assert.ok(err.message.includes(`Invalid input for field ${field}`), err.message);
      }
      assert.deepEqual(await identityRows(s.db), before);
    });

    test('token method rescopes an unscoped token, keeping its expiry and audit chain', async () => {
      const first = await issue(passwordAuth('alice', 'alice-pw'));
      const parent = first.body.token as { audit_ids: string[]; expires_at: string };
      const res = await issue({
        auth: {
          identity: { methods: ['token'], token: { id: first.headers.get('x-subject-token') } },
          scope: { project: { name: 'alpha', domain: { name: 'Default' } } },
        },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const t = res.body.token as {
        methods: string[];
        audit_ids: string[];
        expires_at: string;
        project: { id: string };
      };
      assert.deepEqual(t.methods, ['token', 'password']);
      assert.equal(t.project.id, ids.alpha);
      assert.equal(t.expires_at, parent.expires_at);
      assert.equal(t.audit_ids.length, 2);
      assert.equal(t.audit_ids[1], parent.audit_ids[0]);
      assert.notEqual(t.audit_ids[0], parent.audit_ids[0]);
    });

    test('the token reaches the service API as its project and roles; a tampered one is 401', async () => {
      const token = (await issue(passwordAuth('bob', 'bob-pw', 'gamma'))).headers.get(
        'x-subject-token',
      ) as string;
      const list = await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token });
      assert.equal(list.status, 200);
      const before = await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token: ADMIN });
      const write = await call(`${s.main.apiUrl}/v2.0/networks`, 'POST', {
        token,
        body: { network: { name: 'n' } },
      });
      assert.equal(write.status, 403, 'bob is a reader on gamma');
      const tampered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
      assert.equal(
        (await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token: tampered })).status,
        401,
      );
      assert.deepEqual(
        (await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token: ADMIN })).body,
        before.body,
      );
    });

    test('an expired token is refused by both listeners', async () => {
      const token = (await issue(passwordAuth('bob', 'bob-pw', 'beta'))).headers.get(
        'x-subject-token',
      ) as string;
      s.clock.skewMs = (EXPIRATION_S + 1) * 1000;
      try {
        assert.equal((await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token })).status, 401);
        const v = await call(url('/v3/auth/tokens'), 'GET', { token: ADMIN, subject: token });
        assert.equal(v.status, 404);
      } finally {
        s.clock.skewMs = 0;
      }
      assert.equal((await call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token })).status, 200);
    });
  });
}
