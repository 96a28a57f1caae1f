/**
 * The LBaaS agent-scheduler API through the real `neutron` CLI (python3-neutronclient 8.1:
 * `--os-token --os-url` with OS_AUTH_TYPE=admin_token, no Keystone) against one kumo-api
 * (SQLite, listening on loopback; both engines are lbaas-scheduling's concern):
 * `lb-agent-hosting-pool` (the pool named, resolved by the CLI through GET /v2.0/lb/pools)
 * and `lb-pool-list-on-agent`, their tables checked cell by cell against the API.
 *
 * Two LBaaS agents are report_state rows written through kumo-api's own report consumer,
 * alive under the suite's fixed clock; pools are made through POST /v2.0/lb/pools, whose
 * scheduling runs after the commit (so the suite waits for each binding).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Subnet } from '../../contracts/network.ts';
import { type RunResult, runCommand } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { agentState, reportAgents } from '../helpers/l3-seed.ts';
import { ok } from '../helpers/os-clients.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-lbcli';
const NOW = new Date('2026-11-22T10:00:00.000Z');
type Obj = Record<string, unknown>;

/** A cliff table's rows (header first), each cell trimmed. */
function cells(out: string): string[][] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
}

describe('LBaaS agent scheduler through the neutron CLI', { timeout: 120_000 }, () => {
  const api = testApi('sqlite', { settings: { adminToken: ADMIN }, now: NOW, listen: true });
  const agents: Record<string, Agent> = {};
  let subnet = {} as Subnet;

  const neutron = (...args: string[]): Promise<RunResult> =>
    runCommand(
      ['neutron', '--os-token', ADMIN, '--os-url', `http://127.0.0.1:${api.port}`, ...args],
      { OS_AUTH_TYPE: 'admin_token' },
    );
  const call = async (method: string, path: string, body?: Obj, status = 200) => {
    const res = await injectAs(api, ADMIN, method, path, body);
    assert.equal(res.status, status, JSON.stringify(res.body));
    return res.body;
  };
  const hostOf = async (poolId: string) => {
    const res = await api.app.inject({
      url: `/v2.0/lb/pools/${poolId}/loadbalancer-agent`,
      headers: { 'x-auth-token': ADMIN },
    });
    return res.body === 'null' ? undefined : (res.json() as { agent: Agent }).agent.host;
  };
  const createPool = async (name: string) => {
    const pool = (await call(
      'POST',
      '/v2.0/lb/pools',
      { pool: { name, subnet_id: subnet.id, protocol: 'HTTP', lb_method: 'ROUND_ROBIN' } },
      201,
    )) as { pool: Obj };
    const id = String(pool.pool.id);
    await waitFor(`pool ${name} scheduled`, async () => (await hostOf(id)) !== undefined);
    return id;
  };

  before(async () => {
    await reportAgents(
      api,
      NOW,
      ['h1', 'h2'].map((host) => agentState(host, 'lbaas', { device_drivers: ['haproxy_ns'] })),
    );
    for (const a of ((await call('GET', '/v2.0/agents')) as { agents: Agent[] }).agents)
      agents[a.host] = a;
    const net = (await call('POST', '/v2.0/networks', { network: { name: 'lb' } }, 201)) as {
      network: Network;
    };
    const sub = (await call(
      'POST',
      '/v2.0/subnets',
      { subnet: { network_id: net.network.id, cidr: '10.8.0.0/24', ip_version: 4 } },
      201,
    )) as { subnet: Subnet };
    subnet = sub.subnet;
  });

  test('neutron lb-agent-hosting-pool and lb-pool-list-on-agent', async () => {
    const web = await createPool('web');
    const apiPool = await createPool('api');
    assert.deepEqual([await hostOf(web), await hostOf(apiPool)], ['h1', 'h2'], 'spread');
    const h1 = agents.h1 as Agent;

    const hosting = cells(ok(await neutron('lb-agent-hosting-pool', 'web'), 'hosting'));
    assert.deepEqual(hosting, [
      ['id', 'host', 'admin_state_up', 'alive'],
      [h1.id, 'h1', 'True', ':-)'],
    ]);

    const onH1 = cells(ok(await neutron('lb-pool-list-on-agent', h1.id), 'list-on-agent'));
    const shown = ((await call('GET', `/v2.0/lb/pools/${web}`)) as { pool: Obj }).pool;
    assert.deepEqual(onH1, [
      ['id', 'name', 'lb_method', 'protocol', 'admin_state_up', 'status'],
      [web, 'web', 'ROUND_ROBIN', 'HTTP', 'True', String(shown.status)],
    ]);
    const onH2 = cells(ok(await neutron('lb-pool-list-on-agent', String(agents.h2?.id)), 'h2'));
    assert.deepEqual(
      onH2.slice(1).map((r) => r[0]),
      [apiPool],
    );
  });
});
