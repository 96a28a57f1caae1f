/**
 * The dashboard's server side through buildApp() on SQLite, listening on loopback: the
 * page and its files under a strict CSP (the import map's hash, nothing else inline), the
 * login's validation, the agents overview and its policy, the live feed (server-sent
 * events: agents for admins only, a change digest that moves when a resource changes), and
 * POST /v2.0/agents/{id}/loadbalancer-pools, the pool move the rehosting page uses, on
 * both engines; and the login's mapping of Keystone's answers.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { createServer, get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { NO_LBAAS_AGENT } from '../../api/db/lbaas-bindings.ts';
import { agentState, reportAgents } from '../helpers/l3-seed.ts';
import { lbaasApp } from '../helpers/lbaas-api.ts';
import { testApi } from '../helpers/test-api.ts';

const NOW = new Date('2026-11-22T10:00:00.000Z');

type Frame = { event: string; data: Record<string, unknown> };

/**
 * One feed stream on a connection of its own (node:http, no pool, destroyed by close()):
 * the frames so far, and `until(pred)`, which resolves once they satisfy `pred` (10 s).
 */
function openFeed(url: string, token: string) {
  const frames: Frame[] = [];
  const waiters: { pred: (f: Frame[]) => boolean; resolve: () => void }[] = [];
  let failure: Error | undefined;
  const settle = () => {
    for (const w of [...waiters]) {
      if (!w.pred(frames)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const req = httpGet(url, { headers: { 'x-auth-token': token }, agent: false }, (res) => {
    if (res.statusCode !== 200 || !/^text\/event-stream/.test(res.headers['content-type'] ?? ''))
      failure = new Error(`feed: ${res.statusCode} ${res.headers['content-type']}`);
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) frames.push({ event, data: JSON.parse(data) });
      }
      settle();
    });
  });
  req.on('error', (e) => {
    if (!req.destroyed) failure = e;
  });
  return {
    frames,
    until(pred: (f: Frame[]) => boolean, what: string) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(failure ?? new Error(`feed: no ${what} in 10 s`)),
          10_000,
        );
        waiters.push({
          pred,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        settle();
      });
    },
    close: () => req.destroy(),
  };
}

const digests = (f: Frame[]) => f.filter((x) => x.event === 'changed').map((x) => x.data.digest);

