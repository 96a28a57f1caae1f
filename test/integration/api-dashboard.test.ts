/**
 * The dashboard's server side through buildApp() on SQLite, listening on loopback: the
 * page and its files under a strict CSP (the import map's hash, nothing else inline), the
 * login's validation, the agents overview and its policy, the live feed (server-sent
 * events: agents for admins only, a change digest that moves when a resource changes), and
 * POST /v2.0/agents/{id}/loadbalancer-pools, the pool move the rehosting page uses.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { describe, test } from 'node:test';
import { agentState, reportAgents } from '../helpers/l3-seed.ts';
import { lbaasApp } from '../helpers/lbaas-api.ts';

const NOW = new Date('2026-11-22T10:00:00.000Z');

type Frame = { event: string; data: Record<string, unknown> };

/**
 * Reads the feed until `want` returns true for the frames so far (or 10 s pass), on a
 * connection of its own (node:http, no pool) that is destroyed when done.
 */
function readFeed(url: string, token: string, want: (f: Frame[]) => boolean) {
  return new Promise<Frame[]>((resolve, reject) => {
    const frames: Frame[] = [];
    const req = httpGet(url, { headers: { 'x-auth-token': token }, agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
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
        if (want(frames)) done();
      });
    });
    const timer = setTimeout(() => done(), 10_000);
    const done = () => {
      clearTimeout(timer);
      req.destroy();
      resolve(frames);
    };
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
  });
}

describe('the dashboard server side', () => {
  const h = lbaasApp('sqlite', { listen: true });
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
    await reportAgents(h.api, NOW, [agentState('lb-one', 'lbaas'), agentState('lb-two', 'lbaas')]);
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
    const { pool } = await h.pool(h.tokens.A);
    const id = String(pool.id);
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
    const r = await h.call(...move(h.tokens.admin, to.id, { pool_id: id }));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const hosting = await h.call(h.tokens.admin, 'GET', `/v2.0/lb/pools/${id}/loadbalancer-agent`);
    assert.equal((hosting.body.agent as { id: string }).id, to.id);
  });

  test('the feed: agents to admins, a digest that moves when a resource changes', async () => {
    const url = `${base()}/dashboard/api/events`;
    const first = await readFeed(url, h.tokens.admin, (f) => f.length >= 2);
    assert.deepEqual(first.map((f) => f.event).sort(), ['agents', 'changed']);
    const digest = first.find((f) => f.event === 'changed')?.data.digest;
    const member = await readFeed(url, h.tokens.A, (f) => f.length >= 1);
    assert.deepEqual(
      member.map((f) => f.event),
      ['changed'],
    );
    const watched = readFeed(
      url,
      h.tokens.admin,
      (f) => f.filter((x) => x.event === 'changed').length >= 2,
    );
    await new Promise((r) => setTimeout(r, 300));
    await h.netWithSubnet(h.tokens.A);
    const digests = (await watched).filter((f) => f.event === 'changed').map((f) => f.data.digest);
    assert.equal(digests[0], digest);
    assert.equal(digests.length, 2, 'a second digest after the change');
    assert.notEqual(digests[1], digest);
    assert.equal((await get('/dashboard/api/events')).status, 401);
  });
});
