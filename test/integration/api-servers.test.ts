/**
 * Creating and listing Nova servers in kumo-api on both database engines with a real
 * broker (api-servers-harness.ts: real report_state heartbeats, a second broker playing
 * the agents on their real host queues and q-plugin). Actions and deletes are in
 * api-servers-actions.test.ts, the agents' reports in api-servers-reports.test.ts.
 *
 * Shown: scheduling to the host with the most free RAM, ports made and bound with
 * device_owner compute:nova, the hint on the real host queue, the instance spec, the
 * list and its filters; bad references refused naming them with nothing created, and
 * flavors, images and names a domain cannot take among them; no capacity → ERROR "No
 * valid host"; no overcommit under concurrent boots; ports that cannot be made → ERROR
 * with what was made released.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { Image } from '../../contracts/compute.ts';
import type { InstanceSpec } from '../../contracts/instances.ts';
import {
  DEFAULT_PROJECT_ID,
  type Network,
  type Port,
  type Subnet,
} from '../../contracts/network.ts';
import { waitFor } from '../helpers/env.ts';
import { type Body, DOWN, MEMBER, type Server, serversHarness } from './api-servers-harness.ts';

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`creating servers on ${engine}`, () => {
    const h = serversHarness(engine);
    const { call, boot, show, portsOf, hints, waitHint, rpc, counts } = h;
    const { advance, images, received, image, novaErr, ok, report } = h;

    test('POST schedules to the most free RAM, binds its ports, hints the host, serves the spec', async () => {
      await report('h1');
      await report('h2', { memory_mb: 8192 });
      const id = await boot({ networks: [{ uuid: h.net.n.id }], metadata: { role: 'web' } });
      const s = await show(id);
      assert.equal(s.status, 'BUILD');
      assert.equal(s['OS-EXT-STS:vm_state'], 'building');
      assert.equal(s['OS-EXT-STS:task_state'], 'spawning');
      assert.equal(s['OS-EXT-STS:power_state'], 0);
      assert.equal(s['OS-EXT-SRV-ATTR:host'], 'h2');
      assert.equal(s['OS-EXT-SRV-ATTR:hypervisor_hostname'], 'h2');
      assert.match(String(s['OS-EXT-SRV-ATTR:instance_name']), /^instance-[0-9a-f]{8}$/);
      const project = String(s.tenant_id);
      assert.equal(s.hostId, createHash('sha224').update(`${project}h2`).digest('hex'));
      assert.deepEqual(s.metadata, { role: 'web' });
      assert.deepEqual((s.flavor as Body).id, '1');
      assert.deepEqual((s.image as Body).id, images.plain);
      assert.equal(s['kumo:spawn_timings'], undefined, 'no Kumo diagnostics unless asked for');
      assert.equal(s.fault, undefined);

      const [port, ...more] = await portsOf(id);
      assert.equal(more.length, 0);
      assert.ok(port);
      assert.equal(port.device_owner, 'compute:nova');
      assert.equal(port['binding:host_id'], 'h2');
      assert.equal(port.network_id, h.net.n.id);
      const ip = port.fixed_ips[0]?.ip_address;
      assert.deepEqual(s.addresses, {
        net1: [
          {
            version: 4,
            addr: ip,
            'OS-EXT-IPS:type': 'fixed',
            'OS-EXT-IPS-MAC:mac_addr': port.mac_address,
          },
        ],
      });
      await waitHint('h2', id, 1);
      assert.equal(hints('compute_agent.h1', 'instance', id).length, 0);
      await waitFor(
        'the DHCP agent hinted of the new port',
        () => hints('dhcp_agent.n1', 'network', h.net.n.id).length > 0,
      );

      const spec = (await rpc.instance('h2', id)) as InstanceSpec;
      assert.ok(spec);
      assert.equal(
        `instance-${spec.seq.toString(16).padStart(8, '0')}`,
        s['OS-EXT-SRV-ATTR:instance_name'],
      );
      assert.equal(spec.task_state, 'spawning');
      assert.equal(spec.task_id, 1);
      assert.equal(spec.config_drive, false, 'no config drive unless the server asked for one');
      // POST /servers' config_drive is the API's; here only get_instance reading the column
      await h.db.query('UPDATE instances SET config_drive = TRUE WHERE id = ?', [id]);
      assert.equal((await rpc.instance('h2', id))?.config_drive, true);
      await h.db.query('UPDATE instances SET config_drive = FALSE WHERE id = ?', [id]);
      assert.deepEqual(spec.flavor, { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 });
      const img = (await call('GET', `/v2/images/${images.plain}`)).body as unknown as Image;
      assert.equal(spec.image.checksum, img.checksum);
      assert.equal(spec.image.os_hash_value, img.os_hash_value);
      assert.equal(spec.image.size, img.size);
      assert.equal(spec.kernel, null);
      assert.deepEqual(spec.ports, [
        {
          id: port.id,
          mac_address: port.mac_address,
          network_id: h.net.n.id,
          status: 'DOWN',
          mtu: h.net.n.mtu,
          fixed_ips: [ip],
        },
      ]);
      assert.equal(await rpc.instance('h1', id), null, 'another host is not told');
      assert.deepEqual(await rpc.hostInstances('h2'), [id]);
      assert.deepEqual(await rpc.hostInstances('h1'), []);

      // A kernel + ramdisk image with a fixed IP, an existing port, and "auto".
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id },
      });
      const direct = await boot({
        imageRef: `http://x/images/${images.direct}`,
        flavorRef: 'm1.tiny',
        networks: [{ uuid: h.net.n.id, fixed_ip: '10.1.0.50' }, { port: own.id }],
      });
      const d = (await rpc.instance('h2', direct)) as InstanceSpec;
      assert.equal(d.kernel?.id, images.kernel);
      assert.equal(d.ramdisk?.id, images.ramdisk);
      assert.equal(d.cmdline, 'console=ttyS0 quiet');
      assert.deepEqual(
        d.ports.map((p) => p.fixed_ips),
        [['10.1.0.50'], own.fixed_ips.map((f) => f.ip_address)],
      );
      assert.ok(d.seq > spec.seq);
      const claimed = (await portsOf(direct)).find((p) => p.id === own.id);
      assert.equal(claimed?.['binding:host_id'], 'h2');
      const auto = await boot({ networks: 'auto' });
      assert.equal((await portsOf(auto))[0]?.network_id, h.net.n.id);
      const bare = await boot({ networks: 'none' });
      assert.deepEqual(await portsOf(bare), []);
      // The list, newest first; a name filter; detail; paging.
      const list = (await call('GET', '/v2.1/servers')).body as { servers: Body[] };
      const detail = (await call('GET', '/servers/detail')).body as { servers: Body[] };
      const ids = (l: { servers: Body[] }) => l.servers.map((x) => x.id);
      assert.deepEqual(ids(list), ids(detail));
      assert.deepEqual(ids(list), [bare, auto, direct, id], 'newest first');
      assert.deepEqual(Object.keys(list.servers[0] ?? {}).sort(), ['id', 'links', 'name']);
      assert.equal(list.servers.length, 4);
      const page = (await call('GET', '/servers?limit=3')).body as Body;
      assert.equal((page.servers as Body[]).length, 3);
      assert.match(JSON.stringify(page.servers_links), /marker=/);
      const renamed = await call('PUT', `/servers/${bare}`, { server: { name: 'renamed-vm' } });
      assert.equal((renamed.body as { server: Server }).server.name, 'renamed-vm');
      const named = (await call('GET', '/servers?name=^renamed')).body as { servers: Body[] };
      assert.deepEqual(
        named.servers.map((x) => x.id),
        [bare],
      );
      const member = await show(id, MEMBER);
      assert.equal(member['OS-EXT-SRV-ATTR:host'], undefined, 'admin-only attributes hidden');
    });

    test('bad references are refused naming them, and nothing is created', async () => {
      await report('h1');
      const used = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id, device_id: 'someone' },
      });
      const bare = await ok<Network>('POST', '/v2.0/networks', 'network', {
        network: { name: 'nosubnet' },
      });
      const orphan = await image({
        name: 'orphan',
        disk_format: 'ami',
        container_format: 'ami',
        kernel_id: await image({ name: 'k2', disk_format: 'aki', container_format: 'aki' }),
      });
      const kernel2 = ((await call('GET', `/v2/images/${orphan}`)).body as Body).kernel_id;
      assert.equal((await call('DELETE', `/v2/images/${String(kernel2)}`)).status, 204);
      const missing = '00000000-0000-4000-8000-000000000000';
      const before = await counts();
      const cases: [Body, string, number, RegExp][] = [
        [{ flavorRef: '99' }, 'badRequest', 400, /flavorRef.*99/],
        [{ imageRef: missing }, 'badRequest', 400, new RegExp(`Image ${missing} could not`)],
        [{ imageRef: images.queued }, 'badRequest', 400, /is not active/],
        [{ imageRef: 'not-a-uuid' }, 'badRequest', 400, /imageRef/],
        [{ imageRef: orphan }, 'badRequest', 400, new RegExp(`Kernel image ${String(kernel2)}`)],
        [{ flavorRef: '1', imageRef: images.plain, name: '' }, 'badRequest', 400, /server\.name/],
        [{ networks: [{ uuid: missing }] }, 'badRequest', 400, new RegExp(`Network ${missing}`)],
        [{ networks: [{ uuid: bare.id }] }, 'badRequest', 400, /requires a subnet/],
        [{ networks: [{ port: missing }] }, 'badRequest', 400, new RegExp(`Port id ${missing}`)],
        [
          { networks: [{ port: used.id }] },
          'conflictingRequest',
          409,
          new RegExp(`Port ${used.id}`),
        ],
        [
          { networks: [{ uuid: h.net.n.id, fixed_ip: '10.9.0.5' }] },
          'badRequest',
          400,
          /10\.9\.0\.5 is not a valid ip address for network/,
        ],
        [
          { networks: [{ uuid: h.net.n.id, fixed_ip: used.fixed_ips[0]?.ip_address }] },
          'badRequest',
          400,
          /already in use on instance someone/,
        ],
        [{ networks: [{ uuid: h.net.n.id, port: used.id }] }, 'badRequest', 400, /exactly one/],
        [{ networks: 'auto' }, 'conflictingRequest', 409, /Multiple possible networks/],
      ];
      for (const [extra, key, status, pattern] of cases) {
        const r = await call('POST', '/servers', {
          server: { name: 'vm', flavorRef: '1', imageRef: images.plain, ...extra },
        });
        assert.match(novaErr(r, key, status), pattern, JSON.stringify(extra));
      }
      assert.deepEqual(await counts(), before);
      assert.equal(received.filter((r) => r.queue.startsWith('compute_agent')).length, 0);
    });

    test('flavors, images and names a domain cannot take: 400 at create naming them', async () => {
      await report('h1', { vcpus: 4096, memory_mb: 1 << 26, local_gb: 1000 });
      const flavor = async (id: string, vcpus: number, ram: number) => {
        const r = await call('POST', '/flavors', {
          flavor: { name: `f-${id}`, id, vcpus, ram, disk: 1 },
        });
        assert.equal(r.status, 200, r.raw);
        return id;
      };
      const direct = (props: Body) =>
        image({
          name: 'd',
          disk_format: 'ami',
          container_format: 'ami',
          kernel_id: images.kernel,
          ...props,
        });
      const before = await counts();
      const cases: [Body, RegExp][] = [
        [
          { flavorRef: await flavor('v513', 513, 512) },
          /flavorRef.*v513: its vcpus is 513; a server takes 1\.\.512/,
        ],
        [
          { flavorRef: await flavor('r15', 1, 15) },
          /flavorRef.*r15: its ram is 15; a server takes 16\.\./,
        ],
        [{ flavorRef: await flavor('rbig', 1, 16 * 1024 * 1024 + 1) }, /its ram is 16777217/],
        [{ name: '\u0085vm' }, /server\.name.*control characters/],
        [{ name: 'vm\ud800' }, /server\.name.*well-formed/],
        [{ imageRef: images.ramdisk }, /is a ramdisk \(ari\): it cannot be booted/],
        [
          { imageRef: await image({ name: 'a', disk_format: 'ami', container_format: 'ami' }) },
          /ami image without a kernel_id/,
        ],
        [
          {
            imageRef: await image({
              name: 'q',
              disk_format: 'qcow2',
              container_format: 'bare',
              ramdisk_id: images.ramdisk,
            }),
          },
          /has a ramdisk_id but no kernel_id/,
        ],
        [
          { imageRef: await direct({ os_command_line: 'console=ttyS0\u0085' }) },
          /invalid os_command_line: it must not contain control characters/,
        ],
      ];
      for (const [extra, pattern] of cases) {
        const r = await call('POST', '/servers', {
          server: { name: 'vm', flavorRef: '1', imageRef: images.plain, ...extra },
        });
        assert.match(novaErr(r, 'badRequest', 400), pattern, JSON.stringify(extra));
      }
      assert.deepEqual(await counts(), before, 'nothing created');
      const named = await call('POST', '/flavors', {
        flavor: { name: 'm\u0085', vcpus: 1, ram: 64, disk: 1 },
      });
      assert.match(novaErr(named, 'badRequest', 400), /flavor\.name.*control characters/);

      // The bounds themselves are fine, and an empty os_command_line is no command line.
      // 512 vCPUs is over the default cores quota (20), so the project's is lifted first.
      const lifted = await call('PUT', `/os-quota-sets/${DEFAULT_PROJECT_ID}`, {
        quota_set: { cores: -1 },
      });
      assert.equal(lifted.status, 200, JSON.stringify(lifted.body));
      const edge = await boot({ flavorRef: await flavor('v512', 512, 16) });
      assert.equal((await show(edge)).status, 'BUILD');
      const renamed = await call('PUT', `/servers/${edge}`, { server: { name: 'a\u009fb' } });
      assert.match(novaErr(renamed, 'badRequest', 400), /server\.name.*control characters/);
      const empty = await boot({ imageRef: await direct({ os_command_line: '' }) });
      const spec = (await rpc.instance('h1', empty)) as InstanceSpec;
      assert.equal(spec.cmdline, null);
      assert.equal(spec.kernel?.id, images.kernel);
    });

    test('no capacity or no live agent: ERROR with "No valid host", no ports, no hint', async () => {
      await report('h1', { memory_mb: 1024 });
      const id = await boot({ flavorRef: '2', networks: [{ uuid: h.net.n.id }] });
      const s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null);
      assert.equal(s.hostId, '');
      const fault = s.fault as Body;
      assert.equal(fault.code, 500);
      assert.match(String(fault.message), /^No valid host was found/);
      assert.match(String(fault.details), /h1: ramMb 512 free < 2048/);
      assert.equal(((await show(id, MEMBER)).fault as Body).details, undefined);
      assert.deepEqual(await portsOf(id), []);
      advance(DOWN + 1);
      const dead = await show(await boot());
      assert.match(String((dead.fault as Body).details), /h1: compute agent is not alive/);
      assert.equal(received.filter((r) => r.queue.startsWith('compute_agent')).length, 0);
      const errors = (await call('GET', '/servers/detail?status=ERROR')).body as {
        servers: Body[];
      };
      assert.equal(errors.servers.length, 2);
      assert.deepEqual(((await call('GET', '/servers?status=ACTIVE')).body as Body).servers, []);
    });

    test('concurrent boots never overcommit a host', async () => {
      await report('h1', { vcpus: 3, memory_mb: 65536, local_gb: 1000 });
      const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => boot({ name: `c${i}` })));
      const states = await Promise.all(ids.map((id) => show(id)));
      assert.equal(states.filter((s) => s.status === 'BUILD').length, 3);
      assert.equal(states.filter((s) => s.status === 'ERROR').length, 5);
      const names = new Set(states.map((s) => s['OS-EXT-SRV-ATTR:instance_name']));
      assert.equal(names.size, 8, 'every instance has its own seq');
    });

    test('ports that cannot be made: ERROR, and what was made or claimed is released', async () => {
      await report('h1');
      const full = await ok<Network>('POST', '/v2.0/networks', 'network', {
        network: { name: 'full' },
      });
      await ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: full.id, cidr: '10.9.0.0/30', ip_version: 4, enable_dhcp: false },
      });
      await ok<Port>('POST', '/v2.0/ports', 'port', { port: { network_id: full.id } });
      const own = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id },
      });
      const id = await boot({
        networks: [{ uuid: h.net.n.id }, { port: own.id }, { uuid: full.id }],
      });
      const s = await show(id);
      assert.equal(s.status, 'ERROR');
      assert.equal(s['OS-EXT-SRV-ATTR:host'], null, 'the host is not charged for it');
      assert.match(String((s.fault as Body).message), /Failed to allocate the network/);
      assert.match(String((s.fault as Body).details), /No more IP addresses/);
      assert.deepEqual(await portsOf(id), []);
      const back = await ok<Port>('GET', `/v2.0/ports/${own.id}`, 'port');
      assert.equal(back.device_id, '');
      assert.equal(back['binding:host_id'], '');
      assert.equal(hints('compute_agent.h1', 'instance', id).length, 0);
      assert.equal(await rpc.instance('h1', id), null);
    });
  });
}
