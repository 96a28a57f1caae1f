/**
 * The kumo CLI's LBaaS v1 commands in-process with a fake fetch (the routes behind them are
 * tested against a real API in test/integration/lbaas-cli.test.ts): the request each command
 * builds (neutron's option names, POOL and SUBNET by name, members and monitors by id), the
 * neutron CLI's list columns and show tables, and arguments refused before any request.
 *
 * Invariant: no test depends on the host's /etc/kumo/kumo.conf or on the caller's env.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CliIo } from '../../cli/format.ts';
import { main } from '../../cli/main.ts';

const AUTH = ['--os-url', 'http://kumo.test:9696', '--os-token', 't0k'];
const API = 'http://kumo.test:9696';
const POOL_ID = '11111111-0000-4000-8000-000000000001';
const SUBNET_ID = '22222222-0000-4000-8000-000000000002';
const MEMBER_ID = '33333333-0000-4000-8000-000000000003';
const HM_ID = '44444444-0000-4000-8000-000000000004';
const VIP_ID = '55555555-0000-4000-8000-000000000005';

type Call = { method: string; url: string; body: unknown };
type Reply = { status: number; body?: unknown };

async function run(argv: string[], reply: (c: Call) => Reply = () => ({ status: 204 })) {
  const calls: Call[] = [];
  const fetchFn: typeof fetch = async (input, init) => {
    const text = typeof init?.body === 'string' ? init.body : undefined;
    const c = { method: init?.method ?? 'GET', url: String(input), body: text && JSON.parse(text) };
    calls.push(c);
    const r = reply(c);
    return new Response(r.status === 204 ? null : JSON.stringify(r.body ?? null), {
      status: r.status,
    });
  };
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: { KUMO_CONFIG: '/nonexistent/kumo.conf' },
    fetch: fetchFn,
  };
  const code = await main([...argv, ...AUTH], io);
  return { code, out, err, calls };
}

/** Answers ?name= lookups of pools and subnets, and `answer` for everything else. */
function byName(answer: (c: Call) => Reply) {
  return (c: Call): Reply => {
    if (c.url.includes('/v2.0/lb/pools?name=web'))
      return { status: 200, body: { pools: [{ id: POOL_ID }] } };
    if (c.url.includes('/v2.0/subnets?name=private'))
      return { status: 200, body: { subnets: [{ id: SUBNET_ID }] } };
    return answer(c);
  };
}

const pool = {
  id: POOL_ID,
  tenant_id: 'p1',
  name: 'web',
  description: '',
  subnet_id: SUBNET_ID,
  protocol: 'HTTP',
  lb_method: 'ROUND_ROBIN',
  provider: 'haproxy',
  vip_id: null,
  members: [MEMBER_ID],
  health_monitors: [HM_ID],
  health_monitors_status: [{ monitor_id: HM_ID, status: 'ACTIVE', status_description: null }],
  admin_state_up: true,
  status: 'PENDING_CREATE',
  status_description: null,
};

/** The field names of a Field/Value table, in order. */
const fieldsOf = (out: string) => [...out.matchAll(/^\| ([a-z_]+) +\|/gm)].map((m) => m[1]);

