/**
 * api/metadata/ (pure): the content builder's answers for one instance, as Nova's
 * InstanceMetadata gives them: keys per EC2 version, kernel and ramdisk ids, paths
 * normalised (`..` never leaves the tree), future OpenStack versions hidden, Python's JSON
 * spelling, network_data.json for static IPv4/IPv6 subnets with routes and DNS, and the
 * config drive without user data.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { InstanceRecord } from '../../api/db/instance-record.ts';
import { configDriveFiles, type LookupOptions, lookup } from '../../api/metadata/content.ts';
import type { InstanceData, MetaSubnet } from '../../api/metadata/instance-data.ts';
import { networkData } from '../../api/metadata/network-data.ts';
import { pythonJson } from '../../api/metadata/python-json.ts';

const image = (id: string, disk_format: 'ami' | 'aki' | 'ari') => ({
  id,
  checksum: '0'.repeat(32),
  os_hash_algo: 'sha512' as const,
  os_hash_value: '0'.repeat(128),
  size: 1,
  disk_format,
});

const record: InstanceRecord = {
  id: '11111111-2222-4333-8444-555555555555',
  seq: 0x2a,
  name: 'web.example_1',
  projectId: 'p1',
  userId: 'u1',
  flavor: { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 },
  imageId: 'abcdef01-0000-4000-8000-000000000000',
  imageMeta: {
    image: image('abcdef01-0000-4000-8000-000000000000', 'ami'),
    kernel: image('0000beef-0000-4000-8000-000000000000', 'aki'),
    ramdisk: image('00c0ffee-0000-4000-8000-000000000000', 'ari'),
    cmdline: null,
  },
  host: 'h1',
  vmState: 'active',
  taskState: null,
  taskId: 1,
  powerState: 1,
  fault: null,
  metadata: {},
  timings: null,
  keptPorts: [],
  portOrder: ['aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'],
  createdAt: '2026-11-22T10:00:00Z',
  updatedAt: '2026-11-22T10:00:00Z',
  launchedAt: null,
  deletedAt: null,
  accessIPv4: '',
  accessIPv6: '',
  adminPass: null,
  reservationId: 'r-abcdefgh',
  launchIndex: 0,
  lockedBy: null,
  softDeletedAt: null,
  securityGroups: ['default', 'web'],
  keyName: null,
  keyData: null,
  userData: null,
  configDrive: false,
};

const v4: MetaSubnet = {
  id: 's4',
  ipVersion: 4,
  cidr: '192.168.5.0/24',
  gatewayIp: '192.168.5.1',
  enableDhcp: false,
  dnsNameservers: ['192.168.5.53', '8.8.8.8'],
  hostRoutes: [{ destination: '10.20.0.0/16', nexthop: '192.168.5.254' }],
  dhcpServer: false,
};
const v6: MetaSubnet = {
  id: 's6',
  ipVersion: 6,
  cidr: 'fd00:1::/64',
  gatewayIp: null,
  enableDhcp: false,
  dnsNameservers: ['8.8.8.8'],
  hostRoutes: [],
  dhcpServer: false,
};

const data: InstanceData = {
  record,
  key: null,
  userData: null,
  availabilityZone: 'nova',
  ports: [
    {
      id: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
      networkId: 'n1',
      macAddress: 'fa:16:3e:00:00:01',
      mtu: 1450,
      fixedIps: [
        { ipAddress: '192.168.5.10', subnet: v4 },
        { ipAddress: 'fd00:1::10', subnet: v6 },
      ],
      floatingIps: [],
    },
  ],
};

const opts: LookupOptions = { today: '2026-12-05', seed: () => Buffer.alloc(512, 7) };
const get = (path: string, d = data, o = opts) => {
  const item = lookup(d, path, o);
  return item === undefined ? undefined : item.body.toString();
};

describe('metadata content', () => {
  test('EC2 keys follow the version; kernel and ramdisk ids; no key, no public-keys', () => {
    assert.equal(
      get('/1.0/meta-data/'),
      'ami-id\nami-launch-index\nami-manifest-path\nhostname\ninstance-id\nlocal-ipv4\nreservation-id\nsecurity-groups',
    );
    assert.ok(get('/2009-04-04/meta-data/')?.includes('kernel-id\nlocal-hostname'));
    assert.ok(get('/2009-04-04/meta-data/')?.includes('public-ipv4\nramdisk-id\nreservation-id'));
    assert.equal(get('/latest/meta-data/instance-id'), 'i-0000002a');
    assert.equal(get('/latest/meta-data/ami-id'), 'ami-abcdef01');
    assert.equal(get('/latest/meta-data/kernel-id'), 'aki-0000beef');
    assert.equal(get('/latest/meta-data/ramdisk-id'), 'ari-00c0ffee');
    assert.equal(get('/latest/meta-data/hostname'), 'web-example-1.novalocal');
    assert.equal(get('/latest/meta-data/security-groups'), 'default\nweb');
    assert.equal(get('/latest/meta-data/public-keys/'), undefined);
    assert.equal(get('/latest/meta-data/security-groups/default'), undefined);
    assert.equal(get('/2009-04-04'), 'meta-data/');
  });

  test('paths are normalised and never leave the tree', () => {
    assert.equal(get('/2009-04-04/meta-data/../meta-data/instance-id'), 'i-0000002a');
    assert.equal(get('//latest///meta-data/instance-id/'), 'i-0000002a');
    assert.equal(get('/../../etc/passwd'), undefined);
    assert.equal(get('/latest/meta-data/public-keys/0/_name'), undefined);
    assert.equal(get('/openstack/latest/../../latest/meta-data/local-ipv4'), '192.168.5.10');
    assert.equal(get('/openstack/latest/content'), undefined);
  });

  test('future OpenStack versions are hidden from the list, still served by name', () => {
    const early = { ...opts, today: '2019-01-01' };
    assert.equal(get('/openstack', data, early)?.split('\n').at(-2), '2018-08-27');
    assert.equal(
      get('/openstack/2020-10-14', data, early),
      'meta_data.json\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json',
    );
    const folsom = JSON.parse(get('/openstack/2012-08-10/meta_data.json') ?? '');
    assert.deepEqual(Object.keys(folsom), [
      'uuid',
      'hostname',
      'name',
      'launch_index',
      'availability_zone',
    ]);
    assert.equal(get('/openstack/2012-08-10/password'), undefined);
    assert.equal(get('/openstack/2013-04-04/vendor_data.json'), undefined);
  });

  test("Python's JSON spelling", () => {
    assert.equal(
      pythonJson({ a: [1, 'é'], b: null, c: { d: true } }),
      '{"a": [1, "\\u00e9"], "b": null, "c": {"d": true}}',
    );
    assert.equal(pythonJson('😀'), '"\\ud83d\\ude00"');
  });

  test('network_data.json: static IPv4 with routes and DNS, static IPv6', () => {
    assert.deepEqual(networkData(data.ports), {
      links: [
        {
          id: 'tapaaaaaaaa-bb',
          vif_id: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
          type: 'ovs',
          mtu: 1450,
          ethernet_mac_address: 'fa:16:3e:00:00:01',
        },
      ],
      networks: [
        {
          id: 'network0',
          type: 'ipv4',
          link: 'tapaaaaaaaa-bb',
          ip_address: '192.168.5.10',
          netmask: '255.255.255.0',
          routes: [
            { network: '0.0.0.0', netmask: '0.0.0.0', gateway: '192.168.5.1' },
            { network: '10.20.0.0', netmask: '255.255.0.0', gateway: '192.168.5.254' },
          ],
          network_id: 'n1',
          services: [
            { type: 'dns', address: '192.168.5.53' },
            { type: 'dns', address: '8.8.8.8' },
          ],
        },
        {
          id: 'network1',
          type: 'ipv6',
          link: 'tapaaaaaaaa-bb',
          ip_address: 'fd00:1::10',
          netmask: 'ffff:ffff:ffff:ffff::',
          routes: [],
          network_id: 'n1',
          services: [{ type: 'dns', address: '8.8.8.8' }],
        },
      ],
      services: [
        { type: 'dns', address: '192.168.5.53' },
        { type: 'dns', address: '8.8.8.8' },
      ],
    });
    assert.equal(get('/openstack/latest/network_data.json', { ...data, ports: [] }), '{}');
  });

  test('network_data.json: DHCP only where a DHCP port serves the subnet (Nova dhcp_server)', () => {
    const [port] = data.ports;
    assert.ok(port);
    const withDhcp = (enableDhcp: boolean, dhcpServer: boolean) => [
      {
        ...port,
        fixedIps: port.fixedIps.map((ip) => ({
          ...ip,
          subnet: { ...ip.subnet, enableDhcp, dhcpServer: dhcpServer && ip.subnet.ipVersion === 4 },
        })),
      },
    ];
    // enable_dhcp with no DHCP port anywhere: nothing answers DHCP, the guest is told statics.
    assert.deepEqual(networkData(withDhcp(true, false)), networkData(data.ports));
    const served = networkData(withDhcp(true, true));
    assert.deepEqual(served.networks[0], {
      id: 'network0',
      type: 'ipv4_dhcp',
      link: 'tapaaaaaaaa-bb',
      network_id: 'n1',
    });
    assert.equal((served.networks[1] as { type: string }).type, 'ipv6');
    assert.equal(served.links[0]?.mtu, null);
  });

  test('config drive without user data or key', () => {
    const files = configDriveFiles(data, opts.seed);
    assert.ok(!files.some((f) => f.path.endsWith('user-data') || f.path.endsWith('user_data')));
    assert.ok(!files.some((f) => f.path.endsWith('password')));
    // ec2: two meta-data.json; openstack: 11 meta_data.json, 9 vendor_data.json, 8
    // network_data.json, 6 vendor_data2.json.
    assert.equal(files.length, 2 + 11 + 9 + 8 + 6);
    const md = JSON.parse(
      files.find((f) => f.path === 'ec2/2009-04-04/meta-data.json')?.content.toString() ?? '',
    );
    assert.equal(md['ami-launch-index'], 0);
    assert.deepEqual(md['block-device-mapping'], { ami: 'vda', root: '/dev/vda' });
    assert.ok(!('public-keys' in md));
  });
});
