/**
 * The kumo CLI's router and floating IP commands in-process with a fake fetch (the routes
 * behind them are tested against a real API elsewhere): router-list and router-show
 * tables, ROUTER resolved by name through ?name= (refused when none or several match, a
 * UUID used as given), the POST body of l3-agent-router-add, and floatingip-list.
 *
 * Invariant: no test depends on the host's /etc/kumo/kumo.conf or on the caller's env.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { run } from '../helpers/cli-fake.ts';

const RID = '6f1c2b3a-0000-4000-8000-000000000001';
const NET = '7a2b3c4d-0000-4000-8000-000000000002';

const router = (over: Record<string, unknown> = {}) => ({
  id: RID,
  name: 'edge',
  description: '',
  admin_state_up: true,
  status: 'ACTIVE',
  external_gateway_info: {
    network_id: NET,
    enable_snat: true,
    external_fixed_ips: [{ subnet_id: NET, ip_address: '203.0.113.5' }],
  },
  routes: [{ destination: '192.168.0.0/24', nexthop: '10.0.0.9' }],
  project_id: 'p1',
  tenant_id: 'p1',
  created_at: '2026-11-22T10:00:00Z',
  updated_at: '2026-11-22T10:00:00Z',
  revision_number: 3,
  tags: [],
  ...over,
});

describe('kumo router and floating IP commands', () => {
  test('router-list shows the gateway on one line', async () => {
    const r = await run(['router-list'], () => ({ status: 200, body: { routers: [router()] } }));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.calls[0]?.url, 'http://kumo.test:9696/v2.0/routers');
    assert.match(
      r.out,
      /\| id +\| name +\| status +\| admin_state_up +\| external_gateway_info +\|/,
    );
    assert.match(
      r.out,
      new RegExp(`\\| ${RID} \\| edge +\\| ACTIVE +\\| True +\\| \\{"network_id": "${NET}",`),
    );
  });

  test('router-show by name looks the id up, then shows every field sorted', async () => {
    const r = await run(['router-show', 'edge'], (c) =>
      c.url.includes('?name=')
        ? { status: 200, body: { routers: [{ id: RID }] } }
        : { status: 200, body: { router: router() } },
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(
      r.calls.map((c) => c.url),
      [
        'http://kumo.test:9696/v2.0/routers?name=edge&fields=id',
        `http://kumo.test:9696/v2.0/routers/${RID}`,
      ],
    );
    const fields = [...r.out.matchAll(/^\| ([a-z_]+) +\|/gm)].map((m) => m[1]);
    assert.deepEqual(fields, Object.keys(router()).sort());
    assert.match(
      r.out,
      /\| routes +\| \{"destination": "192.168.0.0\/24", "nexthop": "10.0.0.9"\}/,
    );
  });

  test('a name matching no router or several is refused before anything is changed', async () => {
    const none = await run(['l3-agent-router-add', 'a1', 'edge'], () => ({
      status: 200,
      body: { routers: [] },
    }));
    assert.deepEqual([none.code, none.err], [1, "kumo: no router with a name or id of 'edge'\n"]);
    assert.deepEqual(
      none.calls.map((c) => c.method),
      ['GET'],
    );
    const two = await run(['router-show', 'edge'], () => ({
      status: 200,
      body: { routers: [{ id: RID }, { id: NET }] },
    }));
    assert.equal(two.code, 1);
    assert.match(two.err, /more than one router is named 'edge'; use the router id/);
    assert.ok(two.calls.every((c) => c.method === 'GET'));
  });

  test('l3-agent-router-add posts the resolved id; a UUID is used as given', async () => {
    const byName = await run(['l3-agent-router-add', 'a/1', 'edge'], (c) =>
      c.method === 'GET'
        ? { status: 200, body: { routers: [{ id: RID }] } }
        : { status: 201, body: null },
    );
    assert.equal(byName.code, 0, byName.err);
    assert.deepEqual(byName.calls[1], {
      method: 'POST',
      url: 'http://kumo.test:9696/v2.0/agents/a%2F1/l3-routers',
      body: { router_id: RID },
    });
    const byId = await run(['l3-agent-router-remove', 'a1', RID], () => ({ status: 204 }));
    assert.equal(byId.code, 0, byId.err);
    assert.deepEqual(
      byId.calls.map((c) => [c.method, c.url]),
      [['DELETE', `http://kumo.test:9696/v2.0/agents/a1/l3-routers/${RID}`]],
    );
  });

  test('floatingip-list shows id, fixed and floating address, port', async () => {
    const fip = {
      id: 'f1',
      fixed_ip_address: '10.0.0.4',
      floating_ip_address: '203.0.113.9',
      port_id: 'p9',
      status: 'ACTIVE',
    };
    const r = await run(['floatingip-list', '-f', 'json'], () => ({
      status: 200,
      body: { floatingips: [fip] },
    }));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.calls[0]?.url, 'http://kumo.test:9696/v2.0/floatingips');
    assert.deepEqual(JSON.parse(r.out), [
      { id: 'f1', fixed_ip_address: '10.0.0.4', floating_ip_address: '203.0.113.9', port_id: 'p9' },
    ]);
    const table = await run(['floatingip-list'], () => ({
      status: 200,
      body: { floatingips: [fip] },
    }));
    assert.match(table.out, /\| f1 +\| 10\.0\.0\.4 +\| 203\.0\.113\.9 +\| p9 +\|/);
  });
});