describe('kumo lb-pool and lb-vip commands', () => {
  test('lb-pool-create resolves the subnet name and posts neutron’s body', async () => {
    const argv = ['lb-pool-create', '--name', 'web', '--lb-method', 'ROUND_ROBIN'];
    const r = await run(
      [...argv, '--protocol', 'HTTP', '--subnet-id', 'private'],
      byName(() => ({ status: 201, body: { pool } })),
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]?.url, `${API}/v2.0/subnets?name=private&fields=id`);
    assert.deepEqual(r.calls[1], {
      method: 'POST',
      url: `${API}/v2.0/lb/pools`,
      body: {
        pool: {
          name: 'web',
          lb_method: 'ROUND_ROBIN',
          protocol: 'HTTP',
          admin_state_up: true,
          subnet_id: SUBNET_ID,
        },
      },
    });
    assert.match(r.out, /^Created a new pool:\n/);
    assert.deepEqual(fieldsOf(r.out), [...Object.keys(pool).sort()]);
    assert.match(
      r.out,
      new RegExp(
        `\\| health_monitors_status +\\| \\{"monitor_id": "${HM_ID}", "status": "ACTIVE", "status_description": null\\}`,
      ),
    );
    assert.match(r.out, /\| status_description +\| +\|/);
  });

  test('lb-pool-list shows neutron’s columns, provider N/A when unset', async () => {
    const r = await run(['lb-pool-list'], () => ({
      status: 200,
      body: { pools: [pool, { ...pool, id: 'x', provider: null }] },
    }));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.calls[0]?.url, `${API}/v2.0/lb/pools`);
    assert.match(
      r.out,
      /\| id +\| name \| provider \| lb_method +\| protocol \| admin_state_up \| status +\|/,
    );
    assert.match(
      r.out,
      new RegExp(
        `\\| ${POOL_ID} \\| web +\\| haproxy +\\| ROUND_ROBIN \\| HTTP +\\| True +\\| PENDING_CREATE \\|`,
      ),
    );
    assert.match(r.out, /\| x +\| web +\| N\/A +\|/);
  });

  test('lb-vip-create: pool by name, persistence parsed, limit and port as numbers', async () => {
    const vip = {
      id: VIP_ID,
      name: 'v',
      address: '10.0.0.9',
      protocol: 'HTTP',
      admin_state_up: false,
      status: 'PENDING_CREATE',
    };
    const argv = [
      'lb-vip-create',
      'web',
      '--name',
      'v',
      '--protocol-port',
      '80',
      '--protocol',
      'HTTP',
    ];
    const more = ['--subnet-id', SUBNET_ID, '--connection-limit', '-1', '--address', '10.0.0.9'];
    const persistence = [
      '--session-persistence',
      'type=APP_COOKIE,cookie_name=JSESSIONID',
      '--admin-state-down',
    ];
    const r = await run(
      [...argv, ...more, ...persistence],
      byName(() => ({ status: 201, body: { vip } })),
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(
      r.calls.map((c) => c.url),
      [`${API}/v2.0/lb/pools?name=web&fields=id`, `${API}/v2.0/lb/vips`],
    );
    assert.deepEqual(r.calls[1]?.body, {
      vip: {
        name: 'v',
        address: '10.0.0.9',
        connection_limit: -1,
        protocol_port: 80,
        protocol: 'HTTP',
        session_persistence: { type: 'APP_COOKIE', cookie_name: 'JSESSIONID' },
        pool_id: POOL_ID,
        admin_state_up: false,
        subnet_id: SUBNET_ID,
      },
    });
    const list = await run(['lb-vip-list'], () => ({ status: 200, body: { vips: [vip] } }));
    assert.match(
      list.out,
      /\| id +\| name \| address +\| protocol \| admin_state_up \| status +\|/,
    );
    assert.match(
      list.out,
      new RegExp(`\\| ${VIP_ID} \\| v +\\| 10\\.0\\.0\\.9 \\| HTTP +\\| False +\\|`),
    );
  });

  test('updates send only the fields given; action=clear removes persistence', async () => {
    const r = await run(
      ['lb-pool-update', 'web', '--lb-method', 'SOURCE_IP', '--admin-state-up', 'false'],
      byName(() => ({ status: 200, body: { pool } })),
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[1], {
      method: 'PUT',
      url: `${API}/v2.0/lb/pools/${POOL_ID}`,
      body: { pool: { lb_method: 'SOURCE_IP', admin_state_up: false } },
    });
    assert.equal(r.out, 'Updated pool: web\n');
    const v = await run(['lb-vip-update', VIP_ID, '--session-persistence', 'action=clear'], () => ({
      status: 200,
      body: {},
    }));
    assert.deepEqual(
      v.calls.map((c) => [c.method, c.url, c.body]),
      [['PUT', `${API}/v2.0/lb/vips/${VIP_ID}`, { vip: { session_persistence: null } }]],
    );
    const move = await run(['lb-member-update', MEMBER_ID, '--pool-id', POOL_ID, '--weight', '0']);
    assert.deepEqual(move.calls[0], {
      method: 'PUT',
      url: `${API}/v2.0/lb/members/${MEMBER_ID}`,
      body: { member: { weight: 0, pool_id: POOL_ID } },
    });
    assert.equal(move.out, `Updated member: ${MEMBER_ID}\n`);
    const none = await run(['lb-pool-update', POOL_ID]);
    assert.equal(none.code, 2);
    assert.match(
      none.err,
      /^kumo: nothing to update: give one of --name, --description, --lb-method, --admin-state-up\n$/,
    );
    assert.equal(none.calls.length, 0);
  });

  test('lb-pool-delete and lb-pool-stats resolve the name; stats print sorted', async () => {
    const del = await run(
      ['lb-pool-delete', 'web'],
      byName(() => ({ status: 204 })),
    );
    assert.deepEqual(del.calls.map((c) => [c.method, c.url]).at(-1), [
      'DELETE',
      `${API}/v2.0/lb/pools/${POOL_ID}`,
    ]);
    assert.equal(del.out, 'Deleted pool(s): web\n');
    const stats = { total_connections: 12, bytes_in: 100, bytes_out: 2000, active_connections: 1 };
    const r = await run(
      ['lb-pool-stats', 'web'],
      byName(() => ({ status: 200, body: { stats } })),
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(r.calls.at(-1)?.url, `${API}/v2.0/lb/pools/${POOL_ID}/stats`);
    assert.deepEqual(fieldsOf(r.out), [
      'active_connections',
      'bytes_in',
      'bytes_out',
      'total_connections',
    ]);
    assert.match(r.out, /\| bytes_out +\| 2000 +\|/);
  });

  test('the LBaaS agent scheduler commands', async () => {
    const agent = {
      id: 'a1',
      host: 'net1',
      admin_state_up: true,
      alive: true,
      agent_type: 'Loadbalancer agent',
    };
    const h = await run(
      ['lb-agent-hosting-pool', 'web'],
      byName(() => ({ status: 200, body: { agent } })),
    );
    assert.equal(h.code, 0, h.err);
    assert.equal(h.calls.at(-1)?.url, `${API}/v2.0/lb/pools/${POOL_ID}/loadbalancer-agent`);
    assert.match(h.out, /\| id +\| host +\| admin_state_up \| alive \|\n/);
    assert.match(h.out, /\| a1 +\| net1 +\| True +\| :-\) +\|/);
    const none = await run(['lb-agent-hosting-pool', POOL_ID, '-f', 'json'], () => ({
      status: 200,
      body: null,
    }));
    assert.deepEqual([none.code, JSON.parse(none.out)], [0, []]);
    const on = await run(['lb-pool-list-on-agent', 'a1'], () => ({
      status: 200,
      body: { pools: [pool] },
    }));
    assert.equal(on.calls[0]?.url, `${API}/v2.0/agents/a1/loadbalancer-pools`);
    assert.match(
      on.out,
      /\| id +\| name \| lb_method +\| protocol \| admin_state_up \| status +\|/,
    );
  });

  test('a pool name matching several pools is refused before anything changes', async () => {
    const r = await run(['lb-pool-delete', 'web'], () => ({
      status: 200,
      body: { pools: [{ id: 'a' }, { id: 'b' }] },
    }));
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      "kumo: unable to delete pool(s): web (more than one pool is named 'web'; use the id)\n",
    );
    assert.deepEqual(
      r.calls.map((c) => c.method),
      ['GET'],
    );
  });

  test('a bulk delete deletes what it can, then names what it could not', async () => {
    const r = await run(['lb-member-delete', MEMBER_ID, HM_ID, VIP_ID], (c) =>
      c.url.endsWith(HM_ID)
        ? {
            status: 404,
            body: { NeutronError: { type: 'MemberNotFound', message: 'gone', detail: '' } },
          }
        : { status: 204 },
    );
    assert.equal(r.code, 1);
    assert.deepEqual(
      r.calls.map((c) => [c.method, c.url]),
      [MEMBER_ID, HM_ID, VIP_ID].map((id) => ['DELETE', `${API}/v2.0/lb/members/${id}`]),
    );
    assert.equal(r.out, `Deleted member(s): ${MEMBER_ID}, ${VIP_ID}\n`);
    assert.equal(r.err, `kumo: unable to delete member(s): ${HM_ID} (404 MemberNotFound: gone)\n`);
  });
});

