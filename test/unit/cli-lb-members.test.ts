/**
 * The kumo CLI's LBaaS v1 member and health monitor commands in-process with a fake fetch
 * (test/helpers/lbaas-cli-fake.ts; the routes behind them are tested against a real API in
 * test/integration/lbaas-cli.test.ts): the request each command builds, the neutron CLI's
 * show tables, monitor associations, and arguments refused before any request.
 *
 * Invariant: no test depends on the host's /etc/kumo/kumo.conf or on the caller's env.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  API,
  byName,
  fieldsOf,
  HM_ID,
  MEMBER_ID,
  POOL_ID,
  run,
  VIP_ID,
} from '../helpers/lbaas-cli-fake.ts';

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
