/**
 * Networks, subnets and ports through buildApp() + inject on both database engines:
 * Neutron-shaped CRUD, provider segment allocation, subnet validation, IPAM, MACs,
 * in-use refusals, and concurrent port creation that never hands out one address twice.
 *
 * Invariant under test: every refused request leaves the whole state (all three
 * collections, field for field) exactly as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { type Db, openDb } from '../../api/db/index.ts';
import { migrate } from '../../api/db/migrations.ts';
import { setPortStatus } from '../../api/db/ports.ts';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { silentLogger } from '../../core/log.ts';
import { tempDir, testDatabase } from '../helpers/env.ts';

const ADMIN = 'admin-token-xyz';
const MEMBER = 'member-token-xyz';

type Body = Record<string, unknown>;
interface Res {
  status: number;
  body: Body | null;
}

const err = (r: Res) =>
  (r.body as { NeutronError: { type: string; message: string } }).NeutronError;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`networks, subnets, ports on ${engine}`, () => {
    const dir = tempDir();
    const database = testDatabase(engine, dir.path);
    let db: Db;
    let app: FastifyInstance;
    let now = new Date('2026-11-22T10:00:00.000Z');
    const clock = { now: () => now };
    const tick = () => {
      now = new Date(now.getTime() + 1000);
    };

    before(async () => {
      db = openDb(database.url);
      await migrate(db);
      app = buildApp({
        db,
        broker: { cast: async () => {}, fanout: async () => {} },
        clock,
        log: silentLogger(),
        settings: {
          adminToken: ADMIN,
          memberTokens: [MEMBER],
          agentDownTime: 30,
          bodyLimit: 1 << 20,
          network: {
            tenantNetworkTypes: ['vxlan'],
            vniRanges: [[1, 500]],
            greIdRanges: [[10, 12]],
            flatNetworks: ['physnet1', 'physnet2'],
            globalPhysnetMtu: 1500,
          },
        },
      });
    });
    after(async () => {
      await app.close();
      await db.close();
      database.cleanup();
      dir.cleanup();
    });

    const call = async (
      method: 'GET' | 'POST' | 'PUT' | 'DELETE',
      url: string,
      payload?: unknown,
      token = ADMIN,
    ): Promise<Res> => {
      const res = await app.inject({
        method,
        url,
        payload: payload as string,
        headers: { 'x-auth-token': token },
      });
      return { status: res.statusCode, body: res.body ? (res.json() as Body) : null };
    };
    const ok = async <T>(
      method: 'POST' | 'PUT' | 'GET',
      url: string,
      key: string,
      payload?: unknown,
    ) => {
      const r = await call(method, url, payload);
      assert.equal(r.status, method === 'POST' ? 201 : 200, JSON.stringify(r.body));
      return (r.body as Record<string, T>)[key] as T;
    };
    const net = (body: Body = {}) =>
      ok<Network>('POST', '/v2.0/networks', 'network', { network: body });
    const subnet = (network_id: string, cidr: string, extra: Body = {}) =>
      ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id, cidr, ip_version: 4, ...extra },
      });
    const port = (network_id: string, extra: Body = {}) =>
      ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id, ...extra } });
    const list = async <T>(collection: string, query = '') =>
      ((await call('GET', `/v2.0/${collection}${query}`)).body as Record<string, T[]>)[
        collection
      ] as T[];
    const state = async () => ({
      networks: await list('networks'),
      subnets: await list('subnets'),
      ports: await list('ports'),
    });
    /** The request is refused with `status`/`type`, and nothing at all changes. */
    const refused = async (
      status: number,
      type: string | RegExp,
      method: 'POST' | 'PUT' | 'DELETE',
      url: string,
      payload?: unknown,
      token = ADMIN,
    ) => {
      const before = await state();
      const r = await call(method, url, payload, token);
      assert.equal(r.status, status, JSON.stringify(r.body));
      if (typeof type === 'string') assert.equal(err(r).type, type, err(r).message);
      else assert.match(err(r).message, type);
      assert.deepEqual(await state(), before, 'a refused request changes nothing');
      return err(r);
    };
    const cleanAll = async () => {
      for (const p of await list<Port>('ports'))
        assert.equal((await call('DELETE', `/v2.0/ports/${p.id}`)).status, 204);
      for (const n of await list<Network>('networks'))
        assert.equal((await call('DELETE', `/v2.0/networks/${n.id}`)).status, 204);
    };

    test('network CRUD with Neutron defaults, revisions, filters and fields=', async () => {
      const n = await net({ name: 'n1' });
      assert.equal(n.status, 'ACTIVE');
      assert.equal(n['provider:network_type'], 'vxlan');
      assert.equal(n['provider:segmentation_id'], 1);
      assert.equal(n['provider:physical_network'], null);
      assert.equal(n.mtu, 1450);
      assert.equal(n.admin_state_up, true);
      assert.equal(n.shared, false);
      assert.equal(n['router:external'], false);
      assert.deepEqual(n.subnets, []);
      assert.deepEqual(n.tags, []);
      assert.equal(n.revision_number, 1);
      assert.equal(n.project_id, n.tenant_id);
      assert.equal(n.created_at, '2026-11-22T10:00:00Z');
      tick();
      const renamed = await ok<Network>('PUT', `/v2.0/networks/${n.id}`, 'network', {
        network: { name: 'n1b', description: 'd', 'router:external': true, mtu: 1400 },
      });
      assert.equal(renamed.name, 'n1b');
      assert.equal(renamed.mtu, 1400);
      assert.equal(renamed['router:external'], true);
      assert.equal(renamed.revision_number, 2);
      assert.equal(renamed.updated_at, '2026-11-22T10:00:01Z');
      assert.deepEqual(await ok('GET', `/v2.0/networks/${n.id}`, 'network'), renamed);
      const g = await net({ name: 'g', 'provider:network_type': 'gre' });
      assert.equal(g.mtu, 1458);
      assert.equal(g['provider:segmentation_id'], 10);
      const f = await net({
        name: 'f',
        'provider:network_type': 'flat',
        'provider:physical_network': 'physnet1',
      });
      assert.equal(f.mtu, 1500);
      assert.equal(f['provider:segmentation_id'], null);
      assert.deepEqual(
        (await list<Network>('networks', '?name=n1b&name=g')).map((x) => x.name),
        ['n1b', 'g'],
      );
      assert.deepEqual(
        (await list<Network>('networks', '?provider:network_type=flat')).map((x) => x.name),
        ['f'],
      );
      assert.deepEqual(
        (await list<Network>('networks', '?router:external=True')).map((x) => x.name),
        ['n1b'],
      );
      const picked = await list<Network>('networks', '?fields=id&fields=name');
      assert.deepEqual(Object.keys(picked[0] ?? {}).sort(), ['id', 'name']);
      assert.equal((await call('GET', '/v2.0/networks?colour=red')).status, 400);
      const paged = await call('GET', '/v2.0/networks?limit=2');
      assert.equal((paged.body?.networks as unknown[] | undefined)?.length, 2);
      assert.ok(paged.body?.networks_links);
      assert.equal((await call('GET', `/v2.0/networks/${crypto.randomUUID()}`)).status, 404);
      assert.equal(err(await call('GET', '/v2.0/networks/n1b')).type, 'NetworkNotFound');
      assert.equal((await call('DELETE', `/v2.0/networks/${g.id}`)).status, 204);
      assert.equal((await call('DELETE', `/v2.0/networks/${g.id}`)).status, 404);
      await cleanAll();
    });

    test('segmentation ids: requested, out of range 400, taken 409, reclaimed on delete', async () => {
      const a = await net({ name: 'a' });
      const b = await net({ name: 'b', 'provider:segmentation_id': '7' });
      assert.equal(b['provider:segmentation_id'], 7, 'the client sends it as a string');
      const c = await net({ name: 'c' });
      assert.deepEqual(
        [a, c].map((x) => x['provider:segmentation_id']),
        [1, 2],
      );
      await refused(409, 'TunnelIdInUse', 'POST', '/v2.0/networks', {
        network: { name: 'x', 'provider:segmentation_id': 7 },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/networks', {
        network: { name: 'x', 'provider:segmentation_id': 501 },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/networks', {
        network: {
          name: 'x',
          'provider:network_type': 'vxlan',
          'provider:segmentation_id': 2 ** 24,
        },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/networks', {
        network: { name: 'x', 'provider:network_type': 'flat' },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/networks', {
        network: { 'provider:network_type': 'flat', 'provider:physical_network': 'nope' },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/networks', {
        network: { 'provider:physical_network': 'physnet1' },
      });
      // No [ml2] network_vlan_ranges here: no VLAN id to hand out, as Neutron's.
      await refused(503, 'NoNetworkAvailable', 'POST', '/v2.0/networks', {
        network: { 'provider:network_type': 'vlan' },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/networks', { network: { mtu: 1451 } });
      await refused(400, 'InvalidInput', 'PUT', `/v2.0/networks/${a.id}`, {
        network: { 'provider:segmentation_id': 99 },
      });
      await net({ 'provider:network_type': 'flat', 'provider:physical_network': 'physnet2' });
      await refused(409, 'FlatNetworkInUse', 'POST', '/v2.0/networks', {
        network: { 'provider:network_type': 'flat', 'provider:physical_network': 'physnet2' },
      });
      assert.equal((await call('DELETE', `/v2.0/networks/${a.id}`)).status, 204);
      const d = await net({ name: 'd' });
      assert.equal(d['provider:segmentation_id'], 1, "a deleted network's id is reused");
      // GRE range 10..12: three networks, then the range is exhausted.
      for (const id of [10, 11, 12])
        assert.equal(
          (await net({ 'provider:network_type': 'gre' }))['provider:segmentation_id'],
          id,
        );
      await refused(503, 'NoNetworkAvailable', 'POST', '/v2.0/networks', {
        network: { 'provider:network_type': 'gre' },
      });
      await cleanAll();
    });

    test('concurrent network creates never share a segmentation id', async () => {
      const created = await Promise.all(
        Array.from({ length: 20 }, (_, i) => net({ name: `c${i}` })),
      );
      const ids = created.map((n) => n['provider:segmentation_id']);
      assert.equal(new Set(ids).size, 20);
      assert.deepEqual(
        [...ids].sort((x, y) => (x ?? 0) - (y ?? 0)),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      await cleanAll();
    });

    test('control characters, unknown and read-only attributes are refused naming the field', async () => {
      const n = await net({ name: 'ok' });
      const e1 = await refused(400, 'BadRequest', 'POST', '/v2.0/networks', {
        network: { name: 'bad\nname' },
      });
      assert.match(e1.message, /network\.name/);
      await refused(400, 'BadRequest', 'PUT', `/v2.0/networks/${n.id}`, {
        network: { description: 'tab\there' },
      });
      await refused(400, 'BadRequest', 'PUT', `/v2.0/networks/${n.id}`, {
        network: { status: 'DOWN' },
      });
      const e2 = await refused(400, 'BadRequest', 'POST', '/v2.0/networks', {
        network: { colour: 'red' },
      });
      assert.match(e2.message, /network\.colour/);
      await refused(
        403,
        'PolicyNotAuthorized',
        'POST',
        '/v2.0/networks',
        {
          network: { 'provider:network_type': 'gre' },
        },
        MEMBER,
      );
      const s = await subnet(n.id, '10.9.0.0/24');
      await refused(400, 'BadRequest', 'POST', '/v2.0/subnets', {
        subnet: { network_id: n.id, cidr: '10.8.0.0/24', name: 'a\u0000b' },
      });
      await refused(400, 'BadRequest', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, name: 'line\r\n' },
      });
      await refused(400, 'BadRequest', 'PUT', `/v2.0/subnets/${s.id}`, {
        subnet: { cidr: '10.7.0.0/24' },
      });
      await cleanAll();
    });

    test('subnets: defaults, validation, overlaps, update and the network view', async () => {
      const n = await net({ name: 'sn' });
      tick();
      const s = await subnet(n.id, '10.0.0.0/24', { name: 's1', dns_nameservers: ['8.8.8.8'] });
      assert.equal(s.gateway_ip, '10.0.0.1');
      assert.deepEqual(s.allocation_pools, [{ start: '10.0.0.2', end: '10.0.0.254' }]);
      assert.equal(s.enable_dhcp, true);
      assert.equal(s.ip_version, 4);
      assert.deepEqual(s.dns_nameservers, ['8.8.8.8']);
      assert.deepEqual(s.host_routes, []);
      const shown = await ok<Network>('GET', `/v2.0/networks/${n.id}`, 'network');
      assert.deepEqual(shown.subnets, [s.id]);
      assert.equal(shown.revision_number, 2, 'adding a subnet bumps the network');

      const base = { network_id: n.id, ip_version: 4 };
      const e = await refused(400, 'BadRequest', 'POST', '/v2.0/subnets', {
        subnet: { ...base, cidr: '10.1.0.5/24' },
      });
      assert.match(e.message, /cidr.*'10\.1\.0\.0\/24' is recommended/);
      await refused(400, 'BadRequest', 'POST', '/v2.0/subnets', {
        subnet: { ...base, cidr: '10.1.0.0/33' },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/subnets', {
        subnet: { ...base, cidr: '10.0.0.128/25' },
      });
      await refused(400, 'OutOfBoundsAllocationPool', 'POST', '/v2.0/subnets', {
        subnet: {
          ...base,
          cidr: '10.1.0.0/24',
          allocation_pools: [{ start: '10.1.0.10', end: '10.1.1.5' }],
        },
      });
      await refused(400, 'OutOfBoundsAllocationPool', 'POST', '/v2.0/subnets', {
        subnet: {
          ...base,
          cidr: '10.1.0.0/24',
          allocation_pools: [{ start: '10.1.0.0', end: '10.1.0.5' }],
        },
      });
      await refused(409, 'OverlappingAllocationPools', 'POST', '/v2.0/subnets', {
        subnet: {
          ...base,
          cidr: '10.1.0.0/24',
          allocation_pools: [
            { start: '10.1.0.10', end: '10.1.0.20' },
            { start: '10.1.0.20', end: '10.1.0.30' },
          ],
        },
      });
      await refused(409, 'GatewayConflictWithAllocationPools', 'POST', '/v2.0/subnets', {
        subnet: {
          ...base,
          cidr: '10.1.0.0/24',
          gateway_ip: '10.1.0.15',
          allocation_pools: [{ start: '10.1.0.10', end: '10.1.0.20' }],
        },
      });
      await refused(400, 'InvalidAllocationPool', 'POST', '/v2.0/subnets', {
        subnet: {
          ...base,
          cidr: '10.1.0.0/24',
          allocation_pools: [{ start: '10.1.0.20', end: '10.1.0.10' }],
        },
      });
      await refused(400, 'BadRequest', 'POST', '/v2.0/subnets', {
        subnet: { ...base, cidr: '10.1.0.0/24', dns_nameservers: ['1.1.1.1', '1.1.1.1'] },
      });
      await refused(400, 'BadRequest', 'POST', '/v2.0/subnets', {
        subnet: {
          ...base,
          cidr: '10.1.0.0/24',
          host_routes: [{ destination: '10.2.0.1/16', nexthop: '10.1.0.1' }],
        },
      });
      await refused(400, 'InvalidInput', 'POST', '/v2.0/subnets', {
        subnet: { ...base, cidr: '10.1.0.0/24', ip_version: 6 },
      });
      await refused(404, 'NetworkNotFound', 'POST', '/v2.0/subnets', {
        subnet: { ...base, network_id: crypto.randomUUID(), cidr: '10.1.0.0/24' },
      });

      const noGw = await subnet(n.id, '10.1.0.0/29', {
        gateway_ip: null,
        host_routes: [{ destination: '192.168.0.0/16', nexthop: '10.1.0.6' }],
      });
      assert.equal(noGw.gateway_ip, null);
      assert.deepEqual(noGw.allocation_pools, [{ start: '10.1.0.1', end: '10.1.0.6' }]);
      const mid = await subnet(n.id, '10.2.0.0/24', { gateway_ip: '10.2.0.100' });
      assert.deepEqual(mid.allocation_pools, [
        { start: '10.2.0.1', end: '10.2.0.99' },
        { start: '10.2.0.101', end: '10.2.0.254' },
      ]);
      const other = await net({ name: 'other' });
      const same = await subnet(other.id, '10.0.0.0/24');
      assert.equal(same.cidr, '10.0.0.0/24', 'the same cidr on another network is allowed');
      const v6 = await ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: other.id, cidr: '2001:DB8:0:1::/64', ip_version: 6 },
      });
      assert.equal(v6.cidr, '2001:db8:0:1::/64');
      assert.equal(v6.gateway_ip, '2001:db8:0:1::1');
      assert.deepEqual(v6.allocation_pools, [
        { start: '2001:db8:0:1::2', end: '2001:db8:0:1:ffff:ffff:ffff:ffff' },
      ]);

      const updated = await ok<Subnet>('PUT', `/v2.0/subnets/${s.id}`, 'subnet', {
        subnet: {
          name: 's1b',
          enable_dhcp: false,
          dns_nameservers: [],
          allocation_pools: [{ start: '10.0.0.10', end: '10.0.0.20' }],
        },
      });
      assert.equal(updated.revision_number, 2);
      assert.equal(updated.enable_dhcp, false);
      assert.deepEqual(updated.allocation_pools, [{ start: '10.0.0.10', end: '10.0.0.20' }]);
      await refused(409, 'GatewayConflictWithAllocationPools', 'PUT', `/v2.0/subnets/${s.id}`, {
        subnet: { gateway_ip: '10.0.0.15' },
      });
      assert.deepEqual(
        (await list<Subnet>('subnets', `?network_id=${n.id}&cidr=10.2.0.0/24`)).map((x) => x.id),
        [mid.id],
      );
      assert.equal((await call('DELETE', `/v2.0/subnets/${mid.id}`)).status, 204);
      assert.deepEqual(
        (await ok<Network>('GET', `/v2.0/networks/${n.id}`, 'network')).subnets.sort(),
        [s.id, noGw.id].sort(),
      );
      await cleanAll();
      assert.deepEqual(await list('subnets'), [], 'deleting a network deletes its subnets');
    });

    test('ports: IPAM sequence, requested, taken, outside, MACs, binding, status, free on delete', async () => {
      const n = await net({ name: 'pn' });
      const s = await subnet(n.id, '10.0.0.0/24');
      const p1 = await port(n.id, { name: 'p1', device_id: 'vm-1', device_owner: 'compute:nova' });
      const p2 = await port(n.id, { device_id: 'vm-2', device_owner: 'compute:nova' });
      const p3 = await port(n.id, { device_id: 'vm-3', device_owner: 'network:router_interface' });
      assert.deepEqual(
        [p1, p2, p3].map((p) => p.fixed_ips),
        ['10.0.0.2', '10.0.0.3', '10.0.0.4'].map((ip) => [{ subnet_id: s.id, ip_address: ip }]),
      );
      assert.match(p1.mac_address, /^fa:16:3e(:[0-9a-f]{2}){3}$/);
      assert.equal(p1.status, 'DOWN');
      assert.equal(p1['binding:vif_type'], 'unbound');
      assert.equal(p1['binding:vnic_type'], 'normal');
      const [dflt] = await db.query<{ security_group_id: string }>(
        'SELECT security_group_id FROM default_security_groups WHERE project_id = ?',
        [p1.project_id],
      );
      assert.deepEqual(p1.security_groups, [dflt?.security_group_id], "the project's default");
      assert.deepEqual(p3.security_groups, [], 'none on a network:* port');
      assert.equal(p1.revision_number, 1);

      const p5 = await port(n.id, { fixed_ips: [{ subnet_id: s.id, ip_address: '10.0.0.50' }] });
      assert.equal(p5.fixed_ips[0]?.ip_address, '10.0.0.50');
      const byIp = await port(n.id, { fixed_ips: [{ ip_address: '10.0.0.51' }] });
      assert.deepEqual(byIp.fixed_ips, [{ subnet_id: s.id, ip_address: '10.0.0.51' }]);
      const none = await port(n.id, { fixed_ips: [] });
      assert.deepEqual(none.fixed_ips, []);
      await refused(409, 'IpAddressAlreadyAllocated', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, fixed_ips: [{ subnet_id: s.id, ip_address: '10.0.0.50' }] },
      });
      await refused(409, 'IpAddressAlreadyAllocated', 'POST', '/v2.0/ports', {
        port: {
          network_id: n.id,
          fixed_ips: [{ ip_address: '10.0.0.60' }, { ip_address: '10.0.0.60' }],
        },
      });
      await refused(400, 'InvalidIpForSubnet', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, fixed_ips: [{ subnet_id: s.id, ip_address: '10.0.1.5' }] },
      });
      await refused(400, 'InvalidIpForSubnet', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, fixed_ips: [{ subnet_id: s.id, ip_address: '10.0.0.255' }] },
      });
      await refused(400, 'InvalidIpForNetwork', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, fixed_ips: [{ ip_address: '192.168.1.1' }] },
      });
      await refused(400, 'BadRequest', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, fixed_ips: [{ ip_address: '10.0.0.300' }] },
      });
      await refused(404, 'NetworkNotFound', 'POST', '/v2.0/ports', {
        port: { network_id: crypto.randomUUID() },
      });

      await refused(409, 'MacAddressInUse', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, mac_address: p1.mac_address.toUpperCase() },
      });
      await refused(400, 'BadRequest', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, mac_address: '01:00:5e:00:00:01' },
      });
      await refused(400, 'BadRequest', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, mac_address: 'fa:16:3e:00:00' },
      });
      const other = await net({ name: 'other' });
      const sameMac = await port(other.id, { mac_address: p1.mac_address });
      assert.equal(sameMac.mac_address, p1.mac_address, 'MACs are unique per network only');

      assert.deepEqual(
        (await list<Port>('ports', '?device_id=vm-1&device_id=vm-3')).map((p) => p.id).sort(),
        [p1.id, p3.id].sort(),
      );
      assert.deepEqual(
        (await list<Port>('ports', '?device_owner=compute:nova')).map((p) => p.id).sort(),
        [p1.id, p2.id].sort(),
      );
      assert.deepEqual(
        (await list<Port>('ports', `?network_id=${other.id}`)).map((p) => p.id),
        [sameMac.id],
      );
      assert.deepEqual(
        (await list<Port>('ports', '?fixed_ips=ip_address%3D10.0.0.50')).map((p) => p.id),
        [p5.id],
      );

      tick();
      const bound = await ok<Port>('PUT', `/v2.0/ports/${p1.id}`, 'port', {
        port: { name: 'p1b', 'binding:host_id': 'compute-1' },
      });
      assert.equal(bound['binding:vif_type'], 'ovs');
      assert.equal(bound.revision_number, 2);
      await refused(409, 'PortBound', 'PUT', `/v2.0/ports/${p1.id}`, {
        port: { mac_address: 'fa:16:3e:aa:bb:cc' },
      });
      await refused(
        403,
        'PolicyNotAuthorized',
        'PUT',
        `/v2.0/ports/${p2.id}`,
        {
          port: { 'binding:host_id': 'x' },
        },
        MEMBER,
      );
      assert.equal(await setPortStatus(db, p1.id, 'ACTIVE', now), true);
      assert.equal(await setPortStatus(db, p1.id, 'ACTIVE', now), true);
      const active = await ok<Port>('GET', `/v2.0/ports/${p1.id}`, 'port');
      assert.equal(active.status, 'ACTIVE');
      assert.equal(active.revision_number, 3, 'a status change bumps once; a repeat does not');
      assert.equal(await setPortStatus(db, crypto.randomUUID(), 'ACTIVE', now), false);

      const moved = await ok<Port>('PUT', `/v2.0/ports/${p2.id}`, 'port', {
        port: { fixed_ips: [{ subnet_id: s.id, ip_address: '10.0.0.70' }] },
      });
      assert.deepEqual(moved.fixed_ips, [{ subnet_id: s.id, ip_address: '10.0.0.70' }]);
      const kept = await ok<Port>('PUT', `/v2.0/ports/${p2.id}`, 'port', {
        port: { fixed_ips: [{ subnet_id: s.id }, { ip_address: '10.0.0.71' }] },
      });
      assert.deepEqual(
        kept.fixed_ips.map((f) => f.ip_address),
        ['10.0.0.70', '10.0.0.71'],
      );
      await refused(409, 'IpAddressAlreadyAllocated', 'PUT', `/v2.0/ports/${p2.id}`, {
        port: { fixed_ips: [{ ip_address: '10.0.0.50' }] },
      });
      // 10.0.0.3 was freed by the move: the next automatic allocation takes it again.
      assert.equal((await port(n.id)).fixed_ips[0]?.ip_address, '10.0.0.3');
      assert.equal((await call('DELETE', `/v2.0/ports/${p3.id}`)).status, 204);
      assert.equal((await call('DELETE', `/v2.0/ports/${p3.id}`)).status, 404);
      assert.equal((await port(n.id)).fixed_ips[0]?.ip_address, '10.0.0.4', 'freed on delete');
      await cleanAll();
    });

    test('in use: subnet with ports 409, network with ports 409, DHCP ports do not count', async () => {
      const n = await net({ name: 'busy' });
      const s = await subnet(n.id, '10.5.0.0/24');
      const dhcp = await port(n.id, { device_owner: 'network:dhcp', device_id: `dhcp-${n.id}` });
      const vm = await port(n.id, { device_owner: 'compute:nova' });
      await refused(409, 'SubnetInUse', 'DELETE', `/v2.0/subnets/${s.id}`);
      await refused(409, 'NetworkInUse', 'DELETE', `/v2.0/networks/${n.id}`);
      assert.equal((await call('DELETE', `/v2.0/ports/${vm.id}`)).status, 204);
      // Only the DHCP port is left: the subnet goes, taking the DHCP port's address along.
      assert.equal((await call('DELETE', `/v2.0/subnets/${s.id}`)).status, 204);
      assert.deepEqual((await ok<Port>('GET', `/v2.0/ports/${dhcp.id}`, 'port')).fixed_ips, []);
      await subnet(n.id, '10.6.0.0/24');
      assert.equal((await call('DELETE', `/v2.0/networks/${n.id}`)).status, 204);
      assert.deepEqual(await state(), { networks: [], subnets: [], ports: [] });
    });

    test('50 parallel port creates on a /26 get distinct addresses; beyond the pool 409', async () => {
      const n = await net({ name: 'race' });
      const s = await subnet(n.id, '10.7.0.0/26');
      const poolSize = 61; // .2 .. .62
      const first = await Promise.all(Array.from({ length: 50 }, () => port(n.id)));
      const ips = first.map((p) => p.fixed_ips[0]?.ip_address);
      assert.equal(new Set(ips).size, 50, 'no address handed out twice');
      const macs = new Set(first.map((p) => p.mac_address));
      assert.equal(macs.size, 50);
      const more = await Promise.all(
        Array.from({ length: 20 }, () =>
          call('POST', '/v2.0/ports', { port: { network_id: n.id } }),
        ),
      );
      const created = more.filter((r) => r.status === 201);
      const failed = more.filter((r) => r.status !== 201);
      assert.equal(created.length, poolSize - 50);
      assert.equal(failed.length, 20 - (poolSize - 50));
      for (const f of failed) assert.equal(err(f).type, 'IpAddressGenerationFailure');
      const all = (await list<Port>('ports', `?network_id=${n.id}`)).map(
        (p) => p.fixed_ips[0]?.ip_address,
      );
      assert.equal(all.length, poolSize);
      assert.equal(new Set(all).size, poolSize);
      assert.deepEqual(
        [...all].sort((a, b) => Number(a?.split('.')[3]) - Number(b?.split('.')[3])),
        Array.from({ length: poolSize }, (_, i) => `10.7.0.${i + 2}`),
      );
      await refused(409, 'IpAddressGenerationFailure', 'POST', '/v2.0/ports', {
        port: { network_id: n.id, fixed_ips: [{ subnet_id: s.id }] },
      });
      await cleanAll();
    });
  });
}
