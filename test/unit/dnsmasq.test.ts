/**
 * host/dnsmasq rendering (hosts, addn_hosts, opts, argv) against golden files, refusal of
 * unsafe values naming the field, atomic file writes, the reload planner, and the address
 * arithmetic of host/ip/inet.ts it relies on.
 *
 * Golden files live in test/golden/dnsmasq/; `KUMO_UPDATE_GOLDEN=1` rewrites them (then
 * review the diff).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { DhcpNetwork } from '../../contracts/dhcp.ts';
import { dnsmasqArgv, dnsmasqIdentity, dnsmasqPaths } from '../../host/dnsmasq/argv.ts';
import { checkNetwork, hostNameFor } from '../../host/dnsmasq/check.ts';
import { readDnsmasqFiles, writeNetworkFiles } from '../../host/dnsmasq/files.ts';
import { planReload } from '../../host/dnsmasq/reload.ts';
import { renderFiles } from '../../host/dnsmasq/render.ts';
import { canonicalIp, cidrSize, netmaskV4, networkAddress, parseCidr } from '../../host/ip/inet.ts';

const GOLDEN = join(import.meta.dirname, '..', 'golden', 'dnsmasq');
const NET = '7d3c1f2e-9a8b-4c5d-8e7f-0a1b2c3d4e5f';
const V4 = 'aaaaaaaa-1111-4222-8333-444444444444';
const V6 = 'bbbbbbbb-1111-4222-8333-444444444444';
const OFF = 'cccccccc-1111-4222-8333-444444444444';
const DHCP_PORT = '11111111-2222-4333-8444-555555555555';

function golden(name: string, actual: string) {
  const path = join(GOLDEN, name);
  if (process.env.KUMO_UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `golden file ${name}`);
}

/** Sets the value at a field path like `ports[2].fixed_ips[0].ip_address`. */
function setAt(root: unknown, path: string, value: unknown) {
  const keys = path.split(/[.[\]]+/).filter((k) => k !== '');
  const last = keys.pop() as string;
  let node = root as Record<string, unknown>;
  for (const k of keys) node = node[k] as Record<string, unknown>;
  assert.ok(last in node, `no field ${path}`);
  node[last] = value;
}

function sample(): DhcpNetwork {
  const dhcpPort = {
    id: DHCP_PORT,
    mac_address: 'fa:16:3e:00:00:02',
    device_owner: 'network:dhcp',
    fixed_ips: [
      { subnet_id: V4, ip_address: '10.9.0.2' },
      { subnet_id: V6, ip_address: '2001:db8:9::2' },
    ],
  };
  return {
    id: NET,
    revision_number: 7,
    mtu: 1450,
    subnets: [
      {
        id: V6,
        cidr: '2001:db8:9::/64',
        ip_version: '6',
        gateway_ip: '2001:db8:9::1',
        enable_dhcp: true,
        dns_nameservers: ['2001:db8:9::53'],
        host_routes: [],
        routed: false,
      },
      {
        id: V4,
        cidr: '10.9.0.0/24',
        ip_version: '4',
        gateway_ip: '10.9.0.1',
        enable_dhcp: true,
        dns_nameservers: ['10.9.0.53', '198.51.100.53'],
        host_routes: [
          { destination: '192.168.5.0/24', nexthop: '10.9.0.254' },
          { destination: '172.16.0.0/12', nexthop: '10.9.0.253' },
        ],
        routed: false,
      },
      {
        id: OFF,
        cidr: '198.51.100.0/24',
        ip_version: '4',
        gateway_ip: null,
        enable_dhcp: false,
        dns_nameservers: [],
        host_routes: [],
        routed: false,
      },
    ],
    ports: [
      {
        id: '99999999-0000-4000-8000-000000000002',
        mac_address: 'FA:16:3E:00:00:12',
        device_owner: 'compute:nova',
        fixed_ips: [
          { subnet_id: V4, ip_address: '10.9.0.12' },
          { subnet_id: V6, ip_address: '2001:DB8:9:0::C' },
          { subnet_id: OFF, ip_address: '198.51.100.7' },
        ],
      },
      dhcpPort,
      {
        id: '99999999-0000-4000-8000-000000000001',
        mac_address: 'fa:16:3e:00:00:11',
        device_owner: 'compute:nova',
        fixed_ips: [{ subnet_id: V4, ip_address: '10.9.0.11' }],
      },
    ],
    dhcp_port: dhcpPort,
  };
}

