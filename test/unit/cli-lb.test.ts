/**
 * The kumo CLI's LBaaS v1 pool, VIP and agent-scheduler commands in-process with a fake
 * fetch (test/helpers/lbaas-cli-fake.ts; the routes behind them are tested against a real
 * API in test/integration/lbaas-cli.test.ts): the request each command builds (neutron's
 * option names, POOL and SUBNET by name), the neutron CLI's list columns and show tables,
 * a pool name matching several pools, and bulk deletes.
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
  pool,
  run,
  SUBNET_ID,
  VIP_ID,
} from '../helpers/lbaas-cli-fake.ts';

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
    const ghost = await run(['lb-agent-hosting-pool', POOL_ID], () => ({
      status: 404,
      body: { NeutronError: { type: 'PoolNotFound', message: 'Pool x could not be found' } },
    }));
    assert.deepEqual(
      [ghost.code, ghost.err, ghost.calls.map((c) => c.url)],
      [
        1,
        'kumo: 404 PoolNotFound: Pool x could not be found\n',
        [`${API}/v2.0/lb/pools/${POOL_ID}?fields=id`],
      ],
    );
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
