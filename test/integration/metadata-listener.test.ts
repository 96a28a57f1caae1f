/**
 * kumo-api's metadata listener over real HTTP on both engines: refusals (unsigned, bad
 * signature, wrong project, unknown instance, a method other than GET/HEAD) change
 * nothing and name no instance; the EC2 tree's listings are Nova's exactly, with the
 * instance id, addresses (a floating IP for public-ipv4), key, zone and user data; the
 * OpenStack tree's meta_data.json keys (Nova's newest version, in order) and
 * network_data.json.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { signInstanceId } from '../../contracts/metadata.ts';
import { DEFAULT_PROJECT_ID } from '../../contracts/network.ts';
import { metaDataListing, OPENSTACK_VERSIONS, VERSIONS } from '../helpers/metadata-expect.ts';
import { metadataWorld, PUBLIC_KEY, SECRET, USER_DATA } from './metadata-harness.ts';

const EC2_ROOT = VERSIONS.join('\n');
const META_DATA_A = metaDataListing({ hasKey: true, hasKernel: false }).join('\n');
const OPENSTACK_ROOT = [...OPENSTACK_VERSIONS, 'latest'].join('\n');

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`metadata listener (${engine})`, () => {
    const { h, build, get } = metadataWorld(engine);
    const snapshot = async () =>
      JSON.stringify({
        instances: await h.db.query('SELECT * FROM instances ORDER BY id'),
        ports: await h.db.query('SELECT * FROM ports ORDER BY id'),
      });

    test('refusals: 403 unsigned or badly signed, 404 wrong project or unknown; nothing leaks', async () => {
      const w = await build();
      const before = await snapshot();
      const refusals = [
        await get('/latest/meta-data/instance-id', w.a, w.projectId, { only: {} }),
        await get('/', w.a, w.projectId, {
          only: { 'x-instance-id': w.a, 'x-tenant-id': w.projectId },
        }),
        await get('/latest/meta-data/', w.a, w.projectId, {
          headers: { 'x-instance-id-signature': 'f'.repeat(64) },
        }),
        await get('/latest/meta-data/', w.a, w.projectId, {
          headers: { 'x-instance-id-signature': 'short' },
        }),
        // B's signature does not sign A.
        await get('/latest/meta-data/', w.a, w.projectId, {
          headers: { 'x-instance-id-signature': signInstanceId(SECRET, w.b) },
        }),
      ];
      for (const r of refusals) {
        assert.equal(r.status, 403);
        assert.equal(r.body, 'Invalid proxy request signature.');
      }
      const notFound = [
        await get('/latest/meta-data/instance-id', w.a, 'f'.repeat(32)),
        await get(
          '/latest/meta-data/instance-id',
          '00000000-0000-4000-8000-000000000000',
          w.projectId,
        ),
        await get('/latest/meta-data/instance-id', 'not-a-uuid', w.projectId),
        await get('/latest/meta-data/nothing-here', w.a, w.projectId),
        await get('/2010-01-01/meta-data/', w.a, w.projectId),
        await get('/openstack/1999-01-01/meta_data.json', w.a, w.projectId),
        await get('/latest/user-data', w.b, w.projectId),
        await get('/openstack/latest/user_data', w.b, w.projectId),
      ];
      for (const r of notFound) {
        assert.equal(r.status, 404);
        assert.equal(r.body, 'The resource could not be found.');
      }
      const post = await get('/latest/meta-data/', w.a, w.projectId, { method: 'POST' });
      assert.equal(post.status, 405);
      for (const r of [...refusals, ...notFound, post]) {
        assert.ok(!r.body.includes(w.a) && !r.body.includes('i-0'), r.body);
      }
      assert.equal(await snapshot(), before, 'a refused request changes nothing');
    });

    test('EC2 tree: Nova listings, instance-id, addresses, key, zone, user data', async () => {
      const w = await build();
      const a = (path: string) => get(path, w.a, w.projectId);
      assert.deepEqual(await a('/'), {
        status: 200,
        type: 'text/plain; charset=UTF-8',
        body: EC2_ROOT,
      });
      assert.equal((await a('/2009-04-04/')).body, 'meta-data/\nuser-data');
      assert.equal((await get('/2009-04-04/', w.b, w.projectId)).body, 'meta-data/');
      assert.equal((await a('/2009-04-04/meta-data/')).body, META_DATA_A);
      assert.equal((await a('/latest/meta-data/')).body, META_DATA_A);
      const instanceId = `i-${w.seqA.toString(16).padStart(8, '0')}`;
      const values: Record<string, string> = {
        'instance-id': instanceId,
        'local-ipv4': '10.1.0.10',
        'public-ipv4': w.floatingIp,
        hostname: 'guest-a-1.novalocal',
        'local-hostname': 'guest-a-1.novalocal',
        'instance-type': 'm1.tiny',
        'ami-launch-index': '0',
        'ami-manifest-path': 'FIXME',
        'instance-action': 'none',
        'security-groups': 'default',
        'public-keys/': '0=key1',
        'public-keys/0/': 'openssh-key',
        'public-keys/0/openssh-key': PUBLIC_KEY,
        'block-device-mapping/': 'ami\nroot',
        'block-device-mapping/root': '/dev/vda',
        'placement/': 'availability-zone',
        'placement/availability-zone': 'nova',
      };
      for (const [path, want] of Object.entries(values))
        assert.equal((await a(`/2009-04-04/meta-data/${path}`)).body, want, path);
      assert.match((await a('/latest/meta-data/ami-id')).body, /^ami-[0-9a-f]{8}$/);
      assert.match((await a('/latest/meta-data/reservation-id')).body, /^r-[0-9a-z]{8}$/);
      assert.equal((await a('/latest/user-data')).body, USER_DATA);
      const head = await get('/latest/meta-data/instance-id', w.a, w.projectId, { method: 'HEAD' });
      assert.deepEqual([head.status, head.body], [200, '']);

      const b = (path: string) => get(path, w.b, w.projectId);
      assert.equal((await b('/latest/meta-data/instance-id')).status, 200);
      assert.notEqual((await b('/latest/meta-data/instance-id')).body, instanceId);
      assert.equal((await b('/latest/meta-data/local-ipv4')).body, '10.1.0.10');
      assert.equal((await b('/latest/meta-data/public-ipv4')).body, '');
      assert.equal((await b('/latest/meta-data/public-keys/')).status, 404);
      assert.ok(!(await b('/latest/meta-data/')).body.includes('public-keys'));

      await h.db.query(
        'UPDATE agents SET availability_zone = ? WHERE host = ? AND agent_type = ?',
        ['az-1', 'h1', 'Compute agent'],
      );
      assert.equal((await a('/latest/meta-data/placement/availability-zone')).body, 'az-1');
      const shown = await h.call('GET', `/servers/${w.a}`);
      const server = (shown.body as { server: Record<string, unknown> }).server;
      assert.equal(server['OS-EXT-AZ:availability_zone'], 'az-1', 'the API shows the same zone');
    });

    test('OpenStack tree: versions, listing, meta_data.json, network_data.json, user_data', async () => {
      const w = await build();
      const a = (path: string) => get(path, w.a, w.projectId);
      assert.equal((await a('/openstack')).body, OPENSTACK_ROOT);
      assert.equal(
        (await a('/openstack/latest')).body,
        'meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json',
      );
      assert.equal((await a('/openstack/2012-08-10/')).body, 'meta_data.json\nuser_data');
      const md = await a('/openstack/latest/meta_data.json');
      assert.equal(md.type, 'application/json; charset=UTF-8');
      const meta = JSON.parse(md.body) as Record<string, unknown>;
      assert.deepEqual(Object.keys(meta), [
        'uuid',
        'public_keys',
        'keys',
        'hostname',
        'name',
        'launch_index',
        'availability_zone',
        'random_seed',
        'project_id',
        'devices',
        'dedicated_cpus',
      ]);
      assert.equal(meta.uuid, w.a);
      assert.deepEqual(meta.public_keys, { key1: PUBLIC_KEY });
      assert.deepEqual(meta.keys, [{ name: 'key1', type: 'ssh', data: PUBLIC_KEY }]);
      assert.equal(meta.hostname, 'guest-a-1.novalocal');
      assert.equal(meta.name, 'Guest A_1');
      assert.equal(meta.project_id, DEFAULT_PROJECT_ID);
      assert.equal(Buffer.from(String(meta.random_seed), 'base64').length, 512);
      assert.ok(md.body.startsWith(`{"uuid": "${w.a}", `), 'Nova (Python) JSON spacing');

      // key1 deleted and made again as another key: A keeps its own key, and its type.
      await h.db.query(
        "UPDATE keypairs SET type = 'x509', public_key = 'other' WHERE name = 'key1'",
      );
      const again = JSON.parse((await a('/openstack/latest/meta_data.json')).body);
      assert.deepEqual(again.keys, [{ name: 'key1', type: 'ssh', data: PUBLIC_KEY }]);
      await h.db.query('DELETE FROM keypairs');
      const gone = JSON.parse((await a('/openstack/latest/meta_data.json')).body);
      assert.deepEqual(gone.keys, [{ name: 'key1', type: 'ssh', data: PUBLIC_KEY }]);

      await h.db.query('UPDATE instances SET metadata = ? WHERE id = ?', ['{"role":"web"}', w.a]);
      const withMeta = JSON.parse((await a('/openstack/latest/meta_data.json')).body);
      assert.deepEqual(Object.keys(withMeta).slice(0, 2), ['uuid', 'meta']);
      assert.deepEqual(withMeta.meta, { role: 'web' });

      const nd = JSON.parse((await a('/openstack/latest/network_data.json')).body);
      assert.deepEqual(nd, {
        links: [
          {
            id: `tap${w.portA.id.slice(0, 11)}`,
            vif_id: w.portA.id,
            type: 'ovs',
            mtu: null,
            ethernet_mac_address: w.portA.mac_address,
          },
        ],
        networks: [
          {
            id: 'network0',
            type: 'ipv4_dhcp',
            link: `tap${w.portA.id.slice(0, 11)}`,
            network_id: w.net1,
          },
        ],
        services: [],
      });
      assert.equal((await a('/openstack/latest/user_data')).body, USER_DATA);
      assert.equal((await a('/openstack/latest/vendor_data.json')).body, '{}');
      assert.equal((await a('/openstack/latest/vendor_data2.json')).body, '{}');
      assert.deepEqual(
        [
          (await a('/openstack/latest/password')).status,
          (await a('/openstack/latest/password')).body,
        ],
        [200, ''],
      );
    });
  });
}
