/**
 * Routers through Debian's real `openstack` CLI (6.0) against a real kumo-api process:
 * `router create/show/list/set --external-gateway/--route/add subnet/add route/remove
 * route/remove subnet/delete`. One engine, SQLite: the routes on both engines are
 * api-routers*.test.ts's concern.
 *
 * Invariant under test: the CLI reads back what it set (gateway, interfaces, routes), and
 * a refused `router set --route` changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../helpers/cluster.ts';
import { os, osJson } from '../helpers/os-clients.ts';

type Shown = Record<string, unknown>;
interface Route {
  destination: string;
  nexthop: string;
}

describe('routers through the openstack CLI', { timeout: 120_000 }, () => {
  let c: Cluster;
  const show = (name: string) => osJson<Shown>(c, ['router', 'show', name]);

  before(async () => {
    c = await Cluster.create('sqlite');
    await c.startApi();
    await os(c, ['network', 'create', '--external', 'public']);
    await os(c, [
      'subnet',
      'create',
      '--network',
      'public',
      '--subnet-range',
      '203.0.113.0/24',
      'public-sub',
    ]);
    await os(c, ['network', 'create', 'inner']);
    await os(c, [
      'subnet',
      'create',
      '--network',
      'inner',
      '--subnet-range',
      '10.5.0.0/24',
      'inner-sub',
    ]);
  });
  after(async () => {
    await c?.cleanup();
  });

  test('create, gateway, interface, routes, remove, delete', async () => {
    const created = await osJson<Shown>(c, ['router', 'create', 'r1']);
    assert.equal(created.name, 'r1');
    assert.equal(created.status, 'ACTIVE');
    const listed = await osJson<Shown[]>(c, ['router', 'list']);
    assert.deepEqual(
      listed.map((r) => [r.ID, r.Name, r.Status]),
      [[created.id, 'r1', 'ACTIVE']],
    );
    await os(c, ['router', 'set', '--external-gateway', 'public', 'r1']);
    await os(c, ['router', 'add', 'subnet', 'r1', 'inner-sub']);
    const net = await osJson<Shown>(c, ['network', 'show', 'public']);
    const inner = await osJson<Shown>(c, ['subnet', 'show', 'inner-sub']);
    const withGw = await show('r1');
    const gw = withGw.external_gateway_info as { network_id: string; enable_snat: boolean };
    assert.equal(gw.network_id, net.id);
    assert.equal(gw.enable_snat, true);
    const ifaces = withGw.interfaces_info as { subnet_id: string; ip_address: string }[];
    assert.deepEqual(
      ifaces.map((i) => [i.subnet_id, i.ip_address]),
      [[inner.id, '10.5.0.1']],
    );

    await os(c, ['router', 'set', '--route', 'destination=192.0.2.0/24,gateway=10.5.0.20', 'r1']);
    await os(c, [
      'router',
      'add',
      'route',
      '--route',
      'destination=198.51.100.0/24,gateway=203.0.113.50',
      'r1',
    ]);
    const routes = (await show('r1')).routes as Route[];
    assert.deepEqual(routes, [
      { destination: '192.0.2.0/24', nexthop: '10.5.0.20' },
      { destination: '198.51.100.0/24', nexthop: '203.0.113.50' },
    ]);
    const before = await show('r1');
    const bad = await c.openstack([
      'router',
      'set',
      '--route',
      'destination=10.9.0.0/16,gateway=10.99.0.1',
      'r1',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /the nexthop is not connected with router/);
    assert.deepEqual(await show('r1'), before, 'a refused route changes nothing');

    await os(c, [
      'router',
      'remove',
      'route',
      '--route',
      'destination=192.0.2.0/24,gateway=10.5.0.20',
      'r1',
    ]);
    assert.deepEqual((await show('r1')).routes, [
      { destination: '198.51.100.0/24', nexthop: '203.0.113.50' },
    ]);
    await os(c, [
      'router',
      'unset',
      '--route',
      'destination=198.51.100.0/24,gateway=203.0.113.50',
      'r1',
    ]);
    assert.deepEqual((await show('r1')).routes, []);

    const inUse = await c.openstack(['router', 'delete', 'r1']);
    assert.notEqual(inUse.code, 0);
    assert.match(inUse.stderr, /still has ports/);
    await os(c, ['router', 'remove', 'subnet', 'r1', 'inner-sub']);
    assert.deepEqual((await show('r1')).interfaces_info, []);
    await os(c, ['router', 'unset', '--external-gateway', 'r1']);
    assert.equal((await show('r1')).external_gateway_info, null);
    await os(c, ['router', 'delete', 'r1']);
    assert.deepEqual(await osJson<Shown[]>(c, ['router', 'list']), []);
    const ports = await osJson<Shown[]>(c, ['port', 'list']);
    assert.deepEqual(ports, [], 'the gateway and interface ports went with them');
  });
});
