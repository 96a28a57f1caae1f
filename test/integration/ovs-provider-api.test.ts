/**
 * VLAN provider networks through kumo-api on both database engines, by Neutron's ml2 vlan
 * type driver: the physical network must be in [ml2] network_vlan_ranges, a requested id
 * is 1-4094 and used once per physical network, a network without one gets the lowest
 * free id of the ranges; and get_devices_details tells the OVS agent each port's physical
 * network. Every refused request leaves the networks exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getDevicesDetails } from '../../api/rpc.ts';
import type { Network, Port } from '../../contracts/network.ts';
import { testApi } from '../helpers/test-api.ts';

const ADMIN = 'admin-token-provider';
const MEMBER = 'member-token-provider';
type Body = Record<string, unknown>;
interface NeutronError {
  type: string;
  message: string;
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`vlan provider networks on ${engine}`, () => {
    const api = testApi(engine, {
      settings: {
        adminToken: ADMIN,
        memberTokens: [MEMBER],
        network: {
          tenantNetworkTypes: ['vxlan'],
          vniRanges: [[1, 100]],
          greIdRanges: [[1, 100]],
          flatNetworks: ['*'],
          globalPhysnetMtu: 1500,
          vlanRanges: [
            { physnet: 'public', range: [100, 102] },
            { physnet: 'trunk', range: null },
            { physnet: 'public', range: [200, 200] },
          ],
        },
      },
    });

    const call = async (
      method: 'GET' | 'POST' | 'DELETE',
      url: string,
      body?: Body,
      token = ADMIN,
    ) => {
      const res = await api.app.inject({
        method,
        url,
        payload: body as unknown as string,
        headers: { 'x-auth-token': token },
      });
      return { status: res.statusCode, body: res.body ? (res.json() as Body) : null };
    };
    const vlan = async (extra: Body = {}) => {
      const r = await call('POST', '/v2.0/networks', {
        network: { 'provider:network_type': 'vlan', ...extra },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body?.network as Network;
    };
    const networks = async () => (await call('GET', '/v2.0/networks')).body?.networks as Network[];
    const refused = async (
      status: number,
      type: string,
      message: string,
      extra: Body,
      token = ADMIN,
    ) => {
      const before = await networks();
      const r = await call(
        'POST',
        '/v2.0/networks',
        { network: { 'provider:network_type': 'vlan', ...extra } },
        token,
      );
      assert.equal(r.status, status, JSON.stringify(r.body));
      const e = (r.body as { NeutronError: NeutronError }).NeutronError;
      assert.equal(e.type, type);
      assert.equal(e.message, message);
      assert.deepEqual(await networks(), before, 'a refused request changes nothing');
    };
    const seg = (n: Network) => [n['provider:physical_network'], n['provider:segmentation_id']];

    test('ids come from the ranges, lowest free first; a requested id may lie outside them', async () => {
      const a = await vlan({ 'provider:physical_network': 'public' });
      assert.deepEqual(seg(a), ['public', 100]);
      assert.equal(a['provider:network_type'], 'vlan');
      assert.equal(a.mtu, 1500, 'the physical network MTU: no encapsulation');
      const b = await vlan({
        'provider:physical_network': 'public',
        'provider:segmentation_id': 150,
      });
      assert.deepEqual(seg(b), ['public', 150]);
      const c = await vlan({
        'provider:physical_network': 'trunk',
        'provider:segmentation_id': '100',
      });
      assert.deepEqual(seg(c), ['trunk', 100], 'the same id on another physical network');
      const d = await vlan();
      assert.deepEqual(seg(d), ['public', 101], 'no physical network: any range, in order');
      assert.deepEqual(seg(await vlan()), ['public', 102]);
      assert.deepEqual(seg(await vlan()), ['public', 200]);
      await refused(
        503,
        'NoNetworkAvailable',
        'Unable to create the network. No tenant network is available for allocation.',
        {},
      );
      await refused(
        503,
        'NoNetworkAvailable',
        'Unable to create the network. No tenant network is available for allocation.',
        { 'provider:physical_network': 'trunk' },
      );
      assert.equal((await call('DELETE', `/v2.0/networks/${d.id}`)).status, 204);
      assert.deepEqual(seg(await vlan({ 'provider:physical_network': 'public' })), ['public', 101]);
      const flat = await call('POST', '/v2.0/networks', {
        network: { 'provider:network_type': 'flat', 'provider:physical_network': 'public' },
      });
      assert.equal(flat.status, 201, 'a flat network shares the physical network with VLANs');
      for (const n of await networks()) await call('DELETE', `/v2.0/networks/${n.id}`);
    });

    test("Neutron's refusals: unknown physical network, id out of range, id without physical network, id in use", async () => {
      await vlan({ 'provider:physical_network': 'public', 'provider:segmentation_id': 7 });
      await refused(
        400,
        'InvalidInput',
        "Invalid input for operation: physical_network 'nope' unknown for VLAN provider network.",
        { 'provider:physical_network': 'nope' },
      );
      for (const id of [0, 4095, 70000])
        await refused(
          400,
          'InvalidInput',
          'Invalid input for operation: segmentation_id out of range (1 through 4094).',
          { 'provider:physical_network': 'public', 'provider:segmentation_id': id },
        );
      await refused(
        400,
        'InvalidInput',
        'Invalid input for operation: segmentation_id requires physical_network for VLAN provider network.',
        { 'provider:segmentation_id': 8 },
      );
      await refused(
        409,
        'VlanIdInUse',
        'Unable to create the network. The VLAN 7 on physical network public is in use.',
        { 'provider:physical_network': 'public', 'provider:segmentation_id': 7 },
      );
      const before = await networks();
      const member = await call(
        'POST',
        '/v2.0/networks',
        { network: { 'provider:network_type': 'vlan', 'provider:physical_network': 'public' } },
        MEMBER,
      );
      assert.equal(member.status, 403, 'provider attributes are admin-only');
      assert.deepEqual(await networks(), before);
      for (const n of await networks()) await call('DELETE', `/v2.0/networks/${n.id}`);
    });

    test('concurrent creates on one range never share an id', async () => {
      const made = await Promise.all(
        [1, 2, 3].map(() =>
          call('POST', '/v2.0/networks', {
            network: { 'provider:network_type': 'vlan', 'provider:physical_network': 'public' },
          }),
        ),
      );
      assert.deepEqual(
        made.map((r) => r.status),
        [201, 201, 201],
      );
      const ids = made.map(
        (r) => (r.body as { network: Network }).network['provider:segmentation_id'],
      );
      assert.deepEqual(ids.sort(), [100, 101, 102]);
      for (const n of await networks()) await call('DELETE', `/v2.0/networks/${n.id}`);
    });

    test("get_devices_details names each port's physical network and VLAN id", async () => {
      const v = await vlan({
        'provider:physical_network': 'public',
        'provider:segmentation_id': 42,
      });
      const f = (
        await call('POST', '/v2.0/networks', {
          network: { 'provider:network_type': 'flat', 'provider:physical_network': 'public' },
        })
      ).body?.network as Network;
      const t = (await call('POST', '/v2.0/networks', { network: { name: 't' } })).body
        ?.network as Network;
      const ports: Port[] = [];
      for (const n of [v, f, t])
        ports.push(
          (await call('POST', '/v2.0/ports', { port: { network_id: n.id } })).body?.port as Port,
        );
      const got = await getDevicesDetails(api.db, { host: 'h1', devices: ports.map((p) => p.id) });
      assert.deepEqual(got.unknown, []);
      const byNet = new Map(got.devices.map((d) => [d.network_id, d]));
      assert.deepEqual(
        [v, f, t].map((n) => {
          const d = byNet.get(n.id);
          return [d?.network_type, d?.physical_network, d?.segmentation_id];
        }),
        [
          ['vlan', 'public', 42],
          ['flat', 'public', null],
          ['vxlan', null, t['provider:segmentation_id']],
        ],
      );
      assert.deepEqual(Object.keys(got.devices[0] ?? {}).sort(), [
        'admin_state_up',
        'allowed_address_pairs',
        'device',
        'device_owner',
        'fixed_ips',
        'mac_address',
        'network_id',
        'network_type',
        'physical_network',
        'port_security_enabled',
        'security_groups',
        'segmentation_id',
      ]);
    });
  });
}