describe('kumo lb-member and lb-healthmonitor commands', () => {
  test('lb-member-create posts numbers; members are shown by id without a lookup', async () => {
    const member = {
      id: MEMBER_ID,
      address: '10.0.0.4',
      protocol_port: 80,
      weight: 2,
      admin_state_up: true,
      status: 'ACTIVE',
      pool_id: POOL_ID,
    };
    const argv = [
      'lb-member-create',
      'web',
      '--address',
      '10.0.0.4',
      '--protocol-port',
      '80',
      '--weight',
      '2',
    ];
    const r = await run(
      argv,
      byName(() => ({ status: 201, body: { member } })),
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[1]?.body, {
      member: {
        weight: 2,
        address: '10.0.0.4',
        protocol_port: 80,
        pool_id: POOL_ID,
        admin_state_up: true,
      },
    });
    const list = await run(['lb-member-list'], () => ({
      status: 200,
      body: { members: [member] },
    }));
    assert.match(
      list.out,
      /\| id +\| address +\| protocol_port \| weight \| admin_state_up \| status \|/,
    );
    assert.match(
      list.out,
      new RegExp(`\\| ${MEMBER_ID} \\| 10\\.0\\.0\\.4 \\| 80 +\\| 2 +\\| True +\\| ACTIVE \\|`),
    );
    const show = await run(['lb-member-show', MEMBER_ID], () => ({
      status: 200,
      body: { member },
    }));
    assert.deepEqual(
      show.calls.map((c) => c.url),
      [`${API}/v2.0/lb/members/${MEMBER_ID}`],
    );
    assert.deepEqual(fieldsOf(show.out), [...Object.keys(member).sort()]);
  });

  test('lb-healthmonitor-create posts neutron’s body; show lists pools one per line', async () => {
    const hm = {
      id: HM_ID,
      type: 'HTTP',
      delay: 3,
      timeout: 3,
      max_retries: 3,
      http_method: 'GET',
      url_path: '/',
      expected_codes: '200',
      admin_state_up: true,
      pools: [
        { pool_id: POOL_ID, status: 'ACTIVE', status_description: null },
        { pool_id: 'p2', status: 'PENDING_CREATE', status_description: null },
      ],
    };
    const argv = [
      'lb-healthmonitor-create',
      '--delay',
      '3',
      '--type',
      'HTTP',
      '--max-retries',
      '3',
      '--timeout',
      '3',
    ];
    const r = await run(
      [...argv, '--url-path', '/health?x=1', '--expected-codes', '200-204'],
      () => ({ status: 201, body: { health_monitor: hm } }),
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]?.body, {
      health_monitor: {
        delay: 3,
        timeout: 3,
        max_retries: 3,
        url_path: '/health?x=1',
        expected_codes: '200-204',
        type: 'HTTP',
        admin_state_up: true,
      },
    });
    assert.match(
      r.out,
      new RegExp(
        `\\| pools +\\| \\{"pool_id": "${POOL_ID}", "status": "ACTIVE", "status_description": null\\} +\\|\\n\\| +\\| \\{"pool_id": "p2"`,
      ),
    );
    const list = await run(['lb-healthmonitor-list'], () => ({
      status: 200,
      body: { health_monitors: [hm] },
    }));
    assert.match(
      list.out,
      new RegExp(
        `\\| id +\\| type \\| admin_state_up \\|\\n[^]*\\| ${HM_ID} \\| HTTP \\| True +\\|`,
      ),
    );
  });

  test('associate and disassociate address the pool’s health_monitors', async () => {
    const a = await run(
      ['lb-healthmonitor-associate', HM_ID, 'web'],
      byName(() => ({ status: 201, body: { health_monitor: {} } })),
    );
    assert.equal(a.code, 0, a.err);
    assert.deepEqual(a.calls.at(-1), {
      method: 'POST',
      url: `${API}/v2.0/lb/pools/${POOL_ID}/health_monitors`,
      body: { health_monitor: { id: HM_ID } },
    });
    assert.equal(a.out, `Associated health monitor ${HM_ID}\n`);
    const d = await run(['lb-healthmonitor-disassociate', HM_ID, POOL_ID]);
    assert.deepEqual(
      d.calls.map((c) => [c.method, c.url]),
      [['DELETE', `${API}/v2.0/lb/pools/${POOL_ID}/health_monitors/${HM_ID}`]],
    );
    assert.equal(d.out, `Disassociated health monitor ${HM_ID}\n`);
  });

  test('bad arguments are refused with the option named and no request sent', async () => {
    const hm = [
      'lb-healthmonitor-create',
      '--delay',
      '3',
      '--type',
      'HTTP',
      '--max-retries',
      '3',
      '--timeout',
      '3',
    ];
    const cases: [string[], RegExp][] = [
      [
        [
          'lb-member-create',
          'web',
          '--address',
          '10.0.0.4',
          '--protocol-port',
          '80',
          '--weight',
          '257',
        ],
        /option '--weight <weight>' argument '257' is invalid\. must be an integer from 0 to 256/,
      ],
      [
        ['lb-member-create', 'web', '--address', '10.0.0.400', '--protocol-port', '80'],
        /'--address <ip>' argument '10\.0\.0\.400' is invalid\. must be an IPv4 or IPv6 address/,
      ],
      [
        ['lb-member-create', 'web', '--address', '10.0.0.4'],
        /required option '--protocol-port <port>' not specified/,
      ],
      [
        ['lb-member-update', MEMBER_ID, '--admin-state-up', 'maybe'],
        /'--admin-state-up <bool>' argument 'maybe' is invalid\. must be True or False/,
      ],
      [[...hm, '--url-path', '/a b'], /'--url-path <path>' argument '\/a b' is invalid/],
      [[...hm, '--url-path', '/a\nb'], /'--url-path <path>' argument '\/a b' is invalid/],
      [
        [...hm, '--expected-codes', '204-200'],
        /'--expected-codes <codes>' argument '204-200' is invalid\. must be like 200, 200,202 or 200-204/,
      ],
      [[...hm, '--expected-codes', '600'], /'--expected-codes <codes>'/],
      [
        ['lb-healthmonitor-update', HM_ID, '--max-retries', '11'],
        /must be an integer from 1 to 10/,
      ],
      [
        [
          'lb-healthmonitor-create',
          '--delay',
          '3',
          '--type',
          'UDP',
          '--max-retries',
          '3',
          '--timeout',
          '3',
        ],
        /'--type <type>' argument 'UDP' is invalid\. Allowed choices are PING, TCP, HTTP, HTTPS/,
      ],
      [
        [
          'lb-pool-create',
          '--name',
          'a\nb',
          '--lb-method',
          'ROUND_ROBIN',
          '--protocol',
          'HTTP',
          '--subnet-id',
          'private',
        ],
        /'--name <name>' argument 'a b' is invalid\. must be at most 255 characters without line breaks/,
      ],
      [
        [
          'lb-pool-create',
          '--name',
          'a',
          '--lb-method',
          'RANDOM',
          '--protocol',
          'HTTP',
          '--subnet-id',
          'private',
        ],
        /'--lb-method <method>' argument 'RANDOM' is invalid/,
      ],
      [
        ['lb-vip-update', VIP_ID, '--session-persistence', 'type=SOURCE_IP,cookie_name=x'],
        /cookie_name goes with type=APP_COOKIE, and only with it/,
      ],
      [
        ['lb-vip-update', VIP_ID, '--session-persistence', 'type=APP_COOKIE'],
        /cookie_name goes with type=APP_COOKIE/,
      ],
      [
        ['lb-vip-update', VIP_ID, '--session-persistence', 'type=APP_COOKIE,cookie_name=a;b'],
        /cookie_name must be 1-64 letters/,
      ],
      [
        ['lb-vip-update', VIP_ID, '--session-persistence', 'type=STICKY'],
        /type must be one of SOURCE_IP, HTTP_COOKIE, APP_COOKIE/,
      ],
      [
        ['lb-vip-update', VIP_ID, '--connection-limit', '-2'],
        /must be an integer from -1 to 1000000/,
      ],
      [
        [
          'lb-vip-create',
          'web',
          '--name',
          'v',
          '--protocol-port',
          '0',
          '--protocol',
          'HTTP',
          '--subnet-id',
          's',
          '--session-persistence',
          'action=clear',
        ],
        /'--protocol-port <port>' argument '0' is invalid|'--session-persistence <spec>'/,
      ],
    ];
    for (const [argv, expected] of cases) {
      const r = await run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
      assert.match(r.err, expected, argv.join(' '));
      assert.equal(r.err.split('\n').length, 2, 'one line');
      assert.equal(r.calls.length, 0, argv.join(' '));
    }
  });

  test('an API refusal is reported as one line with its status', async () => {
    const r = await run(['lb-healthmonitor-update', HM_ID, '--timeout', '9'], () => ({
      status: 400,
      body: {
        NeutronError: { type: 'DelayOrTimeoutInvalid', message: 'timeout > delay', detail: '' },
      },
    }));
    assert.equal(r.code, 1);
    assert.equal(r.err, 'kumo: 400 DelayOrTimeoutInvalid: timeout > delay\n');
    assert.equal(r.out, '');
  });
});