for (const engine of ['sqlite', 'postgres'] as const)
  describe(`the dashboard server side (${engine})`, () => {
    const h = lbaasApp(engine, { listen: true });
    const base = () => `http://127.0.0.1:${h.api.port}`;
    /** A GET whose body is read at once (an unread body would hold its connection open). */
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base()}${path}`, { headers });
      const body = await res.text();
      return {
        status: res.status,
        headers: res.headers,
        text: async () => body,
        json: async () => JSON.parse(body),
      };
    };

    test('the page, its files and the CSP', async () => {
      const res = await get('/dashboard');
      assert.equal(res.status, 200);
      const html = await res.text();
      const csp = res.headers.get('content-security-policy') ?? '';
      const inline = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)].filter(
        (m) => !/\bsrc=/.test(m[1] ?? ''),
      );
      assert.equal(inline.length, 1, 'one inline script: the import map');
      const hash = createHash('sha256')
        .update(inline[0]?.[2] ?? '')
        .digest('base64');
      assert.match(csp, new RegExp(`script-src 'self' 'sha256-${hash.replace(/[+/]/g, '\\$&')}'`));
      assert.match(csp, /default-src 'none'/);
      assert.doesNotMatch(csp, /unsafe|https?:/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      const map = JSON.parse(inline[0]?.[2] ?? '{}') as { imports: Record<string, string> };
      for (const path of [...Object.values(map.imports), '/dashboard/static/app.js']) {
        const r = await get(path);
        assert.equal(r.status, 200, path);
        assert.match(r.headers.get('content-type') ?? '', /^text\/javascript/);
        const etag = r.headers.get('etag') ?? '';
        assert.equal((await get(path, { 'if-none-match': etag })).status, 304);
      }
      for (const path of [
        '/dashboard/static/nothing.js',
        '/dashboard/static/..%2f..%2fpackage.json',
        '/dashboard/vendor/..%2fapp.js',
      ])
        assert.equal((await get(path)).status, 404, path);
    });

    test('login input is checked field by field before anything is asked', async () => {
      const login = (body: unknown) =>
        fetch(`${base()}/dashboard/api/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const good = { username: 'u', password: 'p', project: 'x' };
      for (const [body, field] of [
        [{ ...good, username: '' }, 'username'],
        [{ ...good, password: 'a\nb' }, 'password'],
        [{ ...good, project: 7 }, 'project'],
        [{ ...good, domain: 'x'.repeat(256) }, 'domain'],
      ] as const) {
        const r = await login(body);
        assert.equal(r.status, 400);
        assert.match(await r.text(), new RegExp(`field '${field}'`));
      }
      const extra = await login({ ...good, role: 'admin' });
      assert.equal(extra.status, 400);
      assert.match(await extra.text(), /role/);
      // This app has no identity service: a well-formed login is a 503 that says so.
      const r = await login(good);
      assert.equal(r.status, 503);
      assert.match(await r.text(), /No identity service/);
    });

    test('the overview: admins see agents with what they host; others see none', async () => {
      await reportAgents(h.api, NOW, [
        agentState('lb-one', 'lbaas'),
        agentState('lb-two', 'lbaas'),
      ]);
      const { pool } = await h.pool(h.tokens.A);
      const auth = (token: string) => ({ 'x-auth-token': token });
      const admin = (await (await get('/dashboard/api/agents', auth(h.tokens.admin))).json()) as {
        agents: { host: string; alive: boolean; hosting: { pools: { id: string }[] } }[];
      };
      assert.deepEqual(
        admin.agents.map((a) => [a.host, a.alive]),
        [
          ['lb-one', true],
          ['lb-two', true],
        ],
      );
      assert.deepEqual(
        admin.agents.flatMap((a) => a.hosting.pools.map((p) => p.id)),
        [pool.id],
      );
      const member = await (await get('/dashboard/api/agents', auth(h.tokens.A))).json();
      assert.deepEqual((member as { agents: unknown[] }).agents, []);
      assert.equal((await get('/dashboard/api/agents')).status, 401);
    });

    test('moving a pool between LBaaS agents', async () => {
      const { pool, sub } = await h.pool(h.tokens.A);
      const id = String(pool.id);
      const vip = await h.lb(h.tokens.A, 'vips', {
        subnet_id: sub.id,
        protocol: 'HTTP',
        protocol_port: 80,
        pool_id: id,
      });
      const agents = (await h.rows(
        `SELECT a.id, a.host, b.pool_id FROM agents a
        LEFT JOIN pool_loadbalancer_agent_bindings b ON b.agent_id = a.id AND b.pool_id = ?
        WHERE a.agent_type = 'Loadbalancer agent' ORDER BY a.host`,
        [id],
      )) as { id: string; host: string; pool_id: string | null }[];
      const from = agents.find((a) => a.pool_id === id);
      const to = agents.find((a) => a.pool_id !== id);
      assert.ok(from && to, JSON.stringify(agents));
      const move = (token: string, agent: string, body: unknown) =>
        [token, 'POST', `/v2.0/agents/${agent}/loadbalancer-pools`, body] as const;
      await h.refused(403, 'PolicyNotAuthorized', ...move(h.tokens.A, to.id, { pool_id: id }));
      await h.refused(400, 'BadRequest', ...move(h.tokens.admin, to.id, { pool: id }));
      await h.refused(404, 'PoolNotFound', ...move(h.tokens.admin, to.id, { pool_id: 'nope' }));
      await h.refused(404, 'AgentNotFound', ...move(h.tokens.admin, randomUUID(), { pool_id: id }));
      await h.call(h.tokens.admin, 'PUT', `/v2.0/agents/${to.id}`, {
        agent: { admin_state_up: false },
      });
      await h.refused(404, 'InvalidLbaasAgent', ...move(h.tokens.admin, to.id, { pool_id: id }));
      await h.call(h.tokens.admin, 'PUT', `/v2.0/agents/${to.id}`, {
        agent: { admin_state_up: true },
      });
      // Unhosted and marked so (as when no agent could take it), then placed by an admin.
      await h.api.db.query('DELETE FROM pool_loadbalancer_agent_bindings WHERE pool_id = ?', [id]);
      await h.api.db.query('UPDATE lb_pools SET status_description = ? WHERE id = ?', [
        NO_LBAAS_AGENT,
        id,
      ]);
      const r = await h.call(...move(h.tokens.admin, to.id, { pool_id: id }));
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const hosting = await h.call(
        h.tokens.admin,
        'GET',
        `/v2.0/lb/pools/${id}/loadbalancer-agent`,
      );
      assert.equal((hosting.body.agent as { id: string }).id, to.id);
      const [row] = await h.rows('SELECT status_description FROM lb_pools WHERE id = ?', [id]);
      assert.equal(row?.status_description, null);
      const port = await h.call(h.tokens.admin, 'GET', `/v2.0/ports/${vip.port_id}`);
      assert.equal((port.body.port as Record<string, unknown>)['binding:host_id'], to.host);
      // Back to the first agent: the VIP port follows.
      assert.equal((await h.call(...move(h.tokens.admin, from.id, { pool_id: id }))).status, 201);
      const back = await h.call(h.tokens.admin, 'GET', `/v2.0/ports/${vip.port_id}`);
      assert.equal((back.body.port as Record<string, unknown>)['binding:host_id'], from.host);
    });

    test('the feed: agents to admins only, a digest that moves when a resource changes', async () => {
      const url = `${base()}/dashboard/api/events`;
      const admin = openFeed(url, h.tokens.admin);
      const member = openFeed(url, h.tokens.A);
      try {
        await admin.until(
          (f) => f.some((x) => x.event === 'agents') && digests(f).length === 1,
          'first state',
        );
        await member.until((f) => digests(f).length === 1, 'first digest');
        assert.equal(digests(member.frames)[0], digests(admin.frames)[0]);
        await h.netWithSubnet(h.tokens.B);
        await admin.until((f) => digests(f).length === 2, 'second digest');
        await member.until((f) => digests(f).length === 2, 'second digest');
        assert.notEqual(digests(admin.frames)[1], digests(admin.frames)[0]);
        assert.deepEqual(
          member.frames.map((f) => f.event),
          ['changed', 'changed'],
          'a member gets no agents',
        );
        const agents = admin.frames.find((f) => f.event === 'agents')?.data.agents as unknown[];
        assert.equal(agents.length, 2);
      } finally {
        admin.close();
        member.close();
      }
      assert.equal((await get('/dashboard/api/events')).status, 401);
    });
  });

