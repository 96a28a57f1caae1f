/**
 * Token validation and revocation (`GET`/`HEAD`/`DELETE /v3/auth/tokens`), what a token
 * may see (`/v3/auth/catalog`, `/projects`, `/domains`), the read-only catalog routes, and
 * Debian's `openstack` CLI (6.0) logging in with a password and going through the
 * catalog — on both database engines.
 *
 * Invariant under test: a revoked token is refused at once by the identity listener and
 * the service API; a caller validates or revokes only its own tokens unless admin; the
 * catalog cannot be changed through the API; every refusal changes nothing.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { runCommand } from '../helpers/cluster.ts';
import { seedUser } from '../helpers/identity.ts';
import { ADMIN, call, identityRows, identityStack, passwordAuth } from './identity-auth-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`identity: token validation, revocation, catalog and the openstack CLI on ${engine}`, () => {
    const s = identityStack(engine);
    const url = (path: string) => `${s.main.authUrl}${path}`;
    const login = async (user: string, project?: string) => {
      const res = await call(url('/auth/tokens'), 'POST', {
        body: passwordAuth(user, `${user}-pw`, project),
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.headers.get('x-subject-token') as string;
    };
    const networks = (token: string) => call(`${s.main.apiUrl}/v2.0/networks`, 'GET', { token });

    before(async () => {
      await seedUser(s.db, {
        name: 'admin',
        password: 'admin-pw',
        project: 'admin',
        roles: ['admin'],
      });
      await seedUser(s.db, { name: 'eve', password: 'eve-pw', project: 'demo' });
      await seedUser(s.db, {
        name: 'eve',
        password: 'eve-pw',
        project: 'other',
        roles: ['reader'],
      });
      await seedUser(s.db, { name: 'mallory', password: 'mallory-pw', project: 'demo' });
    });

    test('GET validates its own token (same body, X-Subject-Token echoed); HEAD 200', async () => {
      const token = await login('eve', 'demo');
      const res = await call(url('/auth/tokens'), 'GET', { token, subject: token });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-subject-token'), token);
      const t = res.body.token as {
        user: { name: string };
        project: { name: string };
        catalog: unknown[];
      };
      assert.equal(t.user.name, 'eve');
      assert.equal(t.project.name, 'demo');
      assert.equal(t.catalog.length, 5);
      const bare = await call(url('/auth/tokens?nocatalog'), 'GET', { token, subject: token });
      assert.equal((bare.body.token as { catalog?: unknown }).catalog, undefined);
      assert.equal(
        (await call(url('/auth/tokens'), 'HEAD', { token, subject: token })).status,
        200,
      );
    });

    test('an admin validates any token; another member is 403; a bad token 404; no X-Auth-Token 401', async () => {
      const eve = await login('eve', 'demo');
      const admin = await login('admin', 'admin');
      assert.equal(
        (await call(url('/auth/tokens'), 'GET', { token: admin, subject: eve })).status,
        200,
      );
      assert.equal(
        (await call(url('/auth/tokens'), 'GET', { token: ADMIN, subject: eve })).status,
        200,
      );
      const other = await call(url('/auth/tokens'), 'GET', {
        token: await login('mallory', 'demo'),
        subject: eve,
      });
      assert.equal(other.status, 403);
      assert.deepEqual(other.body, {
        error: {
          code: 403,
          message:
            'You are not authorized to perform the requested action: identity:validate_token.',
          title: 'Forbidden',
        },
      });
      const bad = await call(url('/auth/tokens'), 'GET', { token: admin, subject: 'garbage' });
      assert.deepEqual(bad.body, {
        error: { code: 404, message: 'Could not find token: garbage.', title: 'Not Found' },
      });
      assert.equal(
        (await call(url('/auth/tokens'), 'HEAD', { token: admin, subject: 'garbage' })).status,
        404,
      );
      assert.equal((await call(url('/auth/tokens'), 'GET', { subject: eve })).status, 401);
    });

    test('DELETE revokes at once on both listeners, and the tokens rescoped from it; others stay', async () => {
      const eve = await login('eve');
      const scoped = (
        await call(url('/auth/tokens'), 'POST', {
          body: {
            auth: {
              identity: { methods: ['token'], token: { id: eve } },
              scope: { project: { name: 'demo', domain: { id: 'default' } } },
            },
          },
        })
      ).headers.get('x-subject-token') as string;
      const keep = await login('eve', 'demo');
      assert.equal((await networks(scoped)).status, 200);
      const mallory = await login('mallory', 'demo');
      const before = await identityRows(s.db);
      assert.equal(
        (await call(url('/auth/tokens'), 'DELETE', { token: mallory, subject: keep })).status,
        403,
      );
      assert.deepEqual(await identityRows(s.db), before, 'a refused revocation records nothing');
      const admin = await login('admin', 'admin');
      assert.equal(
        (await call(url('/auth/tokens'), 'DELETE', { token: admin, subject: eve })).status,
        204,
      );
      assert.equal((await networks(scoped)).status, 401);
      assert.equal(
        (await call(url('/auth/tokens'), 'GET', { token: admin, subject: eve })).status,
        404,
      );
      assert.equal(
        (await call(url('/auth/tokens'), 'GET', { token: admin, subject: scoped })).status,
        404,
      );
      assert.equal((await networks(keep)).status, 200);
      assert.equal(
        (await call(url('/auth/tokens'), 'DELETE', { token: keep, subject: keep })).status,
        204,
      );
      assert.equal((await networks(keep)).status, 401);
    });

    test('/v3/auth/catalog, /projects, /domains', async () => {
      const eve = await login('eve', 'demo');
      const cat = await call(url('/auth/catalog'), 'GET', { token: eve });
      assert.equal(cat.status, 200);
      assert.deepEqual(
        (cat.body.catalog as { type: string }[]).map((c) => c.type),
        ['identity', 'network', 'compute', 'image', 'volumev3'],
      );
      assert.equal(
        (await call(url('/auth/catalog'), 'GET', { token: await login('eve') })).status,
        403,
      );
      const projects = await call(url('/auth/projects'), 'GET', { token: eve });
      const rows = projects.body.projects as Record<string, unknown>[];
      assert.deepEqual(
        rows.map((p) => p.name),
        ['demo', 'other'],
      );
      assert.deepEqual(Object.keys(rows[0] as object).sort(), [
        'description',
        'domain_id',
        'enabled',
        'id',
        'is_domain',
        'links',
        'name',
        'parent_id',
        'tags',
      ]);
      const domains = await call(url('/auth/domains'), 'GET', { token: eve });
      assert.deepEqual(domains.body.domains, []);
    });

    test('services, endpoints, regions: admin reads them, a member is 403, writes are 501 and change nothing', async () => {
      const admin = await login('admin', 'admin');
      const services = (await call(url('/services'), 'GET', { token: admin })).body.services as {
        id: string;
        type: string;
      }[];
      assert.equal(services.length, 5);
      const endpoints = await call(url('/endpoints'), 'GET', { token: admin });
      assert.equal((endpoints.body.endpoints as unknown[]).length, 15);
      const network = services.find((x) => x.type === 'network') as { id: string };
      const filtered = await call(
        url(`/endpoints?service_id=${network.id}&interface=public`),
        'GET',
        { token: admin },
      );
      assert.deepEqual(
        (filtered.body.endpoints as { url: string }[]).map((e) => e.url),
        [`${s.main.apiUrl}/networking`],
      );
      assert.equal(
        (await call(url(`/services/${network.id}`), 'GET', { token: admin })).status,
        200,
      );
      assert.equal((await call(url('/services/nope'), 'GET', { token: admin })).status, 404);
      assert.equal(
        ((await call(url('/regions'), 'GET', { token: admin })).body.regions as { id: string }[])[0]
          ?.id,
        'RegionOne',
      );
      assert.equal(
        (await call(url('/endpoints'), 'GET', { token: await login('eve', 'demo') })).status,
        403,
      );
      const create = await call(url('/endpoints'), 'POST', {
        token: admin,
        body: { endpoint: { service_id: network.id, interface: 'public', url: 'http://x' } },
      });
      assert.equal(create.status, 501);
      assert.match((create.body.error as { message: string }).message, /derived from kumo\.conf/);
      assert.deepEqual(
        (await call(url('/endpoints'), 'GET', { token: admin })).body,
        endpoints.body,
      );
    });

    test('openstack CLI: password login, token issue, catalog/endpoint/service list, network list via the catalog', async () => {
      const os = async (args: string[]) => {
        const r = await runCommand(
          [
            'openstack',
            '--os-auth-url',
            s.main.authUrl,
            '--os-username',
            'admin',
            '--os-password',
            'admin-pw',
            '--os-project-name',
            'admin',
            '--os-user-domain-name',
            'Default',
            '--os-project-domain-name',
            'Default',
            '--os-identity-api-version',
            '3',
            ...args,
            '-f',
            'json',
          ],
          { OS_CLOUD: '', OS_AUTH_TYPE: 'password' },
        );
        assert.equal(r.code, 0, `openstack ${args.join(' ')}: ${r.stderr.slice(-1500)}`);
        return JSON.parse(r.stdout) as Record<string, unknown> & Record<string, unknown>[];
      };
      const token = await os(['token', 'issue']);
      assert.ok(
        typeof token.id === 'string' && typeof token.project_id === 'string' && token.expires,
      );
      assert.equal((await networks(token.id as string)).status, 200);
      const catalog = await os(['catalog', 'list']);
      assert.deepEqual(catalog.map((c) => c.Type).sort(), [
        'compute',
        'identity',
        'image',
        'network',
        'volumev3',
      ]);
      const endpoints = await os(['endpoint', 'list']);
      assert.equal(endpoints.length, 15);
      assert.ok(
        endpoints.some(
          (e) => e.URL === `${s.main.apiUrl}/compute/v2.1` && e['Service Name'] === 'nova',
        ),
      );
      assert.equal((await os(['service', 'list'])).length, 5);
      await call(`${s.main.apiUrl}/v2.0/networks`, 'POST', {
        token: ADMIN,
        body: { network: { name: 'cli-net' } },
      });
      const nets = await os(['network', 'list']);
      assert.ok(
        nets.some((n) => n.Name === 'cli-net'),
        JSON.stringify(nets),
      );
    });

    test('openstack CLI with only the environment /etc/kumo/openrc sets: server, flavor, image, agent lists', async () => {
      const env = {
        OS_CLOUD: '',
        OS_AUTH_URL: s.main.authUrl,
        OS_USERNAME: 'admin',
        OS_PASSWORD: 'admin-pw',
        OS_PROJECT_NAME: 'admin',
        OS_USER_DOMAIN_ID: 'default',
        OS_PROJECT_DOMAIN_ID: 'default',
        OS_IDENTITY_API_VERSION: '3',
        OS_REGION_NAME: 'RegionOne',
        OS_INTERFACE: 'public',
      };
      for (const args of [
        ['server', 'list'],
        ['flavor', 'list'],
        ['image', 'list'],
        ['network', 'agent', 'list'],
      ]) {
        const r = await runCommand(['openstack', ...args, '-f', 'json'], env);
        assert.equal(r.code, 0, `openstack ${args.join(' ')}: ${r.stderr.slice(-1500)}`);
        assert.ok(Array.isArray(JSON.parse(r.stdout)), args.join(' '));
      }
    });
  });
}
