/**
 * Debian's openstack CLI against a real kumo-api process (token auth) on both engines:
 * network, subnet and port create / list / show / set / delete, and refusals.
 *
 * Invariant under test: what the CLI prints agrees with what the HTTP API then returns,
 * and a command the API refuses fails and leaves the state as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { Cluster, type RunResult } from '../helpers/cluster.ts';

const json = <T>(r: RunResult): T => {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
};

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`openstack network/subnet/port CLI against kumo-api (${engine})`, {
    timeout: 300_000,
  }, () => {
    let c: Cluster;
    before(async () => {
      c = await Cluster.create(engine);
      await c.startApi();
    });
    after(async () => {
      await c?.cleanup();
    });

    const get = async <T>(path: string, key: string): Promise<T> => {
      const res = await c.http('GET', path);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return (res.body as Record<string, T>)[key] as T;
    };
    const networksNamed = async (name: string) =>
      get<Network[]>(`/v2.0/networks?name=${encodeURIComponent(name)}`, 'networks');

    test('create, list, show, set and delete through the openstack client', async () => {
      const os = (...args: string[]) => c.openstack(args);

      const n1 = json<Network>(
        await os('network', 'create', 'n1', '--provider-network-type', 'vxlan', '-f', 'json'),
      );
      assert.equal(n1.name, 'n1');
      assert.equal(n1['provider:network_type'], 'vxlan');
      assert.equal(n1.mtu, 1450);
      const n2 = json<Network>(
        await os(
          'network',
          'create',
          'n2',
          '--provider-network-type',
          'vxlan',
          '--provider-segment',
          '42',
          '-f',
          'json',
        ),
      );
      assert.equal(
        (await get<Network>(`/v2.0/networks/${n2.id}`, 'network'))['provider:segmentation_id'],
        42,
      );

      const dup = await os(
        'network',
        'create',
        'dup',
        '--provider-network-type',
        'vxlan',
        '--provider-segment',
        '42',
      );
      assert.notEqual(dup.code, 0);
      assert.match(dup.stderr, /tunnel ID 42 is in use/);
      assert.deepEqual(await networksNamed('dup'), [], 'a refused create leaves nothing behind');

      const s1 = json<Subnet>(
        await os(
          'subnet',
          'create',
          's1',
          '--network',
          'n1',
          '--subnet-range',
          '10.0.0.0/24',
          '-f',
          'json',
        ),
      );
      assert.equal(s1.gateway_ip, '10.0.0.1');
      assert.deepEqual((await get<Network>(`/v2.0/networks/${n1.id}`, 'network')).subnets, [s1.id]);
      const bad = await os(
        'subnet',
        'create',
        'bad',
        '--network',
        'n1',
        '--subnet-range',
        '10.1.0.5/24',
      );
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /10\.1\.0\.0\/24' is recommended/);
      assert.equal((await get<Subnet[]>('/v2.0/subnets', 'subnets')).length, 1);

      const p1 = json<Port>(
        await os(
          'port',
          'create',
          'p1',
          '--network',
          'n1',
          '--fixed-ip',
          'subnet=s1,ip-address=10.0.0.5',
          '-f',
          'json',
        ),
      );
      const p1api = await get<Port>(`/v2.0/ports/${p1.id}`, 'port');
      assert.deepEqual(p1api.fixed_ips, [{ subnet_id: s1.id, ip_address: '10.0.0.5' }]);
      assert.equal(p1api.status, 'DOWN');
      const p2 = json<Port>(await os('port', 'create', 'p2', '--network', 'n1', '-f', 'json'));
      assert.deepEqual(
        (await get<Port>(`/v2.0/ports/${p2.id}`, 'port')).fixed_ips.map((f) => f.ip_address),
        ['10.0.0.2'],
      );
      const taken = await os(
        'port',
        'create',
        'p3',
        '--network',
        'n1',
        '--fixed-ip',
        'subnet=s1,ip-address=10.0.0.5',
      );
      assert.notEqual(taken.code, 0);
      assert.match(taken.stderr, /10\.0\.0\.5 already allocated/);
      assert.equal((await get<Port[]>('/v2.0/ports', 'ports')).length, 2);

      const nets = json<{ Name: string }[]>(await os('network', 'list', '-f', 'json'));
      assert.deepEqual(nets.map((n) => n.Name).sort(), ['n1', 'n2']);
      const subnets = json<{ Name: string; Subnet: string }[]>(
        await os('subnet', 'list', '--network', 'n1', '-f', 'json'),
      );
      assert.deepEqual(
        subnets.map((s) => [s.Name, s.Subnet]),
        [['s1', '10.0.0.0/24']],
      );
      const ports = json<{ Name: string }[]>(
        await os('port', 'list', '--network', 'n1', '-f', 'json'),
      );
      assert.deepEqual(ports.map((p) => p.Name).sort(), ['p1', 'p2']);
      const shown = json<Network>(await os('network', 'show', 'n1', '-f', 'json'));
      assert.equal(shown.id, n1.id);
      assert.equal(
        json<Subnet>(await os('subnet', 'show', 's1', '-f', 'json')).cidr,
        '10.0.0.0/24',
      );
      assert.equal(
        json<Port>(await os('port', 'show', 'p1', '-f', 'json')).mac_address,
        p1api.mac_address,
      );

      for (const [kind, from, to] of [
        ['network', 'n1', 'n1b'],
        ['subnet', 's1', 's1b'],
        ['port', 'p1', 'p1b'],
      ] as const) {
        const set = await os(kind, 'set', '--name', to, from);
        assert.equal(set.code, 0, set.stderr);
      }
      const n1b = await get<Network>(`/v2.0/networks/${n1.id}`, 'network');
      assert.equal(n1b.name, 'n1b');
      assert.ok(n1b.revision_number > n1.revision_number);
      assert.equal((await get<Subnet>(`/v2.0/subnets/${s1.id}`, 'subnet')).name, 's1b');
      const p1b = await get<Port>(`/v2.0/ports/${p1.id}`, 'port');
      assert.equal(p1b.name, 'p1b');
      assert.equal(p1b.revision_number, 2);

      const busy = await os('network', 'delete', 'n1b');
      assert.notEqual(busy.code, 0);
      assert.match(busy.stderr, /ports still in use/);
      assert.equal((await networksNamed('n1b')).length, 1);

      for (const args of [
        ['port', 'delete', 'p1b', 'p2'],
        ['subnet', 'delete', 's1b'],
        ['network', 'delete', 'n1b', 'n2'],
      ]) {
        const r = await os(...args);
        assert.equal(r.code, 0, r.stderr);
      }
      assert.deepEqual(await get('/v2.0/networks', 'networks'), []);
      assert.deepEqual(await get('/v2.0/subnets', 'subnets'), []);
      assert.deepEqual(await get('/v2.0/ports', 'ports'), []);
    });
  });
}