/**
 * The login proxy against a stand-in for Keystone's POST /v3/auth/tokens (our own logic:
 * the answers mapped; the real kumo-api identity listener is logged into by the browser
 * test): a token becomes a session, refusals stay refusals, a redirect is not followed
 * with the password, a reply without a token is a 503.
 */
const keystoneHits: string[] = [];
const keystone = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => {
    body += c;
  });
  req.on('end', () => {
    keystoneHits.push(req.url ?? '');
    const user = (
      JSON.parse(body || '{}') as {
        auth?: { identity?: { password?: { user?: { name?: string } } } };
      }
    ).auth?.identity?.password?.user?.name;
    if (req.url?.startsWith('/elsewhere')) return res.writeHead(201).end('{}');
    if (user === 'redirect') return res.writeHead(307, { location: '/elsewhere' }).end();
    if (user === 'forbidden') return res.writeHead(403).end('{}');
    if (user === 'tokenless') return res.writeHead(201).end('{}');
    if (user !== 'good') return res.writeHead(401).end('{}');
    res.writeHead(201, { 'x-subject-token': 'tok-1', 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token: {
          expires_at: '2030-01-01T00:00:00.000000Z',
          user: { name: 'good' },
          project: { id: 'p1', name: 'demo' },
          roles: [{ name: 'member' }, { name: 'reader' }],
        },
      }),
    );
  });
});
await new Promise<void>((r) => keystone.listen(0, '127.0.0.1', r));
const keystoneUrl = `http://127.0.0.1:${(keystone.address() as AddressInfo).port}`;

describe('the dashboard login against Keystone', () => {
  const api = testApi('sqlite', {
    settings: { adminToken: 'login-test-admin', authUri: keystoneUrl },
    listen: true,
  });
  after(() => keystone.close());
  const login = async (username: string) => {
    const res = await fetch(`http://127.0.0.1:${api.port}/dashboard/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: 'secret pw', project: 'demo' }),
    });
    return { status: res.status, cache: res.headers.get('cache-control'), body: await res.text() };
  };

  test('a token becomes a session; refusals stay refusals; no redirect is followed', async () => {
    const ok = await login('good');
    assert.equal(ok.status, 201);
    assert.equal(ok.cache, 'no-store');
    assert.deepEqual(JSON.parse(ok.body), {
      token: 'tok-1',
      expires_at: '2030-01-01T00:00:00.000000Z',
      user: 'good',
      project: { id: 'p1', name: 'demo' },
      roles: ['member', 'reader'],
    });
    assert.equal(keystoneHits.at(-1), '/v3/auth/tokens?nocatalog');
    assert.equal((await login('wrong')).status, 401);
    assert.equal((await login('forbidden')).status, 401);
    const hits = keystoneHits.length;
    assert.equal((await login('redirect')).status, 503);
    assert.equal(keystoneHits.length, hits + 1, 'the redirect was not followed');
    assert.equal((await login('tokenless')).status, 503);
    for (const r of [await login('wrong'), await login('redirect')])
      assert.doesNotMatch(r.body, /secret pw/);
  });
});
