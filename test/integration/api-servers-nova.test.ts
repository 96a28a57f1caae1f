/**
 * The Nova servers API as strict clients (tempest, openstacksdk) see it, on both database
 * engines with a real broker (api-servers-harness.ts): create's accessIPv4/6, adminPass,
 * min/max_count batches and return_reservation_id, security_groups; PUT's short view;
 * the view keys at 2.1, 2.3, 2.9 and 2.16 (tempest's response schemas' keys, exactly);
 * the /ips routes; the name, ip and ip6 regex filters; an unknown route's 404 in Nova's shape.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Port, Subnet } from '../../contracts/network.ts';
import {
  ADMIN,
  type Body,
  DOWN,
  MEMBER,
  type Server,
  serversHarness,
} from './api-servers-harness.ts';

/** tempest v2_1 common_show_server's keys of an ACTIVE/BUILD server (no fault). */
const SHORT = [
  'OS-DCF:diskConfig',
  'accessIPv4',
  'accessIPv6',
  'addresses',
  'created',
  'flavor',
  'hostId',
  'id',
  'image',
  'links',
  'metadata',
  'name',
  'progress',
  'status',
  'tenant_id',
  'updated',
  'user_id',
];
/** tempest v2_1 server_detail's keys a member sees. */
const DETAIL = [
  ...SHORT,
  'OS-EXT-AZ:availability_zone',
  'OS-EXT-STS:power_state',
  'OS-EXT-STS:task_state',
  'OS-EXT-STS:vm_state',
  'OS-SRV-USG:launched_at',
  'OS-SRV-USG:terminated_at',
  'config_drive',
  'key_name',
  'os-extended-volumes:volumes_attached',
  'security_groups',
].sort();
const ADMIN_21 = [
  'OS-EXT-SRV-ATTR:host',
  'OS-EXT-SRV-ATTR:hypervisor_hostname',
  'OS-EXT-SRV-ATTR:instance_name',
];
const ADMIN_23 = [
  'OS-EXT-SRV-ATTR:hostname',
  'OS-EXT-SRV-ATTR:kernel_id',
  'OS-EXT-SRV-ATTR:launch_index',
  'OS-EXT-SRV-ATTR:ramdisk_id',
  'OS-EXT-SRV-ATTR:reservation_id',
  'OS-EXT-SRV-ATTR:root_device_name',
  'OS-EXT-SRV-ATTR:user_data',
];
const sorted = (...lists: string[][]) => lists.flat().sort();
const keys = (o: unknown) => Object.keys(o as object).sort();
/** Nova's generate_password alphabet, one of each group. */
const PASSWORD = /^(?=.*[2-9])(?=.*[A-HJ-NP-Z])(?=.*[a-km-z])[2-9A-HJ-NP-Za-km-z]{12}$/;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`Nova servers for strict clients on ${engine}`, () => {
    const h = serversHarness(engine);
    const { call, boot, show, novaErr, ok, report, advance, counts } = h;

    /** A request at a compute microversion (none: 2.1). */
    const nova = async (
      method: 'GET' | 'POST' | 'PUT',
      url: string,
      opts: { payload?: unknown; token?: string; version?: string } = {},
    ) => {
      const headers: Record<string, string> = { 'x-auth-token': opts.token ?? ADMIN };
      if (opts.version) headers['openstack-api-version'] = `compute ${opts.version}`;
      const res = await h.app.inject({ method, url, headers, payload: opts.payload as string });
      return { status: res.statusCode, headers: res.headers, body: res.json() as Body };
    };
    const server = async (id: string, version?: string, token?: string) => {
      const r = await nova('GET', `/servers/${id}`, { version, token });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.server as Server;
    };
    const create = (extra: Body) =>
      call('POST', '/servers', {
        server: { name: 'vm', flavorRef: '1', imageRef: h.images.plain, ...extra },
      });
    const column = async (id: string, name: string) => {
      const [row] = await h.db.query<Record<string, unknown>>(
        `SELECT ${name} AS v FROM instances WHERE id = ?`,
        [id],
      );
      return row?.v;
    };

    test('create: access IPs and adminPass are kept and answered; a password is generated', async () => {
      await report('h1');
      const r = await create({
        accessIPv4: '192.0.2.10',
        accessIPv6: '2001:DB8:0::10',
        adminPass: 'S3cret pass',
      });
      assert.equal(r.status, 202, r.raw);
      const body = (r.body as { server: Body }).server;
      assert.deepEqual(keys(body), [
        'OS-DCF:diskConfig',
        'adminPass',
        'id',
        'links',
        'security_groups',
      ]);
      assert.equal(body.adminPass, 'S3cret pass');
      assert.deepEqual(body.security_groups, [{ name: 'default' }]);
      const id = String(body.id);
      assert.equal(await column(id, 'admin_pass'), 'S3cret pass');
      const s = await show(id);
      assert.equal(s.accessIPv4, '192.0.2.10');
      assert.equal(s.accessIPv6, '2001:db8::10', 'canonical, as Nova stores it');
      const located = await nova('POST', '/v2.1/servers', {
        payload: { server: { name: 'vm', flavorRef: '1', imageRef: h.images.plain } },
      });
      assert.equal(located.status, 202);
      const made = located.body.server as Body;
      assert.equal(located.headers.location, `${(made.links as { href: string }[])[0]?.href}`);
      assert.match(String(located.headers.location), /\/v2\.1\/servers\/[0-9a-f-]{36}$/);
      assert.match(String(made.adminPass), PASSWORD);
      assert.equal(await column(String(made.id), 'admin_pass'), made.adminPass);
      assert.equal((await show(String(made.id))).accessIPv4, '');

      const before = await counts();
      for (const [field, value] of [
        ['accessIPv4', '1.2.3'],
        ['accessIPv4', '2001:db8::1'],
        ['accessIPv6', '192.0.2.1'],
        ['adminPass', 5],
      ] as const) {
        const bad = await create({ [field]: value });
        assert.match(novaErr(bad, 'badRequest', 400), new RegExp(`server\\.${field}`));
      }
      assert.deepEqual(await counts(), before, 'nothing created');
    });

    test('min_count/max_count: a batch named <name>-<i> sharing a reservation id', async () => {
      await report('h1', { memory_mb: 2048 });
      const r = await create({ name: 'web', min_count: 2, max_count: '4' });
      assert.equal(r.status, 202, r.raw);
      const first = String((r.body as { server: Body }).server.id);
      const list = (
        (await nova('GET', '/servers/detail', { version: '2.3' })).body.servers as Server[]
      ).reverse();
      assert.deepEqual(
        list.map((s) => [s.name, s['OS-EXT-SRV-ATTR:launch_index'], s['OS-EXT-SRV-ATTR:hostname']]),
        [
          ['web-1', 0, 'web-1'],
          ['web-2', 1, 'web-2'],
          ['web-3', 2, 'web-3'],
          ['web-4', 3, 'web-4'],
        ],
      );
      assert.equal(list[0]?.id, first, 'the answer is the first server');
      const reservations = new Set(list.map((s) => s['OS-EXT-SRV-ATTR:reservation_id']));
      assert.equal(reservations.size, 1);
      const [reservation] = reservations;
      assert.match(String(reservation), /^r-[a-z0-9]{8}$/);
      // Each placed as a single create: 3 fit h1 (1536 MiB free), the 4th has no host.
      assert.deepEqual(
        list.map((s) => s.status),
        ['BUILD', 'BUILD', 'BUILD', 'ERROR'],
      );
      const passwords = new Set(await Promise.all(list.map((s) => column(s.id, 'admin_pass'))));
      assert.equal(passwords.size, 1, 'one password for the batch');
      const filtered = await call('GET', `/servers?reservation_id=${reservation}`);
      assert.equal((filtered.body as { servers: Body[] }).servers.length, 4);

      const resv = await create({ max_count: 2, return_reservation_id: 'True', networks: 'none' });
      assert.equal(resv.status, 202, resv.raw);
      assert.deepEqual(keys(resv.body), ['reservation_id']);
      const batch = await call(
        'GET',
        `/servers?reservation_id=${String(resv.body?.reservation_id)}`,
      );
      assert.deepEqual((batch.body as { servers: Body[] }).servers.map((s) => s.name).sort(), [
        'vm-1',
        'vm-2',
      ]);
      const single = await create({ min_count: 1, max_count: 1, networks: 'none' });
      const one = await server(String((single.body as { server: Body }).server.id), '2.3');
      assert.equal(one.name, 'vm', 'one server keeps its name');
      assert.match(String(one['OS-EXT-SRV-ATTR:reservation_id']), /^r-[a-z0-9]{8}$/);

      const before = await counts();
      const port = await ok<Port>('POST', '/v2.0/ports', 'port', {
        port: { network_id: h.net.n.id },
      });
      const after = await counts();
      for (const [extra, message] of [
        [{ min_count: 3, max_count: 2 }, /^min_count must be <= max_count$/],
        [{ min_count: 0 }, /server\.min_count/],
        [{ max_count: 'two' }, /server\.max_count/],
        [{ max_count: 101 }, /server\.max_count/],
        [
          { max_count: 2, networks: [{ uuid: h.net.n.id, fixed_ip: '10.1.0.77' }] },
          /^max_count cannot be greater than 1 if an fixed_ip is specified\.$/,
        ],
        [
          { max_count: 2, networks: [{ port: port.id }] },
          /^Unable to launch multiple instances with a single configured port ID/,
        ],
        [{ max_count: 2, name: 'x'.repeat(254) }, /server\.name/],
      ] as const) {
        assert.match(novaErr(await create(extra), 'badRequest', 400), message);
      }
      assert.equal(after.instances, before.instances);
      assert.deepEqual(await counts(), after, 'nothing created');
    });

    test('security_groups: default only, kept on the row and shown', async () => {
      await report('h1');
      const r = await create({ security_groups: [{ name: 'default' }, { name: 'default' }] });
      assert.equal(r.status, 202, r.raw);
      const id = String((r.body as { server: Body }).server.id);
      assert.deepEqual((await show(id)).security_groups, [{ name: 'default' }]);
      assert.equal(await column(id, 'security_groups'), '["default"]');
      const before = await counts();
      const bad = await create({ security_groups: [{ name: 'default' }, { name: 'web' }] });
      const project = String((await show(id)).tenant_id);
      assert.equal(
        novaErr(bad, 'badRequest', 400),
        `Security group web not found for project ${project}.`,
      );
      assert.match(
        novaErr(await create({ security_groups: 'default' }), 'badRequest', 400),
        /security_groups/,
      );
      assert.deepEqual(await counts(), before);
    });

    test('PUT: name and access IPs; the short update view at 2.1, 2.9 and 2.16', async () => {
      await report('h1');
      const id = await boot({ networks: [{ uuid: h.net.n.id }] });
      const r = await nova('PUT', `/servers/${id}`, {
        payload: {
          server: { name: 'renamed', accessIPv4: '198.51.100.7', accessIPv6: '2001:db8::7' },
        },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const s = r.body.server as Server;
      assert.deepEqual(keys(s), SHORT);
      assert.equal(s.name, 'renamed');
      assert.equal(s.accessIPv4, '198.51.100.7');
      const [addr] = Object.values(s.addresses as Record<string, Body[]>).flat();
      assert.deepEqual(keys(addr), ['addr', 'version'], 'no OS-EXT-IPS keys in the short view');
      const shown = await show(id);
      assert.equal(shown.accessIPv6, '2001:db8::7');
      const only = await nova('PUT', `/servers/${id}`, {
        payload: { server: { accessIPv4: '198.51.100.8' } },
      });
      assert.equal((only.body.server as Server).name, 'renamed', 'what the body names only');
      for (const version of ['2.9', '2.16']) {
        const v = await nova('PUT', `/servers/${id}`, {
          payload: { server: { name: 'n' } },
          version,
        });
        assert.deepEqual(keys(v.body.server), sorted(SHORT, ['locked']), version);
      }
      const bad = await nova('PUT', `/servers/${id}`, {
        payload: { server: { accessIPv6: 'nope' } },
      });
      assert.equal(bad.status, 400);
      assert.match(String((bad.body.badRequest as Body).message), /server\.accessIPv6/);
    });

    test('views: exact keys at 2.1, 2.3, 2.9, 2.16; locked; host_status from the agent', async () => {
      await report('h1');
      const id = await boot({ networks: [{ uuid: h.net.n.id }] });
      const member = await server(id, undefined, MEMBER);
      assert.deepEqual(keys(member), DETAIL);
      assert.deepEqual(keys(await server(id)), sorted(DETAIL, ADMIN_21));
      const at23 = await server(id, '2.3');
      assert.deepEqual(keys(at23), sorted(DETAIL, ADMIN_21, ADMIN_23));
      assert.equal(at23['OS-EXT-SRV-ATTR:kernel_id'], '');
      assert.equal(at23['OS-EXT-SRV-ATTR:user_data'], null);
      assert.equal(at23['OS-EXT-SRV-ATTR:root_device_name'], null, 'not launched yet');
      assert.deepEqual(keys(await server(id, '2.3', MEMBER)), DETAIL);
      const at9 = await server(id, '2.9');
      assert.deepEqual(keys(at9), sorted(DETAIL, ADMIN_21, ADMIN_23, ['locked']));
      assert.equal(at9.locked, false);
      await h.db.query("UPDATE instances SET locked_by = 'owner' WHERE id = ?", [id]);
      assert.equal((await server(id, '2.9', MEMBER)).locked, true);
      const at16 = await server(id, '2.16');
      assert.deepEqual(keys(at16), sorted(DETAIL, ADMIN_21, ADMIN_23, ['locked', 'host_status']));
      assert.equal(at16.host_status, 'UP');
      assert.deepEqual(keys(await server(id, '2.16', MEMBER)), sorted(DETAIL, ['locked']));
      const direct = await boot({ imageRef: h.images.direct, networks: 'none' });
      const d = await server(direct, '2.3');
      assert.equal(d['OS-EXT-SRV-ATTR:kernel_id'], h.images.kernel);
      assert.equal(d['OS-EXT-SRV-ATTR:ramdisk_id'], h.images.ramdisk);

      advance(DOWN + 1);
      const list = await nova('GET', '/servers/detail', { version: 'latest' });
      assert.equal(list.headers['openstack-api-version'], 'compute 2.16');
      const statuses = (list.body.servers as Server[]).map((s) => s.host_status);
      assert.deepEqual(statuses, ['UNKNOWN', 'UNKNOWN'], 'the agent stopped reporting');
      await call('PUT', `/v2.0/agents/${await agentId('h1')}`, {
        agent: { admin_state_up: false },
      });
      assert.equal((await server(id, '2.16')).host_status, 'MAINTENANCE');
      const orphan = await boot({ networks: 'none' });
      const e = await server(orphan, '2.16');
      assert.equal(e.status, 'ERROR');
      assert.equal(e.host_status, '', 'no host');
      assert.equal(e.progress, undefined, 'progress only while building or active');
    });
    const agentId = async (host: string) => {
      const r = await call('GET', `/v2.0/agents?host=${host}&agent_type=Compute%20agent`);
      return String(((r.body as { agents: Body[] }).agents[0] as Body).id);
    };

    test('/ips and /ips/{label}: the fixed addresses; an unknown label is 404', async () => {
      await report('h1');
      const id = await boot({ networks: [{ uuid: h.net.n.id }] });
      const [port] = await h.portsOf(id);
      const ip = port?.fixed_ips[0]?.ip_address;
      for (const prefix of ['', '/v2.1', '/compute/v2.1']) {
        const all = await nova('GET', `${prefix}/servers/${id}/ips`);
        assert.equal(all.status, 200);
        assert.deepEqual(all.body, { addresses: { net1: [{ version: 4, addr: ip }] } });
        const one = await nova('GET', `${prefix}/servers/${id}/ips/net1`, { token: MEMBER });
        assert.deepEqual(one.body, { net1: [{ version: 4, addr: ip }] });
      }
      const none = await nova('GET', `/servers/${id}/ips/other`);
      assert.equal(none.status, 404);
      assert.equal(
        (none.body.itemNotFound as Body).message,
        'Instance is not a member of specified network',
      );
      const gone = await nova('GET', '/servers/00000000-0000-4000-8000-000000000000/ips');
      assert.equal(gone.status, 404);
      assert.ok(gone.body.itemNotFound);
      const proto = await ok<Body>('POST', '/v2.0/networks', 'network', {
        network: { name: '__proto__' },
      });
      await ok('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: proto.id, cidr: '10.9.0.0/24', ip_version: 4 },
      });
      const odd = await boot({ networks: [{ uuid: proto.id as string }] });
      const labelled = await nova('GET', `/servers/${odd}/ips/__proto__`);
      assert.equal(labelled.status, 200, 'a network named __proto__ is a label like any other');
      assert.equal(
        ((Object.getOwnPropertyDescriptor(labelled.body, '__proto__')?.value ?? []) as Body[])
          .length,
        1,
      );
      assert.equal((await nova('GET', `/servers/${odd}`)).status, 200);
      assert.equal((await nova('GET', '/servers/detail')).status, 200);
      assert.equal((await nova('GET', '/servers?ip=10%5C.9')).status, 200);
    });

    test('list filters: name, ip and ip6 are regular expressions as in Nova', async () => {
      await report('h1');
      const v6 = await ok<Subnet>('POST', '/v2.0/subnets', 'subnet', {
        subnet: { network_id: h.net.n.id, cidr: 'fd00:1::/64', ip_version: 6 },
      });
      assert.ok(v6.id);
      const a = await boot({ name: 'web-1', networks: [{ uuid: h.net.n.id }] });
      const b = await boot({ name: 'web-22', networks: 'none' });
      const c = await boot({ name: 'db', networks: 'none' });
      const ids = async (query: string, token = ADMIN, version?: string) => {
        const r = await nova('GET', `/servers${query}`, { token, version });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return (r.body.servers as Body[]).map((s) => s.id).sort();
      };
      assert.deepEqual(await ids('?name=web-[0-9]$'), [a].sort());
      assert.deepEqual(await ids('?name=eb'), [a, b].sort(), 'searched anywhere');
      assert.deepEqual(await ids('?name=WEB'), [], 'case-sensitive');
      assert.deepEqual(await ids('?name=^(db|web-22)$'), [b, c].sort());
      const detail = await nova('GET', '/servers/detail?name=^db$');
      assert.deepEqual(
        (detail.body.servers as Body[]).map((s) => s.id),
        [c],
      );
      const [port] = await h.portsOf(a);
      const v4 = port?.fixed_ips.find((f) => !f.ip_address.includes(':'))?.ip_address ?? '';
      const v6addr = port?.fixed_ips.find((f) => f.ip_address.includes(':'))?.ip_address ?? '';
      assert.ok(v4 && v6addr, JSON.stringify(port?.fixed_ips));
      assert.deepEqual(await ids(`?ip=${encodeURIComponent(v4)}`), [a]);
      assert.deepEqual(await ids('?ip=10%5C.1%5C.0%5C.'), [a]);
      assert.deepEqual(await ids('?ip=1%5C.0'), [], 'matched from the start');
      assert.deepEqual(await ids('?ip=fd00'), [], 'ip is IPv4 only');
      assert.deepEqual(await ids('?ip6=fd00:1:'), [a]);
      assert.deepEqual(await ids('?ip6=fd00:1:', MEMBER), [a, b, c].sort(), 'before 2.5: ignored');
      assert.deepEqual(await ids('?ip6=fd00:1:', MEMBER, '2.5'), [a]);
      assert.deepEqual(await ids('?ip=10.&name=web'), [a]);
      const long = await boot({ name: `${'w'.repeat(48)}!`, networks: 'none' });
      assert.deepEqual(
        await ids(`?name=${encodeURIComponent('^(w|ww)+$')}`),
        [],
        'a pattern that backtracks exponentially answers (RE2), here without a match',
      );
      assert.deepEqual(await ids(`?name=${encodeURIComponent('^(w|ww)+!$')}`), [long]);
      for (const [query, filter] of [
        ['?name=web(', 'name'],
        ['?ip=%5B', 'ip'],
        ['?ip6=*', 'ip6'],
        [`?name=${encodeURIComponent('(\\w{1000})'.repeat(3))}`, 'name'],
        [`?name=${encodeURIComponent('x{0,1000}'.repeat(28))}`, 'name'],
      ] as const) {
        const r = await nova('GET', `/servers${query}`);
        assert.equal(r.status, 400, query);
        assert.match(
          String((r.body.badRequest as Body).message),
          new RegExp(
            `^Invalid input for query parameter ${filter}: .*not a valid regular expression`,
          ),
        );
      }
    });

    test('an unknown compute route is Nova itemNotFound; os-keypairs answers at every root', async () => {
      for (const url of [
        '/os-no-such-thing',
        '/v2.1/os-no-such-thing',
        '/compute/v2.1/os-no-such-thing',
      ]) {
        const r = await call('GET', url);
        assert.equal(r.status, 404, url);
        assert.ok((r.body as Body).itemNotFound, `${url}: ${r.raw}`);
      }
      for (const url of ['/os-keypairs', '/v2.1/os-keypairs', '/compute/v2.1/os-keypairs']) {
        const r = await call('GET', url);
        assert.equal(r.status, 200, url);
        assert.ok(Array.isArray((r.body as Body).keypairs), `${url}: ${r.raw}`);
      }
    });
  });
}
