/**
 * Which subnets a router serves, as kumo-api tells the DHCP agent (get_network_info's
 * `routed`), on both database engines with a real broker: a router interface on the
 * subnet's gateway makes it routed and its removal isolated again, each followed by a hint
 * to the network's DHCP agent; a router port on another address leaves the subnet isolated
 * (Neutron's get_isolated_subnets); a refused interface request changes nothing and hints
 * nobody.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createReportConsumer } from '../../api/liveness.ts';
import { getNetworkInfo } from '../../api/rpc-dhcp.ts';
import type { AgentState } from '../../contracts/agents.ts';
import { EXCHANGE, hostQueue, type Message } from '../../contracts/messages.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { silentLogger } from '../../core/log.ts';
import { waitFor } from '../helpers/env.ts';
import { injectAs, testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-isolation';
const HOST = 'iso-h1';
const NOW = new Date('2026-11-22T10:00:00.000Z');
/** A hint for no real network: sent after a request, it arrives behind any hint it caused. */
const PROBE = { resource: 'network', id: '00000000-0000-4000-8000-00000000beef' } as const;
const isProbe = (m: Message) => m.method === 'hint' && m.args.id === PROBE.id;

const dhcpState: AgentState = {
  agent_type: 'DHCP agent',
  binary: 'kumo-dhcp-agent',
  topic: 'dhcp_agent',
  host: HOST,
  start_flag: true,
  configurations: { networks: 0 },
};

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`routed subnets for the DHCP agent on ${engine}`, () => {
    const api = testApi(engine, { settings: { adminToken: ADMIN }, now: NOW });
    const hints: Message[] = [];
    let net: Network;
    let sub: Subnet;
    let router: string;

    const call = async (method: string, url: string, payload?: unknown) =>
      injectAs(api, ADMIN, method, url, payload);
    const ok = async <T>(method: string, url: string, key: string, payload?: unknown) => {
      const r = await call(method, url, payload);
      assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
      return r.body[key] as T;
    };
    const info = async () => {
      const { network } = await getNetworkInfo(api.db, { host: HOST, network_id: net.id });
      assert.ok(network, 'served by the host');
      return network;
    };
    const routed = async () => (await info()).subnets.map((s) => [s.id, s.routed]);
    const networkHints = () =>
      hints.filter((m) => m.method === 'hint' && m.args.id === net.id).length;
    /** Until the hints earlier requests caused have all arrived (none for 300 ms). */
    const quiet = async () => {
      let seen = -1;
      while (seen !== hints.length) {
        seen = hints.length;
        await sleep(300);
      }
    };
    const iface = (action: 'add' | 'remove', body: unknown) =>
      call('PUT', `/v2.0/routers/${router}/${action}_router_interface`, body);

    before(async () => {
      const queue = hostQueue('dhcp_agent', HOST);
      api.broker.consume(
        { name: queue, durable: false, bindings: [{ exchange: EXCHANGE, routingKey: queue }] },
        async (m) => {
          hints.push(m);
        },
      );
      await waitFor('the hint queue to take casts', async () => {
        await api.broker.cast(queue, 'hint', PROBE);
        return hints.some(isProbe);
      });
      const reports = createReportConsumer({
        db: api.db,
        broker: api.broker,
        log: silentLogger(),
        clock: { now: () => NOW },
        agentDownTime: 30,
      });
      await reports.handle({ agent_state: dhcpState, time: NOW.toISOString() });
      await reports.close();
      net = await ok<Network>('POST', '/v2.0/networks', 'network', { network: { name: 'iso' } });
      sub = await ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: net.id, cidr: '10.7.0.0/24', ip_version: 4 },
      });
      router = (await ok<{ id: string }>('POST', '/v2.0/routers', 'router', { router: {} })).id;
    });

    test('a new subnet is isolated', async () => {
      assert.deepEqual(await routed(), [[sub.id, false]]);
    });

    test('an interface on the gateway makes it routed and hints the DHCP agent', async () => {
      const before = networkHints();
      const r = await iface('add', { subnet_id: sub.id });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(await routed(), [[sub.id, true]]);
      await waitFor('a hint for the network', () => networkHints() > before);
    });

    test('its removal makes it isolated again, with a hint', async () => {
      const before = networkHints();
      const r = await iface('remove', { subnet_id: sub.id });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(await routed(), [[sub.id, false]]);
      await waitFor('a hint for the network', () => networkHints() > before);
    });

    test('a router port on another address leaves the subnet isolated', async () => {
      const port = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: net.id, fixed_ips: [{ subnet_id: sub.id, ip_address: '10.7.0.50' }] },
      });
      const r = await iface('add', { port_id: port.id });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const seen = (await info()).ports.find((p) => p.id === port.id);
      assert.equal(seen?.device_owner, 'network:router_interface');
      assert.deepEqual(await routed(), [[sub.id, false]]);
      assert.equal((await iface('remove', { port_id: port.id })).status, 200);
    });

    test('a refused interface request changes nothing and hints nobody', async () => {
      await quiet();
      const snapshot = await info();
      const before = hints.length;
      const r = await iface('add', {});
      assert.equal(r.status, 400);
      assert.match(JSON.stringify(r.body), /Either subnet_id or port_id must be specified/);
      const bad = await iface('add', { subnet_id: 'not-a-uuid' });
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.deepEqual(await info(), snapshot);
      await api.broker.cast(hostQueue('dhcp_agent', HOST), 'hint', PROBE);
      await waitFor('the probe behind any hint', () => hints.slice(before).some(isProbe));
      assert.equal(hints.slice(before).filter((m) => !isProbe(m)).length, 0, 'no other hint');
    });
  });
}
