/**
 * The L3 agent-scheduler API (api/routes/l3-agents.ts) on both engines, through testApi's
 * buildApp() with a real database and broker, and the kumo CLI's L3 commands run
 * in-process against the same API listening on loopback: exact codes and bodies
 * (Neutron's InvalidL3Agent is a 404, RouterHostedByL3Agent and RouterNotHostedByL3Agent
 * 409s), a manual add rebinding the router's ports, and every refused request leaving
 * bindings and ports as they were.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { createReportConsumer } from '../../api/liveness.ts';
import { main } from '../../cli/main.ts';
import type { Agent, AgentState } from '../../contracts/agents.ts';
import type { Network, Subnet } from '../../contracts/network.ts';
import { silentLogger } from '../../core/log.ts';
import {
  bindingSnapshot,
  seedGateway,
  seedInterface,
  seedRoute,
  seedRouter,
} from '../helpers/l3-seed.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-l3api';
const MEMBER = 'member-token-l3api';
const GHOST = '00000000-0000-4000-8000-000000000000';
const NOW = new Date('2026-11-22T10:00:00.000Z');

const state = (host: string, kind: 'l3' | 'dhcp'): AgentState => ({
  agent_type: kind === 'l3' ? 'L3 agent' : 'DHCP agent',
  binary: kind === 'l3' ? 'kumo-l3-agent' : 'kumo-dhcp-agent',
  topic: kind === 'l3' ? 'l3_agent' : 'dhcp_agent',
  host,
  start_flag: true,
  configurations: {},
});

type Err = { NeutronError: { type: string; message: string; detail: string } };

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`L3 agent-scheduler API and kumo CLI on ${engine}`, () => {
    const api = testApi(engine, {
      settings: { adminToken: ADMIN, memberTokens: [MEMBER] },
      now: NOW,
      listen: true,
    });
    const as = (method: string, url: string, payload?: unknown, token = ADMIN) =>
      injectAs(api, token, method, url, payload);
    const kumo = async (...args: string[]) => {
      let out = '';
      let err = '';
      const code = await main(args, {
        stdout: { write: (s: string) => (out += s) },
        stderr: { write: (s: string) => (err += s) },
        env: { KUMO_URL: `http://127.0.0.1:${api.port}`, KUMO_TOKEN: ADMIN },
      });
      return { code, out, err };
    };
    let l1: Agent;
    let l2: Agent;
    let dhcp: Agent;
    let ext: { net: Network; subnet: Subnet };
    let inner: Subnet;

    const network = async (name: string, cidr: string, external: boolean) => {
      const n = await as('POST', '/v2.0/networks', {
        network: { name, 'router:external': external },
      });
      const net = n.body.network as Network;
      const s = await as('POST', '/v2.0/subnets', {
        subnet: { network_id: net.id, cidr, ip_version: 4, enable_dhcp: false },
      });
      return { net, subnet: s.body.subnet as Subnet };
    };

    beforeEach(async () => {
      if (l1) return;
      const reports = createReportConsumer({
        db: api.db,
        broker: api.broker,
        log: silentLogger(),
        clock: { now: () => NOW },
        agentDownTime: 30,
      });
      for (const [host, kind] of [
        ['n1', 'l3'],
        ['n2', 'l3'],
        ['n1', 'dhcp'],
      ] as const)
        await reports.handle({ agent_state: state(host, kind), time: NOW.toISOString() });
      await reports.close();
      const agents = (await as('GET', '/v2.0/agents')).body.agents as Agent[];
      const find = (host: string, type: string) =>
        agents.find((a) => a.host === host && a.agent_type === type) as Agent;
      l1 = find('n1', 'L3 agent');
      l2 = find('n2', 'L3 agent');
      dhcp = find('n1', 'DHCP agent');
      ext = await network('ext', '198.51.100.0/24', true);
      inner = (await network('inner', '10.5.0.0/24', false)).subnet;
    });

    const portHosts = async (routerId: string) =>
      (
        await api.db.query<{ host_id: string }>(
          `SELECT DISTINCT p.host_id FROM ports p JOIN router_ports rp ON rp.port_id = p.id
            WHERE rp.router_id = ?`,
          [routerId],
        )
      ).map((r) => r.host_id);

    test('add, list, hosting agents, remove; refusals change nothing', async () => {
      const r = await seedRouter(api.db, { name: 'r1' });
      const gw = await seedGateway(api.db, r, ext.net.id);
      await seedInterface(api.db, r, inner);
      await seedRoute(api.db, r, '192.168.9.0/24', '10.5.0.9');

      const added = await api.app.inject({
        method: 'POST',
        url: `/v2.0/agents/${l1.id}/l3-routers`,
        payload: { router_id: r },
        headers: { 'x-auth-token': ADMIN },
      });
      assert.equal(added.statusCode, 201, added.body);
      assert.equal(added.body, 'null');
      assert.match(String(added.headers['content-type']), /application\/json/);
      assert.deepEqual(await portHosts(r), ['n1'], 'the ports follow the router');

      const listed = await as('GET', `/v2.0/agents/${l1.id}/l3-routers`);
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body, {
        routers: [
          {
            id: r,
            name: 'r1',
            description: '',
            admin_state_up: true,
            status: 'ACTIVE',
            external_gateway_info: {
              network_id: ext.net.id,
              enable_snat: true,
              external_fixed_ips: gw.fixed_ips,
            },
            routes: [{ destination: '192.168.9.0/24', nexthop: '10.5.0.9' }],
            project_id: 'p1',
            tenant_id: 'p1',
            created_at: '2026-11-22T10:00:00Z',
            updated_at: '2026-11-22T10:00:00Z',
            revision_number: 1,
            tags: [],
          },
        ],
      });
      const fields = await as('GET', `/v2.0/agents/${l1.id}/l3-routers?fields=id&fields=name`);
      assert.deepEqual(fields.body, { routers: [{ id: r, name: 'r1' }] });
      const hosting = await as('GET', `/v2.0/routers/${r}/l3-agents`);
      assert.deepEqual(hosting.body, {
        agents: [(await as('GET', `/v2.0/agents/${l1.id}`)).body.agent],
      });

      // Already there: Neutron answers 201 and changes nothing.
      const snap = await bindingSnapshot(api.db);
      assert.equal(
        (await as('POST', `/v2.0/agents/${l1.id}/l3-routers`, { router_id: r })).status,
        201,
      );
      assert.deepEqual(await bindingSnapshot(api.db), snap);

      const refusals: [string, string, unknown, number, string | RegExp, string?][] = [
        [
          'POST',
          `/v2.0/agents/${l2.id}/l3-routers`,
          { router_id: r },
          409,
          `The router ${r} has been already hosted by the L3 Agent ${l1.id}.`,
          'RouterHostedByL3Agent',
        ],
        [
          'POST',
          `/v2.0/agents/${dhcp.id}/l3-routers`,
          { router_id: r },
          404,
          `Agent ${dhcp.id} is not a L3 Agent or has been disabled`,
          'InvalidL3Agent',
        ],
        [
          'POST',
          `/v2.0/agents/${GHOST}/l3-routers`,
          { router_id: r },
          404,
          `Agent ${GHOST} could not be found.`,
          'AgentNotFound',
        ],
        [
          'POST',
          `/v2.0/agents/${l2.id}/l3-routers`,
          { router_id: GHOST },
          404,
          `Router ${GHOST} could not be found`,
          'RouterNotFound',
        ],
        ['POST', `/v2.0/agents/${l2.id}/l3-routers`, { router: r }, 400, /router_id/],
        [
          'POST',
          `/v2.0/agents/${l2.id}/l3-routers`,
          { router_id: r },
          403,
          /rule:create_l3-router is disallowed by policy/,
        ],
        [
          'GET',
          `/v2.0/agents/${l1.id}/l3-routers`,
          undefined,
          403,
          /rule:get_l3-routers is disallowed by policy/,
        ],
        [
          'GET',
          `/v2.0/routers/${r}/l3-agents`,
          undefined,
          403,
          /rule:get_l3-agents is disallowed by policy/,
        ],
        [
          'DELETE',
          `/v2.0/agents/${l1.id}/l3-routers/${r}`,
          undefined,
          403,
          /rule:delete_l3-router is disallowed by policy/,
        ],
        [
          'DELETE',
          `/v2.0/agents/${l2.id}/l3-routers/${r}`,
          undefined,
          409,
          `The router ${r} is not hosted by L3 agent ${l2.id}.`,
          'RouterNotHostedByL3Agent',
        ],
        ['DELETE', `/v2.0/agents/${GHOST}/l3-routers/${r}`, undefined, 404, /could not be found/],
        ['GET', `/v2.0/agents/${GHOST}/l3-routers`, undefined, 404, /could not be found/],
        ['GET', `/v2.0/routers/${GHOST}/l3-agents`, undefined, 404, /could not be found/],
      ];
      for (const [method, url, payload, status, message, type] of refusals) {
        const token = status === 403 ? MEMBER : ADMIN;
        const res = await as(method, url, payload, token);
        assert.equal(res.status, status, `${method} ${url}: ${JSON.stringify(res.body)}`);
        const e = (res.body as Err).NeutronError;
        if (typeof message === 'string') assert.equal(e.message, message);
        else assert.match(e.message, message);
        if (type) assert.equal(e.type, type);
        assert.deepEqual(await bindingSnapshot(api.db), snap, `${method} ${url} changed nothing`);
      }
      // An admin-down L3 agent is Neutron's InvalidL3Agent too.
      await as('PUT', `/v2.0/agents/${l2.id}`, { agent: { admin_state_up: false } });
      const disabled = await as('DELETE', `/v2.0/agents/${l1.id}/l3-routers/${r}`);
      assert.equal(disabled.status, 204);
      const snap2 = await bindingSnapshot(api.db);
      const refused = await as('POST', `/v2.0/agents/${l2.id}/l3-routers`, { router_id: r });
      assert.equal(refused.status, 404);
      assert.equal((refused.body as Err).NeutronError.type, 'InvalidL3Agent');
      assert.deepEqual(await bindingSnapshot(api.db), snap2);
      await as('PUT', `/v2.0/agents/${l2.id}`, { agent: { admin_state_up: true } });

      // Removed from n1 (unhosted), added to n2: the ports follow.
      assert.deepEqual((await as('GET', `/v2.0/routers/${r}/l3-agents`)).body, { agents: [] });
      assert.equal(
        (await as('POST', `/v2.0/agents/${l2.id}/l3-routers`, { router_id: r })).status,
        201,
      );
      assert.deepEqual(await portHosts(r), ['n2']);
      assert.deepEqual((await as('GET', `/v2.0/agents/${l1.id}/l3-routers`)).body, { routers: [] });
    });

    test('kumo l3-agent-router-add/-remove, router-list-on-l3-agent, l3-agent-list-hosting-router', async () => {
      const r = await seedRouter(api.db, { name: 'cli-router' });
      await seedGateway(api.db, r, ext.net.id);
      const add = await kumo('l3-agent-router-add', l1.id, r);
      assert.deepEqual([add.code, add.out, add.err], [0, `Added router ${r} to L3 agent\n`, '']);
      assert.deepEqual(await portHosts(r), ['n1']);

      const onAgent = await kumo('router-list-on-l3-agent', l1.id);
      assert.equal(onAgent.code, 0, onAgent.err);
      assert.match(
        onAgent.out,
        /\| id +\| name +\| status +\| admin_state_up +\| external_gateway_info/,
      );
      assert.match(
        onAgent.out,
        new RegExp(
          `\\| ${r} \\| cli-router +\\| ACTIVE +\\| True +\\| \\{"network_id": "${ext.net.id}"`,
        ),
      );
      const json = JSON.parse(
        (await kumo('router-list-on-l3-agent', l1.id, '-f', 'json', '-c', 'id')).out,
      );
      assert.deepEqual(json, [{ id: r }]);

      const hosting = await kumo('l3-agent-list-hosting-router', r);
      assert.equal(hosting.code, 0, hosting.err);
      assert.match(
        hosting.out,
        new RegExp(`\\| ${l1.id} \\| L3 agent +\\| n1 +\\| :-\\) +\\| True +\\| kumo-l3-agent`),
      );
      assert.doesNotMatch(hosting.out, new RegExp(l2.id));

      const twice = await kumo('l3-agent-router-add', l2.id, r);
      assert.equal(twice.code, 1);
      assert.match(
        twice.err,
        /^kumo: 409 RouterHostedByL3Agent: The router .* has been already hosted by the L3 Agent/,
      );
      const remove = await kumo('l3-agent-router-remove', l1.id, r);
      assert.deepEqual([remove.code, remove.out], [0, `Removed router ${r} from L3 agent\n`]);
      const again = await kumo('l3-agent-router-remove', l1.id, r);
      assert.equal(again.code, 1);
      assert.match(
        again.err,
        /^kumo: 409 RouterNotHostedByL3Agent: The router .* is not hosted by L3 agent/,
      );
      const value = await kumo('l3-agent-list-hosting-router', r, '-f', 'value');
      assert.deepEqual([value.code, value.out], [0, '']);
      assert.equal((await kumo('l3-agent-router-add', l2.id, r)).code, 0);
      assert.deepEqual(await portHosts(r), ['n2']);
      const bad = await kumo('router-list-on-l3-agent', l1.id, '-c', 'nope');
      assert.equal(bad.code, 2);
    });
  });
}
