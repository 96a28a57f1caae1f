/**
 * Issue 10, the API's input validation, through buildApp() + inject on both database
 * engines: one test per finding (subnet addresses of the wrong IP version or unusable as
 * nameservers, canonical addresses, CIDRs DHCP cannot serve, the gateway held by a
 * non-router port, names counted in characters and free of lone surrogates and of
 * unprintable characters).
 *
 * Invariant under test: every refused request answers Neutron's (or Nova's) 400 naming the
 * field, and leaves networks, subnets and ports exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Network, Port, Subnet } from '../../contracts/network.ts';
import { testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-xyz';

type Body = Record<string, unknown>;
interface Res {
  status: number;
  body: Body | null;
}
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

const neutronErr = (r: Res) =>
  (r.body as { NeutronError: { type: string; message: string } }).NeutronError;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`API input hardening on ${engine}`, () => {
    const api = testApi(engine, { settings: { adminToken: ADMIN } });

    const call = async (method: Method, url: string, payload?: unknown): Promise<Res> => {
      const res = await api.app.inject({
        method,
        url,
        payload: payload as string,
        headers: { 'x-auth-token': ADMIN, 'content-type': 'application/json' },
      });
      return { status: res.statusCode, body: res.body ? (res.json() as Body) : null };
    };
    const ok = async <T>(method: 'POST' | 'PUT' | 'GET', url: string, key: string, body?: Body) => {
      const r = await call(method, url, body);
      assert.equal(r.status, method === 'POST' ? 201 : 200, JSON.stringify(r.body));
      return (r.body as Record<string, T>)[key] as T;
    };
    const net = (name = 'n') =>
      ok<Network>('POST', '/v2.0/networks', 'network', { network: { name } });
    const subnet = (network_id: string, cidr: string, extra: Body = {}) =>
      ok<Subnet>('POST', '/v2.0/subnets', 'subnet', { subnet: { network_id, cidr, ...extra } });
    const port = (network_id: string, extra: Body = {}) =>
      ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id, ...extra } });
    const state = async () => {
      const all: Record<string, unknown> = {};
      for (const c of ['networks', 'subnets', 'ports'])
        all[c] = ((await call('GET', `/v2.0/${c}`)).body as Body)[c];
      return all;
    };
    /** Refused with 400/`type`, a message matching `message`, and nothing changed. */
    const refused = async (
      type: string,
      message: RegExp,
      method: 'POST' | 'PUT',
      url: string,
      payload: unknown,
      status = 400,
    ) => {
      const before = await state();
      const r = await call(method, url, payload);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(neutronErr(r).type, type, neutronErr(r).message);
      assert.match(neutronErr(r).message, message);
      assert.deepEqual(await state(), before, 'a refused request changes nothing');
    };

    test('1: every subnet address has the subnet IP version, on create and update; nameservers are queryable', async () => {
      const n = await net('f1');
      const v4 = await subnet(n.id, '10.41.0.0/24', { dns_nameservers: ['10.41.0.53'] });
      const v6 = await subnet(n.id, '2001:db8:41::/64', { ip_version: 6 });
      const put = (id: string, body: Body) =>
        ['PUT', `/v2.0/subnets/${id}`, { subnet: body }] as const;
      await refused(
        'InvalidInput',
        /^Invalid input for operation: dns_nameserver '2001:db8::53' does not match the ip_version '4'\.$/,
        ...put(v4.id, { dns_nameservers: ['2001:db8::53'] }),
      );
      await refused(
        'InvalidInput',
        /dns_nameserver '10\.0\.0\.53' does not match the ip_version '6'/,
        ...put(v6.id, { dns_nameservers: ['10.0.0.53'] }),
      );
      await refused(
        'InvalidInput',
        /gateway_ip '2001:db8::1' does not match the ip_version '4'/,
        ...put(v4.id, { gateway_ip: '2001:db8::1' }),
      );
      await refused(
        'InvalidInput',
        /nexthop '2001:db8:41::9' does not match the ip_version '4'/,
        ...put(v4.id, { host_routes: [{ destination: '10.9.0.0/16', nexthop: '2001:db8:41::9' }] }),
      );
      await refused(
        'InvalidInput',
        /destination '2001:db8:9::\/48' does not match the ip_version '4'/,
        ...put(v4.id, { host_routes: [{ destination: '2001:db8:9::/48', nexthop: '10.41.0.9' }] }),
      );
      const create = (cidr: string, extra: Body) =>
        ['POST', '/v2.0/subnets', { subnet: { network_id: n.id, cidr, ...extra } }] as const;
      await refused(
        'InvalidInput',
        /dns_nameserver '::ffff:1\.2\.3\.4' does not match the ip_version '4'/,
        ...create('10.42.0.0/24', { dns_nameservers: ['::ffff:1.2.3.4'] }),
      );
      await refused(
        'InvalidInput',
        /gateway_ip '10\.43\.0\.1' does not match the ip_version '6'/,
        ...create('2001:db8:43::/64', { gateway_ip: '10.43.0.1' }),
      );
      for (const [addr, cidr] of [
        ['::', '2001:db8:44::/64'],
        ['0:0::0', '2001:db8:44::/64'],
        ['0.0.0.0', '10.44.0.0/24'],
      ] as const)
        await refused(
          'BadRequest',
          /^Invalid input for dns_nameservers\. Reason: .* is the unspecified address/,
          ...create(cidr, { dns_nameservers: [addr] }),
        );
      await refused(
        'BadRequest',
        /dns_nameservers.*'::ffff:1\.2\.3\.4' is an IPv4-mapped IPv6 address, which a DHCPv6 client cannot use/,
        ...create('2001:db8:45::/64', { dns_nameservers: ['::ffff:1.2.3.4'] }),
      );
      await refused(
        'BadRequest',
        /IPv4-mapped/,
        ...put(v6.id, { dns_nameservers: ['2001:db8::53', '::FFFF:0102:0304'] }),
      );
      const same = await ok<Subnet>('PUT', `/v2.0/subnets/${v4.id}`, 'subnet', {
        subnet: { dns_nameservers: ['10.41.0.54'] },
      });
      assert.deepEqual(same.dns_nameservers, ['10.41.0.54']);
    });

    test('2: addresses are stored canonical; IPv4-mapped ones as ::ffff:a.b.c.d; mapped CIDRs refused', async () => {
      const n = await net('f2');
      const s = await subnet(n.id, '2001:DB8:0:5::/64', {
        ip_version: 6,
        gateway_ip: '2001:DB8:0:5::0:1',
        allocation_pools: [{ start: '2001:DB8:0:5::0:10', end: '2001:db8:0:5:0:0:0:20' }],
        dns_nameservers: ['2001:DB8::0:53'],
        host_routes: [
          { destination: '2001:DB8:1::/48', nexthop: '2001:db8:0:5:0::1:1' },
          { destination: '::FFFF:0:0/96', nexthop: '2001:db8:0:5::1:1' },
        ],
      });
      assert.equal(s.cidr, '2001:db8:0:5::/64');
      assert.equal(s.gateway_ip, '2001:db8:0:5::1');
      assert.deepEqual(s.allocation_pools, [
        { start: '2001:db8:0:5::10', end: '2001:db8:0:5::20' },
      ]);
      assert.deepEqual(s.dns_nameservers, ['2001:db8::53']);
      assert.deepEqual(s.host_routes, [
        { destination: '2001:db8:1::/48', nexthop: '2001:db8:0:5::1:1' },
        { destination: '::ffff:0.0.0.0/96', nexthop: '2001:db8:0:5::1:1' },
      ]);
      const p = await port(n.id, {
        fixed_ips: [{ subnet_id: s.id, ip_address: '2001:DB8:0:5::0:15' }],
      });
      assert.deepEqual(p.fixed_ips, [{ subnet_id: s.id, ip_address: '2001:db8:0:5::15' }]);
      const found = (await call('GET', '/v2.0/ports?fixed_ips=ip_address%3D2001:db8:0:5:0:0:0:15'))
        .body as { ports: Port[] };
      assert.deepEqual(
        found.ports.map((x) => x.id),
        [p.id],
      );
      for (const cidr of ['::ffff:10.0.0.0/120', '::ffff:0:0/96', '::/64'])
        await refused(
          'BadRequest',
          /^Invalid input for cidr\. Reason: .* overlaps ::ffff:0:0\/96, the IPv4-mapped addresses/,
          'POST',
          '/v2.0/subnets',
          { subnet: { network_id: n.id, cidr, ip_version: 6, enable_dhcp: false } },
        );
    });

    test('3: DHCP is refused on loopback, multicast, link-local, 0.0.0.0/x and too long prefixes; /0 never', async () => {
      const n = await net('f3');
      const create = (cidr: string, extra: Body = {}) =>
        ['POST', '/v2.0/subnets', { subnet: { network_id: n.id, cidr, ...extra } }] as const;
      const cases: [string, RegExp][] = [
        [
          '127.0.0.0/24',
          /^Invalid input for operation: Loopback IP subnet is not supported if enable_dhcp is True\.$/,
        ],
        ['224.0.0.0/24', /Multicast IP subnet is not supported if enable_dhcp is True/],
        ['ff00::/64', /Multicast IP subnet is not supported if enable_dhcp is True/],
        ['169.254.0.0/24', /Link-local IP subnet is not supported if enable_dhcp is True/],
        ['fe80::/64', /Link-local IP subnet is not supported if enable_dhcp is True/],
        [
          '0.0.0.0/8',
          /First IP '0\.0\.0\.0' of network is not supported if enable_dhcp is True\.$/,
        ],
        ['0.0.0.0/0', /First IP '0\.0\.0\.0' of network is not supported/],
        ['::1/128', /Subnet has a prefix length that is incompatible with DHCP service enabled/],
        [
          '10.46.0.0/31',
          /Subnet has a prefix length that is incompatible with DHCP service enabled/,
        ],
        ['2001:db8:46::/127', /prefix length that is incompatible with DHCP/],
        ['::/0', /^Invalid input for operation: 0 is not allowed as CIDR prefix length\.$/],
      ];
      for (const [cidr, message] of cases) {
        await refused('InvalidInput', message, ...create(cidr));
        await refused('InvalidInput', message, ...create(cidr, { enable_dhcp: 'True' }));
      }
      await refused(
        'InvalidInput',
        /0 is not allowed as CIDR prefix length/,
        ...create('0.0.0.0/0', { enable_dhcp: false }),
      );
      const lo = await subnet(n.id, '127.0.0.0/24', { enable_dhcp: false });
      const ll = await subnet(n.id, 'fe80::/64', { enable_dhcp: false });
      await refused('InvalidInput', /Loopback IP subnet/, 'PUT', `/v2.0/subnets/${lo.id}`, {
        subnet: { enable_dhcp: true },
      });
      await refused('InvalidInput', /Link-local IP subnet/, 'PUT', `/v2.0/subnets/${ll.id}`, {
        subnet: { enable_dhcp: 'true', name: 'x' },
      });
      const renamed = await ok<Subnet>('PUT', `/v2.0/subnets/${lo.id}`, 'subnet', {
        subnet: { enable_dhcp: false, name: 'lo' },
      });
      assert.equal(renamed.name, 'lo');
    });

    test('3b: IPv6 the agents cannot serve is refused: DHCPv6 under /64, IPv6 under an MTU of 1280', async () => {
      const n = await net('f3b');
      await refused(
        'InvalidInput',
        /IPv6 subnets with DHCP enabled need a prefix length of at least 64 .*got \/56/,
        'POST',
        '/v2.0/subnets',
        { subnet: { network_id: n.id, cidr: '2001:db8:3b::/56', ip_version: 6 } },
      );
      await subnet(n.id, '2001:db8:3b::/56', { ip_version: 6, enable_dhcp: false });
      const small = await ok<Network>('POST', '/v2.0/networks', 'network', {
        network: { name: 'f3b-small', mtu: 1200 },
      });
      await refused(
        'InvalidInput',
        /IPv6 protocol requires a minimum MTU of 1280, while the configured value is 1200/,
        'POST',
        '/v2.0/subnets',
        { subnet: { network_id: small.id, cidr: '2001:db8:3c::/64', ip_version: 6 } },
      );
      await subnet(small.id, '10.43.0.0/24');
      await refused(
        'InvalidInput',
        /IPv6 protocol requires a minimum MTU of 1280, while the configured value is 1279/,
        'PUT',
        `/v2.0/networks/${n.id}`,
        { network: { mtu: 1279 } },
      );
      await ok('PUT', `/v2.0/networks/${small.id}`, 'network', { network: { mtu: 1000 } });
    });

    test('4: only a router interface port holds the gateway; IPAM never hands it out', async () => {
      const n = await net('f4');
      const s = await subnet(n.id, '10.47.0.0/29');
      assert.equal(s.gateway_ip, '10.47.0.1');
      const gw = [{ subnet_id: s.id, ip_address: '10.47.0.1' }];
      const ports = '/v2.0/ports';
      const message =
        /^IP address 10\.47\.0\.1 is not a valid IP for the specified subnet: it is the gateway of subnet/;
      await refused('InvalidIpForSubnet', message, 'POST', ports, {
        port: { network_id: n.id, device_owner: 'compute:nova', fixed_ips: gw },
      });
      await refused('InvalidIpForSubnet', message, 'POST', ports, {
        port: { network_id: n.id, fixed_ips: [{ ip_address: '10.47.0.1' }] },
      });
      const vm = await port(n.id, { device_owner: 'compute:nova' });
      await refused('InvalidIpForSubnet', message, 'PUT', `${ports}/${vm.id}`, {
        port: { fixed_ips: gw },
      });
      const router = await port(n.id, { device_owner: 'network:router_interface', fixed_ips: gw });
      assert.deepEqual(router.fixed_ips, gw);
      await refused('InvalidIpForSubnet', message, 'PUT', `${ports}/${router.id}`, {
        port: { device_owner: 'compute:nova' },
      });
      const snat = await ok<Port>('PUT', `${ports}/${router.id}`, 'port', {
        port: { device_owner: 'network:router_centralized_snat', name: 'snat' },
      });
      assert.deepEqual(snat.fixed_ips, gw);
      const rest = [];
      for (let i = 0; i < 4; i++) rest.push(await port(n.id));
      const handed = [vm, ...rest].map((p) => p.fixed_ips[0]?.ip_address).sort();
      assert.deepEqual(handed, ['10.47.0.2', '10.47.0.3', '10.47.0.4', '10.47.0.5', '10.47.0.6']);
      await refused(
        'IpAddressGenerationFailure',
        /No more IP addresses/,
        'POST',
        ports,
        {
          port: { network_id: n.id },
        },
        409,
      );
    });

    test('5: names count characters, refuse lone surrogates, and Nova names unprintable ones', async () => {
      const emoji = '\u{1F600}';
      const wide = await net(emoji.repeat(255));
      assert.equal(wide.name, emoji.repeat(255));
      await refused(
        'BadRequest',
        /network\.name: must be at most 255 characters/,
        'POST',
        '/v2.0/networks',
        {
          network: { name: emoji.repeat(256) },
        },
      );
      await refused(
        'BadRequest',
        /network\.name: must be well-formed Unicode \(it contains a lone surrogate, U\+D800\)/,
        'POST',
        '/v2.0/networks',
        '{"network":{"name":"a\\ud800b"}}',
      );
      await refused('BadRequest', /port\.description: must be well-formed/, 'POST', '/v2.0/ports', {
        port: { network_id: wide.id, description: 'x\udc00' },
      });
      await refused(
        'BadRequest',
        /port\.binding:profile\.k: must be well-formed/,
        'POST',
        '/v2.0/ports',
        {
          port: { network_id: wide.id, 'binding:profile': { k: 'v\ud800' } },
        },
      );
      const server = (name: string) =>
        call('POST', '/v2.1/servers', { server: { name, flavorRef: '1', imageRef: 'x' } });
      for (const [name, reason] of [
        [
          'vm\u2028one',
          /server\.name\. Value: must be printable characters; U\+2028 \(character 3\) is not printable/,
        ],
        ['vm\u200bone', /U\+200B \(character 3\) is not printable/],
        ['\u00a0vm', /server\.name\. Value: must not start or end with whitespace/],
        ['vm\u3000', /must not start or end with whitespace/],
      ] as const) {
        const r = await server(name);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.match((r.body as { badRequest: { message: string } }).badRequest.message, reason);
      }
      const flavor = await call('POST', '/v2.1/flavors', {
        flavor: { name: 'f\u2029x', vcpus: 1, ram: 64, disk: 0 },
      });
      assert.equal(flavor.status, 400);
      assert.match(
        (flavor.body as { badRequest: { message: string } }).badRequest.message,
        /flavor\.name\. Value: must be printable characters; U\+2029/,
      );
    });
  });
}