const argvOpts = { stateDir: `/var/lib/kumo/dhcp/${NET}`, interfaceName: 'tap11111111-22' };

describe('dnsmasq rendering', () => {
  test('hosts, addn_hosts and opts files match the golden files', () => {
    const files = renderFiles(sample());
    golden('host', files.hosts);
    golden('addn_hosts', files.addnHosts);
    golden('opts', files.opts);
    // Spot checks that do not depend on the golden files being right.
    assert.match(files.hosts, /^fa:16:3e:00:00:11,host-10-9-0-11\.openstacklocal,10\.9\.0\.11$/m);
    assert.match(
      files.hosts,
      /^fa:16:3e:00:00:12,host-2001-db8-9--c\.openstacklocal,\[2001:db8:9::c\]$/m,
    );
    assert.doesNotMatch(files.hosts, /198\.51\.100\.7/, 'DHCP-disabled subnet is left out');
    assert.match(
      files.opts,
      new RegExp(
        `^tag:subnet-${V4},option:classless-static-route,192\\.168\\.5\\.0/24,10\\.9\\.0\\.254,172\\.16\\.0\\.0/12,10\\.9\\.0\\.253,0\\.0\\.0\\.0/0,10\\.9\\.0\\.1$`,
        'm',
      ),
    );
    assert.doesNotMatch(files.opts, new RegExp(OFF));
    // The MTU is forced in the argv; an unforced tagged line here would override it.
    assert.doesNotMatch(files.opts, /mtu/);
  });

  test('argv has Neutron’s shape and matches the golden file', () => {
    const argv = dnsmasqArgv(sample(), argvOpts);
    golden('argv', `${argv.join('\n')}\n`);
    assert.equal(argv[0], 'dnsmasq');
    assert.ok(argv.includes(`--dhcp-range=set:subnet-${V4},10.9.0.0,static,255.255.255.0,86400s`));
    assert.ok(argv.includes(`--dhcp-range=set:subnet-${V6},2001:db8:9::,static,64,86400s`));
    assert.ok(argv.includes('--dhcp-option-force=option:mtu,1450'));
    assert.ok(argv.includes('--dhcp-lease-max=16777216'), 'capped at 2^24 (IPv6 /64)');
    assert.ok(argv.includes(dnsmasqIdentity(dnsmasqPaths(argvOpts.stateDir))));
    assert.ok(!argv.some((a) => a.includes(OFF)));
  });

  test('rendering is deterministic: port and subnet order do not matter', () => {
    const a = sample();
    const b = sample();
    b.ports.reverse();
    b.subnets.reverse();
    assert.deepEqual(renderFiles(a), renderFiles(b));
    assert.deepEqual(dnsmasqArgv(a, argvOpts), dnsmasqArgv(b, argvOpts));
  });

  test('an IPv4-only network gets the exact lease max and no IPv6 lines', () => {
    const n = sample();
    n.subnets = n.subnets.filter((s) => s.id !== V6);
    for (const p of n.ports) p.fixed_ips = p.fixed_ips.filter((f) => f.subnet_id !== V6);
    const argv = dnsmasqArgv(n, argvOpts);
    assert.ok(argv.includes('--dhcp-lease-max=256'));
    assert.ok(!renderFiles(n).opts.includes('option6'));
  });

  test('no gateway: an empty router option; a 0.0.0.0/0 host route becomes the gateway', () => {
    const n = sample();
    const v4 = n.subnets.find((s) => s.id === V4);
    assert.ok(v4);
    v4.gateway_ip = null;
    v4.host_routes = [];
    assert.match(renderFiles(n).opts, new RegExp(`^tag:subnet-${V4},option:router$`, 'm'));
    v4.host_routes = [
      { destination: '0.0.0.0/0', nexthop: '10.9.0.3' },
      { destination: '192.168.5.7/24', nexthop: '10.9.0.254' },
    ];
    const opts = renderFiles(n).opts;
    assert.match(opts, new RegExp(`^tag:subnet-${V4},option:router,10\\.9\\.0\\.3$`, 'm'));
    assert.match(
      opts,
      /classless-static-route,192\.168\.5\.0\/24,10\.9\.0\.254,0\.0\.0\.0\/0,10\.9\.0\.3$/m,
    );
  });

  test('a network without DHCP-enabled subnets has no argv', () => {
    const n = sample();
    for (const s of n.subnets) s.enable_dhcp = false;
    assert.equal(renderFiles(n).hosts, '');
    assert.throws(
      () => dnsmasqArgv(n, argvOpts),
      /subnets: the network has no DHCP-enabled subnet/,
    );
  });
});

