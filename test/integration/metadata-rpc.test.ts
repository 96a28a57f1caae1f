/**
 * The metadata RPC calls over real RabbitMQ on both engines: get_metadata_instance finds
 * the instance behind (router | network, fixed IP), routed and isolated, with overlapping
 * addresses on two networks resolving to different instances, and nobody for an unknown
 * address, a non-compute port, a port that only names an instance as its device, a deleted instance or a host that does not serve the
 * router or network; get_config_drive gives the instance's own host Nova's config drive
 * files (the listener's content) and any other host null.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ArgsOf, PLUGIN_TOPIC } from '../../contracts/messages.ts';
import { GetConfigDriveResult, GetMetadataInstanceResult } from '../../contracts/metadata.ts';
import { OPENSTACK_VERSIONS } from '../helpers/metadata-expect.ts';
import { metadataWorld, PUBLIC_KEY, USER_DATA } from './metadata-harness.ts';

/** Nova's config drive listing for an instance with user data. */
const drivePaths = () => [
  'ec2/2009-04-04/user-data',
  'ec2/2009-04-04/meta-data.json',
  'ec2/latest/user-data',
  'ec2/latest/meta-data.json',
  ...[...OPENSTACK_VERSIONS, 'latest'].flatMap((v, i) => [
    `openstack/${v}/meta_data.json`,
    `openstack/${v}/user_data`,
    ...(i >= 2 ? [`openstack/${v}/vendor_data.json`] : []),
    ...(i >= 3 ? [`openstack/${v}/network_data.json`] : []),
    ...(i >= 5 ? [`openstack/${v}/vendor_data2.json`] : []),
  ]),
];

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`metadata RPC (${engine})`, () => {
    const { h, build } = metadataWorld(engine);
    const which = async (args: ArgsOf<'get_metadata_instance'>) =>
      GetMetadataInstanceResult.parse(await h.api.call(PLUGIN_TOPIC, 'get_metadata_instance', args))
        .instance;

    test('get_metadata_instance: routed, isolated, overlapping, and nobody', async () => {
      const w = await build();
      const ip = '10.1.0.10';
      const a = { instance_id: w.a, project_id: w.projectId };
      const b = { instance_id: w.b, project_id: w.projectId };
      assert.deepEqual(await which({ host: 'n1', router_id: w.router, ip }), a);
      assert.deepEqual(await which({ host: 'n1', network_id: w.net1, ip }), a);
      assert.deepEqual(await which({ host: 'n1', network_id: w.netB, ip }), b);
      assert.equal(await which({ host: 'n1', router_id: w.router, ip: '10.1.0.99' }), null);
      const [dhcp] = await h.db.query<{ ip_address: string }>(
        `SELECT a.ip_address FROM ipallocations a JOIN ports p ON p.id = a.port_id
          WHERE p.network_id = ? AND p.device_owner = 'network:dhcp'`,
        [w.net1],
      );
      assert.ok(dhcp, 'net1 has a DHCP port');
      assert.equal(await which({ host: 'n1', network_id: w.net1, ip: dhcp.ip_address }), null);
      assert.equal(await which({ host: 'h1', router_id: w.router, ip }), null, 'not h1 router');
      assert.equal(await which({ host: 'h1', network_id: w.netB, ip }), null, 'not h1 network');
      assert.equal(await which({ host: 'n1', router_id: w.netB, ip }), null, 'no such router');

      // A port that names A as its device is not one of A's NICs: it speaks for nobody.
      const forged = await h.call('POST', '/v2.0/ports', {
        port: {
          network_id: w.net1,
          fixed_ips: [{ ip_address: '10.1.0.11' }],
          device_owner: 'compute:nova',
          device_id: w.a,
        },
      });
      assert.equal(forged.status, 201, forged.raw);
      assert.equal(await which({ host: 'n1', network_id: w.net1, ip: '10.1.0.11' }), null);

      // Every agent dead: the server is deleted at once, and its address names nobody.
      h.advance(3600);
      assert.equal((await h.call('DELETE', `/servers/${w.b}`)).status, 204);
      assert.equal(await which({ host: 'n1', network_id: w.netB, ip }), null);
      assert.deepEqual(await which({ host: 'n1', network_id: w.net1, ip }), a);
    });

    test('get_config_drive: Nova files for the own host, null for any other', async () => {
      const w = await build();
      const drive = async (host: string, instance_id: string) =>
        GetConfigDriveResult.parse(
          await h.api.call(PLUGIN_TOPIC, 'get_config_drive', { host, instance_id }),
        ).files;
      const files = await drive('h1', w.a);
      assert.ok(files);
      assert.deepEqual(
        files.map((f) => f.path),
        drivePaths(),
      );
      const file = (path: string) =>
        Buffer.from(files.find((f) => f.path === path)?.content_base64 ?? '', 'base64').toString();
      const ec2 = JSON.parse(file('ec2/latest/meta-data.json'));
      assert.equal(ec2['instance-id'], `i-${w.seqA.toString(16).padStart(8, '0')}`);
      assert.equal(ec2['public-ipv4'], w.floatingIp);
      // Nova's drives keep `_name` (its metadata_for_config_drive deletes it from the wrong dict).
      assert.deepEqual(ec2['public-keys'], { '0': { _name: '0=key1', 'openssh-key': PUBLIC_KEY } });
      assert.deepEqual(ec2.placement, { 'availability-zone': 'nova' });
      assert.equal(file('ec2/latest/user-data'), USER_DATA);
      assert.equal(file('openstack/latest/user_data'), USER_DATA);
      const meta = JSON.parse(file('openstack/latest/meta_data.json'));
      assert.equal(meta.uuid, w.a);
      assert.deepEqual(meta.keys, [{ name: 'key1', type: 'ssh', data: PUBLIC_KEY }]);
      assert.ok(!('project_id' in JSON.parse(file('openstack/2013-10-17/meta_data.json'))));
      assert.equal(file('openstack/latest/vendor_data.json'), '{}');

      assert.equal(await drive('h2', w.a), null, 'not h2 instance');
      assert.equal(await drive('h1', '00000000-0000-4000-8000-000000000000'), null);
    });
  });
}
