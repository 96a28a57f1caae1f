/**
 * Unit tests for the kumo CLI: output formats, endpoint/token precedence, usage errors and
 * the agent commands, all in-process with a fake fetch (the one socket used is a closed
 * loopback port, to see ECONNREFUSED reported).
 *
 * Invariant: no test depends on the host's /etc/kumo/kumo.conf or on the caller's env.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ApiCallError, createClient, resolveEndpoint } from '../../cli/client.ts';
import {
  AGENT_FORMATTERS,
  AGENT_LIST_COLUMNS,
  agentListPath,
  agentUpdateBody,
} from '../../cli/commands/agents.ts';
import type { CliIo } from '../../cli/format.ts';
import { formatList, formatShow, selectColumns, UsageError } from '../../cli/format.ts';
import { main } from '../../cli/main.ts';

const TOKEN = 'test-token-123';
const dir = mkdtempSync(join(tmpdir(), 'kumo-cli-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * core/config.ts currently refuses a file without `[DEFAULT] host` (its '' default fails
 * the host-name check), so every test config names a host; the rest is what the test says.
 */
function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, `[DEFAULT]\nhost = testhost\n${text}`);
  return path;
}

/** A config path that does not exist, so the host's /etc/kumo/kumo.conf is never read. */
const NO_CONFIG = join(dir, 'absent.conf');

function agent(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: '5a3b4c6d-0000-4000-8000-000000000001',
    agent_type: 'DHCP agent',
    binary: 'kumo-dhcp-agent',
    topic: 'dhcp_agent',
    host: 'node-1',
    admin_state_up: true,
    alive: true,
    availability_zone: null,
    description: null,
    configurations: { networks: 2, leases: { v4: 3 } },
    resource_versions: {},
    resources_synced: null,
    created_at: '2024-01-01T00:00:00Z',
    started_at: '2024-01-01T00:00:00Z',
    heartbeat_timestamp: '2024-01-01T00:00:10Z',
    ...over,
  };
}

interface Call {
  method: string;
  url: string;
  headers: Headers;
  body: unknown;
}

type Reply = { status: number; body?: unknown; statusText?: string };

/** A fetch that records requests and answers each with `reply(call)`. */
function fakeFetch(reply: (call: Call) => Reply): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const fn: typeof fetch = async (input, init) => {
    const text = typeof init?.body === 'string' ? init.body : undefined;
    const call: Call = {
      method: init?.method ?? 'GET',
      url: String(input),
      headers: new Headers(init?.headers),
      body: text === undefined ? undefined : JSON.parse(text),
    };
    calls.push(call);
    const r = reply(call);
    const payload = typeof r.body === 'string' ? r.body : JSON.stringify(r.body ?? null);
    const status = r.status;
    return new Response(status === 204 ? null : payload, { status, statusText: r.statusText });
  };
  return { fetch: fn, calls };
}

interface Run {
  code: number;
  out: string;
  err: string;
}

async function run(
  argv: string[],
  env: Record<string, string> = {},
  fetchFn?: typeof fetch,
): Promise<Run> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: { KUMO_CONFIG: NO_CONFIG, ...env },
    fetch: fetchFn,
  };
  const code = await main(argv, io);
  return { code, out, err };
}

function assertOneLine(err: string, pattern: RegExp): void {
  assert.match(err, /^kumo: [^\n]+\n$/, `expected one stderr line, got ${JSON.stringify(err)}`);
  assert.match(err, pattern);
}

const AUTH = ['--os-url', 'http://kumo.test:9696', '--os-token', TOKEN];

describe('format', () => {
  const rows = [agent(), agent({ id: 'b', alive: false, admin_state_up: false, host: 'node-2' })];

  test('table shows alive as :-)/xxx and admin_state_up as True/False', () => {
    const out = formatList(rows, AGENT_LIST_COLUMNS, 'table', AGENT_FORMATTERS);
    assert.match(out, /:-\)/);
    assert.match(out, /xxx/);
    assert.match(out, /\| True /);
    assert.match(out, /\| False /);
    assert.match(out, /^\+-+\+/);
    assert.match(out, /\| id +\| agent_type +\| host +\| alive +\| admin_state_up +\| binary +\|/);
  });

  test('json round-trips with booleans kept', () => {
    const out = formatList(rows, ['id', 'alive', 'admin_state_up'], 'json', AGENT_FORMATTERS);
    assert.deepEqual(JSON.parse(out), [
      { id: rows[0]?.id, alive: true, admin_state_up: true },
      { id: 'b', alive: false, admin_state_up: false },
    ]);
  });

  test('value prints bare values, one row per line', () => {
    assert.equal(formatList(rows, ['id', 'host'], 'value'), `${rows[0]?.id} node-1\nb node-2\n`);
    assert.equal(formatList([], ['id'], 'value'), '');
  });

  test('show table has Field/Value rows and pretty configurations', () => {
    const out = formatShow(agent(), ['configurations', 'host'], 'table');
    assert.match(out, /\| Field +\| Value +\|/);
    assert.match(out, /\| host +\| node-1 +\|/);
    assert.match(out, /"leases": \{/);
    assert.deepEqual(JSON.parse(formatShow(agent(), ['host', 'alive'], 'json')), {
      host: 'node-1',
      alive: true,
    });
  });

  test('selectColumns keeps order, falls back to defaults, refuses unknown names', () => {
    assert.deepEqual(selectColumns(['a', 'b', 'c'], ['c', 'a', 'c'], ['a']), ['c', 'a']);
    assert.deepEqual(selectColumns(['a', 'b'], [], ['b']), ['b']);
    assert.throws(() => selectColumns(['a'], ['z'], ['a']), UsageError);
  });
});