describe('dnsmasq leaves an unsafe value out, names it, and serves the rest', () => {
  const P1 = '99999999-0000-4000-8000-000000000001';
  const P2 = '99999999-0000-4000-8000-000000000002';
  // [what, where the value goes, the value, the item reported, the field its reason names,
  //  an address still served]
  const cases: [string, string, string, string, string, string?][] = [
    [
      'MAC with a newline',
      'ports[2].mac_address',
      'fa:16:3e:00:00:11\nx',
      `port:${P1}`,
      'mac_address',
    ],
    [
      'MAC with a comma',
      'ports[0].mac_address',
      'fa:16:3e:00:00:12,x',
      `port:${P2}`,
      'mac_address',
    ],
    [
      'IP with a quote',
      'ports[2].fixed_ips[0].ip_address',
      '10.9.0.11"',
      `port:${P1}`,
      'fixed_ips[0].ip_address',
    ],
    [
      'IP with a zone id',
      'ports[0].fixed_ips[1].ip_address',
      'fe80::1%eth0',
      `port:${P2}`,
      'fixed_ips[1].ip_address',
    ],
    [
      'IP with leading zeros',
      'ports[2].fixed_ips[0].ip_address',
      '10.9.0.011',
      `port:${P1}`,
      'fixed_ips[0].ip_address',
    ],
    [
      'IP outside its subnet',
      'ports[2].fixed_ips[0].ip_address',
      '10.9.1.11',
      `port:${P1}`,
      'fixed_ips[0].ip_address',
    ],
    [
      'IP that is the gateway',
      'ports[2].fixed_ips[0].ip_address',
      '10.9.0.1',
      `port:${P1}`,
      'fixed_ips[0].ip_address',
    ],
    // Ports are taken by id: P1 keeps the address, P2's entry is left out.
    [
      'duplicate IP',
      'ports[2].fixed_ips[0].ip_address',
      '10.9.0.12',
      `port:${P2}`,
      'fixed_ips[0].ip_address',
    ],
    [
      'IPv6 address on an IPv4 subnet',
      'ports[2].fixed_ips[0].ip_address',
      '2001:db8:9::5',
      `port:${P1}`,
      'fixed_ips[0].ip_address',
    ],
    [
      'DNS server with a comma',
      'subnets[1].dns_nameservers[0]',
      '10.9.0.53,8.8.8.8',
      `subnet:${V4}`,
      'dns_nameservers[0]',
    ],
    [
      'DNS server with a #',
      'subnets[1].dns_nameservers[1]',
      '#8.8.8.8',
      `subnet:${V4}`,
      'dns_nameservers[1]',
    ],
    [
      'DNS server of the wrong family',
      'subnets[1].dns_nameservers[0]',
      '2001:db8::53',
      `subnet:${V4}`,
      'dns_nameservers[0]',
    ],
    [
      'route destination with a newline',
      'subnets[1].host_routes[0].destination',
      '192.168.5.0/24\ndhcp-script=/x',
      `subnet:${V4}`,
      'host_routes[0].destination',
    ],
    [
      'nexthop with a quote',
      'subnets[1].host_routes[1].nexthop',
      "10.9.0.253'",
      `subnet:${V4}`,
      'host_routes[1].nexthop',
    ],
    [
      'gateway of the wrong family',
      'subnets[1].gateway_ip',
      '2001:db8:9::1',
      `subnet:${V4}`,
      'gateway_ip',
    ],
    ['subnet id with a comma', 'subnets[0].id', 'x,option:router', 'subnet:subnets-0', 'id'],
    [
      'cidr with a space',
      'subnets[1].cidr',
      '10.9.0.0/24 ',
      `subnet:${V4}`,
      'cidr',
      '2001:db8:9::2',
    ],
  ];
  for (const [what, where, value, item, field, served = '10.9.0.2'] of cases) {
    test(what, () => {
      const n = sample();
      setAt(n, where, value);
      const checked = checkNetwork(n);
      const reported = checked.rejected.map((r) => `${r.resource}:${r.id}`);
      assert.deepEqual(reported, [item], JSON.stringify(checked.rejected));
      assert.match(
        checked.rejected[0]?.reason ?? '',
        new RegExp(`^${field.replace(/[[\]]/g, '\\$&')}: `),
      );
      const f = renderFiles(n);
      const argv = dnsmasqArgv(n, argvOpts).join(' ');
      // A port's value is left out of the hosts files, a subnet's out of everything.
      const kept = where.startsWith('ports')
        ? `${f.hosts}${f.addnHosts}`
        : `${f.hosts}${f.addnHosts}${f.opts}${argv}`;
      const esc = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const whole = new RegExp(`(^|[,[\\s])${esc}([\\],\\s]|$)`, 'm');
      if (what !== 'duplicate IP') assert.doesNotMatch(kept, whole, 'left out');
      assert.match(renderFiles(n).hosts, new RegExp(`,\\[?${served}\\]?\n`), 'the rest is served');
    });
  }

  test('an IPv6 address ending in :: gets a valid host name, and is served', () => {
    const n = sample();
    setAt(n, 'ports[2].fixed_ips[0]', { subnet_id: V6, ip_address: '2001:db8:9:0:1::' });
    assert.deepEqual(checkNetwork(n).rejected, []);
    assert.match(
      renderFiles(n).hosts,
      /^fa:16:3e:00:00:11,host-2001-db8-9-0-1--0\.openstacklocal,\[2001:db8:9:0:1::\]$/m,
    );
  });

  test('IPv6 the kernel or dnsmasq would refuse (MTU under 1280, DHCPv6 under /64) leaves only that subnet out', () => {
    const lowMtu = sample();
    lowMtu.mtu = 1200;
    const short = sample();
    setAt(short, 'subnets[0].cidr', '2001:db8::/56');
    for (const [n, why] of [
      [
        lowMtu,
        /^cidr: IPv6 needs an MTU of at least 1280; the network's is 1200 \(subnet left out\)$/,
      ],
      [short, /^cidr: DHCPv6 needs a prefix length of at least 64; the subnet's is 56/],
    ] as const) {
      const checked = checkNetwork(n);
      assert.deepEqual(
        checked.rejected.map((r) => `${r.resource}:${r.id}`),
        [`subnet:${V6}`],
      );
      assert.match(checked.rejected[0]?.reason ?? '', why);
      assert.deepEqual(
        checked.dhcpSubnets.map((x) => x.id),
        [V4],
      );
      assert.ok(!dnsmasqArgv(n, argvOpts).some((a) => a.includes('2001:db8')), 'no v6 range');
      assert.match(renderFiles(n).hosts, /,10\.9\.0\.11\n/);
    }
  });

  test('the network’s own attributes still fail it as a whole', () => {
    const n = sample();
    n.mtu = 40;
    assert.throws(() => checkNetwork(n), /^ValidationError: mtu:/);
  });

  test('domain with a quote, bad interface and state dir are refused', () => {
    assert.throws(
      () => renderFiles(sample(), { domain: 'open"stack' }),
      /^ValidationError: domain:/,
    );
    assert.throws(() => renderFiles(sample(), { domain: 'a,b' }), /domain/);
    assert.throws(
      () => dnsmasqArgv(sample(), { ...argvOpts, interfaceName: 'tap x' }),
      /interfaceName/,
    );
    assert.throws(
      () => dnsmasqArgv(sample(), { ...argvOpts, interfaceName: 'tap1234567890123' }),
      /interfaceName/,
      '16 characters',
    );
    for (const dir of ['relative/dir', '/var/lib/../etc', '/var/lib/kumo/a,b', '/x\n']) {
      assert.throws(() => dnsmasqArgv(sample(), { ...argvOpts, stateDir: dir }), /stateDir/, dir);
    }
  });
});

describe('dnsmasq files on disk', () => {
  const base = mkdtempSync(join(tmpdir(), 'kumo-dnsmasq-unit-'));
  after(() => rmSync(base, { recursive: true, force: true }));

  test('written atomically, reported as changed only when they change', async () => {
    const dir = join(base, 'net1');
    const first = await writeNetworkFiles(sample(), dir);
    assert.deepEqual(first.changed, ['hosts', 'addnHosts', 'opts']);
    assert.deepEqual(readdirSync(dir).sort(), ['addn_hosts', 'host', 'opts'], 'no temp files left');
    assert.equal(readFileSync(join(dir, 'host'), 'utf8'), first.files.hosts);
    assert.deepEqual(await readDnsmasqFiles(dir), first.files);
    const again = await writeNetworkFiles(sample(), dir);
    assert.deepEqual(again.changed, []);
    const n = sample();
    setAt(n, 'ports[2].fixed_ips[0].ip_address', '10.9.0.21');
    const third = await writeNetworkFiles(n, dir);
    assert.deepEqual(third.changed, ['hosts', 'addnHosts']);
  });

  test('a bad network attribute writes nothing at all', async () => {
    const dir = join(base, 'net2');
    const n = sample();
    n.id = 'x\ny';
    await assert.rejects(writeNetworkFiles(n, dir), /ValidationError: id:/);
    assert.equal(existsSync(dir), false);
    assert.deepEqual(await readDnsmasqFiles(dir), { hosts: null, addnHosts: null, opts: null });
  });
});

describe('dnsmasq reload planner', () => {
  const files = renderFiles(sample());
  const addrs = ['10.9.0.2/24', '2001:db8:9::2/64'];
  const argv = dnsmasqArgv(sample(), argvOpts);

  test('not running → start', () => {
    assert.equal(
      planReload({ running: false, files, addresses: addrs }, { files, addresses: addrs }).action,
      'start',
    );
  });

  test('nothing changed → none (address order and spelling do not matter)', () => {
    const plan = planReload(
      { running: true, files, addresses: ['2001:DB8:9:0::2/64', '10.9.0.2/24'], argv },
      { files, addresses: addrs, argv },
    );
    assert.deepEqual(plan, { action: 'none', why: [] });
  });

  test('hosts or opts changed → reload (SIGHUP)', () => {
    const plan = planReload(
      { running: true, files: { ...files, hosts: 'old\n' }, addresses: addrs },
      { files, addresses: addrs },
    );
    assert.deepEqual(plan, { action: 'reload', why: ['hosts changed'] });
    const missing = planReload(
      { running: true, files: { ...files, opts: null }, addresses: addrs },
      { files, addresses: addrs },
    );
    assert.equal(missing.action, 'reload');
  });

  test('interface addresses or the command line changed → restart', () => {
    const a = planReload(
      { running: true, files: { ...files, hosts: 'old\n' }, addresses: ['10.9.0.2/24'] },
      { files, addresses: addrs },
    );
    assert.equal(a.action, 'restart');
    assert.match(a.why[0] ?? '', /interface addresses changed/);
    const b = planReload(
      { running: true, files, addresses: addrs, argv: argv.slice(1) },
      { files, addresses: addrs, argv },
    );
    assert.deepEqual(b, { action: 'restart', why: ['command line changed'] });
  });
});

describe('address arithmetic (host/ip/inet.ts)', () => {
  test('network address, netmask, size, canonical text', () => {
    const c = (t: string) => {
      const p = parseCidr(t);
      assert.ok(p, t);
      return p;
    };
    assert.equal(networkAddress(c('10.9.0.77/24')), '10.9.0.0');
    assert.equal(networkAddress(c('10.9.0.77/0')), '0.0.0.0');
    assert.equal(networkAddress(c('10.9.0.77/32')), '10.9.0.77');
    assert.equal(networkAddress(c('2001:db8:9:0:1::5/64')), '2001:db8:9::');
    assert.equal(networkAddress(c('2001:db8::1/128')), '2001:db8::1');
    assert.equal(networkAddress(c('::ffff:10.9.0.1/120')), '::ffff:10.9.0.0');
    assert.equal(netmaskV4(24), '255.255.255.0');
    assert.equal(netmaskV4(0), '0.0.0.0');
    assert.equal(netmaskV4(30), '255.255.255.252');
    assert.equal(cidrSize(c('10.9.0.0/24')), 256n);
    assert.equal(cidrSize(c('2001:db8::/64')), 2n ** 64n);
    assert.equal(canonicalIp('2001:DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(canonicalIp('2001:db8:0:0:0:0:0:0'), '2001:db8::');
    assert.equal(canonicalIp('0:0:0:0:0:0:0:0'), '::');
    assert.equal(hostNameFor('2001:db8::5'), 'host-2001-db8--5');
    for (const bad of [
      '10.9.0.0/33',
      '10.9.0/24',
      '10.9.0.0/024',
      '10.9.0.0',
      'fe80::1%lo/64',
      ' 10.9.0.0/24',
    ])
      assert.equal(parseCidr(bad), null, bad);
  });
});
