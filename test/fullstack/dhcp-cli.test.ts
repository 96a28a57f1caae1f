/**
 * DHCP agent scheduling against a real kumo-api process and two real kumo-dhcp-agent
 * processes (on two simulated host names), on both engines: automatic scheduling on
 * subnet create, the kumo CLI's dhcp-agent-network-add/-remove, net-list-on-dhcp-agent and
 * dhcp-agent-list-hosting-net, Debian's `openstack network agent add/remove network
 * --dhcp` and `network agent list --network`, and the failover sweep after a kill -9.
 *
 * The openstack client exits 0 even when its POST fails, so every step checks the state
 * through the HTTP API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../contracts/agents.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { Cluster, type OvsEndpoint, type RunResult } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/env.ts';

/** DHCP agents need no Open vSwitch. */
const NO_OVS: OvsEndpoint = {
  dbSocket: '/nonexistent/db.sock',
  rundir: '/nonexistent',
  localIp: '192.0.2.10',
};

const ok = (r: RunResult) => {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
};

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`DHCP agent scheduling through kumo and openstack CLIs (${engine})`, {
    timeout: 300_000,
  }, () => {
    let c: Cluster;
    const hostA = `dhcpa-${process.pid}`;
    const hostB = `dhcpb-${process.pid}`;
    let a: Agent;
    let b: Agent;

    before(async () => {
      c = await Cluster.create(engine);
      await c.startApi();
      c.startAgentOn('dhcp', hostA, NO_OVS);
      c.startAgentOn('dhcp', hostB, NO_OVS);
      const agents = await waitFor(
        'two alive DHCP agents',
        async () => {
          const res = await c.http('GET', '/v2.0/agents?agent_type=DHCP%20agent');
          const list = (res.body as { agents: Agent[] }).agents;
          return list.length === 2 && list.every((x) => x.alive) ? list : undefined;
        },
        30_000,
      );
      a = agents.find((x) => x.host === hostA) as Agent;
      b = agents.find((x) => x.host === hostB) as Agent;
      assert.ok(a && b);
    });
    after(async () => {
      await c?.cleanup();
    });

    const get = async <T>(path: string, key: string): Promise<T> => {
      const res = await c.http('GET', path);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return (res.body as Record<string, T>)[key] as T;
    };
    const hostsOf = async (networkId: string) =>
      (await get<Agent[]>(`/v2.0/networks/${networkId}/dhcp-agents`, 'agents'))
        .map((x) => x.host)
        .sort();
    const dhcpPortHosts = async (networkId: string) =>
      (await get<Port[]>(`/v2.0/ports?network_id=${networkId}&device_owner=network:dhcp`, 'ports'))
        .map((p) => p['binding:host_id'])
        .sort();

    test('scheduling, the kumo CLI, the openstack CLI and failover', async () => {
      const net = (await c.http('POST', '/v2.0/networks', { network: { name: 'dn1' } })).body as {
        network: Network;
      };
      const n = net.network;
      const sub = (
        await c.http('POST', '/v2.0/subnets', {
          subnet: { network_id: n.id, cidr: '10.20.0.0/24', ip_version: 4 },
        })
      ).body as { subnet: Subnet };
      assert.ok(sub.subnet);
      assert.deepEqual(await hostsOf(n.id), [hostA], 'least loaded, first host name');
      assert.deepEqual(await dhcpPortHosts(n.id), [hostA]);

      // kumo CLI: list hosting agents by network name, add, list networks, refuse, remove.
      const hosting = ok(await c.kumo(['dhcp-agent-list-hosting-net', 'dn1']));
      assert.match(hosting, new RegExp(a.id));
      assert.match(hosting, /:-\)/);
      assert.doesNotMatch(hosting, new RegExp(b.id));
      ok(await c.kumo(['dhcp-agent-network-add', b.id, 'dn1']));
      assert.deepEqual(await hostsOf(n.id), [hostA, hostB].sort());
      assert.deepEqual(await dhcpPortHosts(n.id), [hostA, hostB].sort());
      const onB = ok(await c.kumo(['net-list-on-dhcp-agent', b.id]));
      assert.match(onB, new RegExp(`${n.id}\\s*\\|\\s*dn1\\s*\\|\\s*${sub.subnet.id}`));
      const twice = await c.kumo(['dhcp-agent-network-add', b.id, n.id]);
      assert.equal(twice.code, 1);
      assert.match(twice.stderr, /^kumo: 409 Conflict: The network .* already hosted/);
      ok(await c.kumo(['dhcp-agent-network-remove', a.id, 'dn1']));
      assert.deepEqual(await hostsOf(n.id), [hostB]);
      assert.deepEqual(await dhcpPortHosts(n.id), [hostB]);
      const gone = await c.kumo(['dhcp-agent-network-remove', a.id, 'dn1']);
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /^kumo: 404 NotFound: The network .* is not hosted/);
      const missing = await c.kumo(['dhcp-agent-list-hosting-net', 'no-such-net']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no network with a name or id of 'no-such-net'/);
      const json = JSON.parse(
        ok(await c.kumo(['net-list-on-dhcp-agent', a.id, '-f', 'json'])),
      ) as unknown[];
      assert.deepEqual(json, []);

      // The openstack client: add, list by network, remove.
      ok(await c.openstack(['network', 'agent', 'add', 'network', '--dhcp', a.id, 'dn1']));
      assert.deepEqual(await hostsOf(n.id), [hostA, hostB].sort());
      const listed = JSON.parse(
        ok(await c.openstack(['network', 'agent', 'list', '--network', 'dn1', '-f', 'json'])),
      ) as { ID: string }[];
      assert.deepEqual(listed.map((x) => x.ID).sort(), [a.id, b.id].sort());
      ok(await c.openstack(['network', 'agent', 'remove', 'network', '--dhcp', b.id, 'dn1']));
      assert.deepEqual(await hostsOf(n.id), [hostA]);
      assert.deepEqual(await dhcpPortHosts(n.id), [hostA]);

      // kill -9 the agent on A: the API's sweep moves the network to B.
      await c.stop(c.hostAgents.get(`dhcp@${hostA}`), 'SIGKILL');
      await waitFor(
        'the network to move to the alive agent',
        async () => (await hostsOf(n.id)).join() === hostB,
        30_000,
        250,
      );
      await waitFor(
        'the DHCP port to follow',
        async () => (await dhcpPortHosts(n.id)).join() === hostB,
        10_000,
        250,
      );
    });
  });
}