describe('endpoint resolution', () => {
  const conf = writeConfig(
    'kumo.conf',
    '[api]\nbind_host = 10.0.0.5\nbind_port = 9797\nadmin_token = conf-token-1\n',
  );

  test('flags beat env, KUMO_* beats OS_*, env beats the config file', () => {
    const env = {
      KUMO_URL: 'http://kumo-env:1',
      KUMO_TOKEN: 'kumo-env-token',
      OS_URL: 'http://os-env:2',
      OS_TOKEN: 'os-env-token',
    };
    const flags = { osUrl: 'http://flag:3/', osToken: 'flag-token', configFile: conf };
    assert.deepEqual(resolveEndpoint(flags, env), { url: 'http://flag:3', token: 'flag-token' });
    assert.deepEqual(resolveEndpoint({ configFile: conf }, env), {
      url: 'http://kumo-env:1',
      token: 'kumo-env-token',
    });
    assert.deepEqual(
      resolveEndpoint({ configFile: conf }, { OS_URL: 'http://os:2', OS_TOKEN: 'o' }),
      {
        url: 'http://os:2',
        token: 'o',
      },
    );
  });

  test('the config file fills what flags and env leave unset', () => {
    assert.deepEqual(resolveEndpoint({ configFile: conf }, {}), {
      url: 'http://10.0.0.5:9797',
      token: 'conf-token-1',
    });
    assert.deepEqual(resolveEndpoint({}, { KUMO_CONFIG: conf, KUMO_TOKEN: 'env-token' }), {
      url: 'http://10.0.0.5:9797',
      token: 'env-token',
    });
  });

  test('no token anywhere exits 1 naming the config path', async () => {
    const bare = writeConfig('bare.conf', '[api]\nbind_port = 9696\n');
    const r = await run(['agent-list'], { KUMO_CONFIG: bare });
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      `kumo: no token: set --os-token, KUMO_TOKEN or [api] admin_token in ${bare}\n`,
    );
  });

  test('a config file with an unknown key is one line naming the key', async () => {
    const bad = writeConfig('bad.conf', '[api]\nadmin_token = conf-token-1\nadmin_tokn = x\n');
    const r = await run(['--config-file', bad, 'agent-list']);
    assert.equal(r.code, 1);
    assertOneLine(r.err, /admin_tokn: unknown key/);
    assert.ok(r.err.includes(bad));
  });
});

describe('usage errors exit 2 with one line', () => {
  const cases: [string[], RegExp][] = [
    [[], /missing command/],
    [['agent-lst'], /unknown command 'agent-lst'/],
    [['agent-list', '--bogus'], /unknown option '--bogus'/],
    [['agent-list', '-f', 'xml'], /Allowed choices are table, json, value/],
    [['agent-list', '-c', 'nope'], /unknown column 'nope'/],
    [['agent-show'], /missing required argument 'id'/],
    [['agent-update', 'x'], /nothing to update/],
    [['agent-update', 'x', '--admin-state-up', '--admin-state-down'], /cannot be used with/],
  ];
  for (const [argv, pattern] of cases) {
    test(`kumo ${argv.join(' ')}`, async () => {
      const { fetch: f, calls } = fakeFetch(() => ({ status: 200, body: {} }));
      const r = await run([...argv, ...AUTH], {}, f);
      assert.equal(r.code, 2);
      assertOneLine(r.err, pattern);
      assert.equal(r.out, '');
      assert.equal(calls.length, 0);
    });
  }

  test('--help prints to stdout and exits 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /agent-list/);
    assert.equal(r.err, '');
  });
});

