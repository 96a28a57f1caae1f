/**
 * L3 rehosting against a real kumo-api process (PostgreSQL, so the test can seed routers
 * beside it; the agent-scheduler routes on both engines are l3-agent-api.test.ts's
 * concern): two L3 agents kept alive by report_state casts on the real broker, routers
 * seeded in SQL with real ports, the kumo CLI's l3-agent-router-remove/-add, Debian's
 * `openstack router list --agent`, and kumo-api's own L3 sweeper moving a router off an
 * agent that stops reporting, its ports first. (`openstack network agent add router
 * --l3` and `network agent list --router` look the router up through GET
 * /v2.0/routers/{id}, which the router routes serve.)
 *
 * The openstack client may exit 0 when a call fails, so every step checks the state
 * through the HTTP API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Db, openDb } from '../../api/db/index.ts';
import type { Agent, AgentState } from '../../contracts/agents.ts';
import { REPORTS_TOPIC } from '../../contracts/messages.ts';
import type { Network, Subnet } from '../../contracts/network.ts';
import { type Broker, createBroker } from '../../core/amqp.ts';
import { silentLogger } from '../../core/log.ts';
import { AGENT_DOWN_TIME, Cluster, type RunResult } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';
import { seedGateway, seedInterface, seedRouter } from '../helpers/l3-seed.ts';

const ok = (r: RunResult) => {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
};

const l3State = (host: string, start: boolean): AgentState => ({
  agent_type: 'L3 agent',
  binary: 'kumo-l3-agent',
  topic: 'l3_agent',
  host,
  start_flag: start,
  configurations: { agent_mode: 'legacy' },
});

describe('L3 rehosting through the kumo and openstack CLIs, and the sweeper', {
  timeout: 120_000,
}, () => {
  let c: Cluster;
  let db: Db;
  let broker: Broker;
  const hostA = `l3a-${process.pid}`;
  const hostB = `l3b-${process.pid}`;
  const alive = new Set([hostA, hostB]);
  let timer: NodeJS.Timeout | undefined;

  before(async () => {
    c = await Cluster.create('postgres');
    await c.startApi();
    db = openDb(c.db.url);
    broker = createBroker({ url: c.vhost.url, log: silentLogger(), timeoutMs: 5000 });
    await broker.start();
    const beat = (start: boolean) =>
      Promise.all(
        [...alive].map((host) =>
          broker.cast(REPORTS_TOPIC, 'report_state', {
            agent_state: l3State(host, start),
            time: new Date().toISOString(),
          }),
        ),
      );
    await beat(true);
    timer = setInterval(() => void beat(false).catch(() => {}), 500);
  });
  after(async () => {
    clearInterval(timer);
    await broker?.close();
    await db?.close();
    await c?.cleanup();
  });

  const get = async <T>(path: string, key: string): Promise<T> => {
    const res = await c.http('GET', path);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (res.body as Record<string, T>)[key] as T;
  };
  const hostsOf = async (routerId: string) =>
    (await get<Agent[]>(`/v2.0/routers/${routerId}/l3-agents`, 'agents')).map((a) => a.host);
  const portHosts = async (routerId: string) =>
    (
      await db.query<{ host_id: string }>(
        `SELECT DISTINCT p.host_id FROM ports p JOIN router_ports rp ON rp.port_id = p.id
          WHERE rp.router_id = ?`,
        [routerId],
      )
    ).map((r) => r.host_id);

  test('remove and add with kumo, list with openstack, failover by the sweeper', async () => {
    const agents = await waitFor('two alive L3 agents', async () => {
      const list = await get<Agent[]>('/v2.0/agents?agent_type=L3%20agent', 'agents');
      return list.length === 2 && list.every((a) => a.alive) ? list : undefined;
    });
    const a = agents.find((x) => x.host === hostA) as Agent;
    const b = agents.find((x) => x.host === hostB) as Agent;
    const net = async (name: string, cidr: string, external: boolean) => {
      const n = await c.http('POST', '/v2.0/networks', {
        network: { name, 'router:external': external },
      });
      const network = (n.body as { network: Network }).network;
      const s = await c.http('POST', '/v2.0/subnets', {
        subnet: { network_id: network.id, cidr, ip_version: 4, enable_dhcp: false },
      });
      return { network, subnet: (s.body as { subnet: Subnet }).subnet };
    };
    const ext = await net('public', '203.0.113.0/24', true);
    const inner = await net('private', '10.30.0.0/24', false);
    const r = await seedRouter(db, { name: 'edge' });
    await seedGateway(db, r, ext.network.id);
    await seedInterface(db, r, inner.subnet);

    // Unhosted: kumo-api's sweeper binds it on its second sighting (fewest routers, host A).
    await waitFor('the sweeper to host the router', async () => (await hostsOf(r)).length === 1);
    assert.deepEqual(await hostsOf(r), [hostA]);
    assert.deepEqual(await portHosts(r), [hostA]);

    // An operator's remove then add is not raced by the sweeper.
    ok(await c.kumo(['l3-agent-router-remove', a.id, r]));
    ok(await c.kumo(['l3-agent-router-add', b.id, r]));
    assert.deepEqual(await hostsOf(r), [hostB]);
    assert.deepEqual(await portHosts(r), [hostB], 'the ports follow the router');
    const listed = JSON.parse(
      ok(await c.openstack(['router', 'list', '--agent', b.id, '-f', 'json'])),
    ) as { ID: string; Name: string }[];
    assert.deepEqual(
      listed.map((x) => [x.ID, x.Name]),
      [[r, 'edge']],
    );
    const none = JSON.parse(
      ok(await c.openstack(['router', 'list', '--agent', a.id, '-f', 'json'])),
    ) as unknown[];
    assert.deepEqual(none, []);
    const hosting = ok(await c.kumo(['l3-agent-list-hosting-router', r]));
    assert.match(hosting, new RegExp(`${b.id} \\| L3 agent`));

    // B stops reporting: after agent_down_time the sweeper moves the router back to A.
    alive.delete(hostB);
    await waitFor(
      'the router to move off the dead agent',
      async () => (await hostsOf(r))[0] === hostA,
      (AGENT_DOWN_TIME + 10) * 1000,
    );
    assert.deepEqual(await portHosts(r), [hostA], 'the fence: ports bound to the new host');
    const onA = ok(await c.kumo(['router-list-on-l3-agent', a.id, '-f', 'value', '-c', 'id']));
    assert.equal(onA, `${r}\n`);
  });
});