describe('client', () => {
  test('a NeutronError body becomes "<status> <type>: <message>"', async () => {
    const { fetch: f, calls } = fakeFetch(() => ({
      status: 404,
      body: {
        NeutronError: { type: 'AgentNotFound', message: 'Agent x could not be found', detail: '' },
      },
    }));
    const client = createClient({ url: 'http://kumo.test/', token: TOKEN, fetch: f });
    await assert.rejects(client.get('/v2.0/agents/x'), (e: unknown) => {
      assert.ok(e instanceof ApiCallError);
      assert.equal(e.message, '404 AgentNotFound: Agent x could not be found');
      assert.equal(e.type, 'AgentNotFound');
      return true;
    });
    assert.equal(calls[0]?.url, 'http://kumo.test/v2.0/agents/x');
    assert.equal(calls[0]?.headers.get('x-auth-token'), TOKEN);
  });

  test('without a NeutronError body the status text is used', async () => {
    const { fetch: f } = fakeFetch(() => ({ status: 502, body: '<html>oops</html>' }));
    const client = createClient({ url: 'http://kumo.test', token: TOKEN, fetch: f });
    await assert.rejects(client.get('/v2.0/agents'), { message: '502 Bad Gateway' });
  });

  test('a closed port is "cannot reach kumo-api at URL: ECONNREFUSED"', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const url = `http://127.0.0.1:${address.port}`;
    const r = await run(['agent-list'], { KUMO_URL: url, KUMO_TOKEN: TOKEN });
    assert.equal(r.code, 1);
    assert.equal(r.err, `kumo: cannot reach kumo-api at ${url}: ECONNREFUSED\n`);
  });
});

describe('agent commands', () => {
  test('agent-list URL-encodes filters and renders the table', async () => {
    const agents = [agent(), agent({ id: 'dead', alive: false })];
    const { fetch: f, calls } = fakeFetch(() => ({ status: 200, body: { agents } }));
    const r = await run(
      ['agent-list', '--agent-type', 'DHCP agent', '--host', 'a&b', ...AUTH],
      {},
      f,
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(
      calls[0]?.url,
      'http://kumo.test:9696/v2.0/agents?agent_type=DHCP%20agent&host=a%26b',
    );
    assert.match(r.out, /:-\)/);
    assert.match(r.out, /xxx/);
    assert.equal(agentListPath({}), '/v2.0/agents');
  });

  test('agent-list -f json -c keeps the chosen columns and booleans', async () => {
    const { fetch: f } = fakeFetch(() => ({ status: 200, body: { agents: [agent()] } }));
    const r = await run(['agent-list', '-f', 'json', '-c', 'host', '-c', 'alive', ...AUTH], {}, f);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), [{ host: 'node-1', alive: true }]);
  });

  test('agent-show prints one row per field, sorted by name', async () => {
    const { fetch: f, calls } = fakeFetch(() => ({ status: 200, body: { agent: agent() } }));
    const r = await run(['agent-show', 'a/b', ...AUTH], {}, f);
    assert.equal(r.code, 0, r.err);
    assert.equal(calls[0]?.url, 'http://kumo.test:9696/v2.0/agents/a%2Fb');
    const fields = [...r.out.matchAll(/^\| ([a-z_]+) +\|/gm)].map((m) => m[1]);
    assert.deepEqual(fields, Object.keys(agent()).sort());
  });

  test('agent-update sends the PUT body and prints the id', async () => {
    const { fetch: f, calls } = fakeFetch(() => ({ status: 200, body: { agent: agent() } }));
    const r = await run(
      ['agent-update', 'x1', '--admin-state-down', '--description', 'drain', ...AUTH],
      {},
      f,
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'Updated agent: x1\n');
    assert.equal(calls[0]?.method, 'PUT');
    assert.deepEqual(calls[0]?.body, { agent: { admin_state_up: false, description: 'drain' } });
    assert.deepEqual(agentUpdateBody({ description: 'd' }), { agent: { description: 'd' } });
  });

  test('agent-delete tries every id and exits 1 if any failed', async () => {
    const { fetch: f, calls } = fakeFetch((c) =>
      c.url.endsWith('/missing')
        ? {
            status: 404,
            body: { NeutronError: { type: 'AgentNotFound', message: 'gone', detail: '' } },
          }
        : { status: 204 },
    );
    const r = await run(['agent-delete', 'a1', 'missing', 'a2', ...AUTH], {}, f);
    assert.equal(r.code, 1);
    assert.deepEqual(
      calls.map((c) => c.method),
      ['DELETE', 'DELETE', 'DELETE'],
    );
    assert.equal(r.out, 'Deleted agent(s): a1, a2\n');
    assertOneLine(r.err, /missing \(404 AgentNotFound: gone\)/);
  });

  test('an API error exits 1 with one line', async () => {
    const { fetch: f } = fakeFetch(() => ({
      status: 401,
      body: { NeutronError: { type: 'NotAuthenticated', message: 'bad\ntoken', detail: '' } },
    }));
    const r = await run(['agent-show', 'x', ...AUTH], {}, f);
    assert.equal(r.code, 1);
    assert.equal(r.err, 'kumo: 401 NotAuthenticated: bad token\n');
  });
});
